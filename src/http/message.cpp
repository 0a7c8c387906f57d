#include "dsr/http/message.hpp"

#include <boost/url/decode_view.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <nlohmann/json.hpp>

#include <strings.h>

namespace dsr::http {

std::optional<std::string_view> request::header(std::string_view name) const {
  for (const auto& h : headers) {
    if (h.name.size() == name.size() &&
        ::strncasecmp(h.name.data(), name.data(), name.size()) == 0) {
      return h.value;
    }
  }
  return std::nullopt;
}

std::string_view request::path() const {
  const std::string_view t = target;
  return t.substr(0, t.find('?'));
}

std::string_view request::query() const {
  const std::string_view t = target;
  const auto q = t.find('?');
  return q == std::string_view::npos ? std::string_view() : t.substr(q + 1);
}

std::optional<std::string> request::query_param(std::string_view name) const {
  auto parsed = boost::urls::parse_origin_form(target);
  if (!parsed) {
    return std::nullopt;
  }
  for (const auto& p : parsed->params()) {
    if (p.key == name) {
      return std::string(p.value);
    }
  }
  return std::nullopt;
}

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  std::size_t start = path.starts_with('/') ? 1 : 0;
  while (start <= path.size()) {
    auto end = path.find('/', start);
    if (end == std::string_view::npos) {
      end = path.size();
    }
    out.emplace_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::string_view reason(unsigned status) {
  switch (status) {
    case 200:
      return "OK";
    case 202:
      return "Accepted";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Content Too Large";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Unknown";
  }
}

response json_response(unsigned status, const nlohmann::json& body) {
  // A text that slipped through uncleaned is replaced (U+FFFD), never thrown on.
  return response{status,
                  "application/json",
                  body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                  {}};
}

response problem(unsigned status, std::string_view detail, std::vector<header_field> headers) {
  const nlohmann::json body{
      {"type", "about:blank"}, {"title", reason(status)}, {"status", status}, {"detail", detail}};
  return response{status, "application/problem+json",
                  body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                  std::move(headers)};
}

}  // namespace dsr::http
