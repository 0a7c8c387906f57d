// dsr-connector's command line: parses arguments and hands over to the component that does the
// work. Exit codes: 0 ok, 1 runtime failure or failed check, 2 usage or configuration error.

#include "dsr/app/daemon.hpp"
#include "dsr/app/hardening.hpp"

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <string>

int main(int argc, char** argv) {
  // Before anything is read or written: private files, no core dumps (app/hardening.hpp).
  for (const auto& problem : dsr::app::harden_process()) {
    fmt::print(stderr, "dsr-connector: warning: {}\n", problem);
  }
  CLI::App app{
      "dsr-connector: fulfils MineOS privacy requests (delete, copy) in Bloomreach "
      "Engagement"};
  app.set_version_flag("--version", dsr::app::version_text());
  app.require_subcommand(1);

  std::string config_file;
  auto* serve = app.add_subcommand("serve", "Run the daemon in the foreground (logs to stderr)");
  serve->add_option("-c,--config", config_file, "Configuration file (TOML)")->required();

  bool json = false;
  auto* check = app.add_subcommand(
      "check", "Test the integration: check every credential and permission without writing");
  check->add_option("-c,--config", config_file, "Configuration file (TOML)")->required();
  check->add_flag("--json", json, "Print the isTest answer body as JSON");

  auto* requests = app.add_subcommand("requests", "List and manage jobs through the admin API");
  requests->add_option("-c,--config", config_file, "Configuration file (TOML)")->required();
  requests->add_flag("--json", json, "Print the admin API's JSON instead of a table");
  requests->require_subcommand(1);
  std::string state;
  std::string id;
  auto* list = requests->add_subcommand("list", "List jobs, newest first (at most 1000)");
  list->add_option("--state", state,
                   "Only jobs in this state: queued, running, retrying, completed, "
                   "user_not_found, missing_identifiers, failed, cancelled");
  list->add_flag("--json", json, "Print the admin API's JSON instead of a table");
  const std::vector<std::pair<const char*, const char*>> verbs{
      {"show", "Show one job and its history"},
      {"retry", "Run a failed job again, or re-send an unacknowledged report"},
      {"cancel", "Cancel a queued or retrying job (MineOS is told Failed)"}};
  for (const auto& [verb, what] : verbs) {
    auto* sub = requests->add_subcommand(verb, what);
    sub->add_option("ID", id, "The request id")->required();
    sub->add_flag("--json", json, "Print the admin API's JSON");
  }

  auto* store = app.add_subcommand("store", "Manage the job store");
  store->require_subcommand(1);
  std::string from;
  auto* migrate = store->add_subcommand(
      "migrate", "Move every job of an SQLite store into the empty PostgreSQL store of --config");
  migrate->add_option("--from", from, "The SQLite store to move: sqlite:PATH")->required();
  migrate
      ->add_option("-c,--config", config_file,
                   "Configuration file (TOML) with [store] engine = \"postgresql\"")
      ->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  if (serve->parsed()) {
    return dsr::app::serve(config_file);
  }
  if (check->parsed()) {
    return dsr::app::check(config_file, json);
  }
  if (migrate->parsed()) {
    return dsr::app::store_migrate(config_file, from);
  }
  for (auto* sub : requests->get_subcommands()) {
    return dsr::app::requests(config_file, sub->get_name(), id, state, json);
  }
  return 2;
}
