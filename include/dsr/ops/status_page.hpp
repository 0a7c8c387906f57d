#pragma once
// The operator's status page (GET / on the admin listener): one plain HTML page, no script,
// rendered by the daemon from its own state — the store's counts, the metrics' counters, the
// dispatcher's pause. A browser signs in once with the admin token (a login form) and then holds
// a session cookie; `Authorization: Bearer` works too. The routes live in admin_api; this header
// holds the parts that are pure (the HTML) or self-contained (the sessions), so they are tested
// alone.

#include "dsr/common/clock.hpp"
#include "dsr/jobs/job.hpp"
#include "dsr/jobs/store.hpp"
#include "dsr/ops/metrics.hpp"

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dsr::ops {

// Everything the page shows, gathered at one moment.
struct status_view {
  time_point now{};
  std::optional<std::string> paused;  // why dispatch is paused, or nullopt
  job_stats jobs;
  std::optional<metrics::summary> figures;  // nullopt: the daemon keeps no metrics
  std::vector<job> at_risk;                 // due soon or overdue, earliest due first
  std::vector<job> failed;                  // newest first
  deadline_policy deadlines;
  std::string csrf;    // put in every form (the session's token; "" with a Bearer header)
  std::string notice;  // shown above the figures (the result of a retry)
};

// The whole page. Every value from a job (request ids, messages) is HTML-escaped. Each figure that
// /metrics also exposes carries `data-figure="<what>"` and `data-value="<number>"`, so a test can
// compare the two without reading the layout.
std::string render_status_page(const status_view& v);

// The sign-in form; `message` (plain text) is shown above it when not empty.
std::string render_login_page(std::string_view message);

// & < > " ' as entities.
std::string html_escape(std::string_view text);

struct session_options {
  std::chrono::minutes lifetime{12 * 60};
  std::size_t max_sessions = 64;  // beyond it, the session closest to its end is dropped
};

// Browser sessions opened by signing in with the admin token. A session ends when its lifetime is
// over, when it is closed (sign out), or as soon as the admin token changes (a rotation signs every
// browser out). Ids are 256 random bits, looked up by their HMAC so the lookup's timing tells
// nothing about them. Thread-safe.
class sessions {
 public:
  explicit sessions(std::shared_ptr<clock> time, session_options o = {});

  struct opened {
    std::string id;    // the cookie's value
    std::string csrf;  // the token every form of this session must carry
  };
  // Opens a session for someone who presented `admin_token` (already checked by the caller).
  opened open(std::string_view admin_token);
  // The session's CSRF token while it is live and `admin_token` is still the one it was opened
  // with; nullopt otherwise.
  std::optional<std::string> check(std::string_view id, std::string_view admin_token);
  void close(std::string_view id);
  std::size_t size() const;

 private:
  struct session {
    std::string csrf;
    std::string token_mac;  // HMAC(id, admin token at sign-in)
    time_point expires{};
  };
  std::string key_of(std::string_view id) const;

  std::shared_ptr<clock> time_;
  session_options options_;
  std::string lookup_key_;  // random, per process
  mutable std::mutex mutex_;
  std::map<std::string, session> live_;
};

// The value of cookie `name` in a Cookie header ("a=1; dsr_session=xyz"), or nullopt.
std::optional<std::string> cookie_value(std::string_view header, std::string_view name);

// The fields of an application/x-www-form-urlencoded body, decoded; nullopt if malformed.
std::optional<std::map<std::string, std::string>> parse_form(std::string_view body);

}  // namespace dsr::ops
