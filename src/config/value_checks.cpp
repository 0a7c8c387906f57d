#include "dsr/config/config.hpp"

// The checks of single values: listen addresses, loopback hosts, safe ids, URLs, resolved paths
// and libpq URLs that hold a password.
#include "section_reader.hpp"

#include <boost/url/parse.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <charconv>

namespace dsr {
namespace detail {

bool holds_password(std::string_view url) {
  constexpr std::array<std::string_view, 2> secret_keys{"password", "sslpassword"};
  const auto is_secret_key = [&](std::string_view key) {
    return std::find(secret_keys.begin(), secret_keys.end(), key) != secret_keys.end();
  };
  const auto scheme = url.find("://");
  if (scheme != std::string_view::npos) {
    const auto rest = url.substr(scheme + 3);
    const auto authority = rest.substr(0, rest.find_first_of("/?"));
    const auto at = authority.rfind('@');
    if (at != std::string_view::npos &&
        authority.substr(0, at).find(':') != std::string_view::npos) {
      return true;
    }
    const auto query = url.find('?');
    std::string_view q = query == std::string_view::npos ? "" : url.substr(query + 1);
    while (!q.empty()) {
      const auto amp = q.find('&');
      const auto param = q.substr(0, amp);
      if (is_secret_key(param.substr(0, param.find('=')))) {
        return true;
      }
      q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    }
    return false;
  }
  // key=value form: "host=db password=x", spaces allowed around '='.
  std::size_t i = 0;
  while (i < url.size()) {
    while (i < url.size() && (url[i] == ' ' || url[i] == '\t')) {
      ++i;
    }
    const auto key_end = url.find_first_of(" \t=", i);
    const auto key =
        url.substr(i, key_end == std::string_view::npos ? url.size() - i : key_end - i);
    if (is_secret_key(key)) {
      return true;
    }
    // Skip to the next key: past '=', the value (quoted or not).
    i = url.find('=', i);
    if (i == std::string_view::npos) {
      break;
    }
    ++i;
    while (i < url.size() && url[i] == ' ') {
      ++i;
    }
    if (i < url.size() && url[i] == '\'') {
      for (++i; i < url.size() && url[i] != '\''; ++i) {
        if (url[i] == '\\') {
          ++i;
        }
      }
      ++i;
    } else {
      while (i < url.size() && url[i] != ' ' && url[i] != '\t') {
        ++i;
      }
    }
  }
  return false;
}

std::filesystem::path resolve(const std::filesystem::path& base, const std::string& p) {
  std::filesystem::path path(p);
  if (path.is_relative() && !base.empty()) {
    return (base / path).lexically_normal();
  }
  return path;
}

void check_url(section_reader& r, std::string_view key, const std::string& url) {
  auto parsed = boost::urls::parse_absolute_uri(url);
  if (!parsed) {
    r.fail(key, "not a valid absolute URL (expected https://host[:port][/path])");
  }
  // Boost.URL 1.81 reads "http://127.0.0.1.nip.io" as host 127.0.0.1 and path ".nip.io": a
  // path after an authority must start with '/', else the host is not what it seems.
  if (parsed->has_authority() && !parsed->encoded_path().empty() &&
      parsed->encoded_path().front() != '/') {
    r.fail(key,
           "not a valid absolute URL: the host name is not what it seems (expected "
           "https://host[:port][/path])");
  }
  const auto scheme = parsed->scheme();
  const std::string host(parsed->encoded_host_address());
  if (scheme != "https" && scheme != "http") {
    r.fail(key, fmt::format("scheme '{}' is not supported; use https://", scheme));
  }
  if (host.empty()) {
    r.fail(key, "the URL has no host");
  }
  if (scheme == "http" && !is_loopback_host(host)) {
    r.fail(key,
           fmt::format("http:// is allowed only for loopback hosts, not '{}'; use https://", host));
  }
}

}  // namespace detail

std::string endpoint::to_string() const {
  if (host.find(':') != std::string::npos) {
    return fmt::format("[{}]:{}", host, port);
  }
  return fmt::format("{}:{}", host, port);
}

bool is_safe_id(std::string_view id) {
  return !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '~' || c == '-';
  });
}

bool is_loopback_host(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost") {
    return true;
  }
  // An address, parsed: a host *name* starting with "127." (127.evil.example.com) is no loopback
  // and would receive credentials in clear.
  const std::string text(host);
  in_addr v4{};
  if (::inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  return ::inet_pton(AF_INET6, text.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

std::optional<endpoint> parse_endpoint(std::string_view text, std::string& problem) {
  endpoint ep;
  std::string_view port_text;
  if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      problem = fmt::format("'{}' is not [IPv6]:port", text);
      return std::nullopt;
    }
    ep.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      problem = fmt::format("'{}' has no port; write host:port, e.g. 127.0.0.1:8080", text);
      return std::nullopt;
    }
    ep.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  if (ep.host.empty()) {
    problem = fmt::format("'{}' has no host; write host:port, e.g. 0.0.0.0:8080", text);
    return std::nullopt;
  }
  unsigned long port = 0;
  const auto [ptr, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc{} || ptr != port_text.data() + port_text.size()) {
    problem = fmt::format("port '{}' is not a number", port_text);
    return std::nullopt;
  }
  if (port > 65535) {
    problem = fmt::format("port {} is out of range 0-65535", port);
    return std::nullopt;
  }
  ep.port = static_cast<std::uint16_t>(port);
  return ep;
}
}  // namespace dsr
