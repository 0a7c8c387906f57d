#include "dsr/exponea/client.hpp"

#include "dsr/common/crypto.hpp"
#include "dsr/common/time.hpp"
#include "dsr/http/body_source.hpp"

#include <fmt/format.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/throw_exception.hpp>

#include <sys/stat.h>

#include <cerrno>

#include <deque>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <mutex>
#include <random>

namespace dsr::exponea {

namespace {

// A free function, not a lambda: co_spawn'ed coroutines keep their parameters in the frame.
boost::asio::awaitable<result<export_summary>> scan_elsewhere(std::filesystem::path answer,
                                                              audit_match audit,
                                                              std::filesystem::path save_to,
                                                              std::string key) {
  // The download was written sealed with the same key (client_request::response_key).
  co_return scan_export(answer, audit, save_to, key, key);
}

constexpr std::size_t max_batch_commands = 50;    // reference §4.2
constexpr std::size_t max_bulk_customers = 1000;  // reference §3.2

using done_channel = boost::asio::experimental::concurrent_channel<void(boost::system::error_code)>;

// One call waiting in a bulk lane for its turn, then for its share of the answer.
struct lane_call {
  nlohmann::json ids;
  event e;  // tracking lanes
  before_send go;
  boost::asio::any_io_executor ex;  // where the caller runs (its before_send runs there too)
  std::shared_ptr<done_channel> done;
  std::optional<outcome<bool>> answer;
};
using lane_calls = std::vector<std::shared_ptr<lane_call>>;

// Calls of one kind that may share a request: audit events (Token), consent events (Basic),
// anonymize.
struct lane {
  endpoint single;
  endpoint shared;
  auth used;
  std::size_t max;
  std::mutex mutex;
  std::deque<std::shared_ptr<lane_call>> waiting;  // under mutex
  bool draining = false;                           // under mutex: a drain() takes turns for them
};

void finish(lane_call& c, outcome<bool> answer) {
  c.answer = std::move(answer);
  c.done->try_send(boost::system::error_code{});
}

// A parsed answer. nlohmann::json converts implicitly to anything, which would make
// result<json, call_error> ambiguous; a named wrapper avoids that.
struct answer_body {
  nlohmann::json doc;
};

class api_impl final : public api {
 public:
  api_impl(std::unique_ptr<http::client> client, const credential_store& credentials,
           std::shared_ptr<clock> clock, api_options options)
      : client_(std::move(client)),
        credentials_(credentials),
        clock_(std::move(clock)),
        options_(std::move(options)) {}

  boost::asio::awaitable<outcome<std::optional<export_summary>>> export_one(
      export_request r) override {
    std::error_code ec;
    // Created private when missing; an existing directory is never changed (it may be shared:
    // chmod-ing /tmp would break every other program on the host).
    if (::mkdir(options_.download_dir.c_str(), 0700) != 0 && errno == ENOENT) {
      std::filesystem::create_directories(options_.download_dir.parent_path(), ec);
      ::mkdir(options_.download_dir.c_str(), 0700);
    }
    const auto download =
        options_.download_dir / fmt::format("export-one-{:016x}.part", next_download_id());
    nlohmann::json body{{"customer_ids", std::move(r.ids)}};
    auto answer = co_await call(endpoint::export_one, auth::basic, "POST", "/customers/export-one",
                                body.dump(), download);
    if (!answer) {
      std::filesystem::remove(download, ec);
      if (answer.error().kind == answer_class::not_found) {
        co_return std::optional<export_summary>{};
      }
      co_return answer.error();
    }
    // Scanning a large export takes seconds of CPU and disk: off the I/O threads.
    auto scanned = co_await boost::asio::co_spawn(
        scanner_, scan_elsewhere(download, r.audit, r.save_to, options_.export_key),
        boost::asio::use_awaitable);
    if (scanned && !scanned->success) {
      // A refusal on HTTP 200 is short; its text decides the class.
      auto refusal = read_small(download);
      std::filesystem::remove(download, ec);
      auto c =
          classify(200, refusal, std::nullopt, auth::basic, endpoint::export_one, clock_->now());
      if (c.kind == answer_class::not_found) {
        co_return std::optional<export_summary>{};
      }
      co_return c;
    }
    std::filesystem::remove(download, ec);
    if (!scanned) {
      if (scanned.error().is(errc::invalid_input)) {
        co_return call_error{answer_class::failed, 200, scanned.error().detail, "", {}};
      }
      // Our disk, not Exponea: worth another attempt later.
      co_return call_error{answer_class::transient, 0, scanned.error().detail, "", {}};
    }
    co_return std::optional<export_summary>(*scanned);
  }

