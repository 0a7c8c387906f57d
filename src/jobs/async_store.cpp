#include "dsr/jobs/async_store.hpp"

#include "store_call.hpp"

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <utility>

namespace dsr {

namespace asio = boost::asio;

struct async_store::step_group {
  struct waiting_line {
    step_line line;
    std::function<void(result<void>)> done;
  };
  std::mutex mutex;
  std::vector<waiting_line> waiting;  // under mutex
  bool queued = false;                // under mutex: a task to write them is on the store's queue
};

async_store::async_store(job_queue& queue, asio::any_io_executor executor)
    : queue_(queue), executor_(std::move(executor)), steps_(std::make_shared<step_group>()) {}

async_store::task<insert_outcome> async_store::insert(new_job j) {
  using T = result<insert_outcome>;
  return asio::async_initiate<decltype(asio::use_awaitable), void(T)>(
      [this](auto handler, new_job j) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        queue_.insert(std::move(j), [h](T r) {
          auto ex = asio::get_associated_executor(*h);
          asio::post(ex, [h, r = std::move(r)]() mutable { (*h)(std::move(r)); });
        });
      },
      asio::use_awaitable, std::move(j));
}

async_store::task<std::optional<job>> async_store::find(std::string_view request_id) {
  return store_call<result<std::optional<job>>>(
      queue_, [id = std::string(request_id)](job_store& s) { return s.find(id); });
}

async_store::task<std::vector<job>> async_store::list(std::optional<job_state> state,
                                                      std::size_t limit) {
  return store_call<result<std::vector<job>>>(
      queue_, [state, limit](job_store& s) { return s.list(state, limit); });
}

async_store::task<std::optional<job>> async_store::claim(std::string_view owner, time_point now,
                                                         millis lease) {
  return store_call<result<std::optional<job>>>(
      queue_, [owner = std::string(owner), now, lease](job_store& s) {
        return s.claim_next(owner, now, lease);
      });
}

async_store::task<void> async_store::append_step(std::int64_t job_id, std::string_view owner,
                                                 const job_step& step) {
  using T = result<void>;
  return asio::async_initiate<decltype(asio::use_awaitable), void(T)>(
      [this](auto handler, step_line line) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        auto done = [h](T r) {
          auto ex = asio::get_associated_executor(*h);
          asio::post(ex, [h, r = std::move(r)]() mutable { (*h)(std::move(r)); });
        };
        bool first = false;
        {
          const std::lock_guard lock(steps_->mutex);
          steps_->waiting.push_back({std::move(line), std::move(done)});
          first = !std::exchange(steps_->queued, true);
        }
        if (!first) {
          return;  // the task already queued writes this line too
        }
        queue_.run([group = steps_](job_store& s) {
          std::vector<step_group::waiting_line> taken;
          {
            const std::lock_guard lock(group->mutex);
            taken.swap(group->waiting);
            group->queued = false;
          }
          std::vector<step_line> lines;
          lines.reserve(taken.size());
          for (const auto& w : taken) {
            lines.push_back(w.line);
          }
          std::vector<T> written;
          try {
            written = s.append_steps(lines);
          } catch (const std::exception& e) {
            written.assign(
                lines.size(),
                make_failure(errc::store_unavailable,
                             std::string("internal error in the job store: ") + e.what()));
          }
          for (std::size_t i = 0; i < taken.size(); ++i) {
            taken[i].done(i < written.size()
                              ? std::move(written[i])
                              : T(make_failure(errc::store_unavailable,
                                               "the job store did not answer for a journal line")));
          }
        });
      },
      asio::use_awaitable, step_line{job_id, std::string(owner), step});
}

async_store::task<void> async_store::finish(std::int64_t job_id, std::string_view owner,
                                            const job_release& next, time_point now) {
  return store_call<result<void>>(queue_,
                                  [job_id, owner = std::string(owner), next, now](job_store& s) {
                                    return s.release(job_id, owner, next, now);
                                  });
}

async_store::task<async_store::millis> async_store::renew_lease(std::int64_t job_id,
                                                                std::string_view owner,
                                                                time_point now, millis lease) {
  return store_call<result<millis>>(queue_,
                                    [job_id, owner = std::string(owner), now, lease](job_store& s) {
                                      return s.renew_lease(job_id, owner, now, lease);
                                    });
}

async_store::task<cluster_view> async_store::heartbeat(worker_beat beat) {
  return store_call<result<cluster_view>>(
      queue_, [b = std::move(beat)](job_store& s) { return s.heartbeat(b); });
}

async_store::task<call_turn> async_store::take_turn(call_limit limit,
                                                    std::chrono::microseconds interval) {
  return store_call<result<call_turn>>(
      queue_, [limit, interval](job_store& s) { return s.take_turn(limit, interval); });
}

async_store::task<void> async_store::block_calls(call_limit limit, millis d) {
  return store_call<result<void>>(queue_,
                                  [limit, d](job_store& s) { return s.block_calls(limit, d); });
}

async_store::task<void> async_store::set_breaker(millis d, std::string reason) {
  return store_call<result<void>>(
      queue_, [d, r = std::move(reason)](job_store& s) { return s.set_breaker(d, r); });
}

async_store::task<bool> async_store::claim_periodic(std::string task, std::string owner,
                                                    millis period, millis ttl) {
  return store_call<result<bool>>(
      queue_, [t = std::move(task), o = std::move(owner), period, ttl](job_store& s) {
        return s.claim_periodic(t, o, period, ttl);
      });
}

