#pragma once
// A secret value that cannot be logged or formatted by accident: streaming or fmt-formatting it
// prints "***". The only way to the bytes is the explicit `reveal()`. The memory is wiped when
// the value is destroyed.

#include <fmt/format.h>

#include <ostream>
#include <string>
#include <string_view>

namespace dsr {

class secret {
 public:
  secret() = default;
  explicit secret(std::string value) : value_(std::move(value)) {}
  secret(const secret&) = default;
  secret(secret&&) noexcept = default;
  secret& operator=(const secret&);
  secret& operator=(secret&&) noexcept;
  ~secret();

  // The raw value, for the one place that uses it (an HMAC key, an Authorization header).
  std::string_view reveal() const noexcept { return value_; }
  bool empty() const noexcept { return value_.empty(); }

  friend std::ostream& operator<<(std::ostream& os, const secret&) { return os << "***"; }

 private:
  void wipe() noexcept;
  std::string value_;
};

}  // namespace dsr

template <>
struct fmt::formatter<dsr::secret> : fmt::formatter<std::string_view> {
  template <class FormatContext>
  auto format(const dsr::secret&, FormatContext& ctx) const {
    return fmt::formatter<std::string_view>::format("***", ctx);
  }
};
