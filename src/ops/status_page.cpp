#include "dsr/ops/status_page.hpp"

#include "dsr/common/crypto.hpp"
#include "dsr/common/time.hpp"

#include <fmt/format.h>
#include <boost/url/parse_query.hpp>

#include <algorithm>
#include <cmath>

namespace dsr::ops {
namespace {

// The right as received (the job view's requestType), or a dash.
std::string request_type_cell(const job& j);

constexpr std::string_view style = R"css(
:root { color-scheme: light; --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --line: #d0d7de; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1f2328;
       background: #f6f8fa; }
header { display: flex; align-items: baseline; gap: 1rem; padding: .8rem 1.5rem; background: #24292f;
         color: #fff; }
header h1 { font-size: 1.1rem; margin: 0; }
header .at { color: #c9d1d9; flex: 1; }
header form { margin: 0; }
main { display: grid; grid-template-columns: repeat(auto-fit, minmax(22rem, 1fr)); gap: 1rem;
       padding: 1rem 1.5rem; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .8rem 1rem; }
section.wide { grid-column: 1 / -1; }
h2 { font-size: 1rem; margin: 0 0 .6rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { font-weight: 600; color: #57606a; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th, td:first-child { white-space: nowrap; }
.banner { margin: 1rem 1.5rem 0; padding: .7rem 1rem; border-radius: 6px; font-weight: 600; }
.banner.ok { background: #dafbe1; color: var(--ok); }
.banner.paused { background: #ffebe9; color: var(--bad); }
.notice { margin: 1rem 1.5rem 0; padding: .6rem 1rem; border-radius: 6px; background: #ddf4ff; }
.big { font-size: 1.6rem; font-weight: 600; margin-right: .3rem; }
.overdue { color: var(--bad); font-weight: 600; }
.due_soon { color: var(--warn); font-weight: 600; }
.muted { color: #57606a; }
button { font: inherit; padding: .15rem .7rem; border: 1px solid var(--line); border-radius: 6px;
         background: #f6f8fa; cursor: pointer; }
button:hover { background: #eaeef2; }
code { font-size: 12px; }
footer { padding: 0 1.5rem 1rem; color: #57606a; }
)css";

std::string page(std::string_view title, std::string_view body) {
  return fmt::format(
      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<title>{}</title><style>{}</style></head><body>{}</body></html>\n",
      html_escape(title), style, body);
}

// "3 s", "4 min 12 s", "2 h 5 min", "3 d 4 h".
std::string span(std::chrono::milliseconds d) {
  const auto s = std::max<std::int64_t>(0, std::chrono::floor<std::chrono::seconds>(d).count());
  if (s < 60) {
    return fmt::format("{} s", s);
  }
  if (s < 3600) {
    return fmt::format("{} min {} s", s / 60, s % 60);
  }
  if (s < 86400) {
    return fmt::format("{} h {} min", s / 3600, s % 3600 / 60);
  }
  return fmt::format("{} d {} h", s / 86400, s % 86400 / 3600);
}

std::string milliseconds(double seconds) {
  if (seconds >= 1) {
    return fmt::format("{:.2f} s", seconds);
  }
  return seconds < 0.01 ? fmt::format("{:.2f} ms", seconds * 1000)
                        : fmt::format("{:.0f} ms", seconds * 1000);
}

// A histogram bucket's upper bound: "≤ 25 ms", "≤ 2.5 s", "> 30 s" beyond the last one.
std::string bound(double seconds) {
  if (std::isinf(seconds)) {
    return "&gt; 30 s";
  }
  return seconds < 1 ? fmt::format("&le; {:g} ms", seconds * 1000)
                     : fmt::format("&le; {:g} s", seconds);
}

std::string days(std::uint32_t n) {
  return fmt::format("{} day{}", n, n == 1 ? "" : "s");
}

// A figure /metrics also has: its exact value in data-value, shown as `shown`.
std::string figure(std::string_view what, double value, std::string_view shown) {
  return fmt::format("<span data-figure=\"{}\" data-value=\"{}\">{}</span>", html_escape(what),
                     value, html_escape(shown));
}
std::string figure(std::string_view what, std::uint64_t value) {
  return figure(what, static_cast<double>(value), std::to_string(value));
}

std::string hidden_csrf(std::string_view csrf) {
  return fmt::format("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", html_escape(csrf));
}

// "<p>Retries: 429 3, server_error 1</p>": one figure per label ("retries:429"), or "none".
void counts_line(std::string& out, std::string_view title, std::string_view figure_prefix,
                 const std::map<std::string, std::uint64_t>& counts) {
  out += fmt::format("<p>{}: ", title);
  if (counts.empty()) {
    out += "none";
  }
  for (auto it = counts.begin(); it != counts.end(); ++it) {
    out += fmt::format("{}{} {}", it == counts.begin() ? "" : ", ", html_escape(it->first),
                       figure(fmt::format("{}:{}", figure_prefix, it->first), it->second));
  }
  out += "</p>";
}

void queue_section(std::string& out, const status_view& v) {
  out += "<section><h2>Queue</h2><table><tr><th>State</th><th>Jobs</th></tr>";
  for (std::size_t i = 0; i < v.jobs.by_state.size(); ++i) {
    const auto state = to_string(static_cast<job_state>(i));
    out += fmt::format("<tr><td>{}</td><td class=\"n\">{}</td></tr>", state,
                       figure(fmt::format("jobs:{}", state), v.jobs.by_state[i]));
  }
  out += "</table><p class=\"muted\">Oldest job waiting to run: ";
  out += v.jobs.oldest_waiting ? span(v.now - *v.jobs.oldest_waiting) : std::string("none");
  out += "</p></section>";
}

void throughput_section(std::string& out, const status_view& v) {
  out += "<section><h2>Last hour</h2>";
  if (!v.figures) {
    out += "<p class=\"muted\">This daemon keeps no metrics.</p></section>";
    return;
  }
  std::uint64_t finished = 0;
  for (const auto& [outcome, n] : v.figures->finished_last_hour) {
    finished += n;
  }
  out += fmt::format(
      "<p><span class=\"big\">{}</span>requests accepted &nbsp; <span class=\"big\">{}</span>jobs "
      "finished</p>",
      v.figures->accepted_last_hour, finished);
  if (!v.figures->finished_last_hour.empty()) {
    out += "<table><tr><th>Outcome</th><th>Jobs</th></tr>";
    for (const auto& [outcome, n] : v.figures->finished_last_hour) {
      out += fmt::format("<tr><td>{}</td><td class=\"n\">{}</td></tr>", html_escape(outcome), n);
    }
    out += "</table>";
  }
  out +=
      "<p class=\"muted\">Counted since the daemon started, if that was less than an hour "
      "ago.</p></section>";
}

void exponea_section(std::string& out, const status_view& v) {
  out += "<section><h2>Exponea</h2>";
  if (!v.figures) {
    out += "<p class=\"muted\">This daemon keeps no metrics.</p></section>";
    return;
  }
  const auto& f = *v.figures;
  if (f.exponea.empty()) {
    out += "<p class=\"muted\">No call to Exponea since the daemon started.</p>";
  } else {
    out +=
        "<table><tr><th>Endpoint</th><th>Calls</th><th>Errors</th><th>Mean</th><th title=\"95% of "
        "calls took at most this\">p95</th></tr>";
    for (const auto& e : f.exponea) {
      out += fmt::format(
          "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n{}\">{}</td><td "
          "class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
          html_escape(e.endpoint), figure("exponea_calls:" + e.endpoint, e.calls),
          e.errors != 0 ? " overdue" : "", figure("exponea_errors:" + e.endpoint, e.errors),
          figure("exponea_mean_seconds:" + e.endpoint, e.mean_seconds,
                 milliseconds(e.mean_seconds)),
          bound(e.p95_at_most_seconds));
    }
    out += "</table>";
  }
  out += fmt::format("<p>Waited for the rate limit: {}</p>",
                     figure("rate_limit_wait_seconds", f.rate_limit_wait_seconds,
                            fmt::format("{:.1f} s", f.rate_limit_wait_seconds)));
  counts_line(out, "Retries", "retries", f.retries);
  counts_line(out, "Reports to MineOS", "reports", f.reports);
  out += "</section>";
}

void deadlines_section(std::string& out, const status_view& v) {
  out += fmt::format(
      "<section class=\"wide\"><h2>Deadlines</h2><p><span class=\"big overdue\">{}</span>overdue "
      "&nbsp; <span class=\"big due_soon\">{}</span>due within {} <span class=\"muted\">(due "
      "{} after the request was made)</span></p>",
      figure("overdue", v.jobs.overdue), figure("due_soon", v.jobs.due_soon),
      days(v.deadlines.warning_days), days(v.deadlines.days));
  if (v.at_risk.empty()) {
    out += "<p class=\"muted\">No unfinished job is near its due date.</p></section>";
    return;
  }
  out +=
      "<table><tr><th>Request</th><th>Operation</th><th>Request type</th><th>State</th><th>Due</th>"
      "<th></th></tr>";
  for (const auto& j : v.at_risk) {
    const auto status = deadline_status(j, v.deadlines, v.now);
    const auto due = j.due_at(v.deadlines.days);
    out += fmt::format(
        "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td "
        "class=\"{}\">{}</td></tr>",
        html_escape(j.request_id), to_string(j.op), request_type_cell(j), to_string(j.state),
        format_rfc3339(due), status,
        status == "overdue" ? fmt::format("overdue by {}", span(v.now - due))
                            : fmt::format("due in {}", span(due - v.now)));
  }
  out += "</table></section>";
}

void failed_section(std::string& out, const status_view& v) {
  out += "<section class=\"wide\"><h2>Latest failed jobs</h2>";
  if (v.failed.empty()) {
    out += "<p class=\"muted\">No failed job.</p></section>";
    return;
  }
  out +=
      "<table><tr><th>Request</th><th>Operation</th><th>Request type</th><th>Attempts</th>"
      "<th>Why</th><th>Failed at</th><th></th></tr>";
  for (const auto& j : v.failed) {
    out += fmt::format(
        "<tr><td><code>{0}</code></td><td>{1}</td><td>{7}</td><td class=\"n\">{2}</td><td>{3}</td>"
        "<td>{4}</td><td><form method=\"post\" action=\"/status/retry/{5}\">{6}<button "
        "type=\"submit\" data-retry=\"{0}\">Retry</button></form></td></tr>",
        html_escape(j.request_id), to_string(j.op), j.attempts, html_escape(j.outcome_message),
        format_rfc3339(j.updated_at), html_escape(crypto::to_hex(j.request_id)),
        hidden_csrf(v.csrf), request_type_cell(j));
  }
  out += "</table></section>";
}

std::string request_type_cell(const job& j) {
  return j.request_type.empty() ? std::string("&mdash;") : html_escape(j.request_type);
}

}  // namespace

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::string render_status_page(const status_view& v) {
  std::string body = fmt::format(
      "<header><h1>dsr-connector {}</h1><span class=\"at\">status at {}</span>"
      "<form method=\"post\" action=\"/logout\">{}<button type=\"submit\">Sign out</button></form>"
      "</header>",
      DSR_VERSION, format_rfc3339(v.now), hidden_csrf(v.csrf));
  if (v.paused) {
    body += fmt::format(
        "<div class=\"banner paused\">{} Dispatch is paused: {}. Fix the value and reload "
        "(SIGHUP); queued jobs wait meanwhile.</div>",
        figure("paused", 1, "⏸"), html_escape(*v.paused));
  } else {
    body += fmt::format("<div class=\"banner ok\">{} Dispatch is running.</div>",
                        figure("paused", 0, "▶"));
  }
  if (!v.notice.empty()) {
    body += fmt::format("<div class=\"notice\" role=\"status\">{}</div>", html_escape(v.notice));
  }
  body += "<main>";
  queue_section(body, v);
  throughput_section(body, v);
  exponea_section(body, v);
  deadlines_section(body, v);
  failed_section(body, v);
  body +=
      "</main><footer>Reload the page for fresh figures. The same figures for Prometheus: <a "
      "href=\"/metrics\">/metrics</a>; every job: <code>dsr-connector requests "
      "list</code>.</footer>";
  return page("dsr-connector status", body);
}

std::string render_login_page(std::string_view message) {
  std::string body =
      "<header><h1>dsr-connector</h1><span class=\"at\">status page</span></header><main><section>"
      "<h2>Sign in</h2>";
  if (!message.empty()) {
    body += fmt::format("<p class=\"overdue\" role=\"alert\">{}</p>", html_escape(message));
  }
  body +=
      "<form method=\"post\" action=\"/login\"><p><label>Admin token (<code>admin_token</code>)"
      "<br><input type=\"password\" name=\"token\" autocomplete=\"current-password\" required "
      "size=\"40\"></label></p><p><button type=\"submit\">Sign in</button></p></form>"
      "<p class=\"muted\">Signing in sets a session cookie for 12 hours; rotating the admin token "
      "signs every browser out.</p></section></main>";
  return page("Sign in — dsr-connector", body);
}

sessions::sessions(std::shared_ptr<clock> time, session_options o)
    : time_(std::move(time)), options_(o), lookup_key_(crypto::random_bytes(32)) {}

std::string sessions::key_of(std::string_view id) const {
  return crypto::hmac_sha256(lookup_key_, id);
}

sessions::opened sessions::open(std::string_view admin_token) {
  opened o{crypto::to_hex(crypto::random_bytes(32)), crypto::to_hex(crypto::random_bytes(32))};
  const auto now = time_->now();
  session s{o.csrf, crypto::hmac_sha256(o.id, admin_token), now + options_.lifetime};
  const std::lock_guard lock(mutex_);
  std::erase_if(live_, [now](const auto& e) { return e.second.expires <= now; });
  while (!live_.empty() && live_.size() >= options_.max_sessions) {
    live_.erase(std::min_element(live_.begin(), live_.end(), [](const auto& a, const auto& b) {
      return a.second.expires < b.second.expires;
    }));
  }
  live_.emplace(key_of(o.id), std::move(s));
  return o;
}

std::optional<std::string> sessions::check(std::string_view id, std::string_view admin_token) {
  const auto key = key_of(id);
  const std::lock_guard lock(mutex_);
  const auto it = live_.find(key);
  if (it == live_.end()) {
    return std::nullopt;
  }
  if (it->second.expires <= time_->now() ||
      !crypto::constant_time_equal(it->second.token_mac, crypto::hmac_sha256(id, admin_token))) {
    live_.erase(it);
    return std::nullopt;
  }
  return it->second.csrf;
}

void sessions::close(std::string_view id) {
  const auto key = key_of(id);
  const std::lock_guard lock(mutex_);
  live_.erase(key);
}

std::size_t sessions::size() const {
  const std::lock_guard lock(mutex_);
  return live_.size();
}

std::optional<std::string> cookie_value(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    auto end = header.find(';');
    auto pair = header.substr(0, end);
    header = end == std::string_view::npos ? std::string_view{} : header.substr(end + 1);
    while (!pair.empty() && (pair.front() == ' ' || pair.front() == '\t')) {
      pair.remove_prefix(1);
    }
    const auto eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == name) {
      auto value = pair.substr(eq + 1);
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) {
        value.remove_suffix(1);
      }
      return std::string(value);
    }
  }
  return std::nullopt;
}

std::optional<std::map<std::string, std::string>> parse_form(std::string_view body) {
  auto parsed = boost::urls::parse_query(body);
  if (!parsed) {
    return std::nullopt;
  }
  std::map<std::string, std::string> out;
  const boost::urls::encoding_opts plus_is_space(true);
  for (const auto& p : *parsed) {
    out.emplace(p.key.decode(plus_is_space), p.value.decode(plus_is_space));
  }
  return out;
}

}  // namespace dsr::ops