  boost::asio::awaitable<outcome<void>> track(nlohmann::json ids, event e, auth a,
                                              before_send go) override {
    if (options_.bulk) {
      auto& l = a == auth::token ? audit_lane_ : consent_lane_;
      auto r = co_await queue(l, std::move(ids), std::move(e), std::move(go));
      if (!r) {
        co_return r.error();
      }
      co_return outcome<void>{};
    }
    auto r = co_await call(endpoint::track, a, "POST", "/customers/events",
                           track_body(std::move(ids), std::move(e)).dump(), no_download(), &go);
    if (!r) {
      co_return r.error();
    }
    co_return outcome<void>{};
  }

  boost::asio::awaitable<outcome<bool>> anonymize(nlohmann::json ids, before_send go) override {
    if (options_.bulk) {
      event none;  // a named value: g++ 12 mishandles a braced temporary in a co_await's call
      auto r = co_await queue(anonymize_lane_, std::move(ids), std::move(none), std::move(go));
      co_return r;
    }
    co_return co_await anonymize_one(std::move(ids), &go, true);
  }

  boost::asio::awaitable<outcome<std::vector<consent_category>>> consent_categories() override {
    auto r =
        co_await call(endpoint::consent_categories, auth::basic, "GET", "/consent/categories", "");
    if (!r) {
      co_return r.error();
    }
    const auto& results = r->doc.contains("results") ? r->doc["results"] : r->doc;
    if (!results.is_array()) {
      co_return call_error{
          answer_class::failed, 200, "consent/categories answered without a results list", "", {}};
    }
    std::vector<consent_category> out;
    for (const auto& c : results) {
      if (!c.is_object() || !c.contains("id") || !c["id"].is_string()) {
        continue;
      }
      consent_category cat{c["id"].get<std::string>(), false};
      if (const auto it = c.find("sources"); it != c.end() && it->is_object()) {
        const auto p = it->find("private_api");
        cat.private_api = p != it->end() && p->is_boolean() && p->get<bool>();
      }
      out.push_back(std::move(cat));
    }
    co_return out;
  }

  boost::asio::awaitable<outcome<void>> system_time(auth a) override {
    auto r = co_await call(endpoint::system_time, a, "GET", "/system/time", "");
    if (!r) {
      co_return r.error();
    }
    co_return outcome<void>{};
  }

 private:
  // An answer kept in memory (a named value: g++ 12 mishandles braced temporaries in a
  // co_await's call).
  static std::filesystem::path no_download() { return {}; }

  static nlohmann::json track_body(nlohmann::json ids, event e) {
    return {{"customer_ids", std::move(ids)},
            {"event_type", std::move(e.type)},
            {"timestamp", e.timestamp},
            {"properties", std::move(e.properties)}};
  }

  boost::asio::awaitable<outcome<bool>> anonymize_one(nlohmann::json ids, before_send* go,
                                                      bool take_turn) {
    nlohmann::json body{{"customer_ids", std::move(ids)}};
    auto r = co_await call(endpoint::anonymize, auth::basic, "POST", "/customers/anonymize",
                           body.dump(), no_download(), go, take_turn);
    if (!r) {
      if (r.error().kind == answer_class::not_found) {
        co_return false;
      }
      co_return r.error();
    }
    co_return true;
  }

  // Waits in `l` for a turn shared with the calls waiting beside it, then for its answer.
  boost::asio::awaitable<outcome<bool>> queue(lane& l, nlohmann::json ids, event e,
                                              before_send go) {
    auto ex = co_await boost::asio::this_coro::executor;
    auto c = std::make_shared<lane_call>();
    c->ids = std::move(ids);
    c->e = std::move(e);
    c->go = std::move(go);
    c->ex = ex;
    c->done = std::make_shared<done_channel>(ex, 1);
    bool start = false;
    {
      const std::lock_guard lock(l.mutex);
      l.waiting.push_back(c);
      start = !std::exchange(l.draining, true);
    }
    if (start) {
      boost::asio::co_spawn(ex, drain(l), boost::asio::detached);
    }
    co_await c->done->async_receive(boost::asio::as_tuple(boost::asio::use_awaitable));
    co_return std::move(*c->answer);
  }

