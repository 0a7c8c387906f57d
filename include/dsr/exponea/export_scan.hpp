#pragma once
// Reads Exponea's answer to export-one from a file, never whole in memory (an export may hold a
// million events): validates it as JSON, summarises the customer and optionally writes it out as
// {"ids","properties","events"}, the `data` of a copy report. The answer is untrusted input:
// anything not shaped as the reference documents is ignored or refused, never trusted.

#include "dsr/common/error.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dsr::exponea {

// What the daemon learns about an exported customer.
struct export_summary {
  // The answer's top-level `success` flag. false: Exponea refused (the error is in the answer),
  // nothing else here means anything and nothing was saved.
  bool success = true;
  std::uint64_t ids = 0;                // keys of `ids`
  std::uint64_t properties = 0;         // keys of `properties`
  std::uint64_t events = 0;             // elements of `events`
  std::optional<double> last_event_at;  // the newest event's `timestamp` (UNIX seconds)
  bool holds_audit_event = false;       // see audit_match
  // One flag per audit_match::consents entry: an event matching it is in the export.
  std::vector<bool> consents_found;
};

// A consent event an opt-out tracked (docs/contract.md §5): type `consent`, properties.category and
// properties.action as given, and the event's `timestamp` (UNIX seconds, the consent's valid-from).
struct consent_match {
  std::string category;
  std::string action;
  std::int64_t timestamp = 0;
};

// The audit event a job looks for: an event whose `type` is `type` and whose
// `properties.request_id` is `request_id`. Empty `type`: none.
struct audit_match {
  std::string type;
  std::string request_id;
  std::vector<consent_match> consents;  // consent events to look for as well
};

// Nesting deeper than this is refused (a hostile answer must not exhaust the stack or memory).
inline constexpr std::size_t max_export_depth = 128;

// Scans the answer in `answer`: a JSON object holding the customer at its top level, or inside
// `value` when that is an object. Each of ids/properties/events counts only at its first
// occurrence and with its documented type (object, object, array); otherwise it is taken as
// empty. When `save_to` is not empty the customer is written there as
// {"ids":{...},"properties":{...},"events":[...]} (mode 0600, synced, replaced atomically).
// Fails with errc::invalid_input naming what is wrong with the answer, errc::io_error naming the
// file that cannot be read or written.
// With a `key` (store_key, 32 bytes) the saved customer is sealed (sealed_file.hpp, file id =
// audit.request_id); without, it is written in the clear. With an `answer_key`, the answer file
// itself is sealed with it (file id = the answer's file name, as the HTTP client writes it with
// client_request::response_key); a chunk that does not open fails with errc::io_error.
result<export_summary> scan_export(const std::filesystem::path& answer, const audit_match& audit,
                                   const std::filesystem::path& save_to = {},
                                   std::string_view key = {}, std::string_view answer_key = {});

}  // namespace dsr::exponea
