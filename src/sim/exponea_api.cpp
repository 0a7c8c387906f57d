#include "dsr/sim/exponea_sim.hpp"

// The Exponea API's routes: the path and method to an endpoint, injected faults, the rate limit,
// authentication in the order the real API reports problems, and the data API (export-one,
// anonymize, consent categories). Tracking is in tracking_api.cpp.
//
// "reference §N" below is docs/reference/exponea-api.md §N.

#include "json_shapes.hpp"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <string>

namespace dsr::sim {

using json = nlohmann::json;
using detail::answer;
using detail::error;
using detail::failure;
using detail::field;
using detail::has;
using detail::invalid_json;
using detail::parse_body;
using detail::seconds;
using detail::valid_ids;

namespace {

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

}  // namespace

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
  } else if (api_name == "data" && rest == "customers/anonymize_bulk" && req.method == "POST") {
    endpoint = "anonymize_bulk";
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
  } else if (endpoint == "anonymize_bulk") {
    res = anonymize_bulk(who, body);
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
      anonymize_later(ids);
      res = answer(200, {{"success", true}});
    }
  }
  if (lost_answer) {
    return http::response{0, "", "", {}};
  }
  return res;
}

void exponea_simulator::anonymize_later(const json& ids) {
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
}

// Reference §3.2: up to 1,000 customers, each {"customer_ids": {...}} (or {"internal_id": ...},
// which no seeded customer has here); the answer names the request (`bulk_id`), not an outcome
// per customer: an unknown customer is skipped without a word, as the write is queued.
http::response exponea_simulator::anonymize_bulk(const caller& who, const json& body) {
  constexpr std::size_t max_customers = 1000;
  if (!has(who.key->permissions, "anonymize")) {
    return error(403, "No permission to anonymize customer");
  }
  const auto& customers = field(body, "customers");
  if (!customers.is_array() || customers.empty()) {
    return failure(400, "customers must be a non-empty list");
  }
  if (customers.size() > max_customers) {
    return failure(400, fmt::format("Too many customers: a request holds at most {}, this one {}",
                                    max_customers, customers.size()));
  }
  for (const auto& c : customers) {
    const bool by_internal = c.is_object() && c.contains("internal_id") &&
                             c["internal_id"].is_string() &&
                             !c["internal_id"].get_ref<const std::string&>().empty();
    if (!by_internal && !(c.is_object() && valid_ids(field(c, "customer_ids")))) {
      return failure(400, "At least one valid id should be specified for every customer");
    }
  }
  for (const auto& c : customers) {
    if (c.contains("customer_ids")) {
      anonymize_later(c["customer_ids"]);
    }
  }
  return answer(200, {{"success", true}, {"bulk_id", fmt::format("bulk-{:08x}", next_bulk_++)}});
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

}  // namespace dsr::sim
