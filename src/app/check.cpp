// `dsr-connector check` (app/daemon.hpp): the "Test your integration" checks, from the command
// line, on an io_context of its own.

#include "dsr/app/daemon.hpp"
#include "dsr/app/startup.hpp"

#include "dsr/common/scratch_dir.hpp"
#include "dsr/config/config.hpp"
#include "dsr/credentials/credentials.hpp"
#include "dsr/exponea/client.hpp"
#include "dsr/ops/probe.hpp"
#include "dsr/http/client.hpp"
#include "dsr/ops/logging.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

namespace dsr::app {

int check(const std::filesystem::path& config_file, bool json) {
  ops::setup_bootstrap_logging();
  spdlog::set_level(spdlog::level::warn);
  const auto loaded = load_or_explain(config_file);
  if (!loaded) {
    return 2;
  }
  const config& cfg = *loaded;
  credential_load_report report;
  auto credentials = load_credentials(cfg.credentials, process_environment(), report);
  for (const auto& w : report.warnings) {
    fmt::print(stderr, "warning: {}\n", w);
  }
  for (const auto& e : report.errors) {
    fmt::print(stderr, "dsr-connector: {}\n", e);
  }
  boost::asio::io_context ioc;
  auto exponea_http = http::make_client(
      ioc.get_executor(),
      {cfg.exponea.base_url, cfg.exponea.timeout, cfg.exponea.ca_file, answer_in_memory_limit});
  if (!exponea_http) {
    fmt::print(stderr, "dsr-connector: {}: [exponea] base_url / ca_file: {}\n", cfg.source.string(),
               exponea_http.error().detail);
    return 2;
  }
  // The check exports an ID that cannot exist: nothing is kept, but the answer needs a scratch
  // directory of its own, created private and removed at exit (never a shared one changed).
  auto scratch = scratch_dir::create("dsr-connector-check");
  if (!scratch) {
    fmt::print(stderr, "dsr-connector: {}\n", scratch.error().detail);
    return 1;
  }
  auto api = exponea::make_api(std::move(*exponea_http), *credentials, make_system_clock(),
                               {scratch->path(), 1024 * 1024});
  std::unique_ptr<http::client> mineos;
  if (cfg.mineos.reporting()) {
    auto m =
        http::make_client(ioc.get_executor(), {cfg.mineos.api_base_url, cfg.exponea.timeout, ""});
    if (!m) {
      fmt::print(stderr, "dsr-connector: {}: [mineos] api_base_url: {}\n", cfg.source.string(),
                 m.error().detail);
      return 2;
    }
    mineos = std::move(*m);
  }
  exponea::check_context ctx{mineos.get(), credentials.get(), std::nullopt};
  auto checks = boost::asio::co_spawn(ioc, exponea::run_checks(*api, cfg, std::move(ctx)),
                                      boost::asio::use_future);
  ioc.run();
  const auto results = checks.get();
  if (json) {
    fmt::print("{}\n", exponea::checks_json(results).dump(2));
  } else {
    fmt::print("{}", exponea::checks_text(results));
  }
  return exponea::all_passed(results) ? 0 : 1;
}

}  // namespace dsr::app
