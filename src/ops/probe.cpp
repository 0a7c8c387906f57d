#include "dsr/ops/probe.hpp"

#include "dsr/common/time.hpp"
#include "dsr/mineos/reporter.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <random>

namespace dsr::exponea {
namespace {

using status = check::status;

check passed(std::string name, std::string detail = "") {
  return check{std::move(name), status::ok, std::move(detail)};
}
check failed(std::string name, std::string detail) {
  return check{std::move(name), status::failed, std::move(detail)};
}
check skipped(std::string name, std::string reason) {
  return check{std::move(name), status::skipped, std::move(reason)};
}

// What to do about a rejected value.
std::string fix_for(const std::string& value) {
  if (value.starts_with("exponea_api_secret")) {
    return "copy the secret of the private API group again (Project settings > Access "
           "management > API)";
  }
  if (value.starts_with("exponea_api_key (its API group needs Events")) {
    return "grant Events > consent Set on the private API group's Events tab";
  }
  if (value.starts_with("exponea_api_key (its API group needs")) {
    return "grant that permission on the private API group's GDPR tab";
  }
  if (value.starts_with("exponea_api_key")) {
    return "copy the API key ID of the private API group again";
  }
  if (value.starts_with("exponea_project_token")) {
    return "copy the project token from Project settings > Access management > API";
  }
  if (value.starts_with("exponea_api_token")) {
    return "copy the API token of the public API group again";
  }
  return "check this value";
}

std::string rejected_detail(const call_error& e);

// The [consent] categories check, when it cannot be made.
check consent_skipped(const config& cfg, std::string reason) {
  if (cfg.consent.categories.empty()) {
    return skipped("[consent] categories",
                   cfg.requests.opt_out_types.empty()
                       ? "none configured ([requests] opt_out_types is empty too)"
                       : "none configured: opt-out requests ([requests] opt_out_types) will fail "
                         "with \"no consent categories configured\"; list the Bloomreach "
                         "consent categories an opt-out revokes");
  }
  return skipped("[consent] categories", std::move(reason));
}

// Each configured category exists in the project and accepts the private API as a source.
check consent_check(const config& cfg, const outcome<std::vector<consent_category>>& listed) {
  const std::string name = fmt::format("[consent] categories {} (consent/categories)",
                                       fmt::join(cfg.consent.categories, ", "));
  if (!listed) {
    if (listed.error().kind == answer_class::rejected) {
      return failed(name, rejected_detail(listed.error()));
    }
    return failed(name, fmt::format("Exponea answered {}", listed.error().message));
  }
  std::vector<std::string> problems;
  for (const auto& want : cfg.consent.categories) {
    const auto it = std::find_if(listed->begin(), listed->end(),
                                 [&](const consent_category& c) { return c.id == want; });
    if (it == listed->end()) {
      problems.push_back(fmt::format("\"{}\" is not a consent category of this project", want));
    } else if (!it->private_api) {
      problems.push_back(fmt::format(
          "\"{}\" does not accept the private API as a source (sources.private_api is false): "
          "allow it in the category's settings, or an opt-out cannot revoke it",
          want));
    }
  }
  if (problems.empty()) {
    return passed(name);
  }
  std::vector<std::string> ids;
  for (const auto& c : *listed) {
    ids.push_back(c.id);
  }
  return failed(name, fmt::format("{}; the project's categories: {}", fmt::join(problems, "; "),
                                  ids.empty() ? std::string("none")
                                              : fmt::format("{}", fmt::join(ids, ", "))));
}

std::string rejected_detail(const call_error& e) {
  if (e.status == 0) {
    std::string upper = e.value;
    std::transform(upper.begin(), upper.end(), upper.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return fmt::format(
        "{} is not set: provide it as $CREDENTIALS_DIRECTORY/{}, "
        "DSR_CONNECTOR_{}, or in [credentials]",
        e.value, e.value, upper);
  }
  return fmt::format("{} rejected ({}): {}", e.value, e.message, fix_for(e.value));
}

}  // namespace

std::string_view to_string(check::status s) {
  switch (s) {
    case status::ok:
      return "ok";
    case status::failed:
      return "failed";
    case status::skipped:
      return "skipped";
  }
  return "";
}

boost::asio::awaitable<std::vector<check>> run_checks(api& exponea, const config& cfg,
                                                      check_context ctx) {
  std::vector<check> out;
  const std::string base = fmt::format("[exponea] base_url {}", cfg.exponea.base_url);
  const std::string basic_name =
      "exponea_api_key + exponea_api_secret + exponea_project_token (system/time)";
  const std::string token_name = "exponea_api_token (system/time)";
  const std::string export_name = "GDPR > Export customer permission (export-one)";

  auto basic = co_await exponea.system_time(auth::basic);
  const bool unreachable =
      !basic && basic.error().status == 0 && basic.error().kind == answer_class::transient;
  if (unreachable) {
    out.push_back(failed(base, fmt::format("{}: check the URL, the network and, for https, the "
                                           "certificate ([exponea] ca_file)",
                                           basic.error().message)));
    for (const auto& n : {basic_name, token_name, export_name}) {
      out.push_back(skipped(n, "the base URL cannot be reached"));
    }
    out.push_back(consent_skipped(cfg, "the base URL cannot be reached"));
  } else {
    out.push_back(passed(base, "reachable"));
    bool basic_ok = false;
    bool project_ok = true;
    if (basic) {
      out.push_back(passed(basic_name));
      basic_ok = true;
    } else if (basic.error().kind == answer_class::rejected) {
      out.push_back(failed(basic_name, rejected_detail(basic.error())));
      project_ok = basic.error().value != "exponea_project_token";
    } else {
      out.push_back(failed(basic_name, fmt::format("Exponea answered {}", basic.error().message)));
    }
    if (!project_ok) {
      out.push_back(skipped(token_name, "needs a valid exponea_project_token"));
    } else {
      auto token = co_await exponea.system_time(auth::token);
      if (token) {
        out.push_back(passed(token_name));
      } else if (token.error().kind == answer_class::rejected) {
        out.push_back(failed(token_name, rejected_detail(token.error())));
      } else {
        out.push_back(
            failed(token_name, fmt::format("Exponea answered {}", token.error().message)));
      }
    }
    if (!basic_ok) {
      out.push_back(skipped(export_name, "needs valid exponea_api_key and exponea_api_secret"));
      out.push_back(consent_skipped(cfg, "needs valid exponea_api_key and exponea_api_secret"));
    } else {
      // An ID that cannot exist: 404 proves the permission without touching anyone's data.
      std::random_device rd;
      const std::string probe_id = fmt::format("dsr-connector-check-{:016x}@invalid",
                                               (static_cast<std::uint64_t>(rd()) << 32) | rd());
      export_request probe;
      probe.ids = {{cfg.exponea.customer_id_type, probe_id}};
      auto exported = co_await exponea.export_one(std::move(probe));
      if (exported) {
        out.push_back(passed(export_name));
      } else if (exported.error().kind == answer_class::rejected) {
        out.push_back(failed(export_name, rejected_detail(exported.error())));
      } else {
        out.push_back(
            failed(export_name, fmt::format("Exponea answered {}", exported.error().message)));
      }
      if (cfg.consent.categories.empty()) {
        out.push_back(consent_skipped(cfg, ""));
      } else {
        auto listed = co_await exponea.consent_categories();
        out.push_back(consent_check(cfg, listed));
      }
    }
  }
  out.push_back(skipped("GDPR > Anonymize customer permission",
                        "cannot be checked without anonymizing a customer"));
  out.push_back(
      skipped(fmt::format("exponea_api_token may track '{}' events", cfg.exponea.event_type),
              "cannot be checked without tracking an event, which would create a "
              "customer"));
  if (!cfg.requests.opt_out_types.empty()) {
    out.push_back(skipped("Events > consent Set permission of exponea_api_key (opt-outs)",
                          "cannot be checked without tracking a consent event, which would "
                          "change a customer's consent"));
  }
  const auto& mineos_cfg = cfg.mineos;
  if (ctx.mineos == nullptr) {
    out.push_back(
        skipped("[mineos] api_base_url", "api_base_url is empty: outcomes are not reported"));
    out.push_back(skipped("mineos_api_key", "api_base_url is empty: nothing is reported"));
    co_return out;
  }
  auto reached = co_await ctx.mineos->probe();
  const std::string name = fmt::format("[mineos] api_base_url {}", mineos_cfg.api_base_url);
  if (reached) {
    out.push_back(passed(name, "reachable"));
  } else {
    out.push_back(
        failed(name, fmt::format("{}: check the URL (https://api.portal.saymine.com for the EU, "
                                 "https://api.us.portal.saymine.com for the US) and the network",
                                 reached.error().detail)));
  }
  const std::string key_name = "mineos_api_key (a test status call)";
  if (!ctx.test) {
    out.push_back(skipped("mineos_api_key",
                          "cannot be checked without a ticket to report on; MineOS's \"Test your "
                          "integration\" (isTest) checks it with a test status call"));
  } else if (ctx.test->request_id.empty() || ctx.test->integration_id.empty()) {
    out.push_back(
        skipped("mineos_api_key",
                fmt::format("the isTest delivery carries no {}: no test status call "
                            "can be made",
                            ctx.test->request_id.empty() ? "request.id" : "integrationId")));
  } else if (!reached) {
    out.push_back(skipped(key_name, "[mineos] api_base_url cannot be reached"));
  } else if (ctx.credentials == nullptr || !ctx.credentials->find(credential::mineos_api_key)) {
    out.push_back(failed(key_name,
                         "mineos_api_key is not set: provide it as "
                         "$CREDENTIALS_DIRECTORY/mineos_api_key, "
                         "DSR_CONNECTOR_MINEOS_API_KEY, or in [credentials]"));
  } else {
    auto answer =
        co_await mineos::send_test_report(*ctx.mineos, *ctx.credentials, ctx.test->request_id,
                                          ctx.test->integration_id, ctx.test->action);
    if (!answer) {
      out.push_back(
          failed(key_name, fmt::format("MineOS did not answer: {}", answer.error().detail)));
    } else if (answer->status >= 200 && answer->status < 300) {
      out.push_back(passed(key_name, "MineOS accepted a test: true status call"));
    } else if (answer->status == 401) {
      out.push_back(
          failed(key_name, fmt::format("{}: mineos_api_key rejected; create an API key in MineOS "
                                       "(For Developers > API Keys) for this workspace and set it",
                                       mineos::report_error_text(answer->status, answer->body))));
    } else if (answer->status == 404) {
      out.push_back(
          failed(key_name, fmt::format("{}: integrationId {} or the ticket is unknown to MineOS; "
                                       "check the custom system's integration id ([mineos] "
                                       "integration_id when deliveries carry none)",
                                       mineos::report_error_text(answer->status, answer->body),
                                       ctx.test->integration_id)));
    } else {
      out.push_back(failed(key_name, mineos::report_error_text(answer->status, answer->body)));
    }
  }
  co_return out;
}

bool all_passed(const std::vector<check>& checks) {
  return std::none_of(checks.begin(), checks.end(),
                      [](const check& c) { return c.result == status::failed; });
}

nlohmann::json checks_json(const std::vector<check>& checks) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& c : checks) {
    list.push_back({{"name", c.name}, {"status", to_string(c.result)}, {"detail", c.detail}});
  }
  return {{"test", true}, {"ok", all_passed(checks)}, {"checks", std::move(list)}};
}

