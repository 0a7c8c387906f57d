// libFuzzer target: clean_text and cut_utf8 (common/text.hpp), which every foreign text passes
// before it is stored, logged or sent. Input: one byte choosing the byte limit, then the text.
// Beyond not crashing: the output is valid UTF-8 (json::dump never throws on it), holds no
// control character but tab, fits the limit, and cleaning it again changes nothing.

#include "dsr/common/text.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) {
    return 0;
  }
  const std::size_t limit = data[0] == 0 ? 0 : data[0] + 1u;
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::string out = dsr::clean_text(in, limit);
  if (!dsr::is_valid_utf8(out)) {
    std::abort();
  }
  if (limit != 0 && out.size() > limit) {
    std::abort();
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    const auto c = static_cast<unsigned char>(out[i]);
    const bool c0 = (c < 0x20 && c != '\t') || c == 0x7F;
    const bool c1 =
        c == 0xC2 && i + 1 < out.size() && static_cast<unsigned char>(out[i + 1]) <= 0x9F;
    if (c0 || c1) {
      std::abort();
    }
  }
  if (dsr::clean_text(out, limit) != out) {
    std::abort();
  }
  (void)nlohmann::json(out).dump();  // throws (and aborts the run) on invalid UTF-8
  if (dsr::is_valid_utf8(in)) {
    const auto cut = dsr::cut_utf8(in, limit);
    if (!dsr::is_valid_utf8(cut) || (limit != 0 && cut.size() > limit) ||
        in.substr(0, cut.size()) != cut) {
      std::abort();
    }
  }
  return 0;
}
