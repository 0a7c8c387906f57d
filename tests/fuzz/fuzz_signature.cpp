// libFuzzer target: the X-Mine-Signature check (mineos/signature.hpp). Input: the header value,
// a newline, then the body. Beyond not crashing: the signature of the body under either rotated
// key verifies, and the fuzzed header verifies only if it is exactly such a signature (give or
// take surrounding whitespace).

#include "dsr/mineos/signature.hpp"

#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto nl = input.find('\n');
  const std::string_view header = input.substr(0, nl);
  const std::string_view body = nl == std::string_view::npos ? "" : input.substr(nl + 1);
  const std::vector<dsr::secret> keys{dsr::secret("old-fuzz-key"), dsr::secret("new-fuzz-key")};
  const bool ok = dsr::mineos::verify(body, header, keys);
  // Optional whitespace around a header value is not part of it (RFC 9110 §5.5).
  std::string_view value = header;
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
    value.remove_prefix(1);
  }
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) {
    value.remove_suffix(1);
  }
  if (ok && value != dsr::mineos::sign(body, "old-fuzz-key") &&
      value != dsr::mineos::sign(body, "new-fuzz-key")) {
    std::abort();  // something else than the exact signature passed
  }
  if (!dsr::mineos::verify(body, dsr::mineos::sign(body, "new-fuzz-key"), keys) ||
      dsr::mineos::verify(body, dsr::mineos::sign(body, "other-key"), keys)) {
    std::abort();
  }
  return 0;
}
