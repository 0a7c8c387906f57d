#pragma once
// exponea-sim: a stand-in for the Bloomreach Engagement API that follows the reference
// (docs/reference/exponea-api.md) faithfully, for tests, demos and staging. It is not shaped to
// make the daemon's life easy: it answers auth errors with the documented statuses and bodies, 404s
// an unknown customer, says success:false on HTTP 200 for a missing event permission, creates a
// customer when an unknown ID is tracked, queues writes (they take effect after write_delay), and
// answers 429 over its rate limit, dropping the request's data. It lists the project's consent
// categories and derives each customer's consent from its `consent` events, counting an invalid one
// as a revocation, as Bloomreach does. It takes batches of tracking commands (customers/events,
// customers, system/time; at most 50) and customer property updates, each command checked like the
// single call and answered in its own result.
//
// No body makes it throw: a body that is not JSON, not an object, nested deeper than 512 levels,
// or with a field of the wrong type is answered with the API's JSON error (400 `Invalid JSON` or
// a 400 `errors` list; 200 success:false for invalid customer IDs), and it keeps serving.
//
// State is seeded from JSON (see config/exponea-sim.example.json). Test-only control endpoints live
// under /_sim/ (state, call log, injected faults). It also plays MineOS's status API as MineOS
// publishes it (docs/reference/mineos-openapi.json): POST
// /api/ticket/{ticketId}/custom-integrations/{integrationId} with a Bearer key, the body checked
// against CustomIntegrationActionStatusRequest. It records every call (/_sim/mineos) and fails on
// request (faults with "endpoint": "mineos").
//
// Thread safety: handle() may be called from any thread; state is guarded by one mutex.

#include "dsr/common/clock.hpp"
#include "dsr/http/message.hpp"

