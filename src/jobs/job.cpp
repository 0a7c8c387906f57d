#include "dsr/jobs/job.hpp"

#include "dsr/common/time.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <utility>

namespace dsr {
namespace {

constexpr std::array<std::pair<job_state, std::string_view>, job_state_count> state_names{{
    {job_state::queued, "queued"},
    {job_state::running, "running"},
    {job_state::retrying, "retrying"},
    {job_state::completed, "completed"},
    {job_state::user_not_found, "user_not_found"},
    {job_state::failed, "failed"},
    {job_state::cancelled, "cancelled"},
    {job_state::missing_identifiers, "missing_identifiers"},
}};

constexpr std::array<std::pair<operation, std::string_view>, 3> operation_names{{
    {operation::delete_, "delete"},
    {operation::opt_out, "opt_out"},
    {operation::copy, "copy"},
}};

constexpr std::array<std::pair<job_outcome, std::string_view>, 5> outcome_names{{
    {job_outcome::none, ""},
    {job_outcome::completed, "Completed"},
    {job_outcome::user_not_found, "UserNotFound"},
    {job_outcome::failed, "Failed"},
    {job_outcome::missing_identifiers, "MissingIdentifiers"},
}};

// The names of the steps; attempt and consent are followed by a space and their detail.
constexpr std::array<std::pair<step_kind, std::string_view>, 9> step_names{{
    {step_kind::received, "received"},
    {step_kind::attempt, "attempt"},
    {step_kind::paused, "paused"},
    {step_kind::stopped, "stopped"},
    {step_kind::operator_action, "operator"},
    {step_kind::track, "track"},
    {step_kind::anonymize, "anonymize"},
    {step_kind::verify, "verify"},
    {step_kind::consent, "consent"},
}};

bool has_detail(step_kind k) {
  return k == step_kind::attempt || k == step_kind::consent;
}

}  // namespace

std::string_view to_string(job_outcome o) {
  for (const auto& [v, text] : outcome_names) {
    if (v == o) {
      return text;
    }
  }
  return "";
}

std::optional<job_outcome> parse_job_outcome(std::string_view s) {
  for (const auto& [v, text] : outcome_names) {
    if (text == s) {
      return v;
    }
  }
  return std::nullopt;
}

step_name step_name::attempt(std::uint32_t n) {
  return {step_kind::attempt, std::to_string(n)};
}

step_name step_name::consent(std::string_view category) {
  return {step_kind::consent, std::string(category)};
}

std::string to_string(const step_name& s) {
  for (const auto& [k, text] : step_names) {
    if (k == s.kind) {
      return has_detail(k) ? std::string(text) + " " + s.detail : std::string(text);
    }
  }
  return s.detail;  // other
}

step_name parse_step(std::string_view text) {
  for (const auto& [k, name] : step_names) {
    if (!has_detail(k) && text == name) {
      return {k};
    }
    // "attempt 3", "consent newsletter": the name, one space, a detail that is not empty. A
    // detail that would not print back the same ("attempt x") leaves the text `other`.
    if (has_detail(k) && text.size() > name.size() + 1 && text.starts_with(name) &&
        text[name.size()] == ' ') {
      const auto detail = text.substr(name.size() + 1);
      const bool number =
          std::all_of(detail.begin(), detail.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (k == step_kind::consent || number) {
        return {k, std::string(detail)};
      }
    }
  }
  return {step_kind::other, std::string(text)};
}

std::string_view to_string(operation op) {
  for (const auto& [o, text] : operation_names) {
    if (o == op) {
      return text;
    }
  }
  return "unknown";
}

mineos_action action_of(operation op) {
  return op == operation::copy ? mineos_action::copy : mineos_action::delete_;
}

std::string_view to_string(mineos_action a) {
  return a == mineos_action::copy ? "Copy" : "Delete";
}

std::string_view to_string(job_state s) {
  for (const auto& [state, text] : state_names) {
    if (state == s) {
      return text;
    }
  }
  return "unknown";
}

std::optional<operation> parse_operation(std::string_view s) {
  for (const auto& [o, text] : operation_names) {
    if (text == s) {
      return o;
    }
  }
  return std::nullopt;
}

std::optional<job_state> parse_job_state(std::string_view s) {
  for (const auto& [state, text] : state_names) {
    if (text == s) {
      return state;
    }
  }
  return std::nullopt;
}

bool is_active(job_state s) {
  return s == job_state::queued || s == job_state::running || s == job_state::retrying;
}

time_point job::due_at(std::uint32_t deadline_days) const {
  return created_at.value_or(received_at) + std::chrono::days{deadline_days};
}

std::string_view deadline_status(const job& j, deadline_policy d, time_point now) {
  if (!is_active(j.state) && j.state != job_state::failed) {
    return "";
  }
  const auto due = j.due_at(d.days);
  if (now >= due) {
    return "overdue";
  }
  if (now >= due - std::chrono::days{d.warning_days}) {
    return "due_soon";
  }
  return "ok";
}

nlohmann::json job_view(const job& j, deadline_policy d, time_point now) {
  const auto deadline = deadline_status(j, d, now);
  nlohmann::json history = nlohmann::json::array();
  for (const auto& s : j.history) {
    history.push_back(
        {{"at", format_rfc3339(s.at)}, {"step", to_string(s.step)}, {"result", s.result}});
  }
  return {
      {"requestId", j.request_id},
      {"operation", to_string(j.op)},
      {"requestType",
       j.request_type.empty() ? nlohmann::json(nullptr) : nlohmann::json(j.request_type)},
      {"state", to_string(j.state)},
      {"attempts", j.attempts},
      {"worker", j.worker.empty() ? nlohmann::json(nullptr) : nlohmann::json(j.worker)},
      {"createdAt", j.created_at ? nlohmann::json(format_rfc3339(*j.created_at)) : nullptr},
      {"receivedAt", format_rfc3339(j.received_at)},
      {"updatedAt", format_rfc3339(j.updated_at)},
      {"dueAt", format_rfc3339(j.due_at(d.days))},
      {"deadline", deadline.empty() ? nlohmann::json(nullptr) : nlohmann::json(deadline)},
      {"outcome", j.outcome == job_outcome::none ? nlohmann::json(nullptr)
                                                 : nlohmann::json(to_string(j.outcome))},
      {"reported", j.reported},
      {"reportError", j.report_error ? nlohmann::json(*j.report_error) : nullptr},
      {"history", std::move(history)},
  };
}

}  // namespace dsr
