#pragma once
// Parsing of the MineOS custom-integration webhook body (docs/contract.md §4), both the current
// shape (traceId, request, userInfo) and the legacy one (EventId/eventId, ticketInfo, isTest as a
// string, userInfo inside the request). Errors name the field and never echo its value.

#include "dsr/common/clock.hpp"
#include "dsr/common/error.hpp"
#include "dsr/config/request_types.hpp"
#include "dsr/jobs/job.hpp"

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dsr::mineos {

// Which endpoint the body came to: the operation comes from the path, not from request.type.
enum class endpoint_kind { delete_, copy, preview };
inline constexpr std::array<endpoint_kind, 3> all_endpoint_kinds{
    endpoint_kind::delete_, endpoint_kind::copy, endpoint_kind::preview};
// "delete", "copy", "preview": the last segment of its path (POST /v1/mineos/<name>) and the
// metrics' operation label.
std::string_view to_string(endpoint_kind k);

struct webhook {
  std::string trace_id;
  std::string integration_id;  // "" when absent ([mineos] integration_id may stand in)
  bool is_test = false;
  std::string request_id;  // "" when absent (allowed for preview and isTest)
  right request_right;     // request.requestType.id/.name and request.type (cleaned text)
  std::string source;
  std::string domain;
  std::optional<time_point> created_at;
  std::string email;  // personal data; "" when absent
  std::string name;   // personal data
  // userInfo.customFields with a string (or integer) value, by name (bytewise): personal data.
  std::vector<std::pair<std::string, std::string>> custom_fields;

  friend bool operator==(const webhook&, const webhook&) = default;
};

// An isTest delivery: what its test status call needs (docs/contract.md §6).
struct test_call {
  std::string request_id;      // "" when the delivery has none
  std::string integration_id;  // the delivery's, else [mineos] integration_id; "" when neither
  mineos_action action = mineos_action::delete_;
};

// errc::invalid_input with a detail such as "request.id is missing" or "body is not valid JSON (at
// byte 17)". Required: delete and copy — a trace id and request.id; isTest and preview — a trace
// id. request.id and integrationId, when present, must be is_safe_id (they go into MineOS URLs and
// file names); userInfo.email, when present, must look like an address. Whether the request has
// an identifier is the caller's question (identifiers.hpp): a delete or copy without one is still
// a job.
// The body is read in one pass into the fields (no JSON document built) when it has the shape
// MineOS sends today; any other shape, or a malformed body, is read by parse_webhook_document,
// with the same result.
result<webhook> parse_webhook(std::string_view body, endpoint_kind kind);

// The same parse through a JSON document, for every shape: the reference the one-pass reading is
// tested against.
result<webhook> parse_webhook_document(std::string_view body, endpoint_kind kind);

}  // namespace dsr::mineos
