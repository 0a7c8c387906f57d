#include "dsr/sim/exponea_sim.hpp"

// MineOS's status API as MineOS publishes it (mineos-openapi.json): POST
// /api/ticket/{ticketId}/custom-integrations/{integrationId} with a Bearer key, the body checked
// against CustomIntegrationActionStatusRequest, every call recorded (/_sim/mineos).
//
// mineos-openapi.json is docs/reference/mineos-openapi.json.

#include "json_shapes.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>

namespace dsr::sim {

using json = nlohmann::json;
using detail::answer;

namespace {

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

http::response mineos_error(unsigned status, std::string_view code, std::string_view message) {
  return answer(status, {{"internalErrorCode", code}, {"message", message}});
}

}  // namespace

namespace detail {

// {ticketId, integrationId} of /api/ticket/{ticketId}/custom-integrations/{integrationId}.
std::optional<std::pair<std::string, std::string>> mineos_route(std::string_view path) {
  const auto seg = http::split_path(path);
  if (seg.size() != 5 || seg[0] != "api" || seg[1] != "ticket" || seg[2].empty() ||
      seg[3] != "custom-integrations" || seg[4].empty()) {
    return std::nullopt;
  }
  return std::pair{seg[2], seg[4]};
}

}  // namespace detail

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
  } else if (over_limit(mineos_recent_, mineos_rate_limit_, std::chrono::seconds(60), arrived)) {
    // MineOS's limit, about 800 write calls a minute per workspace: 429 without Retry-After.
    res = mineos_error(429, "TooManyRequests", "Too many requests; try again later");
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

}  // namespace dsr::sim
