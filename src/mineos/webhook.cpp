#include "dsr/mineos/webhook.hpp"

#include "dsr/common/text.hpp"
#include "dsr/common/time.hpp"
#include "dsr/config/config.hpp"
#include "webhook_raw.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>

namespace dsr::mineos {
namespace {

using json = nlohmann::json;

constexpr int max_depth = 32;
constexpr std::size_t max_id_length = 256;
constexpr std::size_t max_email_length = 320;

failure invalid(std::string detail) {
  return make_failure(errc::invalid_input, std::move(detail));
}

// Whether arrays and objects nest deeper than `limit`, brackets inside strings aside. Checked
// before parsing: a hostile body never builds a deep document, and the parse itself runs without a
// per-event callback (a third of its cost).
bool nested_deeper_than(std::string_view text, int limit) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) {
        return true;
      }
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

// The first of `names` present in `obj`, or nullptr.
const json* member(const json& obj, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    if (const auto it = obj.find(n); it != obj.end() && !it->is_null()) {
      return &*it;
    }
  }
  return nullptr;
}

// An identifier is refused, never altered, when it holds a control character (C0, DEL, C1).
bool printable(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f ||
        (c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) <= 0x9F)) {
      return false;
    }
  }
  return true;
}

// A field's raw string: absent → "", an integer → its digits, another type → error naming it.
result<std::string> raw_string(const json* v, std::string_view field) {
  if (v == nullptr) {
    return std::string();
  }
  if (v->is_number_integer()) {
    return std::to_string(v->get<std::int64_t>());  // tolerate numeric ids
  }
  if (!v->is_string()) {
    return invalid(fmt::format("{} must be a string", field));
  }
  return v->get<std::string>();
}

result<void> require(const std::string& value, std::string_view field) {
  if (value.empty()) {
    return invalid(fmt::format("{} is missing", field));
  }
  return {};
}

// request.id and integrationId go into MineOS URLs and file names.
result<void> check_safe(const std::string& value, std::string_view field) {
  if (!value.empty() && !is_safe_id(value)) {
    return invalid(fmt::format(
        "{} must be 1 to 128 characters from A-Z a-z 0-9 . _ ~ - (it goes into MineOS URLs)",
        field));
  }
  return {};
}

}  // namespace

std::string_view to_string(endpoint_kind k) {
  switch (k) {
    case endpoint_kind::delete_:
      return "delete";
    case endpoint_kind::copy:
      return "copy";
    case endpoint_kind::preview:
      return "preview";
  }
  return "";
}

