// exponea-sim: serves the Exponea simulator on a loopback address until SIGTERM/SIGINT.
//   exponea-sim --seed config/exponea-sim.example.json [--listen 127.0.0.1:8090]

#include "dsr/app/runtime.hpp"
#include "dsr/http/server.hpp"
#include "dsr/ops/logging.hpp"
#include "dsr/sim/exponea_sim.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <fstream>
#include <thread>

int main(int argc, char** argv) {
  CLI::App app{"exponea-sim: a stand-in for the Bloomreach Engagement API (tests, demos, staging)"};
  std::string seed_file;
  std::string listen = "127.0.0.1:8090";
  app.add_option("--seed", seed_file, "JSON file with credentials, permissions and customers")
      ->required();
  app.add_option("--listen", listen, "host:port to listen on (port 0: any free port)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  dsr::ops::setup_bootstrap_logging();
  nlohmann::json seed;
  try {
    std::ifstream in(seed_file);
    if (!in) {
      throw std::runtime_error("cannot read the file");
    }
    seed = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    fmt::print(stderr, "exponea-sim: {}: {}\n", seed_file, e.what());
    return 2;
  }
  std::string problem;
  const auto where = dsr::parse_endpoint(listen, problem);
  if (!where) {
    fmt::print(stderr, "exponea-sim: --listen: {}\n", problem);
    return 2;
  }

  // Delayed answers (latency, hung calls) run on their own timer thread.
  boost::asio::io_context timers;
  auto work = boost::asio::make_work_guard(timers);
  std::thread timer_thread([&] { timers.run(); });
  auto later = [&timers](std::chrono::milliseconds delay, std::function<void()> fn) {
    auto t = std::make_shared<boost::asio::steady_timer>(timers, delay);
    t->async_wait([t, fn = std::move(fn)](const boost::system::error_code&) { fn(); });
  };

  int code = 0;
  try {
    dsr::sim::exponea_simulator sim(seed, dsr::make_system_clock(), later);
    dsr::app::runtime_options process;
    process.shutdown_grace = std::chrono::seconds(2);
    dsr::app::runtime runtime(process);
    dsr::http::server_options options;
    options.listen = *where;
    options.hold = runtime.holder("connection");
    // Copy reports carry whole exports: the fake MineOS endpoint takes large bodies. An answer
    // is written whole within one read timeout: a 1 GiB export (make soak) needs more than 10 s.
    options.max_body_bytes = std::size_t{1} << 30;
    options.read_timeout = std::chrono::minutes(5);
    auto server = dsr::http::make_server(runtime.executor(), options, sim);
    if (!server) {
      fmt::print(stderr, "exponea-sim: {}\n", server.error().detail);
      code = 1;
    } else {
      spdlog::info("exponea-sim listening on http://{}",
                   (*server)->local_endpoint(dsr::http::listener::public_)->to_string());
      runtime.on_stop([s = server->get()] { s->stop(); });
      runtime.run();
    }
  } catch (const std::invalid_argument& e) {
    fmt::print(stderr, "exponea-sim: {}\n", e.what());
    code = 2;
  }
  work.reset();
  timers.stop();
  timer_thread.join();
  return code;
}
