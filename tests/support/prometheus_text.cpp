#include "support/prometheus_text.hpp"

#include <cmath>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace dsr::test {
namespace {

const std::regex help_re(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S.*$)");
const std::regex type_re(
    R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$)");
const std::regex sample_re(
    R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*")(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*")*\})? (\S+)$)");

double parse_value(const std::string& v, const std::string& line) {
  if (v == "+Inf") {
    return INFINITY;
  }
  if (v == "-Inf") {
    return -INFINITY;
  }
  if (v == "NaN") {
    return NAN;
  }
  std::size_t used = 0;
  double d = 0;
  try {
    d = std::stod(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != v.size() || v.empty()) {
    throw std::runtime_error("not a number in: " + line);
  }
  return d;
}

// The family a sample belongs to: histogram samples end in _bucket, _sum or _count.
std::string family_of(const std::string& name, const std::map<std::string, std::string>& types) {
  if (types.count(name) != 0) {
    return name;
  }
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string s(suffix);
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
      const auto base = name.substr(0, name.size() - s.size());
      if (types.count(base) != 0 && types.at(base) == "histogram") {
        return base;
      }
    }
  }
  return "";
}

}  // namespace

exposition parse_exposition(const std::string& text) {
  exposition out;
  std::map<std::string, bool> helped;
  std::istringstream in(text);
  std::string line;
  std::smatch m;
  // Per histogram series (the label set without le): the buckets seen, in order.
  std::map<std::string, std::vector<std::pair<double, double>>> buckets;
  while (std::getline(in, line)) {
    if (line.empty()) {
      continue;
    }
    if (std::regex_match(line, m, help_re)) {
      if (helped[m[1]]) {
        throw std::runtime_error("second HELP: " + line);
      }
      helped[m[1]] = true;
      continue;
    }
    if (std::regex_match(line, m, type_re)) {
      if (!helped[m[1]] || out.types.count(m[1]) != 0) {
        throw std::runtime_error("TYPE without HELP before it, or twice: " + line);
      }
      out.types[m[1]] = m[2];
      continue;
    }
    if (line[0] == '#') {
      continue;
    }
    if (!std::regex_match(line, m, sample_re)) {
      throw std::runtime_error("malformed sample: " + line);
    }
    const std::string name = m[1];
    const auto family = family_of(name, out.types);
    if (family.empty()) {
      throw std::runtime_error("sample before its TYPE: " + line);
    }
    const std::string series = line.substr(0, line.rfind(' '));
    if (out.samples.count(series) != 0) {
      throw std::runtime_error("duplicate series: " + line);
    }
    const double v = parse_value(m[7], line);
    out.samples[series] = v;
    if (out.types[family] == "counter" && !(v >= 0)) {
      throw std::runtime_error("negative counter: " + line);
    }
    if (name == family + "_bucket") {
      static const std::regex le_re(R"re(,?le="([^"]*)")re");
      std::smatch le;
      std::string labels = m[2];
      if (!std::regex_search(labels, le, le_re)) {
        throw std::runtime_error("bucket without le: " + line);
      }
      auto rest = std::regex_replace(labels, le_re, "");
      if (rest == "{}") {
        rest.clear();
      } else if (rest.size() > 1 && rest[1] == ',') {
        rest.erase(1, 1);
      }
      buckets[family + "_count" + rest].emplace_back(parse_value(le[1], line), v);
    }
  }
  for (const auto& [series, bs] : buckets) {
    for (std::size_t i = 1; i < bs.size(); ++i) {
      if (bs[i].first <= bs[i - 1].first || bs[i].second < bs[i - 1].second) {
        throw std::runtime_error("buckets not increasing or not cumulative in " + series);
      }
    }
    if (bs.empty() || !std::isinf(bs.back().first)) {
      throw std::runtime_error("no +Inf bucket in " + series);
    }
    if (out.samples.count(series) == 0 || out.samples.at(series) != bs.back().second) {
      throw std::runtime_error("the +Inf bucket is not " + series);
    }
  }
  return out;
}

}  // namespace dsr::test
