// libFuzzer target: the MineOS webhook body parser (mineos/webhook.hpp), for each endpoint, and
// what intake does next with it: the right's routing (request_types.hpp) and the choice of the
// subject's one ID (identifiers.hpp).
// Beyond not crashing: the one-pass reading and the document's agree (the same fields, or the same
// refusal); a body that parses has the fields its endpoint requires; request.id and
// integrationId can go into a URL; the right's texts are clean UTF-8 (they are stored and shown);
// an ID is never empty.

#include "dsr/common/text.hpp"
#include "dsr/config/request_types.hpp"
#include "dsr/mineos/identifiers.hpp"
#include "dsr/mineos/webhook.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace {

bool clean(const std::string& s) {
  return dsr::is_valid_utf8(s) && dsr::clean_text(s) == s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  using dsr::mineos::endpoint_kind;
  static const dsr::requests_config lists;
  static const std::vector<dsr::custom_field_id> fields{{"$internalId", "customer_id"},
                                                        {"$phonenumber", "phone"}};
  for (const auto kind : {endpoint_kind::delete_, endpoint_kind::copy, endpoint_kind::preview}) {
    const auto w = dsr::mineos::parse_webhook(body, kind);
    const auto reference = dsr::mineos::parse_webhook_document(body, kind);
    if (w.has_value() != reference.has_value() || (w && !(*w == *reference)) ||
        (!w && w.error().detail != reference.error().detail)) {
      std::abort();
    }
    if (!w) {
      if (w.error().detail.empty()) {
        std::abort();  // a refusal must say why
      }
      continue;
    }
    if (w->trace_id.empty()) {
      std::abort();
    }
    if (!w->is_test && kind != endpoint_kind::preview && w->request_id.empty()) {
      std::abort();
    }
    if ((!w->request_id.empty() && !dsr::is_safe_id(w->request_id)) ||
        (!w->integration_id.empty() && !dsr::is_safe_id(w->integration_id))) {
      std::abort();
    }
    const auto& r = w->request_right;
    if (!clean(r.id) || !clean(r.name) || !clean(r.type) || !clean(w->source) ||
        !clean(w->domain)) {
      std::abort();
    }
    const auto route = dsr::mineos::classify(r, lists);
    const auto label = dsr::mineos::right_label(r);
    if (route == dsr::mineos::route::unhandled && label.empty()) {
      std::abort();  // only a right that was sent can be refused
    }
    (void)nlohmann::json{{"requestType", label}, {"message", dsr::mineos::unhandled_message(r)}}
        .dump();  // throws on invalid UTF-8
    if (const auto id = dsr::mineos::choose_identifier(*w, fields)) {
      if (id->value.empty()) {
        std::abort();
      }
    }
  }
  return 0;
}
