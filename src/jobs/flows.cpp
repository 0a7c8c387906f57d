#include "dsr/jobs/flows.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace dsr {
namespace {

using kind = flow_outcome::kind;

bool journaled(const job& j, const step_name& step, std::string_view result) {
  return std::any_of(j.history.begin(), j.history.end(),
                     [&](const job_step& s) { return s.step == step && s.result == result; });
}

// The journal step of one consent category's reject event.
step_name consent_step(std::string_view category) {
  return step_name::consent(category);
}

// The timestamp of the last `started <timestamp>` of `step` not followed by `done`, if any.
std::optional<std::int64_t> started_at(const job& j, const step_name& step) {
  std::optional<std::int64_t> at;
  for (const auto& s : j.history) {
    if (s.step != step) {
      continue;
    }
    if (s.result == "done") {
      at.reset();
    } else if (s.result.starts_with("started ")) {
      std::int64_t v = 0;
      const auto text = std::string_view(s.result).substr(8);
      const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec == std::errc{} && p == text.data() + text.size()) {
        at = v;
      }
    }
  }
  return at;
}

// When the first anonymize was started, if ever.
std::optional<time_point> anonymize_started_at(const job& j) {
  for (const auto& s : j.history) {
    if (s.step.kind == step_kind::anonymize && s.result == "started") {
      return s.at;
    }
  }
  return std::nullopt;
}

// Whether the last anonymize an earlier attempt sent was answered (journaled `done`). It may
// instead have stopped on a 429 (Exponea dropped it), another error, a lost answer or a crash.
bool last_anonymize_answered(const job& j) {
  bool answered = false;
  for (const auto& s : j.history) {
    if (s.step.kind == step_kind::anonymize) {
      answered = s.result == "done";
    }
  }
  return answered;
}

flow_outcome from_error(const exponea::call_error& e, std::string_view doing) {
  flow_outcome o;
  o.message = fmt::format("{}: {}", doing, e.message);
  switch (e.kind) {
    case exponea::answer_class::transient:
      o.result = kind::retry;
      o.retry_after = e.retry_after;
      o.reason = exponea::reason_of(e);
      break;
    case exponea::answer_class::rejected:
      o.result = kind::rejected;
      o.value = e.value;
      o.message = fmt::format("{}: {} rejected ({})", doing, e.value, e.message);
      break;
    default:
      o.result = kind::failed;
      break;
  }
  return o;
}

flow_outcome user_not_found() {
  return flow_outcome{kind::user_not_found, "No Bloomreach customer holds this ID", "",
                      std::nullopt};
}

flow_outcome stopped() {
  return flow_outcome{kind::stopped, "stopped by a shutdown; resumes from its journal", "",
                      std::nullopt};
}

flow_outcome interrupted(const failure& f) {
  return flow_outcome{kind::interrupted, f.detail, "", std::nullopt};
}

// What runs when a side-effecting call's turn has come, just before it is sent: the step is
// journaled `started` (`result`) and the lease renewed; a shutdown that began meanwhile, or a
// journal that cannot be written, keeps the call from going (`held` says how the flow ends). So a
// job stopped while its call waited for the limiter or a batch leaves no `started` behind.
exponea::before_send journal_then_send(journal& log, flow_clock& time, step_name step,
                                       std::string result, std::optional<flow_outcome>& held) {
  return [&log, &time, step = std::move(step), result = std::move(result),
          &held]() -> boost::asio::awaitable<bool> {
    if (time.stopping()) {
      held = stopped();
      co_return false;
    }
    if (auto r = co_await log.record(step, result); !r) {
      held = interrupted(r.error());
      co_return false;
    }
    if (auto r = co_await log.before_call(); !r) {
      held = interrupted(r.error());
      co_return false;
    }
    co_return true;
  };
}

