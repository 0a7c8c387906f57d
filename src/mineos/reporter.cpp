#include "dsr/mineos/reporter.hpp"
#include "dsr/ops/metrics.hpp"

#include "dsr/common/log.hpp"
#include "dsr/common/text.hpp"
#include "dsr/jobs/backoff.hpp"
#include "dsr/jobs/exports.hpp"
#include "dsr/jobs/store_call.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <fstream>
#include <random>

namespace dsr::mineos {
namespace {

namespace asio = boost::asio;
inline constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

std::shared_ptr<spdlog::logger> log() {
  static const auto logger = subsystem_logger("mineos");
  return logger;
}

class reporter_impl final : public reporter {
 public:
  reporter_impl(asio::any_io_executor ex, job_queue& queue, std::unique_ptr<http::client> client,
                const credential_store& credentials, std::shared_ptr<clock> clock,
                reporter_options o)
      : strand_(asio::make_strand(ex)),
        queue_(queue),
        client_(std::move(client)),
        credentials_(credentials),
        clock_(std::move(clock)),
        options_(std::move(o)),
        timer_(strand_),
        random_(std::random_device{}()) {}

  void start() override {
    asio::co_spawn(strand_, loop(), [](const std::exception_ptr& e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          log()->error("the MineOS reporter stopped: {}", ex.what());
        }
      }
    });
  }

  void notify() override {
    asio::post(strand_, [this] { timer_.cancel(); });
  }

  void stop() override {
    asio::post(strand_, [this] {
      stopping_ = true;
      timer_.cancel();
    });
  }

 private:
  asio::awaitable<void> loop() {
    while (!stopping_) {
      const auto now = clock_->now();
      // g++ 12: a temporary built inside a co_await expression can be destroyed twice; every
      // argument of a co_await'ed call is a named object moved in.
      auto read_outbox = [now](job_store& s) { return s.due_reports(now, 16); };
      auto due = co_await store_call<result<std::vector<job>>>(queue_, std::move(read_outbox));
      if (!due) {
        log()->error("cannot read the outbox: {}", due.error().detail);
      }
      if (!due || due->empty()) {
        timer_.expires_after(options_.poll_interval);
        co_await timer_.async_wait(use_nothrow);
        continue;
      }
      for (const auto& j : *due) {
        if (stopping_) {
          break;
        }
        const auto held = options_.hold ? options_.hold() : nullptr;
        // The boundary of one report: a bug while building or sending it stops that report
        // (reportError says why; `retry` sends it again), never the reporter.
        std::string internal;
        try {
          co_await report(j);
        } catch (const std::exception& e) {
          internal = clean_text(e.what(), 200);
        } catch (...) {
          internal = "unknown exception";
        }
        if (!internal.empty()) {
          log()->error("[R {}] internal error while reporting: {}; the report stops until retried",
                       j.request_id, internal);
          report_update u;
          u.attempts = j.report_attempts + 1;
          u.gave_up = true;
          u.error = "internal error while reporting: " + internal;
          auto record = [id = j.id, u, now = clock_->now()](job_store& s) {
            return s.record_report(id, u, now);
          };
          co_await store_call<result<void>>(queue_, std::move(record));
        }
      }
    }
  }

