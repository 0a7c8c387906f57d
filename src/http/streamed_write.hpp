#pragma once
// Writes a message whose body comes from a body_source: the header (Content-Length = the source's
// size), then the body in 64 KiB pieces. Internal to the HTTP client and server.

#include "dsr/http/body_source.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http.hpp>

#include <array>
#include <optional>
#include <string>

namespace dsr::http::detail {

// What went wrong: a socket error, or (`source_error` set) the body could not be read.
struct streamed_write_error {
  boost::system::error_code ec;
  std::optional<std::string> source_error;
};

// `head` must not have had prepare_payload() called; its Content-Length is set here.
// `before_piece()` runs before each write (a server restarts its idle deadline there).
template <class Stream, bool IsRequest, class BeforePiece>
boost::asio::awaitable<std::optional<streamed_write_error>> write_streamed(
    Stream& stream, boost::beast::http::message<IsRequest, boost::beast::http::empty_body>& head,
    body_source& source, BeforePiece before_piece) {
  namespace bhttp = boost::beast::http;
  constexpr auto use_nothrow = boost::asio::as_tuple(boost::asio::use_awaitable);
  if (auto r = source.rewind(); !r) {
    co_return streamed_write_error{{}, r.error().detail};
  }
  head.content_length(source.size());
  bhttp::serializer<IsRequest, bhttp::empty_body> sr{head};
  before_piece();
  auto [hec, hn] = co_await bhttp::async_write_header(stream, sr, use_nothrow);
  if (hec) {
    co_return streamed_write_error{hec, std::nullopt};
  }
  std::array<char, 64 * 1024> buffer{};
  for (;;) {
    auto got = source.read(buffer);
    if (!got) {
      co_return streamed_write_error{{}, got.error().detail};
    }
    if (*got == 0) {
      co_return std::nullopt;
    }
    before_piece();
    auto [wec, wn] = co_await boost::asio::async_write(
        stream, boost::asio::buffer(buffer.data(), *got), use_nothrow);
    if (wec) {
      co_return streamed_write_error{wec, std::nullopt};
    }
  }
}

}  // namespace dsr::http::detail
