#include "dsr/app/runtime.hpp"

#include "dsr/http/server.hpp"

#include "support/http_client.hpp"

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <csignal>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace dsr::app {
namespace {

using namespace std::chrono_literals;

// One thread, no signals: every handler runs on the test's thread, inside run().
runtime_options quiet(std::chrono::milliseconds grace = 30s) {
  return runtime_options{1, grace, false, false};
}

TEST(Runtime, AStopRunsEachStopActionOnceTheLastRegisteredFirst) {
  runtime rt(quiet());
  std::vector<std::string> stopped;
  rt.on_stop([&] { stopped.push_back("store side"); });
  rt.on_stop([&] { stopped.push_back("workers"); });
  rt.on_stop([&] { stopped.push_back("listener"); });
  rt.stop();
  rt.stop();  // idempotent
  rt.run();   // returns: nothing was held
  EXPECT_EQ(stopped, (std::vector<std::string>{"listener", "workers", "store side"}));
}

TEST(Runtime, AStopWaitsForEveryHoldBeforeTheEventLoopEnds) {
  runtime rt(quiet());
  const auto hold = rt.holder("job");
  auto running_job = hold();
  bool job_finished = false;
  // The job sees the stop and finishes on the event loop: a runtime that ended the loop without
  // waiting for the hold would never run it.
  rt.on_stop([&] {
    boost::asio::post(rt.executor(), [&] {
      job_finished = true;
      running_job.reset();
    });
  });
  rt.stop();
  rt.run();
  EXPECT_TRUE(job_finished);
}

TEST(Runtime, AHoldTakenJustAsTheLastOneDropsIsWaitedForToo) {
  // A worker's claim comes back from the store as the stop drains: it drops the hold it had and
  // takes one for the job it got, in one handler. The stop waits for the job.
  runtime rt(quiet());
  const auto hold = rt.holder("job");
  auto claim = hold();
  std::shared_ptr<void> job;
  bool job_finished = false;
  rt.on_stop([&] {
    boost::asio::post(rt.executor(), [&] {
      claim.reset();  // the count reaches zero: the runtime posts its finish
      job = hold();
      boost::asio::post(rt.executor(), [&] {
        job_finished = true;
        job.reset();
      });
    });
  });
  rt.stop();
  rt.run();
  EXPECT_TRUE(job_finished);
}

TEST(Runtime, CloseDestroysWhatTheGraceAbandonedWhileThePartsStillLive) {
  // A part (here `alive`) that a stuck coroutine refers to is destroyed after close(), before the
  // runtime: the coroutine's frame must be gone by then, not destroyed with the event loop.
  auto alive = std::make_unique<bool>(true);
  bool frame_destroyed_while_alive = false;
  runtime rt(quiet(50ms));
  const auto hold = rt.holder("job");
  struct on_destroy {
    std::unique_ptr<bool>& part;
    bool& seen;
    ~on_destroy() { seen = part != nullptr && *part; }
  };
  boost::asio::co_spawn(
      rt.executor(),
      [&, held = hold()]() -> boost::asio::awaitable<void> {
        const on_destroy guard{alive, frame_destroyed_while_alive};
        boost::asio::steady_timer never(co_await boost::asio::this_coro::executor, 1h);
        co_await never.async_wait(boost::asio::use_awaitable);
      },
      boost::asio::detached);
  rt.stop();
  rt.run();  // the grace ends with the coroutine still waiting
  rt.close();
  EXPECT_TRUE(frame_destroyed_while_alive);
  alive.reset();
}

TEST(Runtime, TheGracePeriodEndsAStopThatSomethingStillHolds) {
  runtime rt(quiet(200ms));
  const auto hold = rt.holder("connection");
  const auto stuck = hold();  // never released while the runtime runs
  const auto began = std::chrono::steady_clock::now();
  rt.stop();
  rt.run();  // returns: the grace period is over
  EXPECT_GE(std::chrono::steady_clock::now() - began, 200ms);
}

TEST(Runtime, AnExceptionFromAHandlerIsLoggedAndTheLoopGoesOn) {
  runtime rt(quiet());
  bool after = false;
  boost::asio::post(rt.executor(), [] { throw std::runtime_error("a bug in a handler"); });
  boost::asio::post(rt.executor(), [&] {
    after = true;
    rt.stop();
  });
  rt.run();
  EXPECT_TRUE(after);
}

TEST(Runtime, ASignalBeforeRunWaitsForRunInsteadOfKilling) {
  // The daemon logs "listening" and sends READY=1 before run(): a SIGHUP or SIGTERM arriving then
  // must wait for run(), not take the default action and kill the process.
  runtime rt(runtime_options{1, 30s, true, true});
  int reloads = 0;
  rt.on_reload([&reloads] { ++reloads; });
  bool stopped = false;
  rt.on_stop([&stopped] { stopped = true; });
  ::raise(SIGHUP);
  ::raise(SIGTERM);
  rt.run();  // returns: the SIGTERM began a graceful stop
  EXPECT_EQ(reloads, 1);
  EXPECT_TRUE(stopped);
}

// Signals are the runtime's, not the listener's: they reach the listener through its stop action,
// and the drain waits for its connections.
TEST(Runtime, ASigtermDrainsTheListenerThroughItsStopAction) {
  runtime rt(runtime_options{2, 30s, true, false});
  struct answer_ok final : http::handler {
    void handle(http::request, http::responder done) override {
      done(http::response{200, "text/plain", "ok", {}});
    }
  } h;
  http::server_options o;
  o.listen = endpoint{"127.0.0.1", 0};
  o.hold = rt.holder("connection");
  auto listener = http::make_server(rt.executor(), o, h);
  ASSERT_TRUE(listener) << listener.error().detail;
  rt.on_stop([l = listener->get()] { l->stop(); });
  std::thread loop([&rt] { rt.run(); });
  const auto port = (*listener)->local_endpoint(http::listener::public_)->port;
  test::connection idle(port, 5s);
  ASSERT_TRUE(idle.send(test::raw_request("GET", "/x", "", {}, true)));
  ASSERT_EQ(idle.read_reply().status, 200);

  ::raise(SIGTERM);
  // The listener closes its idle keep-alive connection; the drain then ends the event loop.
  EXPECT_TRUE(idle.closed_by_peer(5s));
  loop.join();
}

TEST(Runtime, ASecondSignalStopsAtOnceWithoutWaitingForWhatIsHeld) {
  runtime rt(runtime_options{1, 1h, true, false});
  const auto hold = rt.holder("job");
  const auto stuck = hold();
  // The second SIGTERM comes once the first one's stop has begun.
  rt.on_stop([] { ::raise(SIGTERM); });
  ::raise(SIGTERM);
  const auto began = std::chrono::steady_clock::now();
  rt.run();  // returns long before the hour of grace
  EXPECT_LT(std::chrono::steady_clock::now() - began, 60s);
}

}  // namespace
}  // namespace dsr::app