  asio::awaitable<void> report(const job& j) {
    http::client_request req;
    req.method = "POST";
    req.headers.push_back({"Content-Type", "application/json"});
    if (const auto key = credentials_.find(credential::mineos_api_key)) {
      req.headers.push_back({"Authorization", fmt::format("Bearer {}", key->reveal())});
    }
    const auto file = export_path(options_.export_dir, j.id);
    const bool with_data = j.op == operation::copy && j.state == job_state::completed;
    if (with_data) {
      // The export can be large: the body is streamed from its file.
      auto source = report_with_data(j, file, options_.export_key);
      if (!source) {
        log()->error("[R {}] {}; reporting Failed", j.request_id, source.error().detail);
        job lost = j;
        lost.outcome = "Failed";
        lost.outcome_message =
            "the export was lost before it could be delivered; retry the request "
            "(POST /v1/requests/{id}/retry)";
        req.body = report_body(lost).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      } else {
        req.body_stream = std::move(*source);
      }
    } else {
      req.body = report_body(j).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
    auto res = co_await client_->send(std::move(req));

    report_update u;
    u.attempts = j.report_attempts;
    const auto now = clock_->now();
    bool transient = false;
    if (!res) {
      transient = true;
      u.error = res.error().detail;
    } else if (res->status >= 200 && res->status < 300) {
      u.acknowledged = true;
    } else {
      transient = res->status == 429 || res->status >= 500 || res->status == 408;
      // MineOS's text, cut on a character and cleaned: it is stored, logged and shown.
      const std::string text = clean_text(res->body, 200);
      u.error = fmt::format("MineOS answered {}{}{}", res->status, text.empty() ? "" : ": ", text);
    }
    if (!u.acknowledged) {
      ++u.attempts;
      u.gave_up = !transient && u.attempts >= options_.retry.max_attempts;
      std::uniform_real_distribution<double> uniform(0.0, 1.0);
      u.next_at = now + full_jitter_backoff(options_.retry, u.attempts - 1, uniform(random_));
    }
    auto record = [id = j.id, u, now](job_store& s) { return s.record_report(id, u, now); };
    auto recorded = co_await store_call<result<void>>(queue_, std::move(record));
    if (!recorded) {
      log()->error("[R {}] cannot record the report: {}", j.request_id, recorded.error().detail);
      co_return;
    }
    if (options_.metrics != nullptr) {
      options_.metrics->report(u.acknowledged ? "acknowledged" : u.gave_up ? "gave_up" : "retry");
    }
    if (u.acknowledged) {
      log()->info("[R {}] reported {} to MineOS", j.request_id, j.outcome);
      if (with_data) {
        std::error_code ec;
        std::filesystem::remove(file, ec);
      }
    } else if (u.gave_up) {
      log()->error("[R {}] report not accepted after {} attempts, giving up until retried: {}",
                   j.request_id, u.attempts, *u.error);
    } else {
      log()->warn("[R {}] report failed ({}), retrying", j.request_id, *u.error);
    }
  }

  asio::strand<asio::any_io_executor> strand_;
  job_queue& queue_;
  std::unique_ptr<http::client> client_;
  const credential_store& credentials_;
  std::shared_ptr<clock> clock_;
  reporter_options options_;
  asio::steady_timer timer_;
  bool stopping_ = false;
  std::mt19937_64 random_;
};

}  // namespace

nlohmann::json report_body(const job& j) {
  return {{"traceId", j.trace_id},     {"integrationId", j.integration_id},
          {"requestId", j.request_id}, {"operation", to_string(j.op)},
          {"status", j.outcome},       {"message", j.outcome_message}};
}

result<std::shared_ptr<http::body_source>> report_with_data(const job& j,
                                                            const std::filesystem::path& file,
                                                            const std::string& key) {
  // The export file already is {"ids","properties","events"}: it goes in as `data` verbatim.
  std::string prefix =
      report_body(j).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  prefix.pop_back();
  prefix += ",\"data\":";
  if (!key.empty()) {
    return http::sealed_file_source(file, key, j.request_id, std::move(prefix), "}");
  }
  return http::file_source(file, std::move(prefix), "}");
}

std::unique_ptr<reporter> make_reporter(asio::any_io_executor executor, job_queue& queue,
                                        std::unique_ptr<http::client> client,
                                        const credential_store& credentials,
                                        std::shared_ptr<clock> clock, reporter_options options) {
  return std::make_unique<reporter_impl>(std::move(executor), queue, std::move(client), credentials,
                                         std::move(clock), std::move(options));
}

}  // namespace dsr::mineos
