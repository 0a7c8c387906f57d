#include "dsr/exponea/client.hpp"

#include "dsr/common/crypto.hpp"
#include "dsr/common/time.hpp"
#include "dsr/http/body_source.hpp"

#include <fmt/format.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/throw_exception.hpp>

#include <sys/stat.h>

#include <cerrno>

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

  boost::asio::awaitable<outcome<void>> track(nlohmann::json ids, event e, auth a) override {
    nlohmann::json body{{"customer_ids", std::move(ids)},
                        {"event_type", e.type},
                        {"timestamp", e.timestamp},
                        {"properties", std::move(e.properties)}};
    auto r = co_await call(endpoint::track, a, "POST", "/customers/events", body.dump());
    if (!r) {
      co_return r.error();
    }
    co_return outcome<void>{};
  }

  boost::asio::awaitable<outcome<bool>> anonymize(nlohmann::json ids) override {
    nlohmann::json body{{"customer_ids", std::move(ids)}};
    auto r = co_await call(endpoint::anonymize, auth::basic, "POST", "/customers/anonymize",
                           body.dump());
    if (!r) {
      if (r.error().kind == answer_class::not_found) {
        co_return false;
      }
      co_return r.error();
    }
    co_return true;
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
  boost::asio::awaitable<outcome<answer_body>> call(endpoint ep, auth a, std::string method,
                                                    std::string suffix, std::string body,
                                                    std::filesystem::path download = {}) {
    call_error missing;
    const auto project = credentials_.find(credential::exponea_project_token);
    if (!project) {
      co_return rejection(0, "exponea_project_token is not set", "exponea_project_token");
    }
    auto authz = authorization(a, missing);
    if (!authz) {
      co_return missing;
    }
    const bool tracking = ep == endpoint::track || ep == endpoint::system_time;
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
    if (options_.spacing) {
      co_await options_.spacing->acquire(options_.turn);
    }
    const auto sending = std::chrono::steady_clock::now();
    auto res = co_await client_->send(std::move(req));
    if (options_.metrics != nullptr) {
      options_.metrics->rate_limit_wait(sending - waiting);
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
};

}  // namespace

std::unique_ptr<api> make_api(std::unique_ptr<http::client> client,
                              const credential_store& credentials, std::shared_ptr<clock> clock,
                              api_options options) {
  return std::make_unique<api_impl>(std::move(client), credentials, std::move(clock),
                                    std::move(options));
}

}  // namespace dsr::exponea
