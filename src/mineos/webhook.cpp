#include "dsr/mineos/webhook.hpp"

#include "dsr/common/text.hpp"
#include "dsr/common/time.hpp"
#include "dsr/config/config.hpp"

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

// An identifier (trace id, request id, e-mail): refused when too long or holding control
// characters, never changed.
result<std::string> string_field(const json* v, std::string_view field,
                                 std::size_t max_length = max_id_length) {
  auto s = raw_string(v, field);
  if (!s) {
    return s;
  }
  if (s->size() > max_length) {
    return invalid(fmt::format("{} is longer than {} characters", field, max_length));
  }
  if (!printable(*s)) {
    return invalid(fmt::format("{} contains control characters", field));
  }
  return s;
}

// Informational text (source, domain, the right's name): cleaned and cut, never a reason to
// refuse a request.
result<std::string> text_field(const json* v, std::string_view field, std::size_t max_length) {
  auto s = raw_string(v, field);
  if (!s) {
    return s;
  }
  return clean_text(*s, max_length);
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
    auto source = text_field(member(*request, {"source", "Source"}), "request.source", 256);
    if (!source) {
      return source.error();
    }
    w.source = std::move(*source);
    auto domain = text_field(member(*request, {"domain", "Domain"}), "request.domain", 256);
    if (!domain) {
      return domain.error();
    }
    w.domain = std::move(*domain);
    if (const json* rt = member(*request, {"requestType", "RequestType"})) {
      if (!rt->is_object()) {
        return invalid("request.requestType must be an object");
      }
      auto rid = text_field(member(*rt, {"id", "Id"}), "request.requestType.id", 256);
      if (!rid) {
        return rid.error();
      }
      w.request_right.id = std::move(*rid);
      auto rname = text_field(member(*rt, {"name", "Name"}), "request.requestType.name", 256);
      if (!rname) {
        return rname.error();
      }
      w.request_right.name = std::move(*rname);
    }
    auto type = text_field(member(*request, {"type", "Type"}), "request.type", 256);
    if (!type) {
      return type.error();
    }
    w.request_right.type = std::move(*type);
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
    auto name = text_field(member(*user, {"name", "Name"}), "userInfo.name", 1024);
    if (!name) {
      return name.error();
    }
    w.name = std::move(*name);
    if (const json* fields = member(*user, {"customFields", "CustomFields"})) {
      if (!fields->is_object()) {
        return invalid("userInfo.customFields must be an object");
      }
      for (const auto& [key, value] : fields->items()) {
        // Only what can be an ID is kept; other shapes are ignored, not refused.
        std::string v;
        if (value.is_string()) {
          v = value.get<std::string>();
        } else if (value.is_number_integer()) {
          v = std::to_string(value.get<std::int64_t>());
        } else {
          continue;
        }
        if (v.empty()) {
          continue;  // an empty string counts as absent
        }
        // A free-text field (a note, an address) is no ID: it is ignored, never a reason to
        // refuse the request (MineOS would retry it for nothing).
        if (v.size() > max_id_length || !printable(v)) {
          continue;
        }
        w.custom_fields.emplace_back(key, std::move(v));
      }
    }
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
  if (request == nullptr) {
    return invalid("request is missing");
  }
  if (auto r = require(w.request_id, "request.id"); !r) {
    return r.error();
  }
  return w;
}

}  // namespace dsr::mineos
