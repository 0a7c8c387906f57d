#include "dsr/app/open_store.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace dsr::app {
namespace {

// The descriptor stays open until exit: the lock lasts as long as the process.
result<void> lock_store(const std::filesystem::path& store) {
  std::error_code ec;
  std::filesystem::create_directories(store.parent_path(), ec);
  const auto path = store.string() + ".lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return make_failure(errc::io_error,
                        fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return make_failure(errc::conflict,
                        fmt::format("another dsr-connector is using the job store {} (lock {} is "
                                    "held); run one daemon per store",
                                    store.string(), path));
  }
  return {};
}

result<std::unique_ptr<job_store>> open_sqlite(const config& cfg, const std::string& subject_key) {
  if (auto locked = lock_store(cfg.store.path); !locked) {
    return locked.error();
  }
  sqlite_store_options options;
  options.path = cfg.store.path;
  options.subject_key = subject_key;
  auto store = open_sqlite_store(options);
  if (!store) {
    return store;
  }
  auto log = spdlog::get("main");
  if (auto active = (*store)->count_active()) {
    log->info("job store {} open: {} job(s) queued or running", cfg.store.path.string(), *active);
  }
  // The lock proves the previous owner of any lease is gone: its jobs go back to the queue.
  if (auto expired = (*store)->expire_leases(time_point::max()); expired && *expired > 0) {
    log->info("{} job(s) interrupted by the previous run resume from their journal", *expired);
  }
  return store;
}

result<std::unique_ptr<job_store>> open_postgres(const config& cfg, const std::string& subject_key,
                                                 const std::string& password) {
  postgres_store_options options;
  options.url = cfg.store.url;
  options.password = password;
  options.subject_key = subject_key;
  auto store = open_postgres_store(options);
  if (!store) {
    return store;
  }
  if (auto active = (*store)->count_active()) {
    spdlog::get("main")->info("job store on PostgreSQL open: {} job(s) queued or running", *active);
  }
  return store;
}

}  // namespace

result<std::vector<std::unique_ptr<job_store>>> open_store(const config& cfg,
                                                           const std::string& subject_key,
                                                           const std::string& password) {
  const bool postgres = cfg.store.engine == store_engine_kind::postgresql;
  auto first = postgres ? open_postgres(cfg, subject_key, password) : open_sqlite(cfg, subject_key);
  if (!first) {
    return first.error();
  }
  std::vector<std::unique_ptr<job_store>> stores;
  stores.push_back(std::move(*first));
  // The first one migrated the schema: the others only connect.
  while (postgres && stores.size() < pg_connections) {
    postgres_store_options options;
    options.url = cfg.store.url;
    options.password = password;
    options.subject_key = subject_key;
    auto more = open_postgres_store(options);
    if (!more) {
      return more.error();
    }
    stores.push_back(std::move(*more));
  }
  if (cfg.store.max_size_mb != 0) {
    if (auto r = stores.front()->set_max_size(cfg.store.max_size_mb << 20); !r) {
      spdlog::get("main")->warn("[store] max_size_mb: {}", r.error().detail);
    }
  }
  return stores;
}

}  // namespace dsr::app