  // Takes turns for the calls waiting in `l` until none is left: at each turn, every call
  // waiting then (up to the request's limit) runs its before_send and goes in one request.
  boost::asio::awaitable<void> drain(lane& l) {
    // The calls that became ready in the same instant as the first join it, even when no turn
    // has to be waited for.
    co_await boost::asio::post(co_await boost::asio::this_coro::executor,
                               boost::asio::use_awaitable);
    for (;;) {
      {
        const std::lock_guard lock(l.mutex);
        if (l.waiting.empty()) {
          l.draining = false;
          co_return;
        }
      }
      const auto waiting = std::chrono::steady_clock::now();
      turn t;
      if (options_.spacing) {
        t = co_await options_.spacing->acquire(options_.turn);
      }
      if (options_.metrics != nullptr) {
        options_.metrics->rate_limit_wait(std::chrono::steady_clock::now() - waiting);
      }
      lane_calls group;
      {
        const std::lock_guard lock(l.mutex);
        while (!l.waiting.empty() && group.size() < l.max) {
          group.push_back(std::move(l.waiting.front()));
          l.waiting.pop_front();
        }
      }
      group = co_await cleared(std::move(group));
      if (group.empty()) {
        continue;  // every one was held back: the turn goes unused
      }
      if (options_.spacing) {
        co_await options_.spacing->leave(t);
      }
      // In flight while the next turn is awaited for the calls that came meanwhile.
      boost::asio::co_spawn(co_await boost::asio::this_coro::executor, send(l, std::move(group)),
                            boost::asio::detached);
    }
  }

  // Runs each call's before_send (at once, each on its caller's executor) and keeps the calls it
  // let go; the others end with not_sent().
  boost::asio::awaitable<lane_calls> cleared(lane_calls group) {
    auto ex = co_await boost::asio::this_coro::executor;
    auto answered = std::make_shared<done_channel>(ex, group.size());
    auto verdicts = std::make_shared<std::vector<char>>(group.size(), 1);
    std::size_t asked = 0;
    for (std::size_t i = 0; i < group.size(); ++i) {
      if (!group[i]->go) {
        continue;
      }
      ++asked;
      boost::asio::co_spawn(group[i]->ex, group[i]->go(),
                            [answered, verdicts, i](const std::exception_ptr& e, bool go) {
                              (*verdicts)[i] = e == nullptr && go ? 1 : 0;
                              answered->try_send(boost::system::error_code{});
                            });
    }
    for (std::size_t n = 0; n < asked; ++n) {
      co_await answered->async_receive(boost::asio::as_tuple(boost::asio::use_awaitable));
    }
    lane_calls out;
    for (std::size_t i = 0; i < group.size(); ++i) {
      if ((*verdicts)[i] != 0) {
        out.push_back(std::move(group[i]));
      } else {
        finish(*group[i], not_sent());
      }
    }
    co_return out;
  }

