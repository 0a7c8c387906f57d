#include "dsr/mineos/reporter.hpp"

#include "dsr/common/log.hpp"
#include "dsr/common/text.hpp"
#include "dsr/exponea/answers.hpp"
#include "dsr/jobs/async_store.hpp"
#include "dsr/jobs/backoff.hpp"
#include "dsr/jobs/exports.hpp"
#include "dsr/jobs/kept_exports.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

#include <algorithm>
#include <mutex>
#include <random>
#include <set>
#include <utility>

namespace dsr::mineos {
namespace {

namespace asio = boost::asio;
using json = nlohmann::json;
inline constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

std::shared_ptr<spdlog::logger> log() {
  static const auto logger = subsystem_logger("mineos");
  return logger;
}

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

http::client_request status_request(const credential_store& credentials,
                                    std::string_view request_id, std::string_view integration_id) {
  http::client_request req;
  req.method = "POST";
  req.target = status_path(request_id, integration_id);
  req.headers.push_back({"Content-Type", "application/json"});
  req.headers.push_back({"Accept", "application/json"});
  if (const auto key = credentials.find(credential::mineos_api_key)) {
    req.headers.push_back({"Authorization", fmt::format("Bearer {}", key->reveal())});
  }
  return req;
}

class reporter_impl final : public reporter {
 public:
  reporter_impl(asio::any_io_executor ex, async_store& store, std::unique_ptr<http::client> client,
                const credential_store& credentials, std::shared_ptr<clock> clock,
                reporter_options o)
      : strand_(asio::make_strand(ex)),
        store_(store),
        client_(std::move(client)),
        credentials_(credentials),
        clock_(std::move(clock)),
        options_(std::move(o)),
        timer_(strand_),
        pace_(strand_, options_.max_requests_per_minute / 60.0),
        random_(std::random_device{}()) {
    if (options_.shared.take) {
      pace_.share(options_.shared);
    }
  }

  void start() override {
    asio::co_spawn(strand_, loop(), log_if_thrown("mineos", "the MineOS reporter"));
  }

  void notify() override {
    asio::post(strand_, [this] {
      notified_ = true;  // seen by the next sleep, if the loop is not sleeping now
      timer_.cancel();
    });
  }

  void stop() override {
    asio::post(strand_, [this] {
      stopping_ = true;
      timer_.cancel();
    });
  }

  void resume() override {
    asio::post(strand_, [this] {
      if (pause_) {
        log()->info("credentials reloaded: reporting to MineOS resumes");
      }
      set_pause(std::nullopt);
      notified_ = true;
      timer_.cancel();
    });
  }

  std::optional<std::string> paused() const override {
    const std::lock_guard lock(published_mutex_);
    return published_pause_;
  }

 private:
  // Each start or end of a pause is a new generation: an answer to a report sent in an earlier one
  // neither starts nor ends the pause of this one (several reports are in flight at once).
  void set_pause(std::optional<std::string> why) {
    if (why.has_value() != pause_.has_value()) {
      ++generation_;
    }
    pause_ = std::move(why);
    const std::lock_guard lock(published_mutex_);
    published_pause_ = pause_;
  }

  asio::awaitable<void> sleep(std::chrono::milliseconds d) {
    if (std::exchange(notified_, false)) {
      co_return;  // something happened while the loop was busy: look again at once
    }
    timer_.expires_after(d);
    co_await timer_.async_wait(use_nothrow);
  }

