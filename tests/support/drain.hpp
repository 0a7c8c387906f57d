#pragma once
// Reads a streamed body into a string, as a peer would receive it.

#include "dsr/http/body_source.hpp"

#include <string>

namespace dsr::test {

inline result<std::string> drain(http::body_source& source) {
  if (auto r = source.rewind(); !r) {
    return r.error();
  }
  std::string out;
  char piece[4096];
  for (;;) {
    auto n = source.read(piece);
    if (!n) {
      return n.error();
    }
    if (*n == 0) {
      return out;
    }
    out.append(piece, *n);
  }
}

}  // namespace dsr::test
