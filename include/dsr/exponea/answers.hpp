#pragma once
// Exponea's answers sorted into the contract's classes (docs/contract.md §5): one table for every
// call, so that callers decide retry, pause or fail the same way. Pure functions over status, body
// and headers: no I/O (and a fuzz target, tests/fuzz/).

#include "dsr/common/clock.hpp"
#include "dsr/common/error.hpp"

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace dsr::exponea {

// The contract's classes of answers.
enum class answer_class {
  ok,         // done
  not_found,  // the customer does not exist
  transient,  // 429, 5xx, timeout, connection error: retry with backoff
  rejected,   // a credential or permission was refused: pause, naming `value`
  failed,     // any other 4xx (or success:false): fail the job with Exponea's text
};

std::string_view to_string(answer_class c);

struct call_error {
  answer_class kind = answer_class::failed;
  unsigned status = 0;  // HTTP status; 0 for a transport failure
  std::string message;  // Exponea's error text, or the transport problem; never a secret
  std::string value;    // for `rejected`: the credential or permission to fix
  std::optional<std::chrono::milliseconds> retry_after;  // from a Retry-After header
};

[[noreturn]] void throw_exception_from_error(const call_error& e,
                                             const boost::source_location& loc);

template <class T>
using outcome = boost::system::result<T, call_error>;

// Which credentials authenticated a call: Basic (api key + secret) or Token (api token).
enum class auth { basic, token };

// What a call was for; the same status means different things on different endpoints.
enum class endpoint {
  export_one,
  track,
  anonymize,
  system_time,
  consent_categories,
  batch,           // tracking commands in one request
  anonymize_bulk,  // customers anonymized in one request
};

// "export-one", "track", "anonymize", "system-time", "consent-categories", "batch",
// "anonymize-bulk": the metrics' endpoint label.
std::string_view to_string(endpoint ep);

// The error text of an Exponea answer: `error`, `errors` (list or map of lists), `message`, or
// the plain body (trimmed, at most 300 characters). "" for an empty body.
std::string error_text(std::string_view body);

// Classifies one HTTP answer. `now` turns an HTTP-date Retry-After into a delay.
call_error classify(unsigned status, std::string_view body,
                    std::optional<std::string_view> retry_after, auth used, endpoint ep,
                    time_point now);

// Classifies a transport failure (errc::upstream_*).
call_error classify(const failure& f);

// Why a job is retried: a transient error's cause, which the dispatcher's gate acts on (a 429 is
// left to the limiter) and the metrics count by its name.
enum class retry_reason {
  other,         // "other"
  rate_limited,  // "rate_limited": 429
  server_error,  // "server_error": 5xx
  timeout,       // "timeout": no answer in time
  network,       // "network": no answer at all
  internal       // "internal": the flow itself failed (an exception), not Exponea
};
std::string_view to_string(retry_reason r);

// The retry_reason of a transient error (other for any other class).
retry_reason reason_of(const call_error& e);

// A Retry-After header as a delay: delta-seconds or an HTTP-date (from `now`); nullopt when absent
// or malformed.
std::optional<std::chrono::milliseconds> parse_retry_after(std::optional<std::string_view> v,
                                                           time_point now);

// A refused credential or permission: `value` names what to fix.
call_error rejection(unsigned status, std::string message, std::string value);

}  // namespace dsr::exponea