async_store::task<std::size_t> async_store::expire_leases(time_point now) {
  return store_call<result<std::size_t>>(queue_,
                                         [now](job_store& s) { return s.expire_leases(now); });
}

async_store::task<std::size_t> async_store::renew_leases(std::span<const std::string> owners,
                                                         time_point now, millis lease) {
  return store_call<result<std::size_t>>(
      queue_, [owners = std::vector<std::string>(owners.begin(), owners.end()), now,
               lease](job_store& s) { return s.renew_leases(owners, now, lease); });
}

async_store::task<void> async_store::forget_subject(std::int64_t job_id) {
  return store_call<result<void>>(queue_,
                                  [job_id](job_store& s) { return s.forget_subject(job_id); });
}

async_store::task<std::vector<job>> async_store::claim_reports(time_point now, std::size_t limit,
                                                               millis claim_for) {
  return store_call<result<std::vector<job>>>(queue_, [now, limit, claim_for](job_store& s) {
    return s.claim_reports(now, limit, claim_for);
  });
}

async_store::task<std::vector<job>> async_store::due_reports(time_point now, std::size_t limit) {
  return store_call<result<std::vector<job>>>(
      queue_, [now, limit](job_store& s) { return s.due_reports(now, limit); });
}

async_store::task<void> async_store::record_report(std::int64_t job_id, const report_update& u,
                                                   time_point now) {
  return store_call<result<void>>(
      queue_, [job_id, u, now](job_store& s) { return s.record_report(job_id, u, now); });
}

async_store::task<time_point> async_store::file_link_expiry(std::int64_t job_id,
                                                            time_point proposed, time_point now) {
  return store_call<result<time_point>>(queue_, [job_id, proposed, now](job_store& s) {
    return s.file_link_expiry(job_id, proposed, now);
  });
}

async_store::task<operator_result> async_store::retry(std::string_view request_id, time_point now) {
  return store_call<result<operator_result>>(
      queue_, [id = std::string(request_id), now](job_store& s) { return s.retry(id, now); });
}

async_store::task<operator_result> async_store::cancel(std::string_view request_id,
                                                       time_point now) {
  return store_call<result<operator_result>>(
      queue_, [id = std::string(request_id), now](job_store& s) { return s.cancel(id, now); });
}

async_store::task<job_stats> async_store::stats(time_point now, millis deadline, millis warning) {
  return store_call<result<job_stats>>(
      queue_, [now, deadline, warning](job_store& s) { return s.stats(now, deadline, warning); });
}

async_store::task<std::vector<job>> async_store::at_risk(time_point now, millis deadline,
                                                         millis warning, std::size_t limit) {
  return store_call<result<std::vector<job>>>(queue_,
                                              [now, deadline, warning, limit](job_store& s) {
                                                return s.at_risk(now, deadline, warning, limit);
                                              });
}

async_store::task<std::vector<std::int64_t>> async_store::file_links(time_point now, bool expired) {
  return store_call<result<std::vector<std::int64_t>>>(
      queue_, [now, expired](job_store& s) { return s.file_links(now, expired); });
}

async_store::task<std::size_t> async_store::purge_finished(time_point before) {
  return store_call<result<std::size_t>>(
      queue_, [before](job_store& s) { return s.purge_finished(before); });
}

async_store::task<void> async_store::set_max_size(std::uint64_t bytes) {
  return store_call<result<void>>(queue_, [bytes](job_store& s) { return s.set_max_size(bytes); });
}

// `bytes` is moved into the call: a chunk is not copied again.
async_store::task<void> async_store::put_export_chunk(std::int64_t job_id, std::string owner,
                                                      std::uint32_t index, std::string bytes) {
  return store_call<result<void>>(
      queue_, [job_id, o = std::move(owner), index, b = std::move(bytes)](job_store& s) {
        return s.put_export_chunk(job_id, o, index, b);
      });
}

async_store::task<void> async_store::finish_export(std::int64_t job_id, std::string owner,
                                                   std::uint32_t chunks, time_point now) {
  return store_call<result<void>>(queue_,
                                  [job_id, o = std::move(owner), chunks, now](job_store& s) {
                                    return s.finish_export(job_id, o, chunks, now);
                                  });
}

async_store::task<std::optional<std::uint32_t>> async_store::export_chunks(std::int64_t job_id) {
  return store_call<result<std::optional<std::uint32_t>>>(
      queue_, [job_id](job_store& s) { return s.export_chunks(job_id); });
}

async_store::task<std::string> async_store::export_chunk(std::int64_t job_id, std::uint32_t index) {
  return store_call<result<std::string>>(
      queue_, [job_id, index](job_store& s) { return s.export_chunk(job_id, index); });
}

async_store::task<std::size_t> async_store::delete_exports(std::span<const std::int64_t> job_ids) {
  return store_call<result<std::size_t>>(
      queue_, [ids = std::vector<std::int64_t>(job_ids.begin(), job_ids.end())](job_store& s) {
        return s.delete_exports(ids);
      });
}

async_store::task<std::size_t> async_store::purge_exports(time_point before,
                                                          std::span<const std::int64_t> keep) {
  return store_call<result<std::size_t>>(
      queue_, [before, kept = std::vector<std::int64_t>(keep.begin(), keep.end())](job_store& s) {
        return s.purge_exports(before, kept);
      });
}

}  // namespace dsr
