#pragma once
// A deliberately plain HTTP/1.1 client over POSIX sockets for tests: it can send exactly the
// bytes a test wants (malformed, slow, oversized), and every read is bounded by a timeout so a
// failing test never hangs.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace dsr::test {

struct http_reply {
  int status = 0;                              // 0: no reply (connection closed or timed out first)
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;

  std::string header(const std::string& lower_name) const {
    const auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class connection {
 public:
  // Connects to 127.0.0.1:port; is_open() is false when refused. A non-empty `from` (an IPv4
  // address such as "127.0.0.2": Linux routes all of 127/8 to the loopback interface) is bound as
  // the source address, so a test can be several clients.
  explicit connection(std::uint16_t port,
                      std::chrono::milliseconds timeout = std::chrono::seconds(10),
                      std::string_view from = {});
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;
  connection(connection&& other) noexcept;
  ~connection();

  bool is_open() const { return fd_ >= 0; }
  // Sends bytes; false when the peer has closed.
  bool send(std::string_view bytes);
  // Reads one response (status line, headers, Content-Length body).
  http_reply read_reply();
  // Whatever bytes arrive within `within` (raw, including interim responses).
  std::string read_some(std::chrono::milliseconds within);
  // True when the peer closes the connection within `within` (reads and discards data).
  bool closed_by_peer(std::chrono::milliseconds within);
  void close();

 private:
  int fd_ = -1;
  std::chrono::milliseconds timeout_;
  std::string buffer_;
};

// A whole request as bytes.
std::string raw_request(std::string_view method, std::string_view target, std::string_view body,
                        const std::map<std::string, std::string>& headers = {},
                        bool keep_alive = false);

// One request on a new connection.
http_reply request(std::uint16_t port, std::string_view method, std::string_view target,
                   std::string_view body = {},
                   const std::map<std::string, std::string>& headers = {});

// A signed MineOS webhook POST.
http_reply post_signed(std::uint16_t port, std::string_view path, std::string_view body,
                       std::string_view secret);

// A MineOS webhook body in the current shape.
std::string webhook_body(std::string_view trace_id, std::string_view request_id,
                         std::string_view email = "Jane@Example.com");

}  // namespace dsr::test