  asio::awaitable<void> loop() {
    while (!stopping_) {
      auto now = clock_->now();
      // While MineOS refuses the key, one report at a time, every pause_probe, tests it.
      if (pause_ && (!sending_.empty() || now < next_probe_)) {
        co_await sleep(!sending_.empty() ? options_.poll_interval
                                         : std::chrono::duration_cast<std::chrono::milliseconds>(
                                               next_probe_ - now));
        continue;
      }
      if (sending_.size() >= options_.max_in_flight) {
        co_await sleep(options_.poll_interval);  // an answer wakes it
        continue;
      }
      const bool probing = pause_.has_value();
      // A turn is taken only when a report is due (an idle daemon spends none, so the next report
      // goes at once), and the report is claimed only when its turn has come.
      auto waiting = co_await store_.due_reports(now, 1);
      if (!waiting) {
        log()->error("cannot read the outbox: {}", waiting.error().detail);
      }
      if (!waiting || waiting->empty()) {
        if (probing) {
          next_probe_ = now + options_.retry.pause_probe;
        }
        co_await sleep(options_.poll_interval);
        continue;
      }
      auto turn = co_await pace_.acquire(exponea::priority::background);
      if (stopping_) {
        break;
      }
      if (pause_.has_value() != probing) {
        continue;  // a 401 came while this report waited for its turn
      }
      now = clock_->now();
      // One report per turn, claimed just before it is sent (due again after report_claim
      // unless recorded first), so that two daemons never send one report at once and a stop or
      // a pause leaves no report claimed that was not sent. g++ 12: a temporary built inside a
      // co_await expression can be destroyed twice; every argument of a co_await'ed call is a
      // named object.
      auto due = co_await store_.claim_reports(now, 1, options_.report_claim);
      if (!due) {
        log()->error("cannot claim a report: {}", due.error().detail);
        co_await sleep(options_.poll_interval);
        continue;
      }
      if (due->empty()) {
        continue;  // another daemon sent it meanwhile
      }
      job& j = due->front();
      if (sending_.contains(j.id)) {
        continue;  // still on its way from here (its claim ran out first): sent once
      }
      if (pause_.has_value() != probing) {
        // A 401 came while the claim was in the store: this report is not the probe. It goes
        // back as it was.
        report_update u;
        u.attempts = j.report_attempts;
        u.error = j.report_error;
        u.next_at = now;
        co_await record(j, std::move(u));
        continue;
      }
      // The report goes on its own while the next one waits for its turn: MineOS's answer time
      // does not slow the pace.
      sending_.insert(j.id);
      auto held = options_.hold ? options_.hold() : nullptr;
      asio::co_spawn(strand_, send(std::move(j), turn, probing, generation_, std::move(held)),
                     log_if_thrown("mineos", "a report to MineOS"));
    }
  }

  // `probing`, `generation`: the pause as it was when the report was claimed.
  asio::awaitable<void> send(job j, exponea::turn turn, bool probing, std::uint64_t generation,
                             std::shared_ptr<void> held) {
    // However this ends, the report is no longer on its way and the loop looks again.
    struct done_sending {
      reporter_impl& r;
      std::int64_t id;
      ~done_sending() {
        r.sending_.erase(id);
        r.timer_.cancel();
        r.notified_ = true;
      }
    } done{*this, j.id};
    // The boundary of one report: a bug while building or sending it stops that report
    // (reportError says why; `retry` sends it again), never the reporter.
    std::string internal;
    try {
      co_await report(j, turn, generation);
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
      co_await record(j, std::move(u));
    }
    if (probing && pause_) {
      next_probe_ = clock_->now() + options_.retry.pause_probe;
    }
    held.reset();
  }

  asio::awaitable<void> record(const job& j, report_update u) {
    const auto now = clock_->now();
    auto recorded = co_await store_.record_report(j.id, u, now);
    if (!recorded) {
      log()->error("[R {}] cannot record the report: {}", j.request_id, recorded.error().detail);
    }
  }

