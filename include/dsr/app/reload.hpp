#pragma once
// The reload (SIGHUP): the configuration file and the credentials read again. What a running
// process can take is applied at once, each through its owner's thread-safe setter: the
// credentials (swapped for every reader at once), [log] level, [exponea] max_requests_per_second,
// [retry], [store] max_size_mb, and a renewed TLS certificate; a pause of dispatch or reporting
// ends. Other changes wait for a restart, and a warning names them. A reload that fails (a bad
// file, a missing or invalid credential) changes nothing and logs why. systemd hears RELOADING=1,
// then READY=1.
//
// Runs on the runtime's control strand (runtime::on_reload); the parts must outlive the runtime's
// run.

#include "dsr/config/config.hpp"

namespace dsr {
class dispatcher;
class async_store;
class swappable_credentials;
}  // namespace dsr
namespace dsr::exponea {
class limiter;
}
namespace dsr::http {
class server;
}
namespace dsr::mineos {
class reporter;
}

namespace dsr::app {

// The parts a reload changes.
struct reload_targets {
  const config& running;  // read again from running.source
  swappable_credentials& credentials;
  exponea::limiter& spacing;
  dispatcher& jobs;
  mineos::reporter* reporter;  // null when reporting is off
  async_store& store;
  http::server& listener;
};

void reload(const reload_targets& to);

}  // namespace dsr::app
