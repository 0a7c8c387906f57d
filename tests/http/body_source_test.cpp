#include "dsr/http/body_source.hpp"

#include "dsr/common/sealed_file.hpp"

#include "support/drain.hpp"
#include "support/temp_dir.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

namespace dsr::http {
namespace {

TEST(FileSource, SendsPrefixFileAndSuffixInSmallPieces) {
  test::temp_dir dir;
  const std::string content(10000, 'x');
  auto s = file_source(dir.write("e.json", content), "pre-", "-post");
  ASSERT_TRUE(s) << s.error().detail;
  EXPECT_EQ((*s)->size(), 4u + 10000u + 5u);
  std::string got;
  char piece[3];  // pieces smaller than every part, crossing their borders
  for (;;) {
    auto n = (*s)->read(piece);
    ASSERT_TRUE(n);
    if (*n == 0) {
      break;
    }
    got.append(piece, *n);
  }
  EXPECT_EQ(got, "pre-" + content + "-post");
  // Rewound, it sends the same again (a re-sent request).
  EXPECT_EQ(test::drain(**s).value(), got);
}

TEST(FileSource, MissingFileNamesIt) {
  test::temp_dir dir;
  const auto s = file_source(dir.path() / "gone.json");
  ASSERT_FALSE(s);
  EXPECT_TRUE(s.error().is(errc::io_error));
  EXPECT_THAT(s.error().detail, ::testing::HasSubstr("gone.json"));
}

TEST(FileSource, FileCutShortWhileSendingIsAnError) {
  test::temp_dir dir;
  const auto path = dir.write("e.json", std::string(100, 'x'));
  auto s = file_source(path);
  ASSERT_TRUE(s);
  std::filesystem::resize_file(path, 10);
  const auto body = test::drain(**s);
  ASSERT_FALSE(body);
  EXPECT_THAT(body.error().detail, ::testing::HasSubstr("shorter"));
}

// An export sealed with store_key itself by an earlier version stays readable after the switch to
// derived keys; a file no candidate key opens still fails to read.
TEST(SealedFileSource, PicksTheKeyTheFileWasSealedWith) {
  test::temp_dir dir;
  const std::string current(32, 'c');
  const std::string legacy(32, 'l');
  for (const std::size_t size : {std::size_t{10}, sealed_file::chunk_plain * 2 + 5}) {
    const std::string plain(size, 'p');
    const auto file = dir.path() / ("e" + std::to_string(size) + ".json");
    {
      std::ofstream out(file, std::ios::binary);
      sealed_file::writer w(legacy, "req-1", [&](std::string_view s) {
        out.write(s.data(), static_cast<std::streamsize>(s.size()));
        return true;
      });
      ASSERT_TRUE(w.write(plain));
      ASSERT_TRUE(w.finish());
    }
    auto both = sealed_file_source(file, std::vector<std::string>{current, legacy}, "req-1");
    ASSERT_TRUE(both) << both.error().detail;
    EXPECT_EQ(test::drain(**both).value(), plain);
    auto only_current = sealed_file_source(file, std::vector<std::string>{current}, "req-1");
    ASSERT_TRUE(only_current);
    EXPECT_FALSE(test::drain(**only_current));
  }
}

}  // namespace
}  // namespace dsr::http
