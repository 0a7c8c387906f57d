#pragma once
// The project's error vocabulary: an error enum with its category, and `failure`, an error code
// with a human-readable detail that names what is wrong and what to do. Domain, store, config and
// credential functions return `dsr::result<T>`; network code inside the io_context uses plain
// error codes.

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <string>
#include <type_traits>

namespace dsr {

enum class errc {
  invalid_input = 1,     // the caller's input is malformed; detail names the field
  not_found,             // the thing asked for does not exist
  conflict,              // the request contradicts stored state
  queue_full,            // max_queued_jobs reached
  store_unavailable,     // the store cannot commit (I/O error, disk full, locked)
  store_corrupt,         // the store failed its integrity check or has an unknown schema
  lease_lost,            // the job's lease is no longer held by this owner
  io_error,              // a file could not be read or written
  upstream_timeout,      // an HTTP call to a peer did not complete within its timeout
  upstream_unreachable,  // a peer could not be resolved or connected to, or dropped the connection
  upstream_tls,          // a peer's TLS handshake or certificate verification failed
  upstream_protocol,     // a peer answered with something that is not valid HTTP
  upstream_too_large,    // a peer's answer exceeded the size limit
  store_schema_newer,    // the store's schema is newer than this build: run a newer build
  unsupported,           // this engine or build does not do that (one daemon: nothing shared)
};

const boost::system::error_category& dsr_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), dsr_category()};
}

// An error code plus a sentence for the operator. The detail never holds a secret or an e-mail.
struct failure {
  boost::system::error_code code;
  std::string detail;

  bool is(errc e) const noexcept { return code == make_error_code(e); }
};

inline failure make_failure(errc e, std::string detail) {
  return failure{make_error_code(e), std::move(detail)};
}

// Called by boost::system::result<T, failure>::value() on an error: throws system_error.
[[noreturn]] void throw_exception_from_error(const failure& f, const boost::source_location& loc);

template <class T>
using result = boost::system::result<T, failure>;

}  // namespace dsr

template <>
struct boost::system::is_error_code_enum<dsr::errc> : std::true_type {};
