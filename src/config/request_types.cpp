#include "dsr/config/request_types.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace dsr::mineos {
namespace {

bool listed(const std::vector<std::string>& list, const std::string& normalised) {
  return !normalised.empty() && std::find(list.begin(), list.end(), normalised) != list.end();
}

// The list a normalised right is in, if any.
std::optional<route> lookup(const std::string& normalised, const requests_config& lists) {
  if (listed(lists.erase_types, normalised)) {
    return route::erase;
  }
  if (listed(lists.opt_out_types, normalised)) {
    return route::opt_out;
  }
  return std::nullopt;
}

}  // namespace

std::string normalise_right(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    if (c >= 'A' && c <= 'Z') {
      out += static_cast<char>(c - 'A' + 'a');
    } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      out += c;
    }
  }
  return out;
}

route classify(const right& r, const requests_config& lists) {
  const auto id = normalise_right(r.id);
  const auto name = normalise_right(r.name);
  if (r.id.empty() && r.name.empty()) {
    if (r.type.empty()) {
      return route::erase;  // no right given: the Delete URL's own meaning
    }
    return lookup(normalise_right(r.type), lists).value_or(route::unhandled);
  }
  // The id decides when it is in a list; the name counts only when the id is not.
  if (const auto by_id = lookup(id, lists)) {
    return *by_id;
  }
  return lookup(name, lists).value_or(route::unhandled);
}

std::string right_label(const right& r) {
  if (!r.name.empty()) {
    return r.name;
  }
  if (!r.id.empty()) {
    return r.id;
  }
  return r.type;
}

std::string unhandled_message(const right& r) {
  return fmt::format("request type \"{}\" is not handled by this integration", right_label(r));
}

}  // namespace dsr::mineos
