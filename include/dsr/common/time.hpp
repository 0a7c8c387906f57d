#pragma once
// RFC 3339 timestamps as MineOS sends them and the job view shows them.

#include "dsr/common/clock.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace dsr {

// Parses "2026-11-28T10:00:00Z", "2026-11-28T10:00:00.7266574Z", "...+02:00" (any number of
// fractional digits, truncated to milliseconds; 't'/'z' accepted in lower case). nullopt when the
// text is not a valid RFC 3339 date-time.
std::optional<time_point> parse_rfc3339(std::string_view text);

// Formats as "2026-11-28T10:00:00.726Z" (UTC, always three fractional digits).
std::string format_rfc3339(time_point t);

}  // namespace dsr

namespace dsr {

// An IMF-fixdate HTTP date ("Sun, 06 Nov 1994 08:49:37 GMT"), as in Retry-After; nullopt if not.
std::optional<time_point> parse_http_date(std::string_view text);

}  // namespace dsr
