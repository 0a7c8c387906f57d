// Per-request costs of the intake path, one piece at a time, on one thread: what the profile of
// bench/intake.sh spreads over three threads and the kernel. Machine-independent enough to compare
// two builds on the same machine (run both, alternating); never a test.
//   build/dsr-micro-bench [iterations]     (default 200,000)
// One JSON line per measure: {"measure": "...", "us": <median microseconds per operation of 5
// rounds>, "min": ..., "max": ...}.
#include "dsr/common/crypto.hpp"
#include "dsr/jobs/store.hpp"
#include "dsr/mineos/webhook.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

namespace {

// The body bench/make-bodies.py signs, as MineOS sends it.
constexpr const char* body =
    R"({"traceId":"bench-trace-000000000","integrationId":"bench","isTest":false,)"
    R"("request":{"id":"bench-req-000000000","type":"delete","source":"Form",)"
    R"("domain":"example.com","createdAt":"2026-12-01T10:00:00.000Z",)"
    R"("requestType":{"id":"delete","name":"delete"}},"userInfo":{"name":"Bench Subject",)"
    R"("email":"subject0@example.com","isVerified":true,"customFields":{}}})";

std::size_t sink = 0;  // keeps the optimiser from dropping the work

// Median, min and max of 5 rounds of `n` calls, in microseconds per operation (`per` of them in
// each call).
void measure(const char* name, long n, const std::function<void(long)>& op, long per = 1) {
  std::vector<double> rounds;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (long i = 0; i < n; ++i) {
      op(i);
    }
    const auto t1 = std::chrono::steady_clock::now();
    rounds.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count() /
                     static_cast<double>(n * per));
  }
  std::sort(rounds.begin(), rounds.end());
  std::printf("{\"measure\":\"%s\",\"us\":%.3f,\"min\":%.3f,\"max\":%.3f}\n", name, rounds[2],
              rounds.front(), rounds.back());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const long n = argc > 1 ? std::atol(argv[1]) : 200000;
  const std::string webhook_body = body;
  const std::string secret = "bench-webhook-secret";
  const std::string key(32, 'k');

  measure("parse_webhook", n, [&](long) {
    auto w = dsr::mineos::parse_webhook(webhook_body, dsr::mineos::endpoint_kind::delete_);
    sink += w ? w->email.size() : 0;
  });
  measure("hmac_sha256 of the body", n,
          [&](long) { sink += dsr::crypto::hmac_sha256(secret, webhook_body).size(); });
  measure("seal of the e-mail", n, [&](long) {
    sink += dsr::crypto::seal(key, "subject0@example.com", "bench-req-000000000").size();
  });

  // Inserting jobs in batches of 64 into an in-memory store (no disk: the SQLite and sealing
  // work of the store thread, without the WAL's writes and fsync).
  auto store = dsr::open_sqlite_store({":memory:", false, 0, key});
  if (!store) {
    std::fprintf(stderr, "micro: %s\n", store.error().detail.c_str());
    return 1;
  }
  std::vector<dsr::new_job> batch(64);
  long next = 0;
  const long batches = std::max(1L, n / 64 / 5);
  measure(
      "store insert per job (batches of 64, in memory)", batches,
      [&](long) {
        for (auto& j : batch) {
          j.op = dsr::operation::delete_;
          j.request_id = fmt::format("bench-req-{:09}", next);
          j.trace_id = fmt::format("bench-trace-{:09}", next);
          j.integration_id = "bench";
          j.source = "Form";
          j.request_type = "delete";
          j.received_at = dsr::time_point{};
          j.subject = "subject0@example.com";
          ++next;
        }
        auto r = (*store)->insert(batch, 100000000);
        sink += r ? r->size() : 0;
      },
      64);
  return sink == 0 ? 1 : 0;
}
