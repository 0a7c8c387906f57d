#pragma once
// A credential store holding exactly the values a test gives it.

#include "dsr/credentials/credentials.hpp"

#include <map>

namespace dsr::test {

class fake_credentials final : public credential_store {
 public:
  fake_credentials& set(credential c, std::string v) {
    values_[c] = secret(std::move(v));
    return *this;
  }
  std::optional<secret> find(credential c) const override {
    const auto it = values_.find(c);
    return it == values_.end() ? std::nullopt : std::optional<secret>(it->second);
  }
  std::string origin(credential c) const override { return values_.contains(c) ? "test" : ""; }

 private:
  std::map<credential, secret> values_;
};

}  // namespace dsr::test
