#include "support/http_client.hpp"

#include "dsr/mineos/signature.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace dsr::test {

connection::connection(std::uint16_t port, std::chrono::milliseconds timeout, std::string_view from)
    : timeout_(timeout) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (!from.empty()) {
    // The port is chosen at connect(), as without bind(): a test opening a thousand connections
    // from one address does not run out of ports that bind() alone would reserve.
    int one = 1;
    ::setsockopt(fd_, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    sockaddr_in source{};
    source.sin_family = AF_INET;
    const std::string text(from);
    if (::inet_pton(AF_INET, text.c_str(), &source.sin_addr) != 1 ||
        ::bind(fd_, reinterpret_cast<sockaddr*>(&source), sizeof source) != 0) {
      ::close(fd_);
      fd_ = -1;
      return;
    }
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd_);
    fd_ = -1;
    return;
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

connection::connection(connection&& other) noexcept
    : fd_(other.fd_), timeout_(other.timeout_), buffer_(std::move(other.buffer_)) {
  other.fd_ = -1;
}

connection::~connection() {
  close();
}

void connection::close() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

bool connection::send(std::string_view bytes) {
  while (!bytes.empty() && fd_ >= 0) {
    const auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) {
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return fd_ >= 0;
}

namespace {

// Reads more bytes into `buffer` within `timeout`; false on close, error or timeout.
bool fill(int fd, std::string& buffer, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) {
    return false;
  }
  char chunk[16384];
  const auto n = ::recv(fd, chunk, sizeof chunk, 0);
  if (n <= 0) {
    return false;
  }
  buffer.append(chunk, static_cast<std::size_t>(n));
  return true;
}

}  // namespace

http_reply connection::read_reply() {
  http_reply reply;
  if (fd_ < 0) {
    return reply;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  const auto left = [&] {
    return std::max(std::chrono::milliseconds(1),
                    std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now()));
  };
  std::size_t end = 0;
  for (;;) {
    end = buffer_.find("\r\n\r\n");
    if (end != std::string::npos) {
      // Skip interim 1xx responses (100 Continue).
      if (buffer_.compare(0, 10, "HTTP/1.1 1") == 0) {
        buffer_.erase(0, end + 4);
        continue;
      }
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline || !fill(fd_, buffer_, left())) {
      return reply;
    }
  }
  const std::string head = buffer_.substr(0, end);
  buffer_.erase(0, end + 4);
  const auto first_line_end = head.find("\r\n");
  const std::string status_line = head.substr(0, first_line_end);
  if (status_line.size() < 12) {
    return reply;
  }
  reply.status = std::stoi(status_line.substr(9, 3));
  std::size_t pos = first_line_end == std::string::npos ? head.size() : first_line_end + 2;
  while (pos < head.size()) {
    auto eol = head.find("\r\n", pos);
    if (eol == std::string::npos) {
      eol = head.size();
    }
    const std::string line = head.substr(pos, eol - pos);
    const auto colon = line.find(':');
    if (colon != std::string::npos) {
      std::string name = line.substr(0, colon);
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      std::string value = line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(' '));
      reply.headers[name] = value;
    }
    pos = eol + 2;
  }
  const auto length = static_cast<std::size_t>(
      std::stoul(reply.header("content-length").empty() ? "0" : reply.header("content-length")));
  while (buffer_.size() < length) {
    if (std::chrono::steady_clock::now() >= deadline || !fill(fd_, buffer_, left())) {
      reply.status = 0;
      return reply;
    }
  }
  reply.body = buffer_.substr(0, length);
  buffer_.erase(0, length);
  return reply;
}

std::string connection::read_some(std::chrono::milliseconds within) {
  if (fd_ >= 0 && buffer_.empty()) {
    fill(fd_, buffer_, within);
  }
  std::string out;
  out.swap(buffer_);
  return out;
}

bool connection::closed_by_peer(std::chrono::milliseconds within) {
  if (fd_ < 0) {
    return true;
  }
  const auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd_, POLLIN, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (::poll(&p, 1, static_cast<int>(std::max<long>(1, left.count()))) <= 0) {
      continue;
    }
    char chunk[4096];
    const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
      return true;
    }
  }
  return false;
}

std::string raw_request(std::string_view method, std::string_view target, std::string_view body,
                        const std::map<std::string, std::string>& headers, bool keep_alive) {
  std::string out;
  out.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: localhost\r\n");
  for (const auto& [k, v] : headers) {
    out.append(k).append(": ").append(v).append("\r\n");
  }
  if (!body.empty() || method == "POST") {
    out.append("Content-Type: application/json\r\nContent-Length: ")
        .append(std::to_string(body.size()))
        .append("\r\n");
  }
  if (!keep_alive) {
    out.append("Connection: close\r\n");
  }
  out.append("\r\n").append(body);
  return out;
}

http_reply request(std::uint16_t port, std::string_view method, std::string_view target,
                   std::string_view body, const std::map<std::string, std::string>& headers) {
  connection c(port);
  if (!c.is_open() || !c.send(raw_request(method, target, body, headers))) {
    return {};
  }
  return c.read_reply();
}

http_reply post_signed(std::uint16_t port, std::string_view path, std::string_view body,
                       std::string_view secret) {
  return request(port, "POST", path, body, {{"X-Mine-Signature", mineos::sign(body, secret)}});
}

std::string webhook_body(std::string_view trace_id, std::string_view request_id,
                         std::string_view email) {
  std::string b = R"({"traceId":")";
  b.append(trace_id)
      .append(R"(","integrationId":"int-42","isTest":false,"request":{"id":")")
      .append(request_id)
      .append(R"(","type":"Delete","source":"Form","domain":"acme.com",)"
              R"("createdAt":"2026-11-28T10:00:00.7266574Z","requestType":{"id":"delete",)"
              R"("name":"Delete"}},"userInfo":{"name":"Jane Doe","email":")")
      .append(email)
      .append(R"(","isVerified":true,"customFields":{}}})");
  return b;
}

}  // namespace dsr::test
