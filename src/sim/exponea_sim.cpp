#include "dsr/sim/exponea_sim.hpp"

// The simulator's state and its front door: the seed, the customers and their index, queued
// writes, the rate limit and the call log, and handle(), which sends a request to the Exponea API
// (exponea_api.cpp, tracking_api.cpp), MineOS's status API (mineos_api.cpp) or the /_sim/ control
// endpoints (control.cpp).
//
// "reference §N" below is docs/reference/exponea-api.md §N.

#include "json_shapes.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <utility>

namespace dsr::sim {

using json = nlohmann::json;
using detail::customer_problem;
using detail::field;
using detail::mineos_route;
using detail::normalized_events;
using detail::or_empty_object;
using detail::unix_seconds;

namespace {

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

std::string id_key(std::string_view type, const json& value) {
  return fmt::format("{}\x1f{}", type, value.dump());
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
      mineos_rate_limit_ = m.value("rate_limit_per_minute", 0u);
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
  return over_limit(recent_, rate_limit_, std::chrono::seconds(1), clock_->now());
}

bool exponea_simulator::over_limit(std::deque<time_point>& recent, unsigned limit,
                                   std::chrono::seconds width, time_point now) {
  if (limit == 0) {
    return false;
  }
  while (!recent.empty() && recent.front() <= now - width) {
    recent.pop_front();
  }
  if (recent.size() >= limit) {
    return true;
  }
  recent.push_back(now);
  return false;
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

void exponea_simulator::queue_write(std::function<void()> apply) {
  // Queued writes take effect after write_delay (reference §3.5); reads see applied state.
  if (write_delay_.count() == 0) {
    apply();
  } else {
    pending_.push_back({clock_->now() + write_delay_, std::move(apply)});
  }
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

}  // namespace dsr::sim
