#include "dsr/common/text.hpp"

namespace dsr {
namespace {

constexpr std::string_view replacement = "\xEF\xBF\xBD";  // U+FFFD

// The length of the valid UTF-8 sequence at the start of `s`, or 0 when it is not one (RFC 3629:
// no overlong forms, no surrogates, nothing above U+10FFFF).
std::size_t sequence_length(std::string_view s) {
  const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char c = b(0);
  if (c < 0x80) {
    return 1;
  }
  std::size_t n = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    lo = c == 0xE0 ? 0xA0 : 0x80;
    hi = c == 0xED ? 0x9F : 0xBF;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    lo = c == 0xF0 ? 0x90 : 0x80;
    hi = c == 0xF4 ? 0x8F : 0xBF;
  } else {
    return 0;
  }
  if (s.size() < n || b(1) < lo || b(1) > hi) {
    return 0;
  }
  for (std::size_t i = 2; i < n; ++i) {
    if (b(i) < 0x80 || b(i) > 0xBF) {
      return 0;
    }
  }
  return n;
}

bool is_control(std::string_view seq) {
  const auto c = static_cast<unsigned char>(seq[0]);
  if (seq.size() == 1) {
    return (c < 0x20 && c != '\t') || c == 0x7F;
  }
  // C1: U+0080–U+009F is C2 80 – C2 9F.
  return seq.size() == 2 && c == 0xC2 && static_cast<unsigned char>(seq[1]) <= 0x9F;
}

bool is_space(char c) {
  return c == ' ' || c == '\t';
}

}  // namespace

std::string clean_text(std::string_view in, std::size_t max_bytes) {
  std::string out;
  out.reserve(max_bytes == 0 ? in.size() : std::min(in.size(), max_bytes + 4));
  while (!in.empty()) {
    const auto n = sequence_length(in);
    if (n == 0) {
      out += replacement;
      in.remove_prefix(1);
      // The rest of a broken sequence (continuation bytes) is covered by the same U+FFFD.
      while (!in.empty() && (static_cast<unsigned char>(in[0]) & 0xC0) == 0x80) {
        in.remove_prefix(1);
      }
    } else {
      const auto seq = in.substr(0, n);
      if (is_control(seq)) {
        out += ' ';
      } else {
        out += seq;
      }
      in.remove_prefix(n);
    }
    if (max_bytes != 0 && out.size() > max_bytes + 64) {
      break;  // enough to cut from; the rest would be dropped anyway
    }
  }
  std::string_view view = out;
  while (!view.empty() && is_space(view.front())) {
    view.remove_prefix(1);
  }
  while (!view.empty() && is_space(view.back())) {
    view.remove_suffix(1);
  }
  if (max_bytes != 0) {
    view = cut_utf8(view, max_bytes);
    while (!view.empty() && is_space(view.back())) {
      view.remove_suffix(1);
    }
  }
  return std::string(view);
}

std::string_view cut_utf8(std::string_view in, std::size_t max_bytes) {
  if (in.size() <= max_bytes) {
    return in;
  }
  std::size_t end = max_bytes;
  // Back up over continuation bytes to the start of the character that crosses the limit.
  while (end > 0 && (static_cast<unsigned char>(in[end]) & 0xC0) == 0x80) {
    --end;
  }
  return in.substr(0, end);
}

bool is_valid_utf8(std::string_view in) {
  while (!in.empty()) {
    const auto n = sequence_length(in);
    if (n == 0) {
      return false;
    }
    in.remove_prefix(n);
  }
  return true;
}

}  // namespace dsr
