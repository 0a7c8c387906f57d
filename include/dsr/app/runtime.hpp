#pragma once
// The process runtime: one io_context run by io_threads threads, the signals that stop and reload
// the process, and the drain a graceful stop waits for. It is made first; every other part (the
// listeners, the store's completions, the dispatcher, the reporter, the periodic tasks) runs its
// work on executor() and registers with it how it stops and what the stop must wait for.
//
// Signals: caught from construction, so one that arrives before run() (right after "listening"
// and READY=1) waits for run() instead of killing the process. SIGTERM and SIGINT begin a
// graceful stop; a second one stops at once. SIGHUP calls the reload action when reload_signal
// is set, else it keeps its default action.
//
// Stop (stop(), SIGTERM or SIGINT): the stop actions run once, on the runtime's control strand,
// the last registered first, so that a part stops before the parts it was built on (the listener
// before the dispatcher it feeds). Then run() returns once no hold is left, or when
// shutdown_grace is over: what is still held then is abandoned, and said so.
//
// Errors: an exception that escapes a completion handler (a bug) is logged and the event loop
// goes on; one request or job never takes the process down.
//
// Thread safety: on_stop, on_reload and holder are called before run(), from the thread that
// made the runtime. executor(), stop() and the tokens holder's function makes are thread-safe.
// The runtime outlives every part that runs on it: make it first, so that it is destroyed last,
// and close() it before the parts are destroyed.

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace dsr::app {

struct runtime_options {
  unsigned io_threads = 0;  // 0: one per core
  std::chrono::milliseconds shutdown_grace{20000};
  bool handle_signals = true;  // SIGTERM and SIGINT stop the process through the runtime
  bool reload_signal = false;  // with handle_signals: SIGHUP calls the on_reload action
};

class runtime {
 public:
  explicit runtime(runtime_options options);
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;
  ~runtime();

  // The io_context's executor: the parts run their coroutines on the runtime's threads.
  boost::asio::any_io_executor executor() const;

  // Called once when a stop begins, on the control strand, after the actions registered later.
  // It must not block: it begins the part's stop (closes a listener, cancels timers).
  void on_stop(std::function<void()> action);
  // Called on SIGHUP (reload_signal), on the control strand; a later call replaces it.
  void on_reload(std::function<void()> action);
  // Makes the tokens of work a graceful stop waits for: a connection being served, a job running.
  // Each token counts under `kind` ("connection", "job") in the stop's log lines until dropped.
  std::function<std::shared_ptr<void>()> holder(std::string kind);

  // Runs the event loop on io_threads threads (this one among them) until a stop has drained or
  // its grace is over. Call once.
  void run();
  // After run(), and after stopping whatever posts to the runtime from threads of its own (the
  // store thread): destroys the work a stop abandoned (a job or a connection still held when the
  // grace ended) while the parts it refers to still live. Nothing runs on the runtime afterwards.
  void close();
  // Begins a graceful stop. Thread-safe, idempotent; called before run(), the stop begins as
  // run() starts.
  void stop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace dsr::app
