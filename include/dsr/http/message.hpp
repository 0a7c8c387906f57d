#pragma once
// HTTP requests and responses as plain values, so that handlers (routing, intake, the operator
// API) are written and tested without Beast or a socket.

#include "dsr/http/body_source.hpp"

#include <nlohmann/json_fwd.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dsr::http {

// Which listener a request arrived on: `listen` (webhooks) or `admin_listen` (operator endpoints).
// Without admin_listen, every request arrives on `public_` and may use every route.
enum class listener { public_, admin };

struct header_field {
  std::string name;
  std::string value;
};

struct request {
  std::string method;
  std::string target;  // path and query, as sent
  std::vector<header_field> headers;
  std::string body;    // raw bytes, as signed
  std::string remote;  // "address:port" of the peer
  listener on = listener::public_;
  bool admin_shared = true;  // no separate admin listener: operator routes live on `listen`
  bool tls = false;          // it arrived over TLS (a cookie set in the answer can be Secure)

  // First header of that name, compared case-insensitively.
  std::optional<std::string_view> header(std::string_view name) const;
  std::string_view path() const;
  std::string_view query() const;
  // Value of a query parameter (percent-decoded), or nullopt.
  std::optional<std::string> query_param(std::string_view name) const;
};

struct response {
  // 0: close the connection without answering (lets test peers simulate a lost answer).
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<header_field> headers;
  // Instead of `body`: a body read in pieces as it is sent (an export file).
  std::shared_ptr<body_source> body_stream;
};

using responder = std::function<void(response)>;

// Handles one request and calls `done` exactly once, on any thread. Handlers never throw.
class handler {
 public:
  virtual ~handler() = default;
  virtual void handle(request req, responder done) = 0;
};

// "/a/b/c" → {"a", "b", "c"}; empty segments are kept ("/a//b" → {"a", "", "b"}).
std::vector<std::string> split_path(std::string_view path);

// The standard reason phrase ("Not Found").
std::string_view reason(unsigned status);

response json_response(unsigned status, const nlohmann::json& body);

// application/problem+json {"type","title","status","detail"}; `detail` must hold no personal data.
response problem(unsigned status, std::string_view detail, std::vector<header_field> headers = {});

}  // namespace dsr::http
