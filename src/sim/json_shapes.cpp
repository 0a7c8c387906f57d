#include "json_shapes.hpp"

#include <algorithm>
#include <cctype>

namespace dsr::sim::detail {
namespace {

using json = nlohmann::json;

// One event of normalized_events.
json normalized_event(json e, time_point now) {
  if (!e.is_object()) {
    return e;
  }
  if (!e.contains("timestamp") || e["timestamp"].is_null()) {
    e["timestamp"] = unix_seconds(now);
  }
  if (!e.contains("properties") || e["properties"].is_null()) {
    e["properties"] = json::object();
  }
  return e;
}

}  // namespace

http::response answer(unsigned status, const json& body) {
  return http::response{
      status, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace), {}};
}

http::response error(unsigned status, std::string_view text) {
  return answer(status, {{"success", false}, {"error", text}});
}

bool has(const std::vector<std::string>& list, std::string_view v) {
  return std::find(list.begin(), list.end(), v) != list.end() ||
         std::find(list.begin(), list.end(), "*") != list.end();
}

json unix_seconds(time_point t) {
  return t.time_since_epoch().count() / 1000;
}

json normalized_events(const json& events, time_point now) {
  json out = json::array();
  if (events.is_array()) {
    for (const auto& e : events) {
      out.push_back(normalized_event(e, now));
    }
  }
  return out;
}

double seconds(time_point t) {
  return static_cast<double>(t.time_since_epoch().count()) / 1000.0;
}

json parse_body(const std::string& raw) {
  bool too_deep = false;
  auto v = json::parse(
      raw,
      [&too_deep](int depth, json::parse_event_t, json&) {
        too_deep = too_deep || depth > max_depth;
        return true;
      },
      false);
  return too_deep ? json(json::value_t::discarded) : v;
}

const json& field(const json& object, const std::string& key) {
  static const json absent;
  const auto it = object.find(key);
  return it == object.end() ? absent : *it;
}

http::response invalid_json() {
  return answer(400, {{"success", false}, {"message", "Invalid JSON"}});
}

http::response failure(unsigned status, std::string_view text) {
  return answer(status, {{"success", false}, {"errors", json::array({text})}});
}

bool valid_ids(const json& ids) {
  if (!ids.is_object() || ids.empty()) {
    return false;
  }
  for (const auto& [name, value] : ids.items()) {
    if (name.empty() || !value.is_string()) {
      return false;
    }
    const auto& v = value.get_ref<const std::string&>();
    if (v == "null" || v == "undefined" || std::none_of(v.begin(), v.end(), [](unsigned char c) {
          return std::isalnum(c) != 0 || c >= 0x80;
        })) {
      return false;
    }
  }
  return true;
}

std::optional<std::string> customer_problem(const json& c) {
  if (!c.is_object()) {
    return R"(a customer is a JSON object: {"ids": {...}, "properties": {...}, "events": [...]})";
  }
  if (!field(c, "ids").is_object()) {
    return R"('ids' is required and must be an object, e.g. {"registered": "a@example.com"})";
  }
  if (const auto& p = field(c, "properties"); !p.is_object() && !p.is_null()) {
    return "'properties' must be an object";
  }
  if (const auto& e = field(c, "events"); !e.is_array() && !e.is_null()) {
    return "'events' must be a list";
  }
  return std::nullopt;
}

json or_empty_object(const json& v) {
  return v.is_null() ? json::object() : v;
}

}  // namespace dsr::sim::detail
