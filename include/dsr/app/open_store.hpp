#pragma once
// The job store `serve` runs on, opened in one step: where the store engine is chosen ([store]
// engine, docs/contract.md §8). Ready for the dispatcher when it returns: with SQLite every lease a
// killed predecessor left is expired (its jobs resume from their journal), and the [store]
// max_size_mb cap is set; with PostgreSQL a predecessor's leases run out as any dead daemon's do
// (the dispatcher's sweep), since another daemon may still hold them.
//
// SQLite is used by one daemon per store: an exclusive lock on "<store>.lock", held for the
// process's life, is what makes expiring every lease at start-up safe (their owner is dead).
//
// Errors: a store another daemon holds, or one that cannot be opened (I/O error, failed integrity
// check, a schema from a newer build), as a failure whose detail names the file and what to do.
// Called once, on the main thread, before the runtime runs.

#include "dsr/common/error.hpp"
#include "dsr/config/config.hpp"
#include "dsr/jobs/store.hpp"

#include <memory>
#include <string>
#include <vector>

namespace dsr::app {

// `subject_key`: store_key's 32 bytes (the store derives its sealing keys from them);
// `password`: store_password, "" when not given (libpq's own sources then).
// One store for SQLite; pg_connections for PostgreSQL, each on a connection of its own (the
// store_worker runs a thread on each).
result<std::vector<std::unique_ptr<job_store>>> open_store(const config& cfg,
                                                           const std::string& subject_key,
                                                           const std::string& password);

// How many connections a daemon opens to PostgreSQL: its store threads.
inline constexpr std::size_t pg_connections = 4;

}  // namespace dsr::app
