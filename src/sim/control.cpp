#include "dsr/sim/exponea_sim.hpp"

// The test-only control endpoints under /_sim/: state, the call logs, customers added, settings
// changed, and fault injection (faults queued per endpoint and taken by the next matching call).

#include "json_shapes.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <limits>

namespace dsr::sim {

using json = nlohmann::json;
using detail::answer;
using detail::customer_problem;
using detail::field;
using detail::max_depth;
using detail::normalized_events;
using detail::or_empty_object;
using detail::parse_body;

namespace {

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

}  // namespace

std::optional<exponea_simulator::fault> exponea_simulator::take_fault(const std::string& ep) {
  for (auto it = faults_.begin(); it != faults_.end(); ++it) {
    if ((it->endpoint == "*" || it->endpoint == ep) && it->request_id.empty()) {
      fault f = *it;
      faults_.erase(it);
      return f;
    }
  }
  return std::nullopt;
}

std::optional<exponea_simulator::fault> exponea_simulator::take_event_fault(
    const json& properties) {
  if (!properties.is_object()) {
    return std::nullopt;
  }
  const auto id = properties.find("request_id");
  if (id == properties.end() || !id->is_string()) {
    return std::nullopt;
  }
  for (auto it = faults_.begin(); it != faults_.end(); ++it) {
    if (!it->request_id.empty() && it->request_id == id->get_ref<const std::string&>()) {
      fault f = *it;
      faults_.erase(it);
      return f;
    }
  }
  return std::nullopt;
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
  static const std::vector<std::string> endpoints{
      "export-one", "anonymize",   "anonymize_bulk",     "track",  "customers",
      "batch",      "system/time", "consent/categories", "mineos", "*"};
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
    if (!read_field(f, "request_id", x.request_id)) {
      return bad("'request_id' must be a string");
    }
    if (!x.request_id.empty() && (x.endpoint != "track" || x.drop || delay_ms != 0)) {
      return bad(
          "a fault with 'request_id' refuses one event: its endpoint is \"track\" (alone "
          "or in a batch) and it has 'status' and 'body', no 'drop' or 'delay_ms'");
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
                         "\"rate_limit_per_second\": 0, \"mineos_rate_limit_per_minute\": 0}");
  }
  std::int64_t latency = latency_.count();
  std::int64_t write_delay = write_delay_.count();
  std::int64_t rate = rate_limit_;
  std::int64_t mineos_rate = mineos_rate_limit_;
  if (!read_field(body, "latency_ms", 0, max_ms, latency) ||
      !read_field(body, "write_delay_ms", 0, max_ms, write_delay)) {
    return http::problem(
        400, fmt::format("'latency_ms' and 'write_delay_ms' must be whole numbers from 0 to {}",
                         max_ms));
  }
  if (!read_field(body, "rate_limit_per_second", 0, std::numeric_limits<unsigned>::max(), rate)) {
    return http::problem(400, "'rate_limit_per_second' must be a whole number, 0 for no limit");
  }
  if (!read_field(body, "mineos_rate_limit_per_minute", 0, std::numeric_limits<unsigned>::max(),
                  mineos_rate)) {
    return http::problem(400,
                         "'mineos_rate_limit_per_minute' must be a whole number, 0 for no limit");
  }
  latency_ = std::chrono::milliseconds(latency);
  write_delay_ = std::chrono::milliseconds(write_delay);
  rate_limit_ = static_cast<unsigned>(rate);
  mineos_rate_limit_ = static_cast<unsigned>(mineos_rate);
  return answer(200, {{"ok", true}});
}

}  // namespace dsr::sim
