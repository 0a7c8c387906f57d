#pragma once
// Reading one [section] of the configuration file, and the checks of values that several sections
// share. Internal to the configuration: config.cpp reads the sections through these.
//
// Every failure throws `config_error` naming the file, the section, the key and its line.

#include "dsr/config/config.hpp"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace dsr::detail {

// "a string", "an integer", ...: a TOML value's type as an error message names it.
std::string type_name(const toml::node& n);

// Reads the keys of one [section], remembering which were read so that the rest can be reported
// as unknown. Every error names the file, the section, the key and its line.
class section_reader {
 public:
  section_reader(const toml::table* table, std::string section, const std::string& file)
      : table_(table), section_(std::move(section)), file_(file) {}

  [[noreturn]] void fail(std::string_view key, std::string_view problem) const;

  const toml::node* node(std::string_view key);

  void string(std::string_view key, std::string& out);
  void boolean(std::string_view key, bool& out);

  template <class Int>
  void integer(std::string_view key, Int& out, std::int64_t min,
               std::int64_t max = static_cast<std::int64_t>(std::min<std::uint64_t>(
                   std::numeric_limits<Int>::max(), std::numeric_limits<std::int64_t>::max()))) {
    if (const auto* n = node(key)) {
      if (!n->is_integer()) {
        fail(key, fmt::format("expected an integer, got {}", type_name(*n)));
      }
      const std::int64_t v = n->as_integer()->get();
      if (v < min || v > max) {
        fail(key, fmt::format("{} is out of range; use a value from {} to {}", v, min, max));
      }
      out = static_cast<Int>(v);
    }
  }

  // An array of strings; every element a non-empty string.
  void strings(std::string_view key, std::vector<std::string>& out);

  template <class Duration>
  void duration(std::string_view key, Duration& out, std::int64_t min, std::int64_t max) {
    std::int64_t v = out.count();
    integer(key, v, min, max);
    out = Duration{v};
  }

  // Every key of the section that no reader asked for is an error.
  void finish() const;

 private:
  const toml::table* table_;
  std::string section_;
  const std::string& file_;
  std::set<std::string, std::less<>> seen_;
};

// `p` relative to the configuration file's directory `base` (when `p` is relative and `base` is
// not empty).
std::filesystem::path resolve(const std::filesystem::path& base, const std::string& p);

// An http(s) URL; plain http only towards a loopback host (docs/contract.md §3). Fails `key`
// through `r` otherwise.
void check_url(section_reader& r, std::string_view key, const std::string& url);

// A libpq connection string that carries a secret: user:password@ in a URI, or a password or
// sslpassword parameter (URI query or key=value form).
bool holds_password(std::string_view url);

}  // namespace dsr::detail
