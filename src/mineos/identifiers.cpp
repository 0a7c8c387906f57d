#include "dsr/mineos/identifiers.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

namespace dsr::mineos {

std::optional<subject_id> choose_identifier(const webhook& w,
                                            std::span<const custom_field_id> fields) {
  if (!w.email.empty()) {
    return subject_id{"", w.email};
  }
  for (const auto& f : fields) {
    const auto it = std::find_if(w.custom_fields.begin(), w.custom_fields.end(),
                                 [&](const auto& kv) { return kv.first == f.field; });
    if (it != w.custom_fields.end() && !it->second.empty()) {
      return subject_id{f.id, it->second};
    }
  }
  return std::nullopt;
}

std::string missing_identifiers_message(std::span<const custom_field_id> fields) {
  if (fields.empty()) {
    return "the request has no e-mail address (userInfo.email), the only identifier this "
           "integration uses ([exponea] custom_field_ids is empty)";
  }
  std::vector<std::string> names;
  for (const auto& f : fields) {
    names.push_back(f.field);
  }
  return fmt::format(
      "the request has no e-mail address (userInfo.email) and none of the custom fields {}",
      fmt::join(names, ", "));
}

}  // namespace dsr::mineos