// The export request for this job's subject, looking for its audit event.
exponea::export_request export_of(const job& j, const flow_settings& s,
                                  std::filesystem::path save_to = {}) {
  exponea::export_request r;
  r.ids = customer_ids(j, s);
  r.save_to = std::move(save_to);
  r.audit = exponea::audit_match{s.event_type, j.request_id};
  return r;
}

// Tracks the audit event on an existing customer unless it is already there.
boost::asio::awaitable<std::optional<flow_outcome>> track_once(const job& j,
                                                               const exponea::export_summary& found,
                                                               exponea::api& api, journal& log,
                                                               flow_clock& time,
                                                               const flow_settings& s) {
  if (journaled(j, step_kind::track, "done") || found.holds_audit_event) {
    co_return std::nullopt;
  }
  if (time.stopping()) {
    co_return stopped();
  }
  if (journaled(j, step_kind::track, "started")) {
    // A crash came between the call and its record: the event may be in Exponea's write queue.
    // Look for it for a while before tracking again.
    const auto until = time.now() + s.track_settle;
    auto wait = s.verify_first_poll;
    while (time.now() < until) {
      co_await time.sleep(wait);
      if (time.stopping()) {
        co_return stopped();
      }
      auto again = export_of(j, s);
      auto seen = co_await api.export_one(std::move(again));
      if (!seen) {
        co_return from_error(seen.error(),
                             "Bloomreach export-one (looking for the audit event of the "
                             "interrupted run)");
      }
      if (!*seen) {
        co_return user_not_found();
      }
      if ((*seen)->holds_audit_event) {
        co_return std::nullopt;
      }
      wait = std::min(wait * 2, s.verify_max_poll);
    }
  }
  exponea::event e;
  e.type = s.event_type;
  e.timestamp =
      std::chrono::duration_cast<std::chrono::seconds>(time.now().time_since_epoch()).count();
  e.properties = event_properties(j, s);
  std::optional<flow_outcome> held;
  auto tracked =
      co_await api.track(customer_ids(j, s), std::move(e), exponea::auth::token,
                         journal_then_send(log, time, step_kind::track, "started", held));
  if (held) {
    co_return std::move(*held);
  }
  if (!tracked) {
    co_return from_error(tracked.error(), fmt::format("Bloomreach track {}", s.event_type));
  }
  if (auto r = co_await log.record(step_kind::track, "done"); !r) {
    co_return interrupted(r.error());
  }
  co_return std::nullopt;
}

// Sends anonymize between a journaled `started` and `done`. Returns the outcome to end the
// attempt with when it did not get through.
boost::asio::awaitable<std::optional<flow_outcome>> anonymize_journaled(exponea::api& api,
                                                                        journal& log,
                                                                        flow_clock& time,
                                                                        const nlohmann::json& ids,
                                                                        std::string_view doing) {
  std::optional<flow_outcome> held;
  auto anonymized = co_await api.anonymize(
      ids, journal_then_send(log, time, step_kind::anonymize, "started", held));
  if (held) {
    co_return std::move(*held);
  }
  if (!anonymized) {
    co_return from_error(anonymized.error(), doing);
  }
  if (auto r = co_await log.record(step_kind::anonymize, "done"); !r) {
    co_return interrupted(r.error());
  }
  co_return std::nullopt;
}

}  // namespace

