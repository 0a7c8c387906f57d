#include "dsr/http/auth_throttle.hpp"

#include "fakes/fake_clock.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace dsr::http {
namespace {

using namespace std::chrono_literals;

// Runs each delayed answer at once and notes the delay it was given.
class AuthThrottle : public ::testing::Test {
 protected:
  auth_throttle make(auth_throttle_options o = {}) {
    return auth_throttle(
        clock_,
        [this](std::chrono::milliseconds d, std::function<void()> fn) {
          delays_.push_back(d);
          fn();
        },
        o);
  }
  // Refuses one request from `remote`: the delay it got (0 when answered at once).
  std::chrono::milliseconds fail(auth_throttle& t, const std::string& remote) {
    const auto before = delays_.size();
    bool answered = false;
    t.refuse(remote, "test refusal", problem(401, "no"), [&](response r) {
      EXPECT_EQ(r.status, 401u);
      answered = true;
    });
    EXPECT_TRUE(answered);
    return delays_.size() == before ? 0ms : delays_.back();
  }

  std::shared_ptr<test::fake_clock> clock_ = std::make_shared<test::fake_clock>();
  std::vector<std::chrono::milliseconds> delays_;
};

TEST_F(AuthThrottle, FirstFailuresAreAnsweredAtOnceThenEverMoreSlowly) {
  auto t = make({.free_failures = 3, .first_delay = 250ms, .max_delay = 2s});
  std::vector<std::chrono::milliseconds> got;
  for (int i = 0; i < 8; ++i) {
    got.push_back(fail(t, "192.0.2.7:4000"));
  }
  EXPECT_EQ(got, (std::vector<std::chrono::milliseconds>{0ms, 0ms, 0ms, 250ms, 500ms, 1000ms,
                                                         2000ms, 2000ms}));
  EXPECT_EQ(t.failures_total(), 8u);
}

TEST_F(AuthThrottle, OtherAddressesAndOtherPortsOfTheSameAddress) {
  auto t = make({.free_failures = 1});
  fail(t, "192.0.2.7:4000");
  // The same address from another port counts against it; another address does not.
  EXPECT_GT(fail(t, "192.0.2.7:4001"), 0ms);
  EXPECT_EQ(fail(t, "198.51.100.1:4000"), 0ms);
  EXPECT_EQ(fail(t, "::1:5000"), 0ms);
  EXPECT_GT(fail(t, "::1:5001"), 0ms);
}

TEST_F(AuthThrottle, AnAddressIsForgivenAfterAQuietPeriod) {
  auto t = make({.free_failures = 2, .forget_after = 15min});
  for (int i = 0; i < 5; ++i) {
    fail(t, "192.0.2.7:4000");
  }
  EXPECT_GT(t.delay_for("192.0.2.7:1"), 0ms);
  clock_->advance(14min);
  EXPECT_GT(fail(t, "192.0.2.7:4000"), 0ms);  // still counted: the quiet period restarts
  clock_->advance(15min);
  EXPECT_EQ(t.delay_for("192.0.2.7:1"), 0ms);
  EXPECT_EQ(fail(t, "192.0.2.7:4000"), 0ms);
}

TEST_F(AuthThrottle, RemembersABoundedNumberOfAddresses) {
  auto t = make({.free_failures = 1, .max_addresses = 3});
  fail(t, "10.0.0.1:1");
  fail(t, "10.0.0.1:1");  // 10.0.0.1 is now slowed
  clock_->advance(1s);
  for (int i = 2; i <= 4; ++i) {
    fail(t, "10.0.0." + std::to_string(i) + ":1");
    clock_->advance(1s);
  }
  // 10.0.0.1 was the stalest and made room; the newest are kept.
  EXPECT_EQ(t.delay_for("10.0.0.1:1"), 0ms);
  EXPECT_GT(t.delay_for("10.0.0.4:1"), 0ms);
}

TEST(AddressOf, DropsThePort) {
  EXPECT_EQ(address_of("192.0.2.1:80"), "192.0.2.1");
  EXPECT_EQ(address_of("::1:80"), "::1");
  EXPECT_EQ(address_of("unknown"), "unknown");
}

}  // namespace
}  // namespace dsr::http