#include <nlohmann/json.hpp>

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace dsr::sim {

// Runs `fn` after `delay` (latency, hung calls). The binary uses an asio timer; unit tests run
// it at once.
using scheduler = std::function<void(std::chrono::milliseconds delay, std::function<void()> fn)>;

class exponea_simulator final : public http::handler {
 public:
  // Throws std::invalid_argument when the seed is not of the documented shape.
  exponea_simulator(const nlohmann::json& seed, std::shared_ptr<clock> clock, scheduler later);

  void handle(http::request req, http::responder done) override;

  // The customers as they are now (queued writes that are due applied), each with the consent
  // its `consent` events give it: {"consents": {category: {"action", "valid_from",
  // "valid_until"}}}.
  nlohmann::json state();
  // Every API call so far: {"method","endpoint","auth","status","body"}.
  nlohmann::json calls();
  // Every call to the fake MineOS status API, accepted or not, in arrival order:
  // {"ticket_id","integration_id","authorization","body","status","at_ms"}; `body` is the raw
  // request body, `status` what MineOS decided (0: a fault dropped the call unprocessed).
  nlohmann::json reports();

 private:
  struct customer {
    nlohmann::json ids;  // {"registered": "a@b", "cookie": ["c1", ...]}
    nlohmann::json properties;
    nlohmann::json events;
  };
  struct private_key {
    std::string key, secret;
    // "export" (GDPR > Export customer), "anonymize" (GDPR > Anonymize customer), "*" (all).
    // Two Events > Set shorthands from before per-type grants: "track" (every event type but
    // consent) and "consent" (the consent type).
    std::vector<std::string> permissions;
    std::vector<std::string> events;      // Events > Set per event type; "*" for all
    std::vector<std::string> properties;  // Customer properties > Set per property; "*" for all
  };
  struct public_token {
    std::string token;
    std::vector<std::string> events;      // event types it may set; "*" for all
    std::vector<std::string> properties;  // customer properties it may set; "*" for all
  };
  // Who made an API call; once authenticated exactly one of them is set.
  struct caller {
    const private_key* key = nullptr;
    const public_token* token = nullptr;
  };
  // Why a tracking command was not taken: `status` 400 (malformed) or 200 (refused with
  // success:false, as the API answers invalid IDs and missing permissions).
  struct refusal {
    unsigned status = 400;
    std::string error;
  };
  struct pending_write {
    time_point due;
    std::function<void()> apply;
  };
  struct fault {
    // "export-one", "anonymize", "track", "customers", "batch", "system/time",
    // "consent/categories", "mineos" or "*"
    std::string endpoint;
    unsigned status = 0;  // answer with this status (0: no status override)
    std::string body;
    std::string retry_after;
    std::chrono::milliseconds delay{0};  // answer this much later (a hung call)
    bool drop = false;                   // close the connection without answering
    bool apply = false;                  // with drop: the write takes effect (a lost answer)
    // Set (endpoint "track"): refuses only the event whose properties.request_id is this one,
    // alone or inside a batch, with `body` as Exponea's error text and `status` (200 when 0) for
    // a single call; the rest of its batch is applied.
    std::string request_id;
  };

  http::response api(const http::request& req, std::string& endpoint, std::string& auth,
                     std::optional<fault>& injected);
  // The Authorization header checked against the seed: nullopt with `who` set, or the error.
  std::optional<http::response> authenticate(const http::request& req, std::string& auth,
                                             caller& who);
  // One add-event or update-properties command (a single call's body or a batch command's
  // `data`): checked, and its write queued; or why not.
  std::optional<refusal> add_event(const caller& who, const nlohmann::json& data);
  std::optional<refusal> update_properties(const caller& who, const nlohmann::json& data);
  http::response batch(const caller& who, const nlohmann::json& body);
  http::response anonymize_bulk(const caller& who, const nlohmann::json& body);
  // Queues the anonymization of the customer holding `ids` (nothing if none does).
  void anonymize_later(const nlohmann::json& ids);
  static bool may_add_event(const caller& who, const std::string& type);
  static bool may_set_properties(const caller& who, const nlohmann::json& properties);
  // Applies `apply` now, or write_delay later (reads see only applied writes).
  void queue_write(std::function<void()> apply);
  http::response control(const http::request& req);
  http::response add_faults(const nlohmann::json& body);
  http::response change_settings(const nlohmann::json& body);
  http::response mineos(const http::request& req, const std::string& ticket_id,
                        const std::string& integration_id, std::chrono::milliseconds& delay);
  void apply_due();
  customer* find(const nlohmann::json& ids);
  void add_customer(customer c);
  void index_ids(std::size_t i);
  bool rate_limited();
  // A rate limit over a sliding window of arrival times: true (refused, not counted) when
  // `recent` already holds `limit` calls within `width` before `now`; 0 = no limit.
  static bool over_limit(std::deque<time_point>& recent, unsigned limit, std::chrono::seconds width,
                         time_point now);
  std::optional<fault> take_fault(const std::string& endpoint);
  // The fault queued for the event of `request_id` (fault::request_id), taken.
  std::optional<fault> take_event_fault(const nlohmann::json& properties);
  void log_call(const http::request& req, const std::string& endpoint, const std::string& auth,
                unsigned status);

  std::shared_ptr<clock> clock_;
  scheduler later_;
  std::mutex mutex_;
  std::string project_token_;
  std::vector<private_key> private_keys_;
  std::vector<public_token> public_tokens_;
  std::vector<std::string> personal_properties_;
  std::vector<std::string> personal_event_properties_;
  nlohmann::json consent_categories_ = nlohmann::json::array();
  std::optional<std::string> mineos_api_key_;     // unset: any Bearer token is accepted
  std::vector<std::string> mineos_integrations_;  // empty: any integration id is accepted
  unsigned mineos_rate_limit_ = 0;  // status calls per 60-second window; 0 = unlimited
  std::deque<time_point> mineos_recent_;
  std::vector<customer> customers_;
  // "type\x1f<JSON value>" -> the customers that have held that ID (some may no longer: find
  // checks). Without it every call scanned all customers: with 10,000 the simulator, not the
  // daemon, bounded the fulfilment benchmark on a loaded machine.
  std::unordered_map<std::string, std::vector<std::size_t>> by_id_;
  std::chrono::milliseconds latency_{0};
  std::chrono::milliseconds write_delay_{0};
  unsigned rate_limit_ = 0;  // calls per 1-second window; 0 = unlimited
  std::deque<time_point> recent_;
  std::vector<pending_write> pending_;
  std::deque<fault> faults_;
  nlohmann::json calls_ = nlohmann::json::array();
  nlohmann::json reports_ = nlohmann::json::array();
  unsigned next_cookie_ = 1;
  std::uint64_t next_bulk_ = 1;
};

}  // namespace dsr::sim
