#pragma once
// Foreign text made safe to keep, log, render and send: Exponea's and MineOS's error texts, the
// names of rights a webhook carries. Every such text passes through `clean_text` before it is
// stored or shown, so that
//  - it is valid UTF-8 (nlohmann::json::dump throws on anything else, and a JSON answer, a job
//    view or a status report must never fail to render);
//  - it holds no control characters: C0 (U+0000–U+001F, tab aside), DEL and C1 (U+0080–U+009F)
//    become a space, so that an ESC or OSC sequence sent by a peer never reaches a terminal
//    through the CLI, a log line or a report;
//  - it is cut on a code point boundary, never inside a character.
// Pure functions, no allocation beyond the result; fuzzed (tests/fuzz/fuzz_text.cpp).

#include <cstddef>
#include <string>
#include <string_view>

namespace dsr {

// Valid UTF-8 (each invalid or truncated sequence becomes U+FFFD), control characters replaced
// by a space, surrounding white space trimmed, then cut to at most `max_bytes` bytes on a code
// point boundary (0: no limit).
std::string clean_text(std::string_view in, std::size_t max_bytes = 0);

// The longest prefix of `in` of at most `max_bytes` bytes that does not end inside a UTF-8
// sequence. `in` is assumed to be valid UTF-8 (clean_text's output).
std::string_view cut_utf8(std::string_view in, std::size_t max_bytes);

// True when `in` is valid UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF).
bool is_valid_utf8(std::string_view in);

}  // namespace dsr
