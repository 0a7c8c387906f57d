#include "dsr/http/router.hpp"

#include "dsr/common/crypto.hpp"

#include <fmt/format.h>

#include <optional>
#include <string>

namespace dsr::http {
namespace {

bool visible(route_scope scope, const request& req) {
  switch (scope) {
    case route_scope::both:
      return true;
    case route_scope::webhook:
      return req.on == listener::public_;
    case route_scope::operator_api:
      return req.on == listener::admin || req.admin_shared;
  }
  return false;
}

// A captured segment as the client meant it: "ab%20cd" is the id "ab cd". nullopt when an escape
// is malformed (a '%' not followed by two hex digits) or decodes to a NUL.
std::optional<std::string> percent_decoded(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    const auto byte = i + 2 < s.size() ? crypto::from_hex(s.substr(i + 1, 2)) : std::nullopt;
    if (!byte || (*byte)[0] == '\0') {
      return std::nullopt;
    }
    out += *byte;
    i += 2;
  }
  return out;
}

}  // namespace

void router::add(std::string method, std::string pattern, route_scope scope, route_fn fn) {
  routes_.push_back(route{std::move(method), split_path(pattern), scope, std::move(fn)});
}

void router::handle(request req, responder done) {
  const auto path = req.path();
  if (path.empty() || path.front() != '/') {
    done(problem(404, "no such path"));
    return;
  }
  const auto segments = split_path(path);
  std::vector<std::string> allowed;
  for (const auto& r : routes_) {
    if (r.segments.size() != segments.size() || !visible(r.scope, req)) {
      continue;
    }
    route_params params;
    bool match = true;
    bool malformed = false;
    for (std::size_t i = 0; i < segments.size() && match; ++i) {
      const auto& p = r.segments[i];
      if (p.size() > 2 && p.front() == '{' && p.back() == '}') {
        match = !segments[i].empty();
        auto decoded = percent_decoded(segments[i]);
        malformed = malformed || !decoded;
        params.emplace(p.substr(1, p.size() - 2), decoded.value_or(""));
      } else {
        match = p == segments[i];
      }
    }
    if (!match) {
      continue;
    }
    if (r.method != req.method) {
      allowed.push_back(r.method);
      continue;
    }
    if (malformed) {
      done(problem(400, "a path segment is not validly percent-encoded"));
      return;
    }
    r.fn(req, params, std::move(done));
    return;
  }
  if (!allowed.empty()) {
    done(problem(
        405,
        fmt::format("{} is not allowed on this path; use {}", req.method, fmt::join(allowed, ", ")),
        {{"Allow", fmt::format("{}", fmt::join(allowed, ", "))}}));
    return;
  }
  done(problem(404, "no such path on this listener"));
}

}  // namespace dsr::http
