#include "dsr/sim/exponea_sim.hpp"

// The tracking API: add-event and update-properties commands, alone or in a batch, with the
// permissions a private key or a public token grants for them.
//
// "reference §N" below is docs/reference/exponea-api.md §N.

#include "json_shapes.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>

namespace dsr::sim {

using json = nlohmann::json;
using detail::answer;
using detail::field;
using detail::has;
using detail::invalid_json;
using detail::or_empty_object;
using detail::seconds;
using detail::unix_seconds;
using detail::valid_ids;

namespace {

// An RFC 3339 date-time ("2025-11-29T10:00:00Z", "2025-11-29T11:00:00.25+01:00"; `t` or a space
// for `T`, `z` for `Z`) as UNIX seconds: whole seconds as an integer, a fraction as a float.
std::optional<json> rfc3339_seconds(std::string_view s) {
  const auto digits = [&](std::size_t at, std::size_t n, int& out) {
    if (at + n > s.size()) {
      return false;
    }
    out = 0;
    for (std::size_t i = at; i < at + n; ++i) {
      if (std::isdigit(static_cast<unsigned char>(s[i])) == 0) {
        return false;
      }
      out = out * 10 + (s[i] - '0');
    }
    return true;
  };
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  if (!digits(0, 4, y) || s.size() < 19 || s[4] != '-' || !digits(5, 2, mo) || s[7] != '-' ||
      !digits(8, 2, d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(11, 2, h) ||
      s[13] != ':' || !digits(14, 2, mi) || s[16] != ':' || !digits(17, 2, sec)) {
    return std::nullopt;
  }
  std::size_t i = 19;
  double fraction = 0;
  if (i < s.size() && s[i] == '.') {
    double scale = 0.1;
    const auto first = ++i;
    for (; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) != 0; ++i) {
      fraction += (s[i] - '0') * scale;
      scale /= 10;
    }
    if (i == first) {
      return std::nullopt;
    }
  }
  int offset_minutes = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    int oh = 0, om = 0;
    if (!digits(i + 1, 2, oh) || i + 3 >= s.size() || s[i + 3] != ':' || !digits(i + 4, 2, om) ||
        oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_minutes = (s[i] == '-' ? -1 : 1) * (oh * 60 + om);
    i += 6;
  } else {
    return std::nullopt;  // RFC 3339 requires the offset
  }
  const std::chrono::year_month_day date{std::chrono::year{y},
                                         std::chrono::month{static_cast<unsigned>(mo)},
                                         std::chrono::day{static_cast<unsigned>(d)}};
  if (i != s.size() || !date.ok() || h > 23 || mi > 59 || sec > 60) {
    return std::nullopt;
  }
  const std::int64_t whole =
      std::int64_t{std::chrono::sys_days{date}.time_since_epoch().count()} * 86400 +
      std::int64_t{h} * 3600 + std::int64_t{mi} * 60 + sec - std::int64_t{offset_minutes} * 60;
  if (fraction > 0) {
    return json(static_cast<double>(whole) + fraction);
  }
  return json(whole);
}

// An event's `timestamp` as stored: null (or none) is the time of tracking, a number is UNIX
// seconds, a string an RFC 3339 date-time (reference §4.1: "ISO-8601 date-time also accepted");
// anything else is refused.
std::optional<json> event_time(const json& t, time_point now) {
  if (t.is_null()) {
    return unix_seconds(now);
  }
  if (t.is_number()) {
    return t;
  }
  if (t.is_string()) {
    return rfc3339_seconds(t.get_ref<const std::string&>());
  }
  return std::nullopt;
}

}  // namespace

// Events > Set is granted per event type (reference §2.1), to a public token and to a private key
// alike; a private key's older coarse permissions "track" and "consent" stay shorthands for it.
bool exponea_simulator::may_add_event(const caller& who, const std::string& type) {
  if (who.token != nullptr) {
    return has(who.token->events, type);
  }
  return who.key != nullptr && (has(who.key->events, type) ||
                                has(who.key->permissions, type == "consent" ? "consent" : "track"));
}

// Customer properties > Set, per property (reference §2.1); a private key with "*" may set all.
bool exponea_simulator::may_set_properties(const caller& who, const json& properties) {
  if (who.key != nullptr && std::find(who.key->permissions.begin(), who.key->permissions.end(),
                                      "*") != who.key->permissions.end()) {
    return true;
  }
  const auto* granted = who.token != nullptr ? &who.token->properties
                        : who.key != nullptr ? &who.key->properties
                                             : nullptr;
  if (granted == nullptr) {
    return false;
  }
  for (const auto& [name, value] : properties.items()) {
    if (!has(*granted, name)) {
      return false;
    }
  }
  return true;
}

// Checks in this order: IDs (200 success:false, as the API answers them), the shape of the
// fields (400), then the permission for the event type (200 success:false, reference §2.3).
std::optional<exponea_simulator::refusal> exponea_simulator::add_event(const caller& who,
                                                                       const json& data) {
  const auto& ids = field(data, "customer_ids");
  if (!valid_ids(ids)) {
    return refusal{200, "At least one valid id should be specified"};
  }
  const auto& type = field(data, "event_type");
  if (type.is_null() || type == "") {
    return refusal{400, "event_type is required"};
  }
  if (!type.is_string()) {
    return refusal{400, "event_type must be a string"};
  }
  auto timestamp = event_time(field(data, "timestamp"), clock_->now());
  if (!timestamp) {
    return refusal{400,
                   "timestamp must be UNIX seconds (a number), an ISO-8601 date-time with an "
                   "offset (2025-11-29T10:00:00Z) or null"};
  }
  const auto& properties = field(data, "properties");
  if (!properties.is_object() && !properties.is_null()) {
    return refusal{400, "properties must be an object"};
  }
  const auto& name = type.get_ref<const std::string&>();
  if (!may_add_event(who, name)) {
    return refusal{200, "Not authorized to add event of specified type"};
  }
  if (auto f = take_event_fault(properties)) {
    return refusal{f->status == 0 ? 200u : f->status,
                   f->body.empty() ? std::string("Invalid event") : f->body};
  }
  // A null timestamp is the time of tracking and null properties none (reference "Consent").
  json e{{"type", name},
         {"timestamp", std::move(*timestamp)},
         {"properties", or_empty_object(properties)}};
  queue_write([this, ids = json(ids), e = std::move(e)] {
    if (customer* c = find(ids)) {
      c->events.push_back(e);
    } else {
      // Tracking an unknown ID creates a customer holding it (reference §4.1).
      add_customer({ids, json::object(), json::array({e})});
    }
  });
  return std::nullopt;
}

std::optional<exponea_simulator::refusal> exponea_simulator::update_properties(const caller& who,
                                                                               const json& data) {
  const auto& ids = field(data, "customer_ids");
  if (!valid_ids(ids)) {
    return refusal{200, "At least one valid id should be specified"};
  }
  const auto& properties = field(data, "properties");
  if (!properties.is_object() && !properties.is_null()) {
    return refusal{400, "properties must be an object"};
  }
  // Accepted as a batch's customers command documents it; the simulator applies updates in
  // arrival order and does not order them by it.
  const auto& update_timestamp = field(data, "update_timestamp");
  if (!update_timestamp.is_null() && !update_timestamp.is_number()) {
    return refusal{400, "update_timestamp must be UNIX seconds (a number)"};
  }
  auto update = or_empty_object(properties);
  if (!may_set_properties(who, update)) {
    return refusal{200, "Not authorized to update specified properties"};
  }
  queue_write([this, ids = json(ids), update = std::move(update)] {
    if (customer* c = find(ids)) {
      for (const auto& [name, value] : update.items()) {
        c->properties[name] = value;
      }
    } else {
      // As tracking does, an update of an unknown ID creates the customer (reference §4.1).
      add_customer({ids, update, json::array()});
    }
  });
  return std::nullopt;
}

// Reference §4.2: the whole batch fails (400 {"success":false,"message":...}) when it is not a
// list of command objects, is empty, or holds more than 50 commands; otherwise each command is
// checked as its single call would be and answered in its own result, in order.
http::response exponea_simulator::batch(const caller& who, const json& body) {
  constexpr std::size_t max_commands = 50;
  const auto& commands = field(body, "commands");
  if (commands.is_null() || (commands.is_array() && commands.empty())) {
    return answer(400, {{"success", false}, {"message", "No commands"}});
  }
  if (!commands.is_array()) {
    return invalid_json();
  }
  if (commands.size() > max_commands) {
    return answer(400, {{"success", false},
                        {"message", fmt::format("Too many commands: a batch holds at most {}, "
                                                "this one {}",
                                                max_commands, commands.size())}});
  }
  if (std::any_of(commands.begin(), commands.end(), [](const json& c) { return !c.is_object(); })) {
    return invalid_json();
  }
  const double start = seconds(clock_->now());
  json results = json::array();
  for (const auto& command : commands) {
    const auto& name = field(command, "name");
    const auto& data = field(command, "data");
    json result;
    std::optional<refusal> refused;
    if (name == "system/time") {
      result = {{"success", true}, {"time", seconds(clock_->now())}};
    } else if (name != "customers/events" && name != "customers") {
      refused =
          refusal{200, "Unknown command name: use customers/events, customers or system/time"};
    } else if (!data.is_object()) {
      refused = refusal{200, "data must be an object"};
    } else {
      refused = name == "customers/events" ? add_event(who, data) : update_properties(who, data);
    }
    if (refused) {
      result = {{"success", false}, {"errors", json::array({refused->error})}};
    } else if (result.is_null()) {
      result = {{"success", true}};
    }
    if (const auto& id = field(command, "command_id"); !id.is_null()) {
      result["command_id"] = id;
    }
    results.push_back(std::move(result));
  }
  return answer(200, {{"success", true},
                      {"start_time", start},
                      {"end_time", seconds(clock_->now())},
                      {"results", std::move(results)}});
}

}  // namespace dsr::sim
