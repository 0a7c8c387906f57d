#include "dsr/sim/exponea_sim.hpp"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cctype>
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
  for (const auto& e : events) {
    out.push_back(normalized_event(e, now));
  }
  return out;
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
      // Timestamps the simulator cannot order (ISO-8601 text) count in tracking order.
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
                               strings(k, "permissions")});
    }
    for (const auto& t : seed.value("public_tokens", json::array())) {
      public_tokens_.push_back({t.at("token").get<std::string>(), strings(t, "events")});
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
    for (const auto& c : seed.value("customers", json::array())) {
      add_customer({c.at("ids"), c.value("properties", json::object()),
                    normalized_events(c.value("events", json::array()), clock_->now())});
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
  const auto header = req.header("Authorization");
  if (!header) {
    return error(401, "Access key not provided");
  }
  const private_key* key = nullptr;
  const public_token* token = nullptr;
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
    key = &*it;
  } else if (header->starts_with("Token ")) {
    auth = "token";
    const auto value = header->substr(6);
    const auto it = std::find_if(public_tokens_.begin(), public_tokens_.end(),
                                 [&](const public_token& t) { return t.token == value; });
    if (it == public_tokens_.end()) {
      return error(401, "Access key not found");
    }
    token = &*it;
  } else {
    return error(401, "Access key not provided");
  }

  if (endpoint == "system/time") {
    const double now = static_cast<double>(clock_->now().time_since_epoch().count()) / 1000.0;
    return answer(200, {{"success", true}, {"time", now}, {"errors", json::array()}});
  }
  if (api_name == "data" && key == nullptr) {
    return error(403, "No permission");  // public access cannot use the data API
  }
  if (endpoint == "consent/categories") {
    // Any private key may list them: the reference names no permission for it.
    return answer(200, {{"results", consent_categories_}, {"success", true}});
  }

  const auto body = json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    return answer(400, {{"success", false}, {"message", "Invalid JSON"}});
  }
  const auto ids = body.value("customer_ids", json::object());
  const bool valid_ids =
      ids.is_object() && !ids.empty() && std::all_of(ids.begin(), ids.end(), [](const json& v) {
        return v.is_string() && !v.get<std::string>().empty() && v != "null" && v != "undefined";
      });
  if (!valid_ids) {
    return answer(200, {{"success", false},
                        {"errors", json::array({"At least one valid id should be specified"})}});
  }

  // Queued writes take effect after write_delay (reference §3.5); reads see applied state.
  const auto queue_write = [this](std::function<void()> apply) {
    if (write_delay_.count() == 0) {
      apply();
    } else {
      pending_.push_back({clock_->now() + write_delay_, std::move(apply)});
    }
  };
  const bool lost_answer = injected && injected->drop && injected->apply;
  http::response res;
  if (endpoint == "export-one") {
    if (!has(key->permissions, "export")) {
      return error(403, "No permission to export customer");
    }
    const customer* c = find(ids);
    if (c == nullptr) {
      return answer(404, {{"success", false},
                          {"errors", {{"_global", json::array({"Customer does not exist"})}}}});
    }
    res = answer(
        200,
        {{"success", true}, {"ids", c->ids}, {"properties", c->properties}, {"events", c->events}});
  } else if (endpoint == "anonymize") {
    if (!has(key->permissions, "anonymize")) {
      return error(403, "No permission to anonymize customer");
    }
    if (find(ids) == nullptr) {
      return error(404, "Customer does not exist");
    }
    const std::string cookie = fmt::format("anonymous-{}", next_cookie_++);
    queue_write([this, ids, cookie] {
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
  } else {  // track
    const auto type = body.value("event_type", std::string());
    if (type.empty()) {
      return answer(400, {{"success", false}, {"errors", json::array({"event_type is required"})}});
    }
    // A private key needs Events > "consent" for consent events (reference "Consent"); a public
    // token's event list names consent like any other type.
    const bool allowed = token != nullptr
                             ? has(token->events, type)
                             : has(key->permissions, type == "consent" ? "consent" : "track");
    if (!allowed) {
      return answer(200,
                    {{"success", false},
                     {"errors", json::array({"Not authorized to add event of specified type"})}});
    }
    const auto e = normalized_event({{"type", type},
                                     {"timestamp", body.value("timestamp", json())},
                                     {"properties", body.value("properties", json())}},
                                    clock_->now());
    queue_write([this, ids, e] {
      if (customer* c = find(ids)) {
        c->events.push_back(e);
      } else {
        // Tracking an unknown ID creates a customer holding it (reference §4.1).
        add_customer({ids, json::object(), json::array({e})});
      }
    });
    res = answer(200, {{"errors", json::array()}, {"success", true}});
  }
  if (lost_answer) {
    return http::response{0, "", "", {}};
  }
  return res;
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
  const auto body = json::parse(req.body, nullptr, false);
  if (body.is_discarded()) {
    return http::problem(400, "body is not JSON");
  }
  const std::lock_guard lock(mutex_);
  if (path == "/_sim/faults" && req.method == "POST") {
    for (const auto& f : body.is_array() ? body : json::array({body})) {
      fault x;
      x.endpoint = f.value("endpoint", "*");
      x.status = f.value("status", 0u);
      x.body = f.value("body", std::string());
      x.retry_after = f.value("retry_after", std::string());
      x.delay = std::chrono::milliseconds(f.value("delay_ms", 0));
      x.drop = f.value("drop", false);
      x.apply = f.value("apply", false);
      const auto count = f.value("count", 1);
      for (int i = 0; i < count; ++i) {
        faults_.push_back(x);
      }
    }
    return answer(200, {{"faults", faults_.size()}});
  }
  if (path == "/_sim/settings" && req.method == "POST") {
    latency_ = std::chrono::milliseconds(body.value("latency_ms", latency_.count()));
    write_delay_ = std::chrono::milliseconds(body.value("write_delay_ms", write_delay_.count()));
    rate_limit_ = body.value("rate_limit_per_second", rate_limit_);
    return answer(200, {{"ok", true}});
  }
  if (path == "/_sim/customers" && req.method == "POST") {
    add_customer({body.at("ids"), body.value("properties", json::object()),
                  normalized_events(body.value("events", json::array()), clock_->now())});
    return answer(200, {{"customers", customers_.size()}});
  }
  return http::problem(404, "no such simulator control endpoint");
}

}  // namespace dsr::sim
