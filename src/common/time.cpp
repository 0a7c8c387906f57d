#include "dsr/common/time.hpp"

#include <fmt/format.h>

#include <array>
#include <cctype>

namespace dsr {
namespace {

class system_clock_impl final : public clock {
 public:
  time_point now() const override {
    return std::chrono::time_point_cast<millis>(std::chrono::system_clock::now());
  }
};

// Reads exactly `n` digits at `pos`, advancing it.
std::optional<int> digits(std::string_view s, std::size_t& pos, std::size_t n) {
  if (pos + n > s.size()) {
    return std::nullopt;
  }
  int value = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const char c = s[pos + i];
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    value = value * 10 + (c - '0');
  }
  pos += n;
  return value;
}

bool expect(std::string_view s, std::size_t& pos, char c) {
  if (pos < s.size() && std::tolower(static_cast<unsigned char>(s[pos])) == c) {
    ++pos;
    return true;
  }
  return false;
}

}  // namespace

std::shared_ptr<clock> make_system_clock() {
  return std::make_shared<system_clock_impl>();
}

std::optional<time_point> parse_rfc3339(std::string_view s) {
  using namespace std::chrono;
  std::size_t pos = 0;
  const auto year = digits(s, pos, 4);
  if (!year || !expect(s, pos, '-')) {
    return std::nullopt;
  }
  const auto month = digits(s, pos, 2);
  if (!month || !expect(s, pos, '-')) {
    return std::nullopt;
  }
  const auto day = digits(s, pos, 2);
  if (!day || !(expect(s, pos, 't') || expect(s, pos, ' '))) {
    return std::nullopt;
  }
  const auto hour = digits(s, pos, 2);
  if (!hour || !expect(s, pos, ':')) {
    return std::nullopt;
  }
  const auto minute = digits(s, pos, 2);
  if (!minute || !expect(s, pos, ':')) {
    return std::nullopt;
  }
  const auto second = digits(s, pos, 2);
  if (!second) {
    return std::nullopt;
  }
  int ms = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    std::size_t n = 0;
    while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
      if (n < 3) {
        ms = ms * 10 + (s[pos] - '0');
      }
      ++n;
      ++pos;
    }
    if (n == 0) {
      return std::nullopt;
    }
    for (; n < 3; ++n) {
      ms *= 10;
    }
  }
  int offset_minutes = 0;
  if (expect(s, pos, 'z')) {
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    const int sign = s[pos] == '-' ? -1 : 1;
    ++pos;
    const auto oh = digits(s, pos, 2);
    if (!oh || !expect(s, pos, ':')) {
      return std::nullopt;
    }
    const auto om = digits(s, pos, 2);
    if (!om || *oh > 23 || *om > 59) {
      return std::nullopt;
    }
    offset_minutes = sign * (*oh * 60 + *om);
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) {
    return std::nullopt;
  }
  const year_month_day ymd{std::chrono::year{*year},
                           std::chrono::month{static_cast<unsigned>(*month)},
                           std::chrono::day{static_cast<unsigned>(*day)}};
  // A leap second (60) is accepted and folded into the next second.
  if (!ymd.ok() || *hour > 23 || *minute > 59 || *second > 60) {
    return std::nullopt;
  }
  return time_point{sys_days{ymd}} + hours{*hour} + minutes{*minute} + seconds{*second} +
         milliseconds{ms} - minutes{offset_minutes};
}

std::string format_rfc3339(time_point t) {
  using namespace std::chrono;
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss<milliseconds> tod{t - day};
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                     tod.hours().count(), tod.minutes().count(), tod.seconds().count(),
                     tod.subseconds().count());
}

}  // namespace dsr

namespace dsr {

std::optional<time_point> parse_http_date(std::string_view s) {
  // "Sun, 06 Nov 1994 08:49:37 GMT"
  static constexpr std::array<std::string_view, 12> months{
      "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (s.size() != 29 || s[3] != ',' || s.substr(25) != " GMT") {
    return std::nullopt;
  }
  const std::string iso_month = [&]() -> std::string {
    for (std::size_t i = 0; i < months.size(); ++i) {
      if (s.substr(8, 3) == months[i]) {
        return fmt::format("{:02}", i + 1);
      }
    }
    return "";
  }();
  if (iso_month.empty()) {
    return std::nullopt;
  }
  const std::string iso =
      fmt::format("{}-{}-{}T{}Z", s.substr(12, 4), iso_month, s.substr(5, 2), s.substr(17, 8));
  return parse_rfc3339(iso);
}

}  // namespace dsr
