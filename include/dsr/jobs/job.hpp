#pragma once
// Jobs: one accepted MineOS delete or copy request, from intake to its reported outcome.

#include "dsr/common/clock.hpp"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dsr {

enum class operation { delete_, copy };

enum class job_state { queued, running, retrying, completed, user_not_found, failed, cancelled };

std::string_view to_string(operation op);
std::string_view to_string(job_state s);
std::optional<operation> parse_operation(std::string_view s);
std::optional<job_state> parse_job_state(std::string_view s);
// queued, running and retrying: the job can still run and counts against max_queued_jobs.
bool is_active(job_state s);

// What intake knows about a new request. `subject_email` is personal data: it never leaves the
// store except towards Exponea, and is never logged above trace level.
struct new_job {
  operation op = operation::delete_;
  std::string request_id;
  std::string trace_id;
  std::string integration_id;
  std::string source;                    // request.source ("Form", "MineApp", ...)
  std::string request_type;              // request.requestType.id or request.type, as sent
  std::optional<time_point> created_at;  // the request's createdAt, when MineOS sent one
  time_point received_at;
  std::string subject_email;
};

// One journal line: a step ("received", "export", "track", ...) and its result ("started",
// "done", an error text without personal data).
struct job_step {
  time_point at;
  std::string step;
  std::string result;
};

struct job {
  std::int64_t id = 0;
  operation op = operation::delete_;
  std::string request_id;
  std::string trace_id;
  std::string integration_id;
  std::string source;
  std::string request_type;
  std::optional<time_point> created_at;
  time_point received_at;
  time_point updated_at;
  std::string subject_email;
  job_state state = job_state::queued;
  std::uint32_t attempts = 0;
  time_point next_attempt_at;
  std::string lease_owner;  // "" when not leased
  std::optional<time_point> lease_expires_at;
  std::string outcome;          // MineOS status sent or to be sent ("Completed", ...); "" if none
  std::string outcome_message;  // message sent with it
  bool reported = false;
  std::optional<std::string> report_error;
  std::uint32_t report_attempts = 0;
  std::vector<job_step> history;

  // The legal due date: createdAt (or receipt) + deadline_days.
  time_point due_at(std::uint32_t deadline_days) const;
};

// The legal deadline (contract §3 [jobs]): due `days` after createdAt (or receipt); flagged
// `warning_days` before.
struct deadline_policy {
  std::uint32_t days = 30;
  std::uint32_t warning_days = 7;
};

// Where an unfinished job (queued, running, retrying, failed) stands at `now`: "overdue" past its
// due date, "due_soon" within the warning period, else "ok"; "" for a finished job.
std::string_view deadline_status(const job& j, deadline_policy d, time_point now);

// The job view of contract §4 (never the e-mail), plus `deadline` (deadline_status, null when
// finished).
nlohmann::json job_view(const job& j, deadline_policy d, time_point now);

}  // namespace dsr
