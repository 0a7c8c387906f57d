#pragma once
// `dsr-connector serve`: loads the configuration and credentials, opens the store, starts the
// listeners and runs until SIGTERM/SIGINT. Returns the process exit code (0 after a graceful
// stop, 1 on a runtime failure, 2 on a configuration or credential error).

#include <filesystem>
#include <string>

namespace dsr::app {

// "dsr-connector 0.1.0 (store schema: sqlite 6, postgresql 3)": the version and the store schemas
// it expects (docs/contract.md §8: a newer daemon migrates them), for --version.
std::string version_text();

int serve(const std::filesystem::path& config_file);

// `dsr-connector check`: the "Test your integration" checks, one line each (or the isTest JSON
// body with `json`). Writes nothing anywhere. 0 when nothing failed, 1 otherwise, 2 on a
// configuration error.
int check(const std::filesystem::path& config_file, bool json);

// `dsr-connector requests list [--state S] | show ID | retry ID | cancel ID`: the admin API at
// admin_listen (else listen; a wildcard host is reached on loopback), authenticated with
// admin_token. Tables, or the API's JSON with `json`. 0 ok; 1 the daemon refused or cannot be
// reached (the message says which); 2 a configuration or credential error.
int requests(const std::filesystem::path& config_file, const std::string& command,
             const std::string& id, const std::string& state, bool json);

// `dsr-connector store migrate --from sqlite:PATH`: every job of the SQLite store at PATH moved
// into the configuration's empty PostgreSQL store (docs/contract.md §8), the SQLite file left as
// it is. 0 done; 1 refused or failed, nothing written (a daemon has the file open, the PostgreSQL
// store holds jobs, a database error); 2 a usage, configuration or credential error.
int store_migrate(const std::filesystem::path& config_file, const std::string& from);

}  // namespace dsr::app
