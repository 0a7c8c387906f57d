#pragma once
// "Test your integration" (contract §2 `check`, §4 `isTest`) and preview (§4): read-only probes
// of the configuration against Exponea and MineOS. Nothing here writes to either.

#include "dsr/config/config.hpp"
#include "dsr/exponea/client.hpp"
#include "dsr/http/client.hpp"

#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace dsr::exponea {

struct check {
  enum class status { ok, failed, skipped };
  std::string name;  // what is checked, naming the config value it proves
  status result = status::skipped;
  std::string detail;  // when failed: what is wrong and what to do; never a secret
};

std::string_view to_string(check::status s);

// Runs every check that needs no write:
//  1. [exponea] base_url reachable with a valid TLS certificate;
//  2. exponea_api_key + exponea_api_secret + exponea_project_token (system/time, Basic);
//  3. exponea_api_token (system/time, Token);
//  4. GDPR > Export customer (export-one of an ID that cannot exist: 404 = allowed);
//  5. [mineos] status_url reachable (connect and TLS only) when set;
// and reports SKIPPED, with the reason, for the anonymize permission, the event-type permission
// of the API token and mineos_api_key, which cannot be checked without writing.
// `mineos` may be null (no status_url).
boost::asio::awaitable<std::vector<check>> run_checks(api& exponea, http::client* mineos,
                                                      const config& cfg);

bool all_passed(const std::vector<check>& checks);

// {"test": true, "ok": bool, "checks": [{"name","status","detail"}]}
nlohmann::json checks_json(const std::vector<check>& checks);

// One line per check: "OK      name" / "FAILED  name: detail" / "SKIPPED name: reason".
std::string checks_text(const std::vector<check>& checks);

// The preview answer of contract §4 for an export: {"records": [{"name": "Bloomreach customer",
// "properties": [properties count, events count, last event time]}]}, or {"records": []} when the
// customer does not exist. Values are strings.
nlohmann::json preview_records(const std::optional<export_summary>& e);

}  // namespace dsr::exponea

#include "dsr/http/message.hpp"

#include <boost/asio/any_io_executor.hpp>

namespace dsr::exponea {

// Answers an isTest webhook: runs the checks on `ex`, bounded by `limit`; 200 with checks_json
// when nothing failed, else 503. References must outlive the call.
void answer_is_test(boost::asio::any_io_executor ex, api& exponea, http::client* mineos,
                    const config& cfg, std::chrono::milliseconds limit, http::responder done);

// Answers a preview webhook for the customer `ids`: 200 with preview_records, 502 when Exponea
// fails (its text, no personal data), 504 past `limit`.
void answer_preview(boost::asio::any_io_executor ex, api& exponea, nlohmann::json ids,
                    std::chrono::milliseconds limit, http::responder done);

}  // namespace dsr::exponea