nlohmann::json customer_ids(const job& j, const flow_settings& s) {
  if (!j.subject_id_name.empty()) {
    return {{j.subject_id_name, j.subject}};  // a custom field's ID, as MineOS sent it
  }
  std::string id = j.subject;
  if (s.lowercase_ids) {
    std::transform(id.begin(), id.end(), id.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  }
  return {{s.customer_id_type, id}};
}

nlohmann::json event_properties(const job& j, const flow_settings& s) {
  return {{"request_id", j.request_id},
          {"source", s.source},
          {"type", to_string(j.op)},
          {"trace_id", j.trace_id},
          {"integration_id", j.integration_id}};
}

boost::asio::awaitable<flow_outcome> run_delete(const job& j, exponea::api& api, journal& log,
                                                flow_clock& time, const flow_settings& s) {
  const auto ids = customer_ids(j, s);
  auto started = anonymize_started_at(j);
  bool answered = started.has_value() && last_anonymize_answered(j);
  if (!started) {
    auto lookup = export_of(j, s);
    auto found = co_await api.export_one(std::move(lookup));
    if (!found) {
      co_return from_error(found.error(), "Bloomreach export-one");
    }
    if (!*found) {
      co_return user_not_found();
    }
    if (auto stop = co_await track_once(j, **found, api, log, time, s)) {
      co_return std::move(*stop);
    }
    if (time.stopping()) {
      co_return stopped();
    }
    started = time.now();
    if (auto stop = co_await anonymize_journaled(api, log, time, ids, "Bloomreach anonymize")) {
      co_return std::move(*stop);
    }
    answered = true;
  }

  // Verification: Exponea queues the anonymization; the job is done once the ID stops resolving.
  auto deadline = *started + s.verify_timeout;
  auto wait = s.verify_first_poll;
  for (int poll = 0;; ++poll) {
    if (poll > 0 && time.stopping()) {
      co_return stopped();  // anonymize is journaled: verification resumes after the restart
    }
    auto check = export_of(j, s);
    auto found = co_await api.export_one(std::move(check));
    if (!found) {
      co_return from_error(found.error(), "Bloomreach export-one (verifying the anonymization)");
    }
    if (!*found) {
      if (auto r = co_await log.record(step_kind::verify, "done"); !r) {
        co_return interrupted(r.error());
      }
      co_return flow_outcome{kind::completed, "Anonymized in Bloomreach and verified gone", "",
                             std::nullopt};
    }
    if (!answered) {
      // An earlier attempt's anonymize was never answered and the customer is still there:
      // send it again now (idempotent in Exponea); the verification's wait starts over.
      if (auto stop = co_await anonymize_journaled(api, log, time, ids, "Bloomreach anonymize")) {
        co_return std::move(*stop);
      }
      answered = true;
      deadline = time.now() + s.verify_timeout;
    } else if (time.now() >= deadline) {
      co_return flow_outcome{
          kind::failed,
          fmt::format("Bloomreach anonymize: the customer still resolves {} s after "
                      "anonymization was requested",
                      std::chrono::duration_cast<std::chrono::seconds>(s.verify_timeout).count()),
          "", std::nullopt};
    }
    if (poll > 0) {
      if (time.stopping()) {
        co_return stopped();
      }
      // Still there after a full wait: anonymize again (idempotent in Exponea).
      if (auto stop =
              co_await anonymize_journaled(api, log, time, ids, "Bloomreach anonymize (again)")) {
        co_return std::move(*stop);
      }
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - time.now());
    co_await time.sleep(std::min(wait, std::max(left, std::chrono::milliseconds(0))));
    wait = std::min(wait * 2, s.verify_max_poll);
  }
}

boost::asio::awaitable<flow_outcome> run_copy(const job& j, exponea::api& api, journal& log,
                                              flow_clock& time, const flow_settings& s,
                                              std::filesystem::path export_file) {
  auto request = export_of(j, s, std::move(export_file));
  auto found = co_await api.export_one(std::move(request));
  if (!found) {
    co_return from_error(found.error(), "Bloomreach export-one");
  }
  if (!*found) {
    co_return user_not_found();
  }
  if (auto stop = co_await track_once(j, **found, api, log, time, s)) {
    co_return std::move(*stop);
  }
  co_return flow_outcome{kind::completed,
                         fmt::format("Exported {} propert{}, {} event{}", (*found)->properties,
                                     (*found)->properties == 1 ? "y" : "ies", (*found)->events,
                                     (*found)->events == 1 ? "" : "s"),
                         "", std::nullopt};
}

boost::asio::awaitable<flow_outcome> run_opt_out(const job& j, exponea::api& api, journal& log,
                                                 flow_clock& time, const flow_settings& s) {
  if (s.consent_categories.empty()) {
    co_return flow_outcome{kind::failed, std::string(no_consent_categories), "", std::nullopt};
  }
  const auto ids = customer_ids(j, s);
  // What an earlier run left unfinished: consent events journaled `started` but not `done`.
  std::vector<std::optional<std::int64_t>> pending(s.consent_categories.size());
  auto lookup = export_of(j, s);
  for (std::size_t i = 0; i < s.consent_categories.size(); ++i) {
    const auto& c = s.consent_categories[i];
    if (!journaled(j, consent_step(c), "done")) {
      pending[i] = started_at(j, consent_step(c));
    }
    if (pending[i]) {
      lookup.audit.consents.push_back({c, "reject", *pending[i]});
    }
  }
  auto found = co_await api.export_one(lookup);
  if (!found) {
    co_return from_error(found.error(), "Bloomreach export-one");
  }
  if (!*found) {
    co_return user_not_found();
  }
  if (auto stop = co_await track_once(j, **found, api, log, time, s)) {
    co_return std::move(*stop);
  }
  std::size_t looked_for = 0;
  for (std::size_t i = 0; i < s.consent_categories.size(); ++i) {
    const auto& c = s.consent_categories[i];
    if (journaled(j, consent_step(c), "done")) {
      continue;
    }
    if (time.stopping()) {
      co_return stopped();
    }
    std::optional<std::int64_t> timestamp = pending[i];
    if (timestamp) {
      // A crash came between the call and its record: the event may have landed, or may still
      // be in Exponea's write queue. Look for it before tracking it again.
      bool seen =
          (*found)->consents_found.size() > looked_for && (*found)->consents_found[looked_for];
      ++looked_for;
      const auto until = time.now() + s.track_settle;
      auto wait = s.verify_first_poll;
      while (!seen && time.now() < until) {
        co_await time.sleep(wait);
        if (time.stopping()) {
          co_return stopped();
        }
        auto again = export_of(j, s);
        again.audit.consents.push_back({c, "reject", *timestamp});
        auto looked = co_await api.export_one(std::move(again));
        if (!looked) {
          co_return from_error(looked.error(),
                               "Bloomreach export-one (looking for the consent event of the "
                               "interrupted run)");
        }
        if (!*looked) {
          co_return user_not_found();
        }
        seen = !(*looked)->consents_found.empty() && (*looked)->consents_found[0];
        wait = std::min(wait * 2, s.verify_max_poll);
      }
      if (seen) {
        if (auto r = co_await log.record(consent_step(c), "done"); !r) {
          co_return interrupted(r.error());
        }
        continue;
      }
    } else {
      timestamp =
          std::chrono::duration_cast<std::chrono::seconds>(time.now().time_since_epoch()).count();
    }
    // The same event, timestamp included, whether first sent or sent again: the timestamp is the
    // consent's valid-from, and the journal's record of it is how a later run recognises it.
    exponea::event e;
    e.type = "consent";
    e.timestamp = *timestamp;
    e.properties = {{"action", "reject"}, {"category", c}, {"valid_until", "unlimited"}};
    std::optional<flow_outcome> held;
    auto tracked = co_await api.track(
        ids, std::move(e), exponea::auth::basic,
        journal_then_send(log, time, consent_step(c), fmt::format("started {}", *timestamp), held));
    if (held) {
      co_return std::move(*held);
    }
    if (!tracked) {
      co_return from_error(tracked.error(), fmt::format("Bloomreach consent reject {}", c));
    }
    if (auto r = co_await log.record(consent_step(c), "done"); !r) {
      co_return interrupted(r.error());
    }
  }
  co_return flow_outcome{
      kind::completed,
      fmt::format("Consent revoked in Bloomreach: {}", fmt::join(s.consent_categories, ", ")), "",
      std::nullopt};
}

}  // namespace dsr