namespace {

using detail::raw_webhook;

// The document's fields: a value of the wrong type is refused, naming the field.
result<raw_webhook> from_document(const json& doc) {
  raw_webhook w;
  const auto take = [](std::string& to, const json* v, std::string_view field) -> result<void> {
    auto s = raw_string(v, field);
    if (!s) {
      return s.error();
    }
    to = std::move(*s);
    return {};
  };
  if (auto r =
          take(w.trace_id, member(doc, {"traceId", "EventId", "eventId", "TraceId"}), "traceId");
      !r) {
    return r.error();
  }
  if (auto r =
          take(w.integration_id, member(doc, {"integrationId", "IntegrationId"}), "integrationId");
      !r) {
    return r.error();
  }
  if (const json* t = member(doc, {"isTest", "IsTest"})) {
    if (t->is_boolean()) {
      w.is_test = t->get<bool>();
    } else if (t->is_string() && (*t == "true" || *t == "True")) {
      w.is_test = true;
    } else if (t->is_string() && (*t == "false" || *t == "False" || *t == "")) {
      w.is_test = false;
    } else {
      return invalid("isTest must be true or false");
    }
  }
  const json* request = member(doc, {"request", "ticketInfo", "TicketInfo"});
  if (request != nullptr && !request->is_object()) {
    return invalid("request must be an object");
  }
  const json* user = member(doc, {"userInfo", "UserInfo"});
  if (user == nullptr && request != nullptr) {
    user = member(*request, {"userInfo", "UserInfo"});
  }
  if (user != nullptr && !user->is_object()) {
    return invalid("userInfo must be an object");
  }
  if (request != nullptr) {
    w.has_request = true;
    if (auto r = take(w.request_id, member(*request, {"id", "Id"}), "request.id"); !r) {
      return r.error();
    }
    if (auto r = take(w.source, member(*request, {"source", "Source"}), "request.source"); !r) {
      return r.error();
    }
    if (auto r = take(w.domain, member(*request, {"domain", "Domain"}), "request.domain"); !r) {
      return r.error();
    }
    if (const json* rt = member(*request, {"requestType", "RequestType"})) {
      if (!rt->is_object()) {
        return invalid("request.requestType must be an object");
      }
      if (auto r = take(w.right_id, member(*rt, {"id", "Id"}), "request.requestType.id"); !r) {
        return r.error();
      }
      if (auto r = take(w.right_name, member(*rt, {"name", "Name"}), "request.requestType.name");
          !r) {
        return r.error();
      }
    }
    if (auto r = take(w.type, member(*request, {"type", "Type"}), "request.type"); !r) {
      return r.error();
    }
    if (auto r =
            take(w.created_at, member(*request, {"createdAt", "CreatedAt"}), "request.createdAt");
        !r) {
      return r.error();
    }
  }
  if (user != nullptr) {
    if (auto r = take(w.email, member(*user, {"email", "Email"}), "userInfo.email"); !r) {
      return r.error();
    }
    if (auto r = take(w.name, member(*user, {"name", "Name"}), "userInfo.name"); !r) {
      return r.error();
    }
    if (const json* fields = member(*user, {"customFields", "CustomFields"})) {
      if (!fields->is_object()) {
        return invalid("userInfo.customFields must be an object");
      }
      for (const auto& [key, value] : fields->items()) {
        // Only what can be an ID is kept; other shapes are ignored, not refused.
        if (value.is_string()) {
          w.custom_fields.emplace_back(key, value.get<std::string>());
        } else if (value.is_number_integer()) {
          w.custom_fields.emplace_back(key, std::to_string(value.get<std::int64_t>()));
        }
      }
    }
  }
  return w;
}

// The checks every body's fields go through, in one order whichever way they were read.
result<webhook> check(raw_webhook&& raw, endpoint_kind kind) {
  webhook w;
  const auto id = [](std::string& from, std::string_view field,
                     std::size_t max_length = max_id_length) -> result<std::string> {
    if (from.size() > max_length) {
      return invalid(fmt::format("{} is longer than {} characters", field, max_length));
    }
    if (!printable(from)) {
      return invalid(fmt::format("{} contains control characters", field));
    }
    return std::move(from);
  };
  auto trace = id(raw.trace_id, "traceId");
  if (!trace) {
    return trace.error();
  }
  w.trace_id = std::move(*trace);
  auto integration = id(raw.integration_id, "integrationId");
  if (!integration) {
    return integration.error();
  }
  w.integration_id = std::move(*integration);
  w.is_test = raw.is_test;
  if (raw.has_request) {
    auto request_id = id(raw.request_id, "request.id");
    if (!request_id) {
      return request_id.error();
    }
    w.request_id = std::move(*request_id);
    w.source = clean_text(raw.source, 256);
    w.domain = clean_text(raw.domain, 256);
    w.request_right.id = clean_text(raw.right_id, 256);
    w.request_right.name = clean_text(raw.right_name, 256);
    w.request_right.type = clean_text(raw.type, 256);
    auto created = id(raw.created_at, "request.createdAt");
    if (!created) {
      return created.error();
    }
    if (!created->empty()) {
      w.created_at = parse_rfc3339(*created);
      if (!w.created_at) {
        return invalid("request.createdAt is not an RFC 3339 date-time");
      }
    }
  }
  auto email = id(raw.email, "userInfo.email", max_email_length);
  if (!email) {
    return email.error();
  }
  w.email = std::move(*email);
  w.name = clean_text(raw.name, 1024);
  std::sort(raw.custom_fields.begin(), raw.custom_fields.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [key, value] : raw.custom_fields) {
    // An empty string counts as absent. A free-text field (a note, an address) is no ID: it is
    // ignored, never a reason to refuse the request (MineOS would retry it for nothing).
    if (value.empty() || value.size() > max_id_length || !printable(value)) {
      continue;
    }
    w.custom_fields.emplace_back(std::move(key), std::move(value));
  }

  if (auto r = require(w.trace_id, "traceId"); !r) {
    return r.error();
  }
  if (auto r = check_safe(w.integration_id, "integrationId"); !r) {
    return r.error();
  }
  if (auto r = check_safe(w.request_id, "request.id"); !r) {
    return r.error();
  }
  if (!w.email.empty()) {
    const auto at = w.email.find('@');
    if (at == std::string::npos || at == 0 || at + 1 == w.email.size() ||
        w.email.find_first_of(" \t") != std::string::npos) {
      return invalid("userInfo.email is not an e-mail address");
    }
  }
  if (w.is_test || kind == endpoint_kind::preview) {
    return w;
  }
  if (!raw.has_request) {
    return invalid("request is missing");
  }
  if (auto r = require(w.request_id, "request.id"); !r) {
    return r.error();
  }
  return w;
}

}  // namespace

result<webhook> parse_webhook_document(std::string_view body, endpoint_kind kind) {
  if (nested_deeper_than(body, max_depth)) {
    return invalid(fmt::format("body is nested deeper than {} levels", max_depth));
  }
  json doc;
  try {
    doc = json::parse(body);
  } catch (const json::parse_error& e) {
    return invalid(fmt::format("body is not valid JSON (at byte {})", e.byte));
  } catch (const json::out_of_range&) {
    // A number beyond a double (1e400): refused like any malformed body, never thrown further.
    return invalid("body holds a number out of range");
  }
  if (!doc.is_object()) {
    return invalid("body must be a JSON object");
  }
  auto raw = from_document(doc);
  if (!raw) {
    return raw.error();
  }
  return check(std::move(*raw), kind);
}

result<webhook> parse_webhook(std::string_view body, endpoint_kind kind) {
  if (!nested_deeper_than(body, max_depth)) {
    if (auto fields = detail::read_in_one_pass(body)) {
      return check(std::move(*fields), kind);
    }
  }
  return parse_webhook_document(body, kind);
}

}  // namespace dsr::mineos
