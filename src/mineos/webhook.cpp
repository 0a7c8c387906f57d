#include "dsr/mineos/webhook.hpp"

#include "dsr/common/time.hpp"

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

bool printable(std::string_view s) {
  return std::none_of(s.begin(), s.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; });
}

// A string field: absent → "", wrong type or unreasonable content → error naming `field`.
result<std::string> string_field(const json* v, std::string_view field,
                                 std::size_t max_length = max_id_length) {
  if (v == nullptr) {
    return std::string();
  }
  if (v->is_number_integer()) {
    return std::to_string(v->get<std::int64_t>());  // tolerate numeric ids
  }
  if (!v->is_string()) {
    return invalid(fmt::format("{} must be a string", field));
  }
  const auto& s = v->get_ref<const std::string&>();
  if (s.size() > max_length) {
    return invalid(fmt::format("{} is longer than {} characters", field, max_length));
  }
  if (!printable(s)) {
    return invalid(fmt::format("{} contains control characters", field));
  }
  return s;
}

result<void> require(const std::string& value, std::string_view field) {
  if (value.empty()) {
    return invalid(fmt::format("{} is missing", field));
  }
  return {};
}

}  // namespace

result<webhook> parse_webhook(std::string_view body, endpoint_kind kind) {
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

  webhook w;
  auto trace = string_field(member(doc, {"traceId", "EventId", "eventId", "TraceId"}), "traceId");
  if (!trace) {
    return trace.error();
  }
  w.trace_id = std::move(*trace);
  auto integration = string_field(member(doc, {"integrationId", "IntegrationId"}), "integrationId");
  if (!integration) {
    return integration.error();
  }
  w.integration_id = std::move(*integration);

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
    auto id = string_field(member(*request, {"id", "Id"}), "request.id");
    if (!id) {
      return id.error();
    }
    w.request_id = std::move(*id);
    auto source = string_field(member(*request, {"source", "Source"}), "request.source");
    if (!source) {
      return source.error();
    }
    w.source = std::move(*source);
    auto domain = string_field(member(*request, {"domain", "Domain"}), "request.domain");
    if (!domain) {
      return domain.error();
    }
    w.domain = std::move(*domain);
    const json* type = nullptr;
    if (const json* rt = member(*request, {"requestType", "RequestType"}); rt && rt->is_object()) {
      type = member(*rt, {"id", "Id"});
    }
    if (type == nullptr) {
      type = member(*request, {"type", "Type"});
    }
    auto type_text = string_field(type, "request.type");
    if (!type_text) {
      return type_text.error();
    }
    w.request_type = std::move(*type_text);
    auto created = string_field(member(*request, {"createdAt", "CreatedAt"}), "request.createdAt");
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
  if (user != nullptr) {
    auto email =
        string_field(member(*user, {"email", "Email"}), "userInfo.email", max_email_length);
    if (!email) {
      return email.error();
    }
    w.email = std::move(*email);
    auto name = string_field(member(*user, {"name", "Name"}), "userInfo.name", 1024);
    if (!name) {
      return name.error();
    }
    w.name = std::move(*name);
  }

  if (auto r = require(w.trace_id, "traceId"); !r) {
    return r.error();
  }
  if (w.is_test) {
    return w;
  }
  if (kind != endpoint_kind::preview) {
    if (request == nullptr) {
      return invalid("request is missing");
    }
    if (auto r = require(w.request_id, "request.id"); !r) {
      return r.error();
    }
  }
  if (auto r = require(w.email, "userInfo.email"); !r) {
    return r.error();
  }
  const auto at = w.email.find('@');
  if (at == std::string::npos || at == 0 || at + 1 == w.email.size() ||
      w.email.find_first_of(" \t") != std::string::npos) {
    return invalid("userInfo.email is not an e-mail address");
  }
  return w;
}

}  // namespace dsr::mineos