  // Sends a group that has its turn: alone as the single call, else as one shared request.
  boost::asio::awaitable<void> send(lane& l, lane_calls group) {
    if (group.size() == 1) {
      // Not `finish(c, co_await ...)`: g++ 12 frees a co_await's temporary twice when it is a
      // call's argument.
      auto& c = *group.front();
      auto answer = co_await single(l, c, false);
      finish(c, std::move(answer));
      co_return;
    }
    std::string suffix;
    nlohmann::json body;
    if (l.shared == endpoint::batch) {
      suffix = "/batch";
      body = {{"commands", nlohmann::json::array()}};
      for (std::size_t i = 0; i < group.size(); ++i) {
        body["commands"].push_back({{"name", "customers/events"},
                                    {"command_id", std::to_string(i)},
                                    {"data", track_body(group[i]->ids, group[i]->e)}});
      }
    } else {
      suffix = "/customers/anonymize_bulk";
      body = {{"customers", nlohmann::json::array()}};
      for (const auto& c : group) {
        body["customers"].push_back({{"customer_ids", c->ids}});
      }
    }
    auto r =
        co_await call(l.shared, l.used, "POST", suffix, body.dump(), no_download(), nullptr, false);
    if (!r && r.error().kind == answer_class::failed) {
      // The request as a whole was refused (not a credential): one call per job, each with its
      // own turn, so that one job's bad command cannot fail the others.
      for (auto& c : group) {
        boost::asio::co_spawn(
            c->ex,
            [this, &l, c]() -> boost::asio::awaitable<void> {
              auto answer = co_await single(l, *c, true);
              finish(*c, std::move(answer));
            },
            boost::asio::detached);
      }
      co_return;
    }
    if (!r) {
      for (auto& c : group) {
        finish(*c, r.error());
      }
      co_return;
    }
    if (l.shared == endpoint::anonymize_bulk) {
      for (auto& c : group) {
        finish(*c, true);
      }
      co_return;
    }
    // Each command's own answer, matched by command_id (else by position).
    const auto results_it = r->doc.find("results");
    const nlohmann::json empty = nlohmann::json::array();
    const auto& results =
        results_it != r->doc.end() && results_it->is_array() ? *results_it : empty;
    for (std::size_t i = 0; i < group.size(); ++i) {
      const nlohmann::json* result = nullptr;
      for (const auto& x : results) {
        if (x.is_object() && x.contains("command_id") && x["command_id"] == std::to_string(i)) {
          result = &x;
          break;
        }
      }
      if (result == nullptr && i < results.size() && results[i].is_object() &&
          !results[i].contains("command_id")) {
        result = &results[i];
      }
      if (result == nullptr) {
        finish(*group[i], call_error{answer_class::transient,
                                     200,
                                     "the batch answer holds no result for this command",
                                     "",
                                     {}});
        continue;
      }
      auto c = classify(200, result->dump(), std::nullopt, l.used, endpoint::track, clock_->now());
      if (c.kind == answer_class::ok) {
        finish(*group[i], true);
      } else {
        finish(*group[i], std::move(c));
      }
    }
  }

  // One call of a lane on its own endpoint (its before_send already ran).
  boost::asio::awaitable<outcome<bool>> single(lane& l, lane_call& c, bool take_turn) {
    if (l.single == endpoint::anonymize) {
      co_return co_await anonymize_one(c.ids, nullptr, take_turn);
    }
    auto r = co_await call(endpoint::track, l.used, "POST", "/customers/events",
                           track_body(c.ids, c.e).dump(), no_download(), nullptr, take_turn);
    if (!r) {
      co_return r.error();
    }
    co_return true;
  }

  std::optional<std::string> authorization(auth a, call_error& missing) const {
    if (a == auth::token) {
      const auto token = credentials_.find(credential::exponea_api_token);
      if (!token) {
        missing = rejection(0, "exponea_api_token is not set", "exponea_api_token");
        return std::nullopt;
      }
      return fmt::format("Token {}", token->reveal());
    }
    const auto key = credentials_.find(credential::exponea_api_key);
    const auto secret_value = credentials_.find(credential::exponea_api_secret);
    if (!key || !secret_value) {
      const char* which = !key ? "exponea_api_key" : "exponea_api_secret";
      missing = rejection(0, fmt::format("{} is not set", which), which);
      return std::nullopt;
    }
    return fmt::format("Basic {}", crypto::base64_encode(fmt::format("{}:{}", key->reveal(),
                                                                     secret_value->reveal())));
  }

