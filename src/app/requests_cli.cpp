// `dsr-connector requests list | show | retry | cancel`: the operator API from the command line,
// as readable tables or (--json) the API's own JSON.

#include "dsr/app/daemon.hpp"
#include "dsr/common/text.hpp"
#include "dsr/config/config.hpp"
#include "dsr/credentials/credentials.hpp"
#include "dsr/http/client.hpp"

#include <fmt/format.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>

namespace dsr::app {
namespace {

using json = nlohmann::json;

// Where the admin API listens, as this host reaches it: a wildcard becomes loopback.
std::string admin_url(const config& cfg) {
  auto ep = cfg.server.admin_listen.value_or(cfg.server.listen);
  if (ep.host == "0.0.0.0" || ep.host.empty()) {
    ep.host = "127.0.0.1";
  } else if (ep.host == "::") {
    ep.host = "::1";
  }
  const bool v6 = ep.host.find(':') != std::string::npos;
  return fmt::format("http://{}{}{}:{}", v6 ? "[" : "", ep.host, v6 ? "]" : "", ep.port);
}

std::string text(const json& v) {
  if (v.is_null()) {
    return "-";
  }
  // The daemon cleans what it stores; a terminal is protected all the same (another version of
  // the daemon, a proxy in between): no control character of a peer's text reaches it.
  if (v.is_string()) {
    return clean_text(v.get<std::string>());
  }
  return clean_text(v.dump(-1, ' ', false, json::error_handler_t::replace));
}

// An id as one URL path segment: percent-encoded, so that "ab cd" or "a/b" reaches its job.
std::string path_segment(std::string_view id) {
  return boost::urls::encode(id, boost::urls::unreserved_chars);
}

// Columns padded to their widest cell.
std::string table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& r : rows) {
    width.resize(std::max(width.size(), r.size()));
    for (std::size_t i = 0; i < r.size(); ++i) {
      width[i] = std::max(width[i], r[i].size());
    }
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += i + 1 == r.size() ? r[i] : fmt::format("{:<{}}  ", r[i], width[i]);
    }
    out += line + "\n";
  }
  return out;
}

std::string list_table(const json& body) {
  std::vector<std::vector<std::string>> rows{{"REQUEST ID", "OPERATION", "REQUEST TYPE", "STATE",
                                              "ATTEMPTS", "RECEIVED", "DUE", "DEADLINE", "OUTCOME",
                                              "REPORTED", "WORKER"}};
  for (const auto& j : body.value("requests", json::array())) {
    rows.push_back(
        {text(j["requestId"]), text(j["operation"]), text(j.value("requestType", json(nullptr))),
         text(j["state"]), text(j["attempts"]), text(j["receivedAt"]), text(j["dueAt"]),
         text(j["deadline"]), text(j["outcome"]), j.value("reported", false) ? "yes" : "no",
         text(j.value("worker", json(nullptr)))});
  }
  return rows.size() == 1 ? "no jobs\n" : table(rows);
}

std::string show_text(const json& j) {
  std::vector<std::vector<std::string>> fields;
  for (const char* key :
       {"requestId", "operation", "requestType", "state", "attempts", "createdAt", "receivedAt",
        "updatedAt", "dueAt", "deadline", "outcome", "reported", "reportError", "worker"}) {
    fields.push_back({std::string(key) + ":", text(j.value(key, json(nullptr)))});
  }
  std::string out = table(fields) + "\nhistory:\n";
  std::vector<std::vector<std::string>> steps{{"  AT", "STEP", "RESULT"}};
  for (const auto& s : j.value("history", json::array())) {
    steps.push_back({"  " + text(s["at"]), text(s["step"]), text(s["result"])});
  }
  return out + table(steps);
}

}  // namespace

int requests(const std::filesystem::path& config_file, const std::string& command,
             const std::string& id, const std::string& state, bool as_json) {
  config cfg;
  try {
    cfg = load_config(config_file);
  } catch (const config_error& e) {
    fmt::print(stderr, "dsr-connector: {}\n", e.what());
    return 2;
  }
  credential_load_report report;
  auto credentials = load_credentials(cfg.credentials, process_environment(), report);
  const auto token = credentials->find(credential::admin_token);
  if (!token || token->empty()) {
    fmt::print(stderr,
               "dsr-connector: admin_token is missing: the requests command authenticates to the "
               "admin API with it (set it as for serve: $CREDENTIALS_DIRECTORY/admin_token, "
               "DSR_CONNECTOR_ADMIN_TOKEN, admin_token_file or admin_token in {})\n",
               cfg.source.string());
    return 2;
  }
  const auto url = admin_url(cfg);
  boost::asio::io_context ioc;
  auto client = http::make_client(ioc.get_executor(), {url, std::chrono::seconds(30)});
  if (!client) {
    fmt::print(stderr, "dsr-connector: the admin API at {}: {}\n", url, client.error().detail);
    return 2;
  }
  http::client_request req;
  if (command == "list") {
    req.target = "/v1/requests?limit=1000";
    if (!state.empty()) {
      req.target += "&state=" + path_segment(state);
    }
  } else if (command == "show") {
    req.target = "/v1/requests/" + path_segment(id);
  } else {
    req.method = "POST";
    req.target = fmt::format("/v1/requests/{}/{}", path_segment(id), command);
  }
  req.headers.push_back({"Authorization", "Bearer " + std::string(token->reveal())});
  auto sent = boost::asio::co_spawn(ioc, (*client)->send(std::move(req)), boost::asio::use_future);
  ioc.run();
  const auto res = sent.get();
  if (!res) {
    fmt::print(stderr, "dsr-connector: cannot reach the daemon's admin API at {}: {}\n", url,
               res.error().detail);
    return 1;
  }
  const auto body = json::parse(res->body, nullptr, false);
  if (res->status >= 300) {
    const auto detail = body.is_object() && body.contains("detail") ? text(body["detail"])
                                                                    : clean_text(res->body, 2000);
    fmt::print(stderr, "dsr-connector: {} {}: {}\n", res->status,
               command == "list" || command == "show" ? "refused" : command + " refused", detail);
    return 1;
  }
  if (as_json) {
    fmt::print("{}\n", body.is_discarded()
                           ? clean_text(res->body)
                           : body.dump(2, ' ', false, json::error_handler_t::replace));
  } else if (command == "list") {
    fmt::print("{}", list_table(body));
  } else if (command == "show") {
    fmt::print("{}", show_text(body));
  } else if (command == "retry") {
    fmt::print("{}: {}\n", id,
               body.value("status", "") == "report resent" ? "the report will be sent again"
                                                           : "queued again");
  } else {
    fmt::print("{}: cancelled; MineOS will be told Failed \"cancelled by operator\"\n", id);
  }
  return 0;
}

}  // namespace dsr::app
