#pragma once
// The Bloomreach Engagement (Exponea) API as the daemon uses it (docs/contract.md §5): export-one,
// track an event, anonymize, system/time. Every answer is classified into the contract's classes
// so that callers decide retry, pause or fail from one table (`classify`).

#include "dsr/common/clock.hpp"
#include "dsr/common/metrics_sink.hpp"
#include "dsr/credentials/credentials.hpp"
#include "dsr/exponea/answers.hpp"
#include "dsr/exponea/export_scan.hpp"
#include "dsr/exponea/limiter.hpp"
#include "dsr/http/client.hpp"

#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace dsr::exponea {

// One export-one call. The answer is streamed to a file under the api's download directory,
// scanned there (export_scan.hpp) and removed; it is never held whole in memory.
struct export_request {
  nlohmann::json ids;
  // When set, the customer is kept there as {"ids","properties","events"} (mode 0600, synced).
  std::filesystem::path save_to;
  // The audit event to look for (export_summary::holds_audit_event).
  audit_match audit;
};

// A consent category as consent/categories lists it: its id, and whether the private API may
// change it (sources.private_api).
struct consent_category {
  std::string id;
  bool private_api = false;
};

struct event {
  std::string type;
  std::int64_t timestamp = 0;  // UNIX seconds
  nlohmann::json properties = nlohmann::json::object();
};

// Runs when a side-effecting call's turn has come, just before the call is sent: a flow journals
// the step `started` there, so that a job stopped while its call waited for the limiter or for a
// batch leaves no `started` behind. false: the call is not sent (it ends with not_sent()).
using before_send = std::function<boost::asio::awaitable<bool>()>;

// The answer of a call that its before_send held back.
call_error not_sent();

class api {
 public:
  virtual ~api() = default;
  // A summary of the customer (and its export in `save_to`); nullopt when it does not exist. An
  // answer larger than max_export_bytes, or not shaped as documented, is a `failed` call_error.
  virtual boost::asio::awaitable<outcome<std::optional<export_summary>>> export_one(
      export_request r) = 0;
  // Tracks an event: with the public API token (auth::token, the audit event) or the private key
  // (auth::basic, consent events). Never call it for a customer that may not exist: Exponea
  // creates one holding the ids. With api_options::bulk it may go out as one command of a batch;
  // its answer is that command's own.
  virtual boost::asio::awaitable<outcome<void>> track(nlohmann::json ids, event e, auth a,
                                                      before_send go = {}) = 0;
  // Starts anonymization (queued by Exponea). false when the customer does not exist (a single
  // call's 404; anonymize_bulk does not say, and answers true).
  virtual boost::asio::awaitable<outcome<bool>> anonymize(nlohmann::json ids,
                                                          before_send go = {}) = 0;
  // GET system/time with the given credentials: proves base URL, project token and credentials.
  virtual boost::asio::awaitable<outcome<void>> system_time(auth a) = 0;
  // GET consent/categories (Basic): the project's consent categories.
  virtual boost::asio::awaitable<outcome<std::vector<consent_category>>> consent_categories() = 0;
};

struct api_options {
  // Where export-one answers are written while they are scanned: a directory private to the
  // daemon (created 0700 when missing; an existing one is used as it is, never changed).
  std::filesystem::path download_dir;
  std::uint64_t max_export_bytes = 1073741824;
  // Shared by every api of the process (null: calls are not spaced). A 429 slows it down.
  std::shared_ptr<limiter> spacing;
  // The turn this api's calls take in the limiter: jobs are background, preview/isTest/check
  // interactive.
  priority turn = priority::background;
  // store_key (32 bytes): saved exports, and the download while it is scanned, are sealed with it
  // (sealed_file.hpp). Empty: in the clear.
  std::string export_key;
  // Counts each call, its status and duration, and the limiter's waits. Null: not counted.
  metrics_sink* metrics = nullptr;
  // Calls that wait for a turn at the same time share it: when the turn comes, the tracking
  // calls waiting (per auth) go as one `batch` of up to 50 commands and the anonymize calls as
  // one `anonymize_bulk` of up to 1,000 customers (one call each for the limiter); a lone call
  // goes as it is. A batch's commands are answered one by one; a whole-request 4xx that is not a
  // credential's is retried as one call per job. Off: every call on its own.
  bool bulk = false;
};

// The real API over an HTTP client. Credentials are read from `credentials` at each call (so a
// reload takes effect at once). All references must outlive the api.
std::unique_ptr<api> make_api(std::unique_ptr<http::client> client,
                              const credential_store& credentials, std::shared_ptr<clock> clock,
                              api_options options = {});

}  // namespace dsr::exponea
