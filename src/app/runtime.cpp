#include "dsr/app/runtime.hpp"

#include "dsr/common/log.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <deque>
#include <thread>
#include <vector>

namespace dsr::app {
namespace {

namespace asio = boost::asio;

std::shared_ptr<spdlog::logger> log() {
  static const auto logger = subsystem_logger("main");
  return logger;
}

}  // namespace

struct runtime::impl {
  explicit impl(runtime_options o)
      : options(o),
        control(asio::make_strand(ioc)),
        signals(control),
        grace(control),
        work(asio::make_work_guard(ioc)) {
    // Caught from here on: a signal that arrives before run() waits for it.
    if (options.handle_signals) {
      signals.add(SIGTERM);
      signals.add(SIGINT);
      if (options.reload_signal) {
        signals.add(SIGHUP);
      }
    }
  }
  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;
  ~impl() { destroyed = true; }

  // One kind of work a stop waits for; its address is stable (a deque, grown before run()).
  struct kind_count {
    std::string kind;
    std::atomic<std::uint64_t> held{0};
  };

  std::shared_ptr<void> hold(kind_count& k) {
    ++k.held;
    ++held;
    return std::shared_ptr<void>(nullptr, [this, &k](void*) {
      --k.held;
      if (--held == 0 && !destroyed.load() && stopping.load()) {
        asio::post(control, [this] { finish_if_drained(); });
      }
    });
  }

  // "2 connection(s), 1 job(s)": what is still held, by kind.
  std::string held_by_kind() const {
    std::vector<std::string> parts;
    for (const auto& k : kinds) {
      if (const auto n = k.held.load(); n > 0) {
        parts.push_back(fmt::format("{} {}(s)", n, k.kind));
      }
    }
    return parts.empty() ? std::string("nothing") : fmt::format("{}", fmt::join(parts, ", "));
  }

  // Runs the event loop until it is out of work. An exception that escapes a completion handler
  // (a bug) is logged and the loop goes on: one request or job never takes the process down.
  void serve_events() {
    for (;;) {
      try {
        ioc.run();
        return;
      } catch (const std::exception& e) {
        log()->error("internal error in an event handler: {}; serving on", e.what());
      } catch (...) {
        log()->error("internal error in an event handler; serving on");
      }
    }
  }

  void wait_signal() {
    signals.async_wait([this](const boost::system::error_code& ec, int sig) {
      if (ec) {
        return;
      }
      if (sig == SIGHUP) {
        log()->info("SIGHUP received: reloading the configuration and credentials");
        if (reload) {
          reload();
        }
        wait_signal();
        return;
      }
      if (stopping.load()) {
        log()->warn("second signal ({}): stopping now without waiting for requests in flight", sig);
        finish();
        return;
      }
      log()->info("signal {} received: draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      begin_stop();
      wait_signal();
    });
  }

  // On the control strand.
  void begin_stop() {
    if (stopping.exchange(true)) {
      return;
    }
    // The last registered part first: it was built on the earlier ones.
    for (auto it = stop_actions.rbegin(); it != stop_actions.rend(); ++it) {
      try {
        (*it)();
      } catch (const std::exception& e) {
        log()->error("a part failed to begin its stop: {}; draining the others", e.what());
      }
    }
    if (held.load() == 0) {
      finish();
      return;
    }
    log()->info("waiting up to {} s for {} to finish",
                std::chrono::duration_cast<std::chrono::seconds>(options.shutdown_grace).count(),
                held_by_kind());
    grace.expires_after(options.shutdown_grace);
    grace.async_wait([this](const boost::system::error_code& e) {
      if (!e) {
        log()->warn("shutdown grace period over; {} abandoned", held_by_kind());
        finish();
      }
    });
  }

  // On the control strand. A hold taken after the count reached zero (a job claimed as the stop
  // began) is waited for too: its own drop posts this again.
  void finish_if_drained() {
    if (held.load() == 0) {
      finish();
    }
  }

  // On the control strand.
  void finish() {
    if (finished.exchange(true)) {
      return;
    }
    boost::system::error_code ec;
    signals.cancel(ec);
    grace.cancel();
    work.reset();
    ioc.stop();
  }

  runtime_options options;
  std::vector<std::function<void()>> stop_actions;
  std::function<void()> reload;
  // Declared before ioc: a token dropped while ioc is destroyed (a job's coroutine frame) must
  // still find them.
  std::atomic<bool> destroyed{false};
  std::atomic<bool> stopping{false};
  std::atomic<std::uint64_t> held{0};
  std::deque<kind_count> kinds;
  // shutdown() made public: close() destroys the abandoned handlers while the parts live.
  struct closable_context : asio::io_context {
    using asio::execution_context::shutdown;
    using asio::io_context::io_context;
  };
  closable_context ioc;
  // Signals, the grace timer and the stop run on this strand.
  asio::strand<asio::io_context::executor_type> control;
  asio::signal_set signals;
  asio::steady_timer grace;
  asio::executor_work_guard<asio::io_context::executor_type> work;
  std::atomic<bool> finished{false};
};

runtime::runtime(runtime_options options) : impl_(std::make_unique<impl>(options)) {}

runtime::~runtime() = default;

boost::asio::any_io_executor runtime::executor() const {
  return impl_->ioc.get_executor();
}

void runtime::on_stop(std::function<void()> action) {
  impl_->stop_actions.push_back(std::move(action));
}

void runtime::on_reload(std::function<void()> action) {
  impl_->reload = std::move(action);
}

std::function<std::shared_ptr<void>()> runtime::holder(std::string kind) {
  auto& k = impl_->kinds.emplace_back();
  k.kind = std::move(kind);
  return [i = impl_.get(), &k] { return i->hold(k); };
}

void runtime::run() {
  if (impl_->options.handle_signals) {
    impl_->wait_signal();
  }
  unsigned threads = impl_->options.io_threads;
  if (threads == 0) {
    threads = std::max(1u, std::thread::hardware_concurrency());
  }
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) {
    pool.emplace_back([this] { impl_->serve_events(); });
  }
  impl_->serve_events();
  for (auto& t : pool) {
    t.join();
  }
}

void runtime::close() {
  // Destroys every handler still queued and every operation still pending, with the coroutine
  // frames they own; posts made later to a strand are destroyed as they are made. The services
  // stay, so that the parts' sockets and timers can still be destroyed.
  impl_->ioc.shutdown();
}

void runtime::stop() {
  asio::post(impl_->control, [i = impl_.get()] { i->begin_stop(); });
}

}  // namespace dsr::app
