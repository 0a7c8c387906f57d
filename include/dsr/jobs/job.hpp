#pragma once
// Jobs: one accepted MineOS delete, opt-out or copy request, from intake to its reported outcome.

#include "dsr/common/clock.hpp"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dsr {

// What the daemon does (docs/contract.md §4): `delete_` anonymizes (an erase right), `opt_out`
// revokes consent (an opt-out right); both arrive at the Delete URL. `copy` exports.
enum class operation { delete_, opt_out, copy };

enum class job_state {
  queued,
  running,
  retrying,
  completed,
  user_not_found,
  failed,
  cancelled,
  missing_identifiers  // accepted without any identifier: reported MissingIdentifiers at once
};
inline constexpr std::size_t job_state_count = 8;

// The MineOS action a job closes (the report's `action`): Delete for delete and opt-out, Copy.
enum class mineos_action { delete_, copy };
mineos_action action_of(operation op);
std::string_view to_string(mineos_action a);  // "Delete", "Copy"

std::string_view to_string(operation op);
std::string_view to_string(job_state s);
std::optional<operation> parse_operation(std::string_view s);
std::optional<job_state> parse_job_state(std::string_view s);
// queued, running and retrying: the job can still run and counts against max_queued_jobs.
bool is_active(job_state s);

// The MineOS status a finished job reports (docs/contract.md §6 `status`); `none` until it has
// one. The store keeps it, and the job view and the report show it, by its name.
enum class job_outcome { none, completed, user_not_found, failed, missing_identifiers };
// "" (none), "Completed", "UserNotFound", "Failed", "MissingIdentifiers".
std::string_view to_string(job_outcome o);
// The inverse of to_string ("" is none); nullopt for any other text.
std::optional<job_outcome> parse_job_outcome(std::string_view s);

// What a journal line is about. The store keeps it, and the job view shows it (history[].step),
// by its name: "received", "attempt <n>", "paused", "stopped", "operator", "track", "anonymize",
// "verify", "consent <category id>".
enum class step_kind {
  received,         // intake stored the job
  attempt,          // how attempt <n> ended (0: the job ended at intake)
  paused,           // a rejected credential paused the job; no attempt used
  stopped,          // a shutdown stopped the job; it resumes from its journal
  operator_action,  // "operator": an operator's retry or cancel
  track,            // the audit event
  anonymize,
  verify,
  consent,  // one consent category's reject event
  other     // a name this build does not know (written by another version): kept as written
};

struct step_name {
  step_kind kind = step_kind::other;
  // attempt: the attempt's number; consent: the category id; other: the whole name; else "".
  std::string detail;

  step_name() = default;
  step_name(step_kind k, std::string d = {}) : kind(k), detail(std::move(d)) {}  // NOLINT
  static step_name attempt(std::uint32_t n);
  static step_name consent(std::string_view category);

  friend bool operator==(const step_name&, const step_name&) = default;
};
// "attempt 3", "consent newsletter", "track", ...: the name as stored.
std::string to_string(const step_name& s);
// The inverse of to_string; never fails: a name it does not know is `other`, kept whole, so that
// to_string(parse_step(t)) == t for every t.
step_name parse_step(std::string_view text);

// The right a Delete-URL request carries, as received (config/request_types.hpp): kept so that a
// job is routed again when it runs (a retried job whose right was not handled, say).
struct job_right {
  std::string id;    // request.requestType.id
  std::string name;  // request.requestType.name
  std::string type;  // request.type

  friend bool operator==(const job_right&, const job_right&) = default;
};

// A job that ends at intake, without any call to Exponea: no identifier (MissingIdentifiers), or
// a right this integration does not handle (Failed).
struct intake_outcome {
  job_state state = job_state::failed;
  job_outcome outcome = job_outcome::failed;  // the MineOS status
  std::string message;
};

// What intake knows about a new request. `subject` is personal data: it never leaves the store
// except towards Exponea, and is never logged above trace level.
struct new_job {
  operation op = operation::delete_;
  std::string request_id;
  std::string trace_id;
  std::string integration_id;
  std::string source;        // request.source ("Form", "MineApp", ...)
  std::string request_type;  // the right as the job view shows it (requestType)
  job_right right;
  std::optional<time_point> created_at;  // the request's createdAt, when MineOS sent one
  time_point received_at;
  // The one Exponea ID of the subject (docs/contract.md §4 "Identifiers"): `subject_id_name` is ""
  // for the e-mail (sent as [exponea] customer_id_type, lower-cased when lowercase_ids), else the
  // ID name a custom field maps to; `subject` is the value ("" when there is none).
  std::string subject_id_name;
  std::string subject;
  std::optional<intake_outcome> ended;  // set: the job is stored finished, its report due
};

// One journal line: a step (step_name) and its result ("started", "done", an error text without
// personal data).
struct job_step {
  time_point at;
  step_name step;
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
  job_right right;
  std::optional<time_point> created_at;
  time_point received_at;
  time_point updated_at;
  std::string subject_id_name;  // see new_job
  std::string subject;
  job_state state = job_state::queued;
  std::uint32_t attempts = 0;
  time_point next_attempt_at;
  std::string lease_owner;  // "" when not leased
  std::optional<time_point> lease_expires_at;
  std::string worker;  // the daemon that last ran it ([jobs] worker_name), "" before its first run
  job_outcome outcome = job_outcome::none;  // MineOS status sent or to be sent
  std::string outcome_message;              // message sent with it
  bool reported = false;
  std::optional<std::string> report_error;
  std::uint32_t report_attempts = 0;
  // A copy reported as a file link: when the link (and the export) expires.
  std::optional<time_point> file_link_expires_at;
  std::vector<job_step> history;

  // The legal due date: createdAt (or receipt) + deadline_days.
  time_point due_at(std::uint32_t deadline_days) const;
};

// The daemon a run's lease owner names (the job view's "worker"): "<name>:<random>/<run>" as
// dispatcher_options::owner and startup.hpp owner_id make it, without its last two parts.
inline std::string worker_of(std::string_view owner) {
  owner = owner.substr(0, owner.rfind('/'));
  if (const auto colon = owner.rfind(':'); colon != std::string_view::npos) {
    owner = owner.substr(0, colon);
  }
  return std::string(owner);
}

// The legal deadline (docs/contract.md §3 [jobs]): due `days` after createdAt (or receipt); flagged
// `warning_days` before.
struct deadline_policy {
  std::uint32_t days = 30;
  std::uint32_t warning_days = 7;
};

// Where an unfinished job (queued, running, retrying, failed) stands at `now`: "overdue" past its
// due date, "due_soon" within the warning period, else "ok"; "" for a finished job.
std::string_view deadline_status(const job& j, deadline_policy d, time_point now);

// The job view of docs/contract.md §4 (never the e-mail), plus `deadline` (deadline_status, null
// when finished).
nlohmann::json job_view(const job& j, deadline_policy d, time_point now);

}  // namespace dsr