  // `download`: a 2xx answer's body goes to that file and the returned document is empty.
  // `go` (may be null or empty): runs once the turn has come; the call is sent only if it says
  // so. Without `take_turn` the caller already holds the turn.
  boost::asio::awaitable<outcome<answer_body>> call(endpoint ep, auth a, std::string method,
                                                    std::string suffix, std::string body,
                                                    std::filesystem::path download = {},
                                                    before_send* go = nullptr,
                                                    bool take_turn = true) {
    call_error missing;
    const auto project = credentials_.find(credential::exponea_project_token);
    if (!project) {
      co_return rejection(0, "exponea_project_token is not set", "exponea_project_token");
    }
    auto authz = authorization(a, missing);
    if (!authz) {
      co_return missing;
    }
    const bool tracking =
        ep == endpoint::track || ep == endpoint::system_time || ep == endpoint::batch;
    http::client_request req;
    req.method = std::move(method);
    req.target =
        fmt::format("/{}/v2/projects/{}{}", tracking ? "track" : "data", project->reveal(), suffix);
    req.headers.push_back({"Authorization", std::move(*authz)});
    req.headers.push_back({"Accept", "application/json"});
    if (!body.empty()) {
      req.headers.push_back({"Content-Type", "application/json"});
    }
    req.body = std::move(body);
    req.idempotent = ep == endpoint::export_one || ep == endpoint::system_time ||
                     ep == endpoint::consent_categories;
    req.response_file = download;
    req.max_file_bytes = options_.max_export_bytes;
    req.response_key = options_.export_key;  // never in the clear on disk, even for seconds
    const auto waiting = std::chrono::steady_clock::now();
    turn t;
    if (options_.spacing && take_turn) {
      t = co_await options_.spacing->acquire(options_.turn);
    }
    if (go != nullptr && *go) {
      if (!co_await (*go)()) {
        co_return not_sent();
      }
      if (options_.spacing && take_turn) {
        co_await options_.spacing->leave(t);
      }
    }
    const auto sending = std::chrono::steady_clock::now();
    auto res = co_await client_->send(std::move(req));
    if (options_.metrics != nullptr) {
      if (take_turn) {
        options_.metrics->rate_limit_wait(sending - waiting);
      }
      options_.metrics->exponea_call(to_string(ep), res ? res->status : 0,
                                     std::chrono::steady_clock::now() - sending);
    }
    if (res && res->status == 429 && options_.spacing) {
      const auto wait = parse_retry_after(res->header("Retry-After"), clock_->now());
      options_.spacing->slow_down(wait.value_or(std::chrono::seconds(1)));
    }
    if (!res) {
      if (!download.empty() && res.error().is(errc::upstream_too_large)) {
        co_return call_error{answer_class::failed,
                             0,
                             fmt::format("the export is larger than [exponea] max_export_bytes "
                                         "({} bytes); raise it to export this customer",
                                         options_.max_export_bytes),
                             "",
                             {}};
      }
      co_return classify(res.error());
    }
    if (res->body_in_file) {
      answer_body empty{nlohmann::json::object()};
      co_return empty;
    }
    auto c = classify(res->status, res->body, res->header("Retry-After"), a, ep, clock_->now());
    if (c.kind != answer_class::ok) {
      co_return c;
    }
    auto doc = nlohmann::json::parse(res->body, nullptr, false);
    if (doc.is_discarded()) {
      if (ep == endpoint::export_one) {
        co_return call_error{answer_class::failed,
                             res->status,
                             "export-one answered with a body that is not JSON",
                             "",
                             {}};
      }
      doc = nlohmann::json::object();
    }
    answer_body out{std::move(doc)};
    co_return out;
  }

  std::uint64_t next_download_id() {
    const std::lock_guard lock(mutex_);
    return random_();
  }

  // The first 64 KiB of the download (sealed when there is an export key): an error answer is
  // far shorter.
  std::string read_small(const std::filesystem::path& p) const {
    auto source = options_.export_key.empty()
                      ? http::file_source(p)
                      : http::sealed_file_source(p, options_.export_key, p.filename().string());
    if (!source) {
      return "";
    }
    std::string text(64 * 1024, '\0');
    auto got = (*source)->read(text);
    text.resize(got ? *got : 0);
    return text;
  }

  std::unique_ptr<http::client> client_;
  const credential_store& credentials_;
  std::shared_ptr<clock> clock_;
  api_options options_;
  boost::asio::thread_pool scanner_{1};
  std::mutex mutex_;
  std::mt19937_64 random_{std::random_device{}()};
  lane audit_lane_{endpoint::track, endpoint::batch, auth::token, max_batch_commands};
  lane consent_lane_{endpoint::track, endpoint::batch, auth::basic, max_batch_commands};
  lane anonymize_lane_{endpoint::anonymize, endpoint::anonymize_bulk, auth::basic,
                       max_bulk_customers};
};

}  // namespace

call_error not_sent() {
  return call_error{answer_class::failed, 0, "not sent: held back before it went out", "", {}};
}

std::unique_ptr<api> make_api(std::unique_ptr<http::client> client,
                              const credential_store& credentials, std::shared_ptr<clock> clock,
                              api_options options) {
  return std::make_unique<api_impl>(std::move(client), credentials, std::move(clock),
                                    std::move(options));
}

}  // namespace dsr::exponea
