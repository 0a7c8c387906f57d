#pragma once
// What the end-to-end tests count in the simulator's answers: privacy_request events per request
// id (GET /_sim/state) and acknowledged reports per ticket (GET /_sim/mineos).

#include <nlohmann/json.hpp>

#include <map>
#include <string>

namespace dsr::test {

inline std::map<std::string, int> audit_events(const nlohmann::json& state) {
  std::map<std::string, int> out;
  for (const auto& c : state) {
    for (const auto& e : c["events"]) {
      if (e.value("type", "") == "privacy_request") {
        ++out[e["properties"].value("request_id", "")];
      }
    }
  }
  return out;
}

inline std::map<std::string, int> acknowledged_reports(const nlohmann::json& reports) {
  std::map<std::string, int> out;
  for (const auto& r : reports) {
    if (r["status"] == 200) {
      ++out[r["ticket_id"].get<std::string>()];
    }
  }
  return out;
}

}  // namespace dsr::test
