// libFuzzer target: Exponea's answers as the daemon reads them: classify() and error_text()
// (exponea/answers.hpp) and the streaming export scan (exponea/export_scan.hpp). Input: one byte
// choosing the HTTP status, the Retry-After header up to a newline, then the body.
// Beyond not crashing: the error text stays one short line, a Retry-After is never negative,
// and a scanned export is re-written as valid JSON {"ids":{},"properties":{},"events":[]}.

#include "dsr/exponea/answers.hpp"
#include "dsr/exponea/export_scan.hpp"

#include <unistd.h>
#include <nlohmann/json.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace {

// A private scratch folder for this process, removed when it exits.
struct scratch {
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("dsr-fuzz-exponea-" + std::to_string(::getpid()));
  scratch() { std::filesystem::create_directories(dir); }
  ~scratch() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  scratch(const scratch&) = delete;
  scratch& operator=(const scratch&) = delete;
};

const std::filesystem::path& work_dir() {
  static const scratch s;
  return s.dir;
}

void check_scan(std::string_view body) {
  const auto answer = work_dir() / "answer.json";
  const auto saved = work_dir() / "saved.json";
  {
    std::ofstream out(answer, std::ios::binary | std::ios::trunc);
    out.write(body.data(), static_cast<std::streamsize>(body.size()));
  }
  std::error_code ec;
  std::filesystem::remove(saved, ec);
  const auto summary = dsr::exponea::scan_export(answer, {"privacy_request", "req-1"}, saved);
  if (!summary) {
    if (summary.error().detail.empty()) {
      std::abort();
    }
    return;
  }
  if (!summary->success) {
    return;
  }
  std::ifstream in(saved, std::ios::binary);
  const auto j = nlohmann::json::parse(in, nullptr, false);
  // The scan counts every member it streams; a parser keeps one of each repeated key (an answer
  // may repeat one), so the parsed objects hold at most what the scan counted.
  if (j.is_discarded() || !j.is_object() || j.size() != 3 || !j["ids"].is_object() ||
      !j["properties"].is_object() || !j["events"].is_array() || j["ids"].size() > summary->ids ||
      j["properties"].size() > summary->properties || j["events"].size() != summary->events) {
    std::abort();  // the saved customer is not what the scan reported
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) {
    return 0;
  }
  static constexpr std::array<unsigned, 12> statuses{200, 400, 401, 403, 404, 409,
                                                     422, 429, 500, 502, 503, 504};
  const unsigned status = statuses[data[0] % statuses.size()];
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto nl = rest.find('\n');
  const std::string_view retry_after = rest.substr(0, nl);
  const std::string_view body = nl == std::string_view::npos ? "" : rest.substr(nl + 1);

  const auto text = dsr::exponea::error_text(body);
  if (text.find('\n') != std::string::npos || text.size() > 4096) {
    std::abort();
  }
  using namespace dsr::exponea;
  const dsr::time_point now{std::chrono::sys_days{std::chrono::year{2026} / 11 / 29}};
  for (const auto used : {auth::basic, auth::token}) {
    for (const auto ep :
         {endpoint::export_one, endpoint::track, endpoint::anonymize, endpoint::system_time}) {
      const auto c = classify(status, body, retry_after, used, ep, now);
      if (c.retry_after && c.retry_after->count() < 0) {
        std::abort();
      }
      if (c.kind == answer_class::rejected && c.value.empty()) {
        std::abort();  // a rejection must name what to fix
      }
    }
  }
  if (status == 200) {
    check_scan(body);
  }
  return 0;
}
