#include "dsr/common/time.hpp"

#include <gtest/gtest.h>

namespace dsr {
namespace {

using namespace std::chrono;

TEST(Rfc3339, ParsesMineOsTimestampWithSevenFractionalDigits) {
  const auto t = parse_rfc3339("2026-11-28T10:00:00.7266574Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(format_rfc3339(*t), "2026-11-28T10:00:00.726Z");
}

TEST(Rfc3339, ParsesWithoutFractionAndWithOffsets) {
  EXPECT_EQ(format_rfc3339(*parse_rfc3339("2026-11-28T10:00:00Z")), "2026-11-28T10:00:00.000Z");
  EXPECT_EQ(format_rfc3339(*parse_rfc3339("2026-11-28T12:00:00.5+02:00")),
            "2026-11-28T10:00:00.500Z");
  EXPECT_EQ(format_rfc3339(*parse_rfc3339("2026-11-28T05:30:00-04:30")),
            "2026-11-28T10:00:00.000Z");
  EXPECT_EQ(format_rfc3339(*parse_rfc3339("2026-11-28t10:00:00z")), "2026-11-28T10:00:00.000Z");
}

TEST(Rfc3339, RejectsWhatIsNotADateTime) {
  for (const char* bad : {"", "2026-11-28", "2026-11-28T10:00:00", "2026-13-01T00:00:00Z",
                          "2026-02-30T00:00:00Z", "2026-11-28T24:00:00Z", "2026-11-28T10:00:00.Z",
                          "2026-11-28T10:00:00Zjunk", "yesterday", "2026-11-28T10:00:00+0200"}) {
    EXPECT_FALSE(parse_rfc3339(bad)) << bad;
  }
}

TEST(Rfc3339, FormatRoundTrips) {
  const time_point t{sys_days{year{2024} / 2 / 29} + hours{23} + minutes{59} + seconds{59} +
                     milliseconds{7}};
  EXPECT_EQ(format_rfc3339(t), "2024-02-29T23:59:59.007Z");
  EXPECT_EQ(parse_rfc3339(format_rfc3339(t)), t);
}

}  // namespace
}  // namespace dsr
