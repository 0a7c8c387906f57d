#pragma once
// Inside parse_webhook (webhook.cpp): the body's fields as read, before they are checked, and the
// one-pass reading of the shape MineOS sends today (webhook_sax.cpp).

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dsr::mineos::detail {

// A body's fields as found, before they are checked: every value a string (an integer id already
// turned into its digits), every absent one "".
struct raw_webhook {
  std::string trace_id;
  std::string integration_id;
  bool is_test = false;
  bool has_request = false;
  std::string request_id, source, domain, right_id, right_name, type, created_at;
  std::string email, name;
  // userInfo.customFields with a string or integer value, by key (bytewise order), one per key.
  std::vector<std::pair<std::string, std::string>> custom_fields;
};

// The fields of a body of today's shape, read without building a JSON document; nullopt for any
// other shape or a malformed body (the document reading decides those).
std::optional<raw_webhook> read_in_one_pass(std::string_view body);

}  // namespace dsr::mineos::detail
