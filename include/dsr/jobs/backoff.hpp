#pragma once
// Capped exponential backoff with full jitter (AWS): a delay uniform in
// [0, min(max_backoff, initial_backoff · 2^failures)). Used for jobs and for reports.

#include "dsr/config/config.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace dsr {

// `failures`: failures before this one (0 for the first); `random01` uniform in [0, 1).
inline std::chrono::milliseconds full_jitter_backoff(const retry_config& retry,
                                                     std::uint32_t failures, double random01) {
  const double base = static_cast<double>(retry.initial_backoff.count());
  const double cap = static_cast<double>(
      std::chrono::duration_cast<std::chrono::milliseconds>(retry.max_backoff).count());
  const double ceiling =
      std::min(cap, base * std::pow(2.0, static_cast<double>(std::min(failures, 30u))));
  return std::chrono::milliseconds(static_cast<std::int64_t>(ceiling * random01));
}

}  // namespace dsr
