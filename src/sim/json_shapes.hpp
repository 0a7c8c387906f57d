#pragma once
// The JSON the simulated APIs read and answer, shared by the simulator's routes: answers in the
// API's shapes, request bodies parsed with a bound on their depth, customer IDs as the API takes
// them, a customer as the seed and /_sim/customers give it. Pure functions; internal to the
// simulator. "reference §N" is docs/reference/exponea-api.md §N.

#include "dsr/common/clock.hpp"
#include "dsr/http/message.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dsr::sim::detail {

// Bodies recorded as sent may hold any bytes: answered with invalid UTF-8 replaced, never thrown.
http::response answer(unsigned status, const nlohmann::json& body);
// {"success": false, "error": text}: the API's answer to auth and permission problems.
http::response error(unsigned status, std::string_view text);
// 400 {"success": false, "message": "Invalid JSON"}.
http::response invalid_json();
// The single tracking calls' failure shape: {"success":false,"errors":[...]} (reference §2.3).
http::response failure(unsigned status, std::string_view text);

// Bodies nested deeper than this are refused as Invalid JSON. Parsing and destroying a json value
// are iterative, but copying, comparing and dumping one recurse: a 2 MB body of '[' stored as an
// event's properties would overflow the stack when exported. The real API's bound is not
// documented; its JSON parser has one.
inline constexpr int max_depth = 512;
// A request body as JSON; discarded when it is not JSON or nests deeper than max_depth.
nlohmann::json parse_body(const std::string& raw);
// The member `key` of `object`, or null when there is none (or `object` is not an object).
const nlohmann::json& field(const nlohmann::json& object, const std::string& key);
// `v`, or {} when it is null.
nlohmann::json or_empty_object(const nlohmann::json& v);

// customer_ids as the API takes them (reference §2.3): an object of at least one ID, every value
// a string holding a letter or digit that is not "null" or "undefined". Non-ASCII bytes count as
// letters: the simulator has no Unicode tables.
bool valid_ids(const nlohmann::json& ids);
// Whether `list` holds `v` or "*".
bool has(const std::vector<std::string>& list, std::string_view v);

// `t` as whole UNIX seconds (a JSON integer), and as seconds with milliseconds.
nlohmann::json unix_seconds(time_point t);
double seconds(time_point t);
// Exponea's own SDK sends "timestamp": null and "properties": null; the API reads them as the
// time of tracking and no properties (reference "Consent"), so neither is ever stored as null:
// `events` with those filled in ([] when `events` is not a list).
nlohmann::json normalized_events(const nlohmann::json& events, time_point now);
// What is wrong with a customer given in the seed or to /_sim/customers, or nullopt. Its events
// are stored as given (only a null timestamp or properties is filled in), so that tests can seed
// oddly shaped exports; the rest must have the shape the simulator relies on.
std::optional<std::string> customer_problem(const nlohmann::json& c);

// {ticketId, integrationId} of /api/ticket/{ticketId}/custom-integrations/{integrationId}
// (mineos_api.cpp).
std::optional<std::pair<std::string, std::string>> mineos_route(std::string_view path);

}  // namespace dsr::sim::detail
