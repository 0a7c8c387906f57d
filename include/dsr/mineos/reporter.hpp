#pragma once
// Reports finished jobs to MineOS (docs/contract.md §6) from the store's outbox, through MineOS's
// published custom-integration status API:
//   POST {api_base_url}/api/ticket/{request.id}/custom-integrations/{integrationId}
//   Authorization: Bearer <mineos_api_key>
//   {"action": "Delete"|"Copy", "status", "message", "data"? | "files"?}
// The body holds only the fields MineOS's schema defines (it refuses others). A completed copy
// carries its export as `data`, streamed from the export file, or, when it is larger than
// inline_data_max_bytes and a public URL is set, as `files` with a signed, expiring link
// (file_links.hpp); that export is kept until the link expires.
//
// Answers: 2xx acknowledges (the job is reported; an inline export is deleted). 429, 408, 5xx,
// timeouts and connection errors are retried with backoff (Retry-After honoured), across
// restarts, until acknowledged. 401 pauses reporting, not jobs: paused() names mineos_api_key,
// one report is let through every pause_probe, and resume() (a reload) ends the pause at once.
// Any other answer (400 with MineOS's error text, 404 unknown ticket or integration) stops that
// report with reportError set; an operator's retry sends it again.
//
// Pace: reports go concurrently (up to max_in_flight awaiting MineOS's answer), each claimed
// when its turn comes, the turns spaced evenly so that no minute holds more than
// max_requests_per_minute of them (an exponea::limiter at that rate, its 8 % margin included);
// with `shared`, the turns are taken from the store's row for MineOS, across all daemons. A 429
// holds every report, on every daemon, for its Retry-After (a second without one). A slow MineOS
// therefore costs in-flight reports, not pace; and a backlog of reports never holds back jobs
// (the reporter has its own pace, apart from Exponea's).

#include "dsr/common/clock.hpp"
#include "dsr/common/metrics_sink.hpp"
#include "dsr/config/config.hpp"
#include "dsr/credentials/credentials.hpp"
#include "dsr/exponea/limiter.hpp"
#include "dsr/http/client.hpp"
#include "dsr/jobs/async_store.hpp"
#include "dsr/jobs/job.hpp"
#include "dsr/mineos/file_links.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace dsr::mineos {

// The status call's path: /api/ticket/{request id}/custom-integrations/{integration id}, each
// segment percent-encoded (ids checked at intake need none; older jobs may).
std::string status_path(std::string_view request_id, std::string_view integration_id);

// The report body for a finished job: {"action", "status", "message"}.
nlohmann::json report_body(const job& j);

// The body of a completed copy's report: report_body(j) with `data` streamed from the export
// `file`. Fails (errc::io_error) when the file cannot be opened.
// `keys`: those the file may be sealed with (store_keys::export_keys); none: in the clear.
result<std::shared_ptr<http::body_source>> report_with_data(const job& j,
                                                            const std::filesystem::path& file,
                                                            std::vector<std::string> keys = {});

// How the daemon takes MineOS's answer to a status call.
enum class report_answer {
  acknowledged,  // 2xx
  transient,     // 408, 429, 5xx, or no answer: retry with backoff
  unauthorized,  // 401: mineos_api_key rejected, reporting pauses
  refused,       // any other 4xx: this report stops (reportError), `retry` sends it again
};
report_answer classify_report_answer(unsigned status);

// "MineOS answered 400: <MineOS's message>": the text of a refusal, cleaned and cut, with the
// `message` of MineOS's error body when it has one.
std::string report_error_text(unsigned status, std::string_view body);

struct reporter_options {
  retry_config retry;
  std::filesystem::path export_dir;
  // store_keys::export_keys(): what exports may be sealed with; none: in the clear.
  std::vector<std::string> export_keys;
  // Exports are kept in the store (PostgreSQL), not in export_dir (kept_exports.hpp).
  bool exports_in_store = false;
  std::chrono::milliseconds poll_interval{std::chrono::seconds(1)};
  // Held while a report is on its way, so that a graceful stop waits for MineOS's answer and its
  // record (http::server::hold): a stop then never causes a report to be sent twice.
  std::function<std::shared_ptr<void>()> hold;
  // Counts each report's result (dsr_reports_total). Null: not counted.
  metrics_sink* metrics = nullptr;
  std::uint64_t inline_data_max_bytes = 4194304;
  // Null: a copy's data always goes inline ([mineos] public_url is empty).
  std::shared_ptr<const file_links> links;
  std::chrono::hours file_link_ttl{72};
  std::uint32_t max_requests_per_minute = 600;
  // Several daemons: the store's shared row for MineOS (app::cluster_member::limit). Empty: this
  // daemon alone spends max_requests_per_minute.
  exponea::shared_limit shared;
  // Reports sent and not yet answered, at most: at 600 a minute, enough for MineOS answering in
  // up to about 6 s without slowing the pace.
  std::size_t max_in_flight = 64;
  // How long a report claimed for sending stays with this daemon (store.hpp claim_reports): more
  // than one call to MineOS can take. A daemon that dies with it leaves it due again after this.
  std::chrono::milliseconds report_claim{std::chrono::minutes(1)};
  // [mineos] integration_id, for jobs stored without one.
  std::string integration_id;
};

class reporter {
 public:
  virtual ~reporter() = default;
  virtual void start() = 0;
  virtual void notify() = 0;  // a job finished: look at the outbox now. Thread-safe.
  virtual void stop() = 0;    // thread-safe
  // Credentials were reloaded: a pause ends at once. Thread-safe.
  virtual void resume() = 0;
  // Why reporting is paused ("MineOS rejected mineos_api_key (401)"), or nullopt. Thread-safe.
  virtual std::optional<std::string> paused() const = 0;
};

// `client` is based at [mineos] api_base_url.
std::unique_ptr<reporter> make_reporter(boost::asio::any_io_executor executor, async_store& store,
                                        std::unique_ptr<http::client> client,
                                        const credential_store& credentials,
                                        std::shared_ptr<clock> clock, reporter_options options);

// The status call of an isTest delivery (docs/contract.md §6): {"action", "status": "Completed",
// "message": "dsr-connector test", "test": true}, which MineOS does not apply. The HTTP status of
// MineOS's answer, or the transport failure.
boost::asio::awaitable<result<http::client_response>> send_test_report(
    http::client& client, const credential_store& credentials, std::string request_id,
    std::string integration_id, mineos_action action);

}  // namespace dsr::mineos
