// libFuzzer target: the MineOS webhook body parser (mineos/webhook.hpp), for each endpoint.
// Beyond not crashing: a body that parses has the fields its endpoint requires.

#include "dsr/mineos/webhook.hpp"

#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  using dsr::mineos::endpoint_kind;
  for (const auto kind : {endpoint_kind::delete_, endpoint_kind::copy, endpoint_kind::preview}) {
    const auto w = dsr::mineos::parse_webhook(body, kind);
    if (!w) {
      if (w.error().detail.empty()) {
        std::abort();  // a refusal must say why
      }
      continue;
    }
    if (w->trace_id.empty()) {
      std::abort();
    }
    if (!w->is_test &&
        (w->email.empty() || (kind != endpoint_kind::preview && w->request_id.empty()))) {
      std::abort();
    }
  }
  return 0;
}
