#pragma once
// Parsing of the MineOS custom-integration webhook body (contract §4), both the current shape
// (traceId, request, userInfo) and the legacy one (EventId/eventId, ticketInfo, isTest as a string,
// userInfo inside the request). Errors name the field and never echo its value.

#include "dsr/common/clock.hpp"
#include "dsr/common/error.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace dsr::mineos {

// Which endpoint the body came to: the operation comes from the path, not from request.type.
enum class endpoint_kind { delete_, copy, preview };

struct webhook {
  std::string trace_id;
  std::string integration_id;
  bool is_test = false;
  std::string request_id;    // "" when absent (allowed for preview and isTest)
  std::string request_type;  // request.requestType.id, else request.type; informational
  std::string source;
  std::string domain;
  std::optional<time_point> created_at;
  std::string email;  // personal data
  std::string name;   // personal data
};

// errc::invalid_input with a detail such as "userInfo.email is missing" or "body is not valid
// JSON (at byte 17)". Required: delete and copy — trace id, request.id, userInfo.email; preview —
// trace id, userInfo.email; isTest — trace id only.
result<webhook> parse_webhook(std::string_view body, endpoint_kind kind);

}  // namespace dsr::mineos
