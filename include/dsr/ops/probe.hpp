#pragma once
// "Test your integration" (docs/contract.md §2 `check`, §4 `isTest`) and preview (§4): read-only
// probes of the configuration against Exponea and MineOS. Nothing here writes to either.
// It uses both peers' clients (exponea::api, mineos::send_test_report), so it sits in ops, above
// both; its names stay in dsr::exponea, the API it mostly probes.

#include "dsr/config/config.hpp"
#include "dsr/credentials/credentials.hpp"
#include "dsr/exponea/client.hpp"
#include "dsr/http/client.hpp"
#include "dsr/mineos/webhook.hpp"

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

// What the checks may use besides Exponea.
struct check_context {
  http::client* mineos = nullptr;  // based at [mineos] api_base_url; null when it is empty
  const credential_store* credentials = nullptr;  // for the test status call
  // An isTest delivery: its request id and integration id let the test status call prove
  // mineos_api_key. nullopt for `dsr-connector check`, which has no ticket to test against.
  std::optional<mineos::test_call> test;
};

// Runs every check that needs no write to Exponea or real change in MineOS:
//  1. [exponea] base_url reachable with a valid TLS certificate;
//  2. exponea_api_key + exponea_api_secret + exponea_project_token (system/time, Basic);
//  3. exponea_api_token (system/time, Token);
//  4. GDPR > Export customer (export-one of an ID that cannot exist: 404 = allowed);
//  5. [consent] categories: each configured id is in consent/categories and accepts the private
//     API as a source (SKIPPED, saying what it means for opt-outs, when none is configured);
//  6. [mineos] api_base_url reachable over a verified connection (any HTTP answer) when set;
//  7. mineos_api_key: with an isTest delivery's ticket, one `test: true` status call (MineOS does
//     not apply it): ok on 200, failed naming mineos_api_key on 401 or integrationId on 404;
// and reports SKIPPED, with the reason, for what cannot be checked without writing (the
// anonymize permission, the event-type permission of the API token, mineos_api_key without a
// ticket).
boost::asio::awaitable<std::vector<check>> run_checks(api& exponea, const config& cfg,
                                                      check_context ctx);

bool all_passed(const std::vector<check>& checks);

// {"test": true, "ok": bool, "checks": [{"name","status","detail"}]}
nlohmann::json checks_json(const std::vector<check>& checks);

// One line per check: "OK      name" / "FAILED  name: detail" / "SKIPPED name: reason".
std::string checks_text(const std::vector<check>& checks);

// The preview answer of docs/contract.md §4 for an export: {"records": [{"name": "Bloomreach
// customer", "properties": [properties count, events count, last event time]}]}, or {"records": []}
// when the customer does not exist. Values are strings.
nlohmann::json preview_records(const std::optional<export_summary>& e);

}  // namespace dsr::exponea

#include "dsr/http/message.hpp"

#include <boost/asio/any_io_executor.hpp>

namespace dsr::exponea {

// Answers an isTest webhook: runs the checks on `ex`, bounded by `limit`; 200 with checks_json
// when nothing failed, else 503. References (in `ctx` too) must outlive the call.
void answer_is_test(boost::asio::any_io_executor ex, api& exponea, check_context ctx,
                    const config& cfg, std::chrono::milliseconds limit, http::responder done);

// Answers a preview webhook for the customer `ids`: 200 with preview_records, 502 when Exponea
// fails (its text, no personal data), 504 past `limit`.
void answer_preview(boost::asio::any_io_executor ex, api& exponea, nlohmann::json ids,
                    std::chrono::milliseconds limit, http::responder done);

}  // namespace dsr::exponea
