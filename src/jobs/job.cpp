#include "dsr/jobs/job.hpp"

#include "dsr/common/time.hpp"

#include <nlohmann/json.hpp>

#include <array>
#include <utility>

namespace dsr {
namespace {

constexpr std::array<std::pair<job_state, std::string_view>, 7> state_names{{
    {job_state::queued, "queued"},
    {job_state::running, "running"},
    {job_state::retrying, "retrying"},
    {job_state::completed, "completed"},
    {job_state::user_not_found, "user_not_found"},
    {job_state::failed, "failed"},
    {job_state::cancelled, "cancelled"},
}};

}  // namespace

std::string_view to_string(operation op) {
  return op == operation::delete_ ? "delete" : "copy";
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
  if (s == "delete") {
    return operation::delete_;
  }
  if (s == "copy") {
    return operation::copy;
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
    history.push_back({{"at", format_rfc3339(s.at)}, {"step", s.step}, {"result", s.result}});
  }
  return {
      {"requestId", j.request_id},
      {"operation", to_string(j.op)},
      {"state", to_string(j.state)},
      {"attempts", j.attempts},
      {"createdAt", j.created_at ? nlohmann::json(format_rfc3339(*j.created_at)) : nullptr},
      {"receivedAt", format_rfc3339(j.received_at)},
      {"updatedAt", format_rfc3339(j.updated_at)},
      {"dueAt", format_rfc3339(j.due_at(d.days))},
      {"deadline", deadline.empty() ? nlohmann::json(nullptr) : nlohmann::json(deadline)},
      {"outcome", j.outcome.empty() ? nlohmann::json(nullptr) : nlohmann::json(j.outcome)},
      {"reported", j.reported},
      {"reportError", j.report_error ? nlohmann::json(*j.report_error) : nullptr},
      {"history", std::move(history)},
  };
}

}  // namespace dsr