std::string checks_text(const std::vector<check>& checks) {
  std::string out;
  for (const auto& c : checks) {
    const auto label = c.result == status::ok       ? "OK     "
                       : c.result == status::failed ? "FAILED "
                                                    : "SKIPPED";
    out += fmt::format("{} {}{}{}\n", label, c.name, c.detail.empty() ? "" : ": ", c.detail);
  }
  return out;
}

nlohmann::json preview_records(const std::optional<export_summary>& e) {
  if (!e) {
    return {{"records", nlohmann::json::array()}};
  }
  std::string last_text;
  if (e->last_event_at && *e->last_event_at >= 0) {
    last_text = format_rfc3339(
        time_point{std::chrono::milliseconds(static_cast<std::int64_t>(*e->last_event_at * 1000))});
  }
  return {{"records",
           {{{"name", "Bloomreach customer"},
             {"properties",
              {{{"name", "properties"}, {"value", std::to_string(e->properties)}},
               {{"name", "events"}, {"value", std::to_string(e->events)}},
               {{"name", "last event"}, {"value", last_text}}}}}}}};
}

}  // namespace dsr::exponea

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>

namespace dsr::exponea {
namespace {

// Whichever comes first, the work or the deadline, answers; the other is ignored.
struct once {
  std::atomic<bool> answered{false};
  http::responder done;
  void answer(http::response r) {
    if (!answered.exchange(true)) {
      done(std::move(r));
    }
  }
};

// Coroutines are free functions, not capturing lambdas: a lambda's captures live in the lambda
// object, which is gone when the spawning function returns; parameters live in the frame.
boost::asio::awaitable<void> is_test_work(api& exponea, check_context ctx, const config& cfg,
                                          std::shared_ptr<once> o) {
  const auto checks = co_await run_checks(exponea, cfg, std::move(ctx));
  o->answer(http::json_response(all_passed(checks) ? 200 : 503, checks_json(checks)));
}

boost::asio::awaitable<void> preview_work(api& exponea, nlohmann::json ids,
                                          std::shared_ptr<once> o) {
  export_request lookup;
  lookup.ids = std::move(ids);
  auto exported = co_await exponea.export_one(std::move(lookup));
  if (!exported) {
    o->answer(http::problem(502, fmt::format("Exponea failed: {}", exported.error().message)));
    co_return;
  }
  o->answer(http::json_response(200, preview_records(*exported)));
}

// The completion of a probe's coroutine: a bug that escapes it answers 500 at once (rather than
// leaving the caller to the deadline) and is logged; the process goes on.
auto answer_500_if_thrown(std::shared_ptr<once> o, const char* what) {
  return [o = std::move(o), what](const std::exception_ptr& e) {
    if (!e) {
      return;
    }
    std::string why = "unknown exception";
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      why = ex.what();
    } catch (...) {
    }
    spdlog::error("{} failed: {}", what, why);
    o->answer(http::problem(500, fmt::format("internal error while answering the {}", what)));
  };
}

void arm_deadline(boost::asio::any_io_executor ex, std::chrono::milliseconds limit,
                  std::shared_ptr<once> o, http::response on_timeout) {
  auto timer = std::make_shared<boost::asio::steady_timer>(ex, limit);
  timer->async_wait([timer, o, r = std::move(on_timeout)](
                        const boost::system::error_code&) mutable { o->answer(std::move(r)); });
}

}  // namespace