  // `turn`: the pace's turn this report was claimed on; `generation`: the pause's when it was.
  asio::awaitable<void> report(const job& j, exponea::turn turn, std::uint64_t generation) {
    const std::string integration =
        j.integration_id.empty() ? options_.integration_id : j.integration_id;
    if (integration.empty()) {
      report_update u;
      u.attempts = j.report_attempts + 1;
      u.gave_up = true;
      u.error =
          "no integrationId to report to: the request carried none; set [mineos] integration_id "
          "and retry the report";
      log()->error("[R {}] {}", j.request_id, *u.error);
      co_await record(j, std::move(u));
      co_return;
    }
    auto req = status_request(credentials_, j.request_id, integration);
    const bool with_export = j.op == operation::copy && j.state == job_state::completed;
    bool inline_export = false;
    export_file file{export_path(options_.export_dir, j.id), false};
    if (with_export) {
      auto located =
          co_await locate_export(store_, options_.export_dir, j.id, options_.exports_in_store);
      if (!located) {
        log()->error("[R {}] cannot read the export from the store: {}; retrying", j.request_id,
                     located.error().detail);
        co_return;  // still due: the next round tries again
      }
      file = std::move(*located);
      // The export can be large: the body is streamed from its file, or it is a link.
      auto source = report_with_data(j, file.path, options_.export_keys);
      drop_scratch(file);
      if (!source) {
        log()->error("[R {}] {}; reporting Failed", j.request_id, source.error().detail);
        job lost = j;
        lost.outcome = job_outcome::failed;
        lost.outcome_message =
            "the export was lost before it could be delivered; retry the request "
            "(POST /v1/requests/{id}/retry)";
        req.body = dump(report_body(lost));
      } else if (options_.links &&
                 (*source)->size() > options_.inline_data_max_bytes + report_overhead(j)) {
        const auto now = clock_->now();
        const auto proposed = now + options_.file_link_ttl;
        auto expires = co_await store_.file_link_expiry(j.id, proposed, now);
        if (!expires) {
          log()->error("[R {}] cannot record the file link: {}; retrying", j.request_id,
                       expires.error().detail);
          co_return;  // still due: the next round tries again
        }
        auto body = report_body(j);
        body["files"] = json::array({{{"fileName", j.request_id + ".json"},
                                      {"description", "Bloomreach customer export"},
                                      {"url", options_.links->url(j.request_id, *expires)}}});
        req.body = dump(body);
      } else {
        req.body_stream = std::move(*source);
        inline_export = true;
      }
    } else {
      req.body = dump(report_body(j));
    }
    // Counted as leaving now, after the export was read (or a fresh turn if that took long).
    turn = co_await pace_.leave(turn);
    auto res = co_await client_->send(std::move(req));

    report_update u;
    u.attempts = j.report_attempts;
    const auto now = clock_->now();
    const auto answer = res ? classify_report_answer(res->status) : report_answer::transient;
    std::string result_label;
    switch (answer) {
      case report_answer::acknowledged:
        u.acknowledged = true;
        result_label = "acknowledged";
        break;
      case report_answer::unauthorized:
        // Nothing is wrong with this report: it stays due, its attempts untouched.
        u.error = fmt::format("{}; reporting is paused until mineos_api_key is fixed (reload)",
                              report_error_text(res->status, res->body));
        u.next_at = now;
        result_label = "paused";
        break;
      case report_answer::transient: {
        ++u.attempts;
        u.error = res ? report_error_text(res->status, res->body) : res.error().detail;
        std::uniform_real_distribution<double> uniform(0.0, 1.0);
        auto delay = full_jitter_backoff(options_.retry, u.attempts - 1, uniform(random_));
        std::optional<std::chrono::milliseconds> asked;
        if (res) {
          if (const auto after = exponea::parse_retry_after(res->header("Retry-After"), now)) {
            asked = std::min(*after, std::chrono::duration_cast<std::chrono::milliseconds>(
                                         options_.retry.max_backoff));
            delay = std::max(delay, *asked);
          }
        }
        if (res && res->status == 429) {
          // MineOS's limit was met: every report waits (on every daemon), not only this one;
          // at least a second when MineOS gave no Retry-After.
          pace_.slow_down(asked.value_or(std::chrono::milliseconds(0)));
        }
        u.next_at = now + delay;
        result_label = "retry";
        break;
      }
      case report_answer::refused:
        ++u.attempts;
        u.gave_up = true;
        u.error = report_error_text(res->status, res->body);
        result_label = "gave_up";
        break;
    }
    co_await record(j, u);
    if (options_.metrics != nullptr) {
      options_.metrics->report(result_label);
    }
    switch (answer) {
      case report_answer::acknowledged:
        log()->info("[R {}] reported {} to MineOS", j.request_id, to_string(j.outcome));
        if (pause_ && generation == generation_) {  // the probe, sent during this pause
          log()->info("MineOS accepts mineos_api_key again: reporting resumes");
          set_pause(std::nullopt);
        }
        if (inline_export && options_.exports_in_store) {
          const std::vector<std::int64_t> delivered{j.id};
          if (auto r = co_await store_.delete_exports(delivered); !r) {
            log()->warn("[R {}] cannot delete the delivered export: {}; the purge will",
                        j.request_id, r.error().detail);
          }
        } else if (inline_export) {
          std::error_code ec;
          std::filesystem::remove(file.path, ec);
        }
        break;
      case report_answer::unauthorized:
        if (generation != generation_) {
          break;  // sent before a reload (or a pause another answer began): says nothing new
        }
        if (!pause_) {
          log()->error(
              "reporting to MineOS paused: {}. Jobs go on; their reports wait. Fix the value "
              "and reload (SIGHUP); one report is let through every {} s to test it.",
              *u.error,
              std::chrono::duration_cast<std::chrono::seconds>(options_.retry.pause_probe).count());
        }
        set_pause("MineOS rejected mineos_api_key (401)");
        next_probe_ = now + options_.retry.pause_probe;
        break;
      case report_answer::transient:
        log()->warn("[R {}] report failed ({}), retrying", j.request_id, *u.error);
        break;
      case report_answer::refused:
        log()->error("[R {}] MineOS refused the report, which stops until retried: {}",
                     j.request_id, *u.error);
        break;
    }
  }

