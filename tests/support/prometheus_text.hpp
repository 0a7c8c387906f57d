#pragma once
// A strict reader of the Prometheus text exposition format (0.0.4) for tests: every family has
// HELP and TYPE before its samples, names and labels are well formed, values are numbers,
// histogram buckets are cumulative and end in +Inf equal to _count. Throws std::runtime_error
// naming the line that breaks a rule.

#include <map>
#include <string>

namespace dsr::test {

struct exposition {
  std::map<std::string, std::string> types;  // family → counter, gauge, histogram...
  // "name{label="value",...}" exactly as written → value
  std::map<std::string, double> samples;

  double value(const std::string& series) const {
    const auto it = samples.find(series);
    return it == samples.end() ? 0.0 : it->second;
  }
};

exposition parse_exposition(const std::string& text);

}  // namespace dsr::test
