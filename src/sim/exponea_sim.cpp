#include "dsr/sim/exponea_sim.hpp"

// "reference §N" below is docs/reference/exponea-api.md §N; mineos-openapi.json is
// docs/reference/mineos-openapi.json.

#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <utility>

namespace dsr::sim {
namespace {

using json = nlohmann::json;

// Bodies recorded as sent may hold any bytes: answered with invalid UTF-8 replaced, never thrown.
http::response answer(unsigned status, const json& body) {
  return http::response{
      status, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace), {}};
}

http::response error(unsigned status, std::string_view text) {
  return answer(status, {{"success", false}, {"error", text}});
}

std::optional<std::string> base64_decode(std::string_view in) {
  if (in.empty() || in.size() % 4 != 0) {
    return std::nullopt;
  }
  std::string out(in.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  if (n < 0) {
    return std::nullopt;
  }
  std::size_t len = static_cast<std::size_t>(n);
  for (auto it = in.rbegin(); it != in.rend() && *it == '='; ++it) {
    --len;
  }
  out.resize(len);
  return out;
}

bool id_matches(const json& have, const json& want) {
  if (have.is_array()) {
    return std::find(have.begin(), have.end(), want) != have.end();
  }
  return have == want;
}

std::vector<std::string> strings(const json& seed, const char* key) {
  std::vector<std::string> out;
  if (seed.contains(key)) {
    for (const auto& v : seed.at(key)) {
      out.push_back(v.get<std::string>());
    }
  }
  return out;
}

bool has(const std::vector<std::string>& list, std::string_view v) {
  return std::find(list.begin(), list.end(), v) != list.end() ||
         std::find(list.begin(), list.end(), "*") != list.end();
}

json unix_seconds(time_point t) {
  return t.time_since_epoch().count() / 1000;
}

// Exponea's own SDK sends "timestamp": null and "properties": null; the API reads them as the
// time of tracking and no properties (reference "Consent"), so neither is ever stored as null.
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

// Bodies nested deeper than this are refused as Invalid JSON. Parsing and destroying a json value
// are iterative, but copying, comparing and dumping one recurse: a 2 MB body of '[' stored as an
// event's properties would overflow the stack when exported. The real API's bound is not
// documented; its JSON parser has one.
constexpr int max_depth = 512;

// A request body as JSON; discarded when it is not JSON or nests deeper than max_depth.
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

// The member `key` of `object`, or null when there is none (or `object` is not an object).
const json& field(const json& object, const std::string& key) {
  static const json absent;
  const auto it = object.find(key);
  return it == object.end() ? absent : *it;
}

http::response invalid_json() {
  return answer(400, {{"success", false}, {"message", "Invalid JSON"}});
}

// The single tracking calls' failure shape: {"success":false,"errors":[...]} (reference §2.3).
http::response failure(unsigned status, std::string_view text) {
  return answer(status, {{"success", false}, {"errors", json::array({text})}});
}

// customer_ids as the API takes them (reference §2.3): an object of at least one ID, every value
// a string holding a letter or digit that is not "null" or "undefined". Non-ASCII bytes count as
// letters: the simulator has no Unicode tables.
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

// What is wrong with a customer given in the seed or to /_sim/customers, or nullopt. Its events
// are stored as given (only a null timestamp or properties is filled in), so that tests can seed
// oddly shaped exports; the rest must have the shape the simulator relies on.
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

// Optional fields of a control body: false when the field is there with another type or out of
// [min, max]; absent or null leaves `out` as it is.
bool read_field(const json& o, const std::string& key, std::string& out) {
  const auto& v = field(o, key);
  if (v.is_null()) {
    return true;
  }
  if (!v.is_string()) {
    return false;
  }
  out = v.get<std::string>();
  return true;
}

bool read_field(const json& o, const std::string& key, bool& out) {
  const auto& v = field(o, key);
  if (v.is_null()) {
    return true;
  }
  if (!v.is_boolean()) {
    return false;
  }
  out = v.get<bool>();
  return true;
}

bool read_field(const json& o, const std::string& key, std::int64_t min, std::int64_t max,
                std::int64_t& out) {
  const auto& v = field(o, key);
  if (v.is_null()) {
    return true;
  }
  if (!v.is_number_integer()) {
    return false;
  }
  if (v.is_number_unsigned()) {
    if (v.get<std::uint64_t>() > static_cast<std::uint64_t>(max)) {
      return false;
    }
  } else if (v.get<std::int64_t>() < min || v.get<std::int64_t>() > max) {
    return false;
  }
  out = v.get<std::int64_t>();
  return out >= min;
}

// A customer's consent per category, as Bloomreach derives it from `consent` events (reference
// "Consent"): the latest valid-from (the event's timestamp) wins. An invalid event (action not
// accept/reject, accept without a valid_until) revokes its category "to stay on the safe side",
// and an accept whose valid_until has passed is revoked too. Without a category there is nothing
// to change.
json consents(const json& events, time_point now) {
  json out = json::object();
  for (const auto& e : events) {
    if (!e.is_object() || e.value("type", json()) != "consent" || !e.contains("properties") ||
        !e["properties"].is_object()) {
      continue;
    }
    const auto& p = e["properties"];
    if (!p.contains("category") || !p["category"].is_string()) {
      continue;
    }
    const auto category = p["category"].get<std::string>();
    const auto from = e.value("timestamp", json());
    if (out.contains(category)) {
      // Timestamps the simulator cannot order (text in a seeded event: tracked ones are stored
      // as numbers) count in tracking order.
      const auto& held = out[category]["valid_from"];
      if (from.is_number() && held.is_number() && from.get<double>() < held.get<double>()) {
        continue;
      }
    }
    const auto action = p.value("action", json());
    const auto until = p.value("valid_until", json());
    const bool until_valid = until == "unlimited" || until.is_number();
    json state;
    if (action == "accept" && until_valid) {
      const bool expired =
          until.is_number() && until.get<double>() <= unix_seconds(now).get<double>();
      state = {
          {"action", expired ? "reject" : "accept"}, {"valid_from", from}, {"valid_until", until}};
    } else if (action == "reject") {
      state = {{"action", "reject"},
               {"valid_from", from},
               {"valid_until", until.is_null() ? json("unlimited") : until}};
    } else {
      state = {{"action", "reject"}, {"valid_from", from}, {"valid_until", "unlimited"}};
    }
    out[category] = std::move(state);
  }
  return out;
}

// The media types the status API declares for its body (mineos-openapi.json): application/json,
// text/json and application/*+json, parameters such as charset allowed.
bool json_media_type(std::optional<std::string_view> header) {
  if (!header) {
    return false;
  }
  auto type = std::string(header->substr(0, header->find(';')));
  std::transform(type.begin(), type.end(), type.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const auto first = type.find_first_not_of(" \t");
  const auto last = type.find_last_not_of(" \t");
  type = first == std::string::npos ? "" : type.substr(first, last - first + 1);
  return type == "application/json" || type == "text/json" ||
         (type.starts_with("application/") && type.ends_with("+json"));
}

std::string described(const json& v) {
  return v.is_string() ? fmt::format("\"{}\"", v.get<std::string>()) : std::string(v.type_name());
}

// What is wrong with a status report's body, checked against MineOS's schema
// CustomIntegrationActionStatusRequest (mineos-openapi.json), or nullopt when it is valid.
std::optional<std::string> status_request_problem(std::optional<std::string_view> content_type,
                                                  const std::string& raw) {
  if (!json_media_type(content_type)) {
    return fmt::format("Content-Type '{}' is not supported: send application/json",
                       content_type.value_or(""));
  }
  const auto body = json::parse(raw, nullptr, false);
  if (body.is_discarded()) {
    return "the body is not valid JSON";
  }
  if (!body.is_object()) {
    return fmt::format("the body must be a CustomIntegrationActionStatusRequest object, not {}",
                       body.type_name());
  }
  static constexpr std::array<std::string_view, 6> fields{"action", "status", "message",
                                                          "data",   "files",  "test"};
  for (const auto& [name, value] : body.items()) {
    if (std::find(fields.begin(), fields.end(), name) == fields.end()) {
      return fmt::format(
          "'{}' is not a field of CustomIntegrationActionStatusRequest (allowed: "
          "action, status, message, data, files, test)",
          name);
    }
  }
  static const std::vector<std::string> actions{"Unknown", "Delete", "Copy"};
  static const std::vector<std::string> statuses{
      "Unknown", "Completed", "Failed", "MissingIdentifiers", "UserNotFound", "CannotDeleteData"};
  const auto one_of = [&](const char* field,
                          const std::vector<std::string>& values) -> std::optional<std::string> {
    if (!body.contains(field)) {
      return fmt::format("'{}' is required", field);
    }
    const auto& v = body[field];
    if (!v.is_string() ||
        std::find(values.begin(), values.end(), v.get<std::string>()) == values.end()) {
      return fmt::format("'{}' must be one of {} (case-sensitive), not {}", field,
                         fmt::join(values, ", "), described(v));
    }
    return std::nullopt;
  };
  if (auto problem = one_of("action", actions)) {
    return problem;
  }
  if (auto problem = one_of("status", statuses)) {
    return problem;
  }
  if (body.contains("message") && !body["message"].is_string() && !body["message"].is_null()) {
    return fmt::format("'message' must be a string or null, not {}", described(body["message"]));
  }
  if (body.contains("test") && !body["test"].is_boolean()) {
    return fmt::format("'test' must be a boolean, not {}", described(body["test"]));
  }
  if (body.contains("data") && !body["data"].is_object() && !body["data"].is_null()) {
    return fmt::format("'data' must be a JSON object or null, not {}", described(body["data"]));
  }
  if (body.contains("files") && !body["files"].is_null()) {
    const auto& files = body["files"];
    if (!files.is_array()) {
      return fmt::format("'files' must be an array or null, not {}", described(files));
    }
    for (std::size_t i = 0; i < files.size(); ++i) {
      if (!files[i].is_object()) {
        return fmt::format("'files[{}]' must be a Reference object, not {}", i,
                           described(files[i]));
      }
      for (const auto& [name, value] : files[i].items()) {
        if (name != "fileName" && name != "description" && name != "url") {
          return fmt::format(
              "'files[{}].{}' is not a field of Reference (allowed: fileName, description, url)", i,
              name);
        }
        if (!value.is_string() && !value.is_null()) {
          return fmt::format("'files[{}].{}' must be a string or null, not {}", i, name,
                             described(value));
        }
      }
    }
  }
  // The schema documents data and files "For use with 'Copy' action only".
  const auto action = body["action"].get<std::string>();
  for (const char* field : {"data", "files"}) {
    if (action != "Copy" && body.contains(field) && !body[field].is_null()) {
      return fmt::format("'{}' is for use with the 'Copy' action only, not '{}'", field, action);
    }
  }
  return std::nullopt;
}

// {ticketId, integrationId} of /api/ticket/{ticketId}/custom-integrations/{integrationId}.
std::optional<std::pair<std::string, std::string>> mineos_route(std::string_view path) {
  const auto seg = http::split_path(path);
  if (seg.size() != 5 || seg[0] != "api" || seg[1] != "ticket" || seg[2].empty() ||
      seg[3] != "custom-integrations" || seg[4].empty()) {
    return std::nullopt;
  }
  return std::pair{seg[2], seg[4]};
}

http::response mineos_error(unsigned status, std::string_view code, std::string_view message) {
  return answer(status, {{"internalErrorCode", code}, {"message", message}});
}

}  // namespace

exponea_simulator::exponea_simulator(const json& seed, std::shared_ptr<clock> clock,
                                     scheduler later)
    : clock_(std::move(clock)), later_(std::move(later)) {
  try {
    project_token_ = seed.at("project_token").get<std::string>();
    for (const auto& k : seed.value("private_keys", json::array())) {
      private_keys_.push_back({k.at("key").get<std::string>(), k.at("secret").get<std::string>(),
                               strings(k, "permissions"), strings(k, "events"),
                               strings(k, "properties")});
    }
    for (const auto& t : seed.value("public_tokens", json::array())) {
      public_tokens_.push_back(
          {t.at("token").get<std::string>(), strings(t, "events"), strings(t, "properties")});
    }
    personal_properties_ = strings(seed, "personal_properties");
    personal_event_properties_ = strings(seed, "personal_event_properties");
    consent_categories_ = seed.value("consent_categories", json::array());
    if (!consent_categories_.is_array()) {
      throw std::invalid_argument("exponea-sim seed: consent_categories must be a list");
    }
    if (seed.contains("mineos")) {
      const auto& m = seed.at("mineos");
      if (m.contains("api_key")) {
        mineos_api_key_ = m.at("api_key").get<std::string>();
      }
      mineos_integrations_ = strings(m, "integrations");
    }
    const auto& customers = field(seed, "customers");
    if (!customers.is_array() && !customers.is_null()) {
      throw std::invalid_argument("exponea-sim seed: customers must be a list");
    }
    for (std::size_t i = 0; i < customers.size(); ++i) {
      const auto& c = customers[i];
      if (const auto problem = customer_problem(c)) {
        throw std::invalid_argument(
            fmt::format("exponea-sim seed: customers[{}]: {}", i, *problem));
      }
      add_customer({field(c, "ids"), or_empty_object(field(c, "properties")),
                    normalized_events(field(c, "events"), clock_->now())});
    }
    latency_ = std::chrono::milliseconds(seed.value("latency_ms", 0));
    write_delay_ = std::chrono::milliseconds(seed.value("write_delay_ms", 0));
    rate_limit_ = seed.value("rate_limit_per_second", 0u);
  } catch (const json::exception& e) {
    throw std::invalid_argument(fmt::format("exponea-sim seed: {}", e.what()));
  }
}

json exponea_simulator::state() {
  const std::lock_guard lock(mutex_);
  apply_due();
  json out = json::array();
  for (const auto& c : customers_) {
    out.push_back({{"ids", c.ids},
                   {"properties", c.properties},
                   {"events", c.events},
                   {"consents", consents(c.events, clock_->now())}});
  }
  return out;
}

json exponea_simulator::calls() {
  const std::lock_guard lock(mutex_);
  return calls_;
}

void exponea_simulator::apply_due() {
  const auto now = clock_->now();
  // Applied in the order they were queued.
  auto due_end = std::stable_partition(pending_.begin(), pending_.end(),
                                       [&](const pending_write& w) { return w.due <= now; });
  std::vector<pending_write> due(std::make_move_iterator(pending_.begin()),
                                 std::make_move_iterator(due_end));
  pending_.erase(pending_.begin(), due_end);
  for (auto& w : due) {
    w.apply();
  }
}

namespace {

std::string id_key(std::string_view type, const json& value) {
  return fmt::format("{}\x1f{}", type, value.dump());
}

}  // namespace

void exponea_simulator::add_customer(customer c) {
  customers_.push_back(std::move(c));
  index_ids(customers_.size() - 1);
}

void exponea_simulator::index_ids(std::size_t i) {
  for (const auto& [type, value] : customers_[i].ids.items()) {
    if (value.is_array()) {
      for (const auto& v : value) {
        by_id_[id_key(type, v)].push_back(i);
      }
    } else {
      by_id_[id_key(type, value)].push_back(i);
    }
  }
}

// The first customer (in creation order) holding any of `ids`.
exponea_simulator::customer* exponea_simulator::find(const json& ids) {
  const auto holds = [&](std::size_t i, const std::string& type, const json& value) {
    const auto& have = customers_[i].ids;
    return have.contains(type) && id_matches(have[type], value);
  };
  auto best = customers_.size();
  for (const auto& [type, value] : ids.items()) {
    if (value.is_structured()) {  // not an ID the index knows: look at every customer
      for (std::size_t i = 0; i < best; ++i) {
        if (holds(i, type, value)) {
          best = i;
          break;
        }
      }
      continue;
    }
    const auto it = by_id_.find(id_key(type, value));
    if (it == by_id_.end()) {
      continue;
    }
    for (const auto i : it->second) {
      if (i < best && holds(i, type, value)) {
        best = i;
      }
    }
  }
  return best < customers_.size() ? &customers_[best] : nullptr;
}

bool exponea_simulator::rate_limited() {
  if (rate_limit_ == 0) {
    return false;
  }
  const auto now = clock_->now();
  while (!recent_.empty() && recent_.front() <= now - std::chrono::seconds(1)) {
    recent_.pop_front();
  }
  if (recent_.size() >= rate_limit_) {
    return true;
  }
  recent_.push_back(now);
  return false;
}

std::optional<exponea_simulator::fault> exponea_simulator::take_fault(const std::string& ep) {
  for (auto it = faults_.begin(); it != faults_.end(); ++it) {
    if (it->endpoint == "*" || it->endpoint == ep) {
      fault f = *it;
      faults_.erase(it);
      return f;
    }
  }
  return std::nullopt;
}

void exponea_simulator::log_call(const http::request& req, const std::string& endpoint,
                                 const std::string& auth, unsigned status) {
  calls_.push_back({{"method", req.method},
                    {"endpoint", endpoint},
                    {"auth", auth},
                    {"status", status},
                    {"body", req.body},
                    {"at_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                  clock_->now().time_since_epoch())
                                  .count()}});
}

json exponea_simulator::reports() {
  const std::lock_guard lock(mutex_);
  return reports_;
}

http::response exponea_simulator::mineos(const http::request& req, const std::string& ticket_id,
                                         const std::string& integration_id,
                                         std::chrono::milliseconds& delay) {
  const std::lock_guard lock(mutex_);
  const auto arrived = clock_->now();
  http::response res;
  unsigned decided = 0;
  if (req.method != "POST") {
    res = http::response{405, "", "", {{"Allow", "POST"}}};
    decided = res.status;
  } else if (auto f = take_fault("mineos"); f && (f->status != 0 || (f->drop && !f->apply))) {
    // An injected fault answers before MineOS looks at the call.
    delay = f->delay;
    if (f->status != 0) {
      std::vector<http::header_field> headers;
      if (!f->retry_after.empty()) {
        headers.push_back({"Retry-After", f->retry_after});
      }
      res = http::response{f->status, "application/json", f->body, std::move(headers)};
    } else {
      res = http::response{0, "", "", {}};
    }
    decided = res.status;
  } else {
    const auto header = req.header("Authorization");
    const auto bearer =
        header && header->starts_with("Bearer ") ? header->substr(7) : std::string_view();
    const auto known = [&] {
      return mineos_integrations_.empty() ||
             std::find(mineos_integrations_.begin(), mineos_integrations_.end(), integration_id) !=
                 mineos_integrations_.end();
    };
    if (bearer.empty() || (mineos_api_key_ && bearer != *mineos_api_key_)) {
      res = http::response{401, "", "", {}};
    } else if (!known()) {
      res = mineos_error(404, "NotFound",
                         fmt::format("Integration '{}' was not found", integration_id));
    } else if (auto problem = status_request_problem(req.header("Content-Type"), req.body)) {
      res = mineos_error(400, "InvalidArgument", *problem);
    } else {
      res = answer(200, json::object());
    }
    decided = res.status;
    if (f) {
      delay = f->delay;
      if (f->drop) {  // with apply: MineOS took the report, its answer is lost
        res = http::response{0, "", "", {}};
      }
    }
  }
  reports_.push_back(
      {{"ticket_id", ticket_id},
       {"integration_id", integration_id},
       {"authorization", std::string(req.header("Authorization").value_or(""))},
       {"body", req.body},
       {"status", decided},
       {"at_ms", std::chrono::duration_cast<std::chrono::milliseconds>(arrived.time_since_epoch())
                     .count()}});
  return res;
}

void exponea_simulator::handle(http::request req, http::responder done) {
  if (req.path().starts_with("/_sim/")) {
    done(control(req));
    return;
  }
  if (const auto route = mineos_route(req.path())) {
    std::chrono::milliseconds delay{0};
    auto res = mineos(req, route->first, route->second, delay);
    if (delay.count() > 0) {
      later_(delay,
             [done = std::move(done), res = std::move(res)]() mutable { done(std::move(res)); });
    } else {
      done(std::move(res));
    }
    return;
  }
  std::string endpoint;
  std::string auth = "none";
  std::optional<fault> injected;
  http::response res;
  std::chrono::milliseconds delay{0};
  {
    const std::lock_guard lock(mutex_);
    apply_due();
    res = api(req, endpoint, auth, injected);
    log_call(req, endpoint, auth, res.status);
    delay = latency_ + (injected ? injected->delay : std::chrono::milliseconds(0));
  }
  if (delay.count() > 0) {
    later_(delay,
           [done = std::move(done), res = std::move(res)]() mutable { done(std::move(res)); });
  } else {
    done(std::move(res));
  }
}

http::response exponea_simulator::api(const http::request& req, std::string& endpoint,
                                      std::string& auth, std::optional<fault>& injected) {
  // The limit counts HTTP requests (reference §6: requests per minute per IP): a batch of 50
  // commands is one.
  if (rate_limited()) {
    // Over the limit: the request's data is dropped (reference §6).
    endpoint = "rate-limited";
    return http::response{429,
                          "application/json",
                          R"({"success":false,"error":"Too many requests"})",
                          {{"Retry-After", "1"}}};
  }
  // /{data|track}/v2/projects/{token}/...
  const auto seg = http::split_path(req.path());
  if (seg.size() < 5 || seg[1] != "v2" || seg[2] != "projects") {
    return http::response{404,
                          "text/html",
                          "<h1>Not Found</h1><p>The requested URL was not found on the server.</p>",
                          {}};
  }
  const std::string& api_name = seg[0];
  const std::string rest = fmt::format("{}", fmt::join(seg.begin() + 4, seg.end(), "/"));
  if (api_name == "data" && rest == "customers/export-one" && req.method == "POST") {
    endpoint = "export-one";
  } else if (api_name == "data" && rest == "customers/anonymize" && req.method == "POST") {
    endpoint = "anonymize";
  } else if (api_name == "track" && rest == "customers/events" && req.method == "POST") {
    endpoint = "track";
  } else if (api_name == "track" && rest == "customers" && req.method == "POST") {
    endpoint = "customers";
  } else if (api_name == "track" && rest == "batch" && req.method == "POST") {
    endpoint = "batch";
  } else if (api_name == "track" && rest == "system/time" && req.method == "GET") {
    endpoint = "system/time";
  } else if (api_name == "data" && rest == "consent/categories" && req.method == "GET") {
    endpoint = "consent/categories";
  } else {
    return http::response{404,
                          "text/html",
                          "<h1>Not Found</h1><p>The requested URL was not found on the server.</p>",
                          {}};
  }

  injected = take_fault(endpoint);
  if (injected && injected->status != 0) {
    std::vector<http::header_field> headers;
    if (!injected->retry_after.empty()) {
      headers.push_back({"Retry-After", injected->retry_after});
    }
    return http::response{injected->status, "application/json", injected->body, headers};
  }
  if (injected && injected->drop && !injected->apply) {
    return http::response{0, "", "", {}};
  }

  // Authentication, in the order the real API reports problems.
  if (seg[3] != project_token_) {
    return error(400, "Could not authenticate");
  }
  caller who;
  if (auto refused = authenticate(req, auth, who)) {
    return std::move(*refused);
  }

  if (endpoint == "system/time") {
    return answer(200,
                  {{"success", true}, {"time", seconds(clock_->now())}, {"errors", json::array()}});
  }
  if (api_name == "data" && who.key == nullptr) {
    return error(403, "No permission");  // public access cannot use the data API
  }
  if (endpoint == "consent/categories") {
    // Any private key may list them: the reference names no permission for it.
    return answer(200, {{"results", consent_categories_}, {"success", true}});
  }

  const auto body = parse_body(req.body);
  if (body.is_discarded() || !body.is_object()) {
    return invalid_json();
  }
  // With drop + apply the write takes effect and the answer is lost; a refusal writes nothing
  // and is answered.
  const bool lost_answer = injected && injected->drop && injected->apply;
  http::response res;
  if (endpoint == "batch") {
    res = batch(who, body);
    if (res.status != 200) {
      return res;
    }
  } else if (endpoint == "track" || endpoint == "customers") {
    const auto refused = endpoint == "track" ? add_event(who, body) : update_properties(who, body);
    if (refused) {
      return failure(refused->status, refused->error);
    }
    res = answer(200, {{"errors", json::array()}, {"success", true}});
  } else {
    const auto& ids = field(body, "customer_ids");
    if (!valid_ids(ids)) {
      return failure(200, "At least one valid id should be specified");
    }
    if (endpoint == "export-one") {
      if (!has(who.key->permissions, "export")) {
        return error(403, "No permission to export customer");
      }
      const customer* c = find(ids);
      if (c == nullptr) {
        return answer(404, {{"success", false},
                            {"errors", {{"_global", json::array({"Customer does not exist"})}}}});
      }
      res = answer(200, {{"success", true},
                         {"ids", c->ids},
                         {"properties", c->properties},
                         {"events", c->events}});
    } else {  // anonymize
      if (!has(who.key->permissions, "anonymize")) {
        return error(403, "No permission to anonymize customer");
      }
      if (find(ids) == nullptr) {
        return error(404, "Customer does not exist");
      }
      const std::string cookie = fmt::format("anonymous-{}", next_cookie_++);
      queue_write([this, ids = json(ids), cookie] {
        customer* c = find(ids);
        if (c == nullptr) {
          return;
        }
        // Removes every external ID and the properties flagged as personal; keeps the events
        // without their personal properties; assigns a new cookie.
        c->ids = json{{"cookie", json::array({cookie})}};
        index_ids(static_cast<std::size_t>(c - customers_.data()));
        for (const auto& p : personal_properties_) {
          c->properties.erase(p);
        }
        for (auto& e : c->events) {
          if (e.is_object() && e.contains("properties") && e["properties"].is_object()) {
            for (const auto& p : personal_event_properties_) {
              e["properties"].erase(p);
            }
          }
        }
      });
      res = answer(200, {{"success", true}});
    }
  }
  if (lost_answer) {
    return http::response{0, "", "", {}};
  }
  return res;
}

std::optional<http::response> exponea_simulator::authenticate(const http::request& req,
                                                              std::string& auth, caller& who) {
  const auto header = req.header("Authorization");
  if (!header) {
    return error(401, "Access key not provided");
  }
  if (header->starts_with("Basic ")) {
    auth = "basic";
    const auto decoded = base64_decode(header->substr(6));
    const auto colon = decoded ? decoded->find(':') : std::string::npos;
    if (colon == std::string::npos) {
      return error(401, "Access key not provided");
    }
    const auto id = decoded->substr(0, colon);
    const auto secret = decoded->substr(colon + 1);
    const auto it = std::find_if(private_keys_.begin(), private_keys_.end(),
                                 [&](const private_key& k) { return k.key == id; });
    if (it == private_keys_.end()) {
      return error(401, "Access key not found");
    }
    if (it->secret != secret) {
      return error(403, "invalid secret");
    }
    who.key = &*it;
    return std::nullopt;
  }
  if (header->starts_with("Token ")) {
    auth = "token";
    const auto value = header->substr(6);
    const auto it = std::find_if(public_tokens_.begin(), public_tokens_.end(),
                                 [&](const public_token& t) { return t.token == value; });
    if (it == public_tokens_.end()) {
      return error(401, "Access key not found");
    }
    who.token = &*it;
    return std::nullopt;
  }
  return error(401, "Access key not provided");
}

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

void exponea_simulator::queue_write(std::function<void()> apply) {
  // Queued writes take effect after write_delay (reference §3.5); reads see applied state.
  if (write_delay_.count() == 0) {
    apply();
  } else {
    pending_.push_back({clock_->now() + write_delay_, std::move(apply)});
  }
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

http::response exponea_simulator::control(const http::request& req) {
  const auto path = req.path();
  if (path == "/_sim/state" && req.method == "GET") {
    return answer(200, state());
  }
  if (path == "/_sim/calls" && req.method == "GET") {
    return answer(200, calls());
  }
  if (path == "/_sim/mineos" && req.method == "GET") {
    return answer(200, reports());
  }
  if (path == "/_sim/faults" && req.method == "DELETE") {
    const std::lock_guard lock(mutex_);
    const auto dropped = faults_.size();
    faults_.clear();
    return answer(200, {{"cleared", dropped}});
  }
  const auto body = parse_body(req.body);
  if (body.is_discarded()) {
    return http::problem(
        400, fmt::format("the body is not JSON (or nests deeper than {} levels)", max_depth));
  }
  const std::lock_guard lock(mutex_);
  if (path == "/_sim/faults" && req.method == "POST") {
    return add_faults(body);
  }
  if (path == "/_sim/settings" && req.method == "POST") {
    return change_settings(body);
  }
  if (path == "/_sim/customers" && req.method == "POST") {
    if (const auto problem = customer_problem(body)) {
      return http::problem(400, *problem);
    }
    add_customer({field(body, "ids"), or_empty_object(field(body, "properties")),
                  normalized_events(field(body, "events"), clock_->now())});
    return answer(200, {{"customers", customers_.size()}});
  }
  return http::problem(404, "no such simulator control endpoint");
}

// All or nothing: one malformed fault in a list queues none of them.
http::response exponea_simulator::add_faults(const json& body) {
  static const std::vector<std::string> endpoints{"export-one",         "anonymize", "track",
                                                  "customers",          "batch",     "system/time",
                                                  "consent/categories", "mineos",    "*"};
  constexpr std::int64_t max_count = 100'000;
  constexpr std::int64_t max_delay_ms = 86'400'000;
  std::vector<std::pair<fault, std::int64_t>> parsed;
  const auto list = body.is_array() ? body : json::array({body});
  for (std::size_t i = 0; i < list.size(); ++i) {
    const auto& f = list[i];
    const auto bad = [&](std::string_view why) {
      return http::problem(400, fmt::format("fault {}: {}; nothing was queued", i, why));
    };
    if (!f.is_object()) {
      return bad(R"(a fault is a JSON object, e.g. {"endpoint": "export-one", "status": 503})");
    }
    fault x;
    x.endpoint = "*";
    std::int64_t status = 0;
    std::int64_t delay_ms = 0;
    std::int64_t count = 1;
    if (!read_field(f, "endpoint", x.endpoint) ||
        std::find(endpoints.begin(), endpoints.end(), x.endpoint) == endpoints.end()) {
      return bad(fmt::format("'endpoint' must be one of {}", fmt::join(endpoints, ", ")));
    }
    if (!read_field(f, "status", 0, 599, status) || (status != 0 && status < 100)) {
      return bad("'status' must be an HTTP status (100 to 599), or 0 for none");
    }
    if (!read_field(f, "body", x.body)) {
      return bad("'body' must be a string");
    }
    if (!read_field(f, "retry_after", x.retry_after)) {
      return bad("'retry_after' must be a string, e.g. \"2\"");
    }
    if (!read_field(f, "delay_ms", 0, max_delay_ms, delay_ms)) {
      return bad(fmt::format("'delay_ms' must be a whole number from 0 to {}", max_delay_ms));
    }
    if (!read_field(f, "drop", x.drop) || !read_field(f, "apply", x.apply)) {
      return bad("'drop' and 'apply' must be booleans");
    }
    if (!read_field(f, "count", 0, max_count, count)) {
      return bad(fmt::format("'count' must be a whole number from 0 to {}", max_count));
    }
    x.status = static_cast<unsigned>(status);
    x.delay = std::chrono::milliseconds(delay_ms);
    parsed.emplace_back(std::move(x), count);
  }
  for (const auto& [x, count] : parsed) {
    for (std::int64_t n = 0; n < count; ++n) {
      faults_.push_back(x);
    }
  }
  return answer(200, {{"faults", faults_.size()}});
}

// All or nothing, as add_faults.
http::response exponea_simulator::change_settings(const json& body) {
  constexpr std::int64_t max_ms = 86'400'000;
  if (!body.is_object()) {
    return http::problem(400,
                         "settings are a JSON object: {\"latency_ms\": 0, \"write_delay_ms\": 500, "
                         "\"rate_limit_per_second\": 0}");
  }
  std::int64_t latency = latency_.count();
  std::int64_t write_delay = write_delay_.count();
  std::int64_t rate = rate_limit_;
  if (!read_field(body, "latency_ms", 0, max_ms, latency) ||
      !read_field(body, "write_delay_ms", 0, max_ms, write_delay)) {
    return http::problem(
        400, fmt::format("'latency_ms' and 'write_delay_ms' must be whole numbers from 0 to {}",
                         max_ms));
  }
  if (!read_field(body, "rate_limit_per_second", 0, std::numeric_limits<unsigned>::max(), rate)) {
    return http::problem(400, "'rate_limit_per_second' must be a whole number, 0 for no limit");
  }
  latency_ = std::chrono::milliseconds(latency);
  write_delay_ = std::chrono::milliseconds(write_delay);
  rate_limit_ = static_cast<unsigned>(rate);
  return answer(200, {{"ok", true}});
}

}  // namespace dsr::sim