  // What the body adds around the export: the limit is on the data, not the envelope.
  static std::uint64_t report_overhead(const job& j) { return dump(report_body(j)).size() + 10; }

  asio::strand<asio::any_io_executor> strand_;
  async_store& store_;
  std::unique_ptr<http::client> client_;
  const credential_store& credentials_;
  std::shared_ptr<clock> clock_;
  reporter_options options_;
  asio::steady_timer timer_;
  bool stopping_ = false;
  std::optional<std::string> pause_;
  time_point next_probe_{};
  // Spaces the status calls to max_requests_per_minute, with the other daemons when shared; a
  // 429 holds them all for its Retry-After.
  exponea::limiter pace_;
  std::set<std::int64_t> sending_;  // the reports on their way from here, by job id
  std::uint64_t generation_ = 0;    // see set_pause
  bool notified_ = false;           // see sleep
  std::mt19937_64 random_;
  mutable std::mutex published_mutex_;
  std::optional<std::string> published_pause_;
};

}  // namespace

std::string status_path(std::string_view request_id, std::string_view integration_id) {
  const auto segment = [](std::string_view s) {
    return boost::urls::encode(s, boost::urls::unreserved_chars);
  };
  return fmt::format("/api/ticket/{}/custom-integrations/{}", segment(request_id),
                     segment(integration_id));
}

nlohmann::json report_body(const job& j) {
  return {{"action", to_string(action_of(j.op))},
          {"status", to_string(j.outcome)},
          {"message", j.outcome_message}};
}

result<std::shared_ptr<http::body_source>> report_with_data(const job& j,
                                                            const std::filesystem::path& file,
                                                            std::vector<std::string> keys) {
  // The export file already is {"ids","properties","events"}: it goes in as `data` verbatim.
  std::string prefix = dump(report_body(j));
  prefix.pop_back();
  prefix += ",\"data\":";
  return http::sealed_file_source(file, std::move(keys), j.request_id, std::move(prefix), "}");
}

report_answer classify_report_answer(unsigned status) {
  if (status >= 200 && status < 300) {
    return report_answer::acknowledged;
  }
  if (status == 401) {
    return report_answer::unauthorized;
  }
  if (status == 408 || status == 429 || status >= 500) {
    return report_answer::transient;
  }
  return report_answer::refused;
}

std::string report_error_text(unsigned status, std::string_view body) {
  std::string text;
  const auto doc = json::parse(body, nullptr, false);
  if (doc.is_object() && doc.contains("message") && doc["message"].is_string()) {
    text = doc["message"].get<std::string>();
  } else if (!doc.is_object()) {
    text = std::string(body);
  }
  // MineOS's text, cut on a character and cleaned: it is stored, logged and shown.
  text = clean_text(text, 200);
  const char* hint = status == 401   ? " (mineos_api_key rejected)"
                     : status == 404 ? " (unknown ticket or integrationId)"
                                     : "";
  return fmt::format("MineOS answered {}{}{}{}", status, hint, text.empty() ? "" : ": ", text);
}

std::unique_ptr<reporter> make_reporter(asio::any_io_executor executor, async_store& store,
                                        std::unique_ptr<http::client> client,
                                        const credential_store& credentials,
                                        std::shared_ptr<clock> clock, reporter_options options) {
  return std::make_unique<reporter_impl>(std::move(executor), store, std::move(client), credentials,
                                         std::move(clock), std::move(options));
}

boost::asio::awaitable<result<http::client_response>> send_test_report(
    http::client& client, const credential_store& credentials, std::string request_id,
    std::string integration_id, mineos_action action) {
  auto req = status_request(credentials, request_id, integration_id);
  req.body = dump({{"action", to_string(action)},
                   {"status", "Completed"},
                   {"message", "dsr-connector test"},
                   {"test", true}});
  co_return co_await client.send(std::move(req));
}

}  // namespace dsr::mineos
