#pragma once
// Maps (listener, method, path) to a route. Patterns are literal segments and `{name}` segments
// that capture one path segment. An unknown path is 404; a known path with another method is 405
// with an Allow header; both as problem+json.

#include "dsr/http/message.hpp"

#include <map>
#include <string>
#include <vector>

namespace dsr::http {

using route_params = std::map<std::string, std::string, std::less<>>;
using route_fn = std::function<void(request&, const route_params&, responder)>;

// Where a route is served: the webhooks live on `listen` only; operator routes on `admin_listen`
// when it is set, else on `listen`; /healthz on both.
enum class route_scope { webhook, operator_api, both };

class router final : public handler {
 public:
  void add(std::string method, std::string pattern, route_scope scope, route_fn fn);
  void handle(request req, responder done) override;

 private:
  struct route {
    std::string method;
    std::vector<std::string> segments;
    route_scope scope;
    route_fn fn;
  };
  std::vector<route> routes_;
};

}  // namespace dsr::http