void answer_is_test(boost::asio::any_io_executor ex, api& exponea, check_context ctx,
                    const config& cfg, std::chrono::milliseconds limit, http::responder done) {
  auto o = std::make_shared<once>();
  o->done = std::move(done);
  const check late{"all checks", check::status::failed,
                   fmt::format("did not finish within {} s; Exponea or MineOS is slow or "
                               "unreachable",
                               std::chrono::duration_cast<std::chrono::seconds>(limit).count())};
  arm_deadline(ex, limit, o, http::json_response(503, checks_json({late})));
  boost::asio::co_spawn(ex, is_test_work(exponea, std::move(ctx), cfg, o),
                        answer_500_if_thrown(o, "isTest call"));
}

void answer_preview(boost::asio::any_io_executor ex, api& exponea, nlohmann::json ids,
                    std::chrono::milliseconds limit, http::responder done) {
  auto o = std::make_shared<once>();
  o->done = std::move(done);
  arm_deadline(
      ex, limit, o,
      http::problem(504,
                    fmt::format("Exponea did not answer within {} s",
                                std::chrono::duration_cast<std::chrono::seconds>(limit).count())));
  boost::asio::co_spawn(ex, preview_work(exponea, std::move(ids), o),
                        answer_500_if_thrown(o, "preview"));
}

}  // namespace dsr::exponea
