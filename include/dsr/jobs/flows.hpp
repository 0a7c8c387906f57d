#pragma once
// The delete, opt-out and copy flows of docs/contract.md §5, as plain code over seams: the Exponea
// API, a journal of steps (written under the job's lease), the clock and a sleeper. No socket, no
// disk: tests run them over fakes, including resumption from every journaled step.
//
// Journal rules that make every step safe to repeat after a crash:
//  - the audit event is tracked only on a customer that exists, and for delete before anonymize;
//    it is not tracked again when the export already holds one with this request_id, and after
//    a `track started` without `done` the export is polled for up to track_settle first (Exponea
//    queues writes, so the interrupted call may still take effect);
//  - after `anonymize started`, "customer not found" means Completed, never UserNotFound;
//  - after anonymize, export-one must stop resolving the ID (polled with backoff up to
//    verify_timeout; the customer is anonymized again while it is still there);
//  - an opt-out tracks its audit event first, then one consent `reject` per category, each
//    journaled `started <timestamp>` before its call and `done` after it; after a `started`
//    without `done` the export is polled (up to track_settle) for a consent event with that
//    category, action and timestamp before the same event is tracked again, so none lands twice;
//    nothing is anonymized;
//  - a shutdown stops a flow between two steps (`stopped`): its journal says where to resume.

#include "dsr/common/clock.hpp"
#include "dsr/common/error.hpp"
#include "dsr/exponea/client.hpp"
#include "dsr/jobs/job.hpp"

#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dsr {

// Where a flow journals its steps. Fails (errc::lease_lost, store errors) when the step could not
// be recorded; the flow then stops without calling Exponea further.
class journal {
 public:
  virtual ~journal() = default;
  virtual boost::asio::awaitable<result<void>> record(step_name step, std::string result) = 0;
  // Just before a call that changes Exponea (tracking an event, anonymizing): fails when the job's
  // lease cannot be renewed with enough time left for the call to end under it (errc::lease_lost,
  // store errors). The flow then stops without making the call, as when a line cannot be written.
  virtual boost::asio::awaitable<result<void>> before_call() { co_return result<void>{}; }
};

// Time as the flows see it: `now` and a sleep that tests replace.
class flow_clock {
 public:
  virtual ~flow_clock() = default;
  virtual time_point now() const = 0;
  virtual boost::asio::awaitable<void> sleep(std::chrono::milliseconds d) = 0;
  // A graceful shutdown began: the flow stops before its next step (sleep returns early).
  virtual bool stopping() const { return false; }
};

struct flow_settings {
  std::string customer_id_type = "registered";
  // [consent] categories: what an opt-out revokes. Empty: an opt-out fails before any call.
  std::vector<std::string> consent_categories;
  bool lowercase_ids = true;
  std::string event_type = "privacy_request";
  std::string source = "MineOS";
  std::chrono::milliseconds verify_timeout{600000};
  std::chrono::milliseconds verify_first_poll{1000};  // doubles per poll, capped below
  std::chrono::milliseconds verify_max_poll{30000};
  // After a crash between `track started` and `track done`, how long to look for the event in
  // the export (Exponea queues writes) before tracking it again.
  std::chrono::milliseconds track_settle{30000};
};

// How a run ended.
struct flow_outcome {
  enum class kind {
    completed,       // MineOS status Completed
    user_not_found,  // MineOS status UserNotFound
    failed,          // MineOS status Failed, `message` says why
    retry,           // a transient failure: try again later (`retry_after` if Exponea said)
    rejected,        // a credential or permission was refused: `value` names it
    interrupted,     // the journal could not be written (lease lost, store down): stop quietly
    stopped,         // shutdown: the job stops between steps and resumes from its journal later
  };
  kind result = kind::failed;
  std::string message;  // no personal data
  std::string value;    // for `rejected`
  std::optional<std::chrono::milliseconds> retry_after;
  exponea::retry_reason reason = exponea::retry_reason::other;  // for `retry`
};

// The customer_ids object for this job's subject.
nlohmann::json customer_ids(const job& j, const flow_settings& s);

// The audit event's properties: request_id, source, type (the operation: delete, opt_out, copy),
// trace_id, integration_id. No e-mail, no name.
nlohmann::json event_properties(const job& j, const flow_settings& s);

// The message of an opt-out that cannot run: no consent category is configured.
inline constexpr std::string_view no_consent_categories =
    "no consent categories configured for opt-out requests; set [consent] categories";

boost::asio::awaitable<flow_outcome> run_delete(const job& j, exponea::api& api, journal& log,
                                                flow_clock& time, const flow_settings& s);

// Revokes consent: export-one, the audit event, one consent reject per category. Never
// anonymizes.
boost::asio::awaitable<flow_outcome> run_opt_out(const job& j, exponea::api& api, journal& log,
                                                 flow_clock& time, const flow_settings& s);

// A completed copy leaves the customer in `export_file` as {"ids","properties","events"}.
boost::asio::awaitable<flow_outcome> run_copy(const job& j, exponea::api& api, journal& log,
                                              flow_clock& time, const flow_settings& s,
                                              std::filesystem::path export_file);

}  // namespace dsr
