#include "section_reader.hpp"

namespace dsr::detail {

std::string type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    default:
      return "a date/time";
  }
}

void section_reader::fail(std::string_view key, std::string_view problem) const {
  std::string where;
  if (table_ != nullptr) {
    if (const auto* n = table_->get(key)) {
      where = fmt::format(" (line {})", n->source().begin.line);
    }
  }
  throw config_error(fmt::format("{}: [{}] {}: {}{}", file_, section_, key, problem, where));
}

const toml::node* section_reader::node(std::string_view key) {
  seen_.emplace(key);
  return table_ == nullptr ? nullptr : table_->get(key);
}

void section_reader::string(std::string_view key, std::string& out) {
  if (const auto* n = node(key)) {
    if (!n->is_string()) {
      fail(key, fmt::format("expected a string, got {}", type_name(*n)));
    }
    out = n->as_string()->get();
  }
}

void section_reader::boolean(std::string_view key, bool& out) {
  if (const auto* n = node(key)) {
    if (!n->is_boolean()) {
      fail(key, fmt::format("expected true or false, got {}", type_name(*n)));
    }
    out = n->as_boolean()->get();
  }
}

void section_reader::strings(std::string_view key, std::vector<std::string>& out) {
  if (const auto* n = node(key)) {
    const auto* a = n->as_array();
    if (a == nullptr) {
      fail(key, fmt::format("expected an array of strings, got {}", type_name(*n)));
    }
    out.clear();
    for (const auto& e : *a) {
      if (!e.is_string() || e.as_string()->get().empty()) {
        fail(key, "every element must be a non-empty string");
      }
      out.push_back(e.as_string()->get());
    }
  }
}

void section_reader::finish() const {
  if (table_ == nullptr) {
    return;
  }
  for (const auto& [k, v] : *table_) {
    if (!seen_.contains(std::string(k.str()))) {
      throw config_error(
          fmt::format("{}: [{}] {}: unknown key (line {}); see "
                      "config/dsr-connector.example.toml for the valid keys",
                      file_, section_, k.str(), v.source().begin.line));
    }
  }
}

}  // namespace dsr::detail
