#pragma once
// Which right a Delete-URL request carries and what the daemon does with it (docs/contract.md §4
// "Request types"). MineOS routes every right mapped to the delete workflow to the Delete URL: Do
// Not Sell and a company's own "Unsubscribe" among them, so the right is read before anything is
// anonymized. Pure functions of the right and [requests]: they sit with the configuration, below
// both intake and the dispatcher that route by them; their names stay in dsr::mineos.

#include "dsr/config/config.hpp"

#include <string>
#include <string_view>

namespace dsr::mineos {

// The right as a webhook carries it: request.requestType.id and .name, and request.type. Foreign
// text, already cleaned (common/text.hpp); "" when absent.
struct right {
  std::string id;
  std::string name;
  std::string type;

  friend bool operator==(const right&, const right&) = default;
};

// Compared case-insensitively ignoring everything but ASCII letters and digits: "Do Not Sell" and
// "do-not-sell" are "donotsell".
std::string normalise_right(std::string_view text);

enum class route {
  erase,     // [requests] erase_types, or no right given: anonymize
  opt_out,   // [requests] opt_out_types: revoke the configured consent categories
  unhandled  // any other right: Failed, no call to Exponea
};

// The right is read from requestType.id, else requestType.name, else request.type. It is in a
// list when its normalised id or its normalised name is; when the id and the name fall in
// different lists, the id decides. No right at all means erase.
route classify(const right& r, const requests_config& lists);

// The right as the job view shows it (`requestType`): the name, else the id, else request.type;
// "" when none was sent.
std::string right_label(const right& r);

// The message of an unhandled right's Failed outcome.
std::string unhandled_message(const right& r);

}  // namespace dsr::mineos
