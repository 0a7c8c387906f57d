#pragma once
// The one Exponea ID that identifies a request's subject (docs/contract.md §4 "Identifiers"): the
// e-mail, else the first of the configured custom fields the request carries. Never several IDs in
// one customer_ids: Exponea could merge two profiles. Pure functions.

#include "dsr/config/config.hpp"
#include "dsr/mineos/webhook.hpp"

#include <optional>
#include <span>
#include <string>

namespace dsr::mineos {

struct subject_id {
  std::string name;   // "" = the e-mail (sent as [exponea] customer_id_type); else the ID name
  std::string value;  // personal data
};

// nullopt when the request carries neither an e-mail nor any of `fields`.
std::optional<subject_id> choose_identifier(const webhook& w,
                                            std::span<const custom_field_id> fields);

// The MissingIdentifiers message: what the request lacked, without personal data.
std::string missing_identifiers_message(std::span<const custom_field_id> fields);

}  // namespace dsr::mineos
