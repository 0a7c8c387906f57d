#pragma once
// What the two engines' SQL shares (private to src/jobs/): both schemas name the jobs' columns
// alike and keep times as milliseconds since the epoch in 64-bit integers.

#include "dsr/common/clock.hpp"

#include <cstdint>

namespace dsr::detail {

inline std::int64_t ms(time_point t) {
  return t.time_since_epoch().count();
}
inline time_point from_ms(std::int64_t v) {
  return time_point{millis{v}};
}

// The states in which a job is finished (its outcome reported, or to be).
inline constexpr const char* finished_states =
    "('completed', 'user_not_found', 'failed', 'cancelled', 'missing_identifiers')";

// A job's row as both engines read it (read_job / read_jobs go by these positions).
inline constexpr const char* job_columns =
    "id, request_id, trace_id, operation, integration_id, source, request_type, created_at_ms, "
    "received_at_ms, updated_at_ms, subject, state, attempts, next_attempt_at_ms, lease_owner, "
    "lease_expires_at_ms, outcome, outcome_message, reported, report_error, report_attempts, "
    "subject_form, opt_out, right_id, right_name, right_type, subject_id_name, "
    "file_link_expires_at_ms, report_next_at_ms, report_gave_up, worker";

}  // namespace dsr::detail
