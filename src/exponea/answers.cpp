#include "dsr/exponea/answers.hpp"

#include "dsr/common/text.hpp"
#include "dsr/common/time.hpp"

#include <fmt/format.h>
#include <boost/throw_exception.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <stdexcept>

namespace dsr::exponea {
namespace {

bool contains(std::string_view text, std::string_view needle) {
  return std::search(text.begin(), text.end(), needle.begin(), needle.end(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) ==
                  std::tolower(static_cast<unsigned char>(b));
         }) != text.end();
}

// One clean line of at most `max` bytes: the text goes into the journal, logs and reports, and
// a peer's text may hold anything (an invalid byte, an ESC sequence, a character cut in two).
std::string trimmed(std::string_view s, std::size_t max) {
  return clean_text(s, max);
}

}  // namespace

std::optional<std::chrono::milliseconds> parse_retry_after(std::optional<std::string_view> v,
                                                           time_point now) {
  if (!v || v->empty()) {
    return std::nullopt;
  }
  long long seconds = 0;
  const auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), seconds);
  if (ec == std::errc{} && p == v->data() + v->size() && seconds >= 0) {
    return std::chrono::seconds(seconds);
  }
  if (const auto at = parse_http_date(*v)) {
    return std::max(std::chrono::milliseconds(0),
                    std::chrono::duration_cast<std::chrono::milliseconds>(*at - now));
  }
  return std::nullopt;
}

call_error rejection(unsigned status, std::string message, std::string value) {
  return call_error{answer_class::rejected, status, std::move(message), std::move(value), {}};
}

std::string_view to_string(retry_reason r) {
  switch (r) {
    case retry_reason::other:
      return "other";
    case retry_reason::rate_limited:
      return "rate_limited";
    case retry_reason::server_error:
      return "server_error";
    case retry_reason::timeout:
      return "timeout";
    case retry_reason::network:
      return "network";
    case retry_reason::internal:
      return "internal";
  }
  return "other";
}

retry_reason reason_of(const call_error& e) {
  if (e.status == 429) {
    return retry_reason::rate_limited;
  }
  if (e.status >= 500 && e.status <= 599) {
    return retry_reason::server_error;
  }
  if (e.status == 0) {
    return contains(e.message, "timed out") ? retry_reason::timeout : retry_reason::network;
  }
  return retry_reason::other;
}

std::string_view to_string(endpoint ep) {
  switch (ep) {
    case endpoint::export_one:
      return "export-one";
    case endpoint::track:
      return "track";
    case endpoint::anonymize:
      return "anonymize";
    case endpoint::system_time:
      return "system-time";
    case endpoint::consent_categories:
      return "consent-categories";
    case endpoint::batch:
      return "batch";
    case endpoint::anonymize_bulk:
      return "anonymize-bulk";
  }
  return "";
}

std::string_view to_string(answer_class c) {
  switch (c) {
    case answer_class::ok:
      return "ok";
    case answer_class::not_found:
      return "not found";
    case answer_class::transient:
      return "transient";
    case answer_class::rejected:
      return "rejected";
    case answer_class::failed:
      return "failed";
  }
  return "";
}

void throw_exception_from_error(const call_error& e, const boost::source_location& loc) {
  boost::throw_exception(std::runtime_error(e.message), loc);
}

std::string error_text(std::string_view body) {
  const auto doc = nlohmann::json::parse(body, nullptr, false);
  if (doc.is_object()) {
    if (const auto it = doc.find("error"); it != doc.end() && it->is_string()) {
      return trimmed(it->get<std::string>(), 300);
    }
    if (const auto it = doc.find("errors"); it != doc.end()) {
      std::vector<std::string> parts;
      const auto add = [&](const nlohmann::json& v) {
        if (v.is_string()) {
          parts.push_back(v.get<std::string>());
        }
      };
      if (it->is_array()) {
        std::for_each(it->begin(), it->end(), add);
      } else if (it->is_object()) {
        for (const auto& [key, list] : it->items()) {
          if (list.is_array()) {
            std::for_each(list.begin(), list.end(), add);
          } else {
            add(list);
          }
        }
      } else {
        add(*it);
      }
      if (!parts.empty()) {
        return trimmed(fmt::format("{}", fmt::join(parts, "; ")), 300);
      }
    }
    if (const auto it = doc.find("message"); it != doc.end() && it->is_string()) {
      return trimmed(it->get<std::string>(), 300);
    }
    return "";
  }
  return trimmed(body, 300);
}

call_error classify(unsigned status, std::string_view body,
                    std::optional<std::string_view> retry_after, auth used, endpoint ep,
                    time_point now) {
  const std::string text = error_text(body);
  const std::string shown =
      text.empty() ? fmt::format("HTTP {}", status) : fmt::format("{} {}", status, text);
  if (status >= 200 && status < 300) {
    const auto doc = nlohmann::json::parse(body, nullptr, false);
    const bool success = !doc.is_object() || !doc.contains("success") || doc["success"] == true;
    if (success) {
      return call_error{answer_class::ok, status, "", "", {}};
    }
    if (contains(text, "not authorized to add event")) {
      if (used == auth::basic) {
        return rejection(
            status, shown,
            "exponea_api_key (its API group needs Events > Set for the consent event)");
      }
      return rejection(status, shown,
                       "exponea_api_token (its API group needs Events > Set for the event type)");
    }
    if (contains(text, "customer does not exist")) {
      return call_error{answer_class::not_found, status, shown, "", {}};
    }
    return call_error{answer_class::failed, status, shown, "", {}};
  }
  if (status == 429 || status >= 500 || status == 408) {
    return call_error{answer_class::transient, status, shown, "",
                      parse_retry_after(retry_after, now)};
  }
  if (status == 400 &&
      (contains(text, "could not authenticate") || contains(text, "invalid project id"))) {
    return rejection(status, shown, "exponea_project_token");
  }
  if (status == 401) {
    return rejection(status, shown, used == auth::token ? "exponea_api_token" : "exponea_api_key");
  }
  if (status == 403) {
    if (used == auth::token) {
      return rejection(status, shown, "exponea_api_token");
    }
    if (contains(text, "invalid secret")) {
      return rejection(status, shown, "exponea_api_secret");
    }
    if (ep == endpoint::export_one) {
      return rejection(status, shown,
                       "exponea_api_key (its API group needs GDPR > Export customer)");
    }
    if (ep == endpoint::anonymize || ep == endpoint::anonymize_bulk) {
      return rejection(status, shown,
                       "exponea_api_key (its API group needs GDPR > Anonymize customer)");
    }
    return rejection(status, shown, "exponea_api_key (a permission of its API group)");
  }
  if (status == 404 && (ep == endpoint::export_one || ep == endpoint::anonymize) &&
      contains(text, "customer")) {
    return call_error{answer_class::not_found, status, shown, "", {}};
  }
  // The caller names the step ("Bloomreach anonymize: 422 ..."); the text is Exponea's own.
  return call_error{answer_class::failed, status, shown, "", {}};
}

call_error classify(const failure& f) {
  if (f.is(errc::upstream_too_large)) {
    return call_error{answer_class::failed, 0, f.detail, "", {}};
  }
  return call_error{answer_class::transient, 0, f.detail, "", {}};
}

}  // namespace dsr::exponea
