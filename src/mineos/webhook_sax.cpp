// The one-pass reading of a webhook body (webhook_raw.hpp).

#include "webhook_raw.hpp"

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <set>

namespace dsr::mineos::detail {
namespace {

using json = nlohmann::json;

// The body read in one pass (nlohmann's SAX interface) straight into raw_webhook, without
// building a document: the shape MineOS sends today, every value where the current schema puts
// it. Anything else — a legacy or capitalised name, a null or a number where a string goes, a
// string isTest, a name given twice, a malformed body — stops the pass (`bail`), and the body is
// read as a document instead, which knows every shape and says what is wrong. Both readings give
// the same result for every body (tests/mineos/webhook_test.cpp, the webhook fuzz target).
class fast_reader {
 public:
  using number_integer_t = json::number_integer_t;
  using number_unsigned_t = json::number_unsigned_t;
  using number_float_t = json::number_float_t;
  using string_t = json::string_t;
  using binary_t = json::binary_t;

  raw_webhook fields;

  bool null() { return value(); }
  bool boolean(bool v) {
    if (frames_.size() == 1 && key_ == "isTest") {
      if (!first(bit_is_test)) {
        return false;
      }
      fields.is_test = v;
      return true;
    }
    return value();
  }
  bool number_integer(number_integer_t v) { return integer(v); }
  bool number_unsigned(number_unsigned_t v) { return integer(static_cast<std::int64_t>(v)); }
  bool number_float(number_float_t, const string_t&) { return value(); }
  bool binary(binary_t&) { return false; }
  bool string(string_t& v) {
    if (std::string* to = target()) {
      if (to == &bail_) {
        return false;
      }
      *to = std::move(v);
      return true;
    }
    if (in(frame::custom_fields)) {
      return custom_field(std::move(v));
    }
    return value();
  }
  bool start_object(std::size_t) {
    frame next = frame::skip;
    if (frames_.empty()) {
      next = frame::top;
    } else if (in(frame::top) && key_ == "request") {
      next = frame::request;
      fields.has_request = true;
    } else if (in(frame::top) && key_ == "userInfo") {
      next = frame::user;
    } else if (in(frame::request) && key_ == "requestType") {
      next = frame::request_type;
    } else if (in(frame::user) && key_ == "customFields") {
      next = frame::custom_fields;
    } else if (!value()) {
      return false;
    }
    if (next != frame::skip && next != frame::top && !first(bit_for(next))) {
      return false;
    }
    frames_.push_back(next);
    return true;
  }
  bool end_object() {
    frames_.pop_back();
    return true;
  }
  bool start_array(std::size_t) {
    if (frames_.empty() || !value()) {
      return false;  // a body that is an array: the document reading refuses it
    }
    frames_.push_back(frame::skip);
    return true;
  }
  bool end_array() {
    frames_.pop_back();
    return true;
  }
  bool key(string_t& k) {
    key_ = std::move(k);
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) {
    return false;
  }

 private:
  enum class frame { top, request, request_type, user, custom_fields, skip };
  static constexpr unsigned bit_is_test = 1U << 0;
  static constexpr unsigned bit_request = 1U << 1;
  static constexpr unsigned bit_user = 1U << 2;
  static constexpr unsigned bit_request_type = 1U << 3;
  static constexpr unsigned bit_custom_fields = 1U << 4;

  static unsigned bit_for(frame f) {
    switch (f) {
      case frame::request:
        return bit_request;
      case frame::user:
        return bit_user;
      case frame::request_type:
        return bit_request_type;
      case frame::custom_fields:
        return bit_custom_fields;
      default:
        return 0;
    }
  }
  bool in(frame f) const { return !frames_.empty() && frames_.back() == f; }
  // A name seen once only (a second one: the document reading decides which counts).
  bool first(unsigned bit) {
    if ((seen_objects_ & bit) != 0) {
      return false;
    }
    seen_objects_ |= bit;
    return true;
  }

  // Where the string value of the current key goes; &bail_ when the key is one this pass leaves to
  // the document reading; nullptr when the key is not read at all.
  std::string* target() {
    if (frames_.empty()) {
      return &bail_;
    }
    const auto once = [this](std::string& to) -> std::string* {
      for (std::size_t i = 0; i < seen_count_; ++i) {
        if (seen_strings_[i] == &to) {
          return &bail_;
        }
      }
      if (seen_count_ < seen_strings_.size()) {
        seen_strings_[seen_count_++] = &to;
      }
      return &to;
    };
    switch (frames_.back()) {
      case frame::top:
        if (key_ == "traceId") {
          return once(fields.trace_id);
        }
        if (key_ == "integrationId") {
          return once(fields.integration_id);
        }
        if (key_ == "EventId" || key_ == "eventId" || key_ == "TraceId" ||
            key_ == "IntegrationId" || key_ == "isTest" || key_ == "IsTest" || key_ == "request" ||
            key_ == "ticketInfo" || key_ == "TicketInfo" || key_ == "userInfo" ||
            key_ == "UserInfo") {
          return &bail_;
        }
        return nullptr;
      case frame::request:
        if (key_ == "id") {
          return once(fields.request_id);
        }
        if (key_ == "source") {
          return once(fields.source);
        }
        if (key_ == "domain") {
          return once(fields.domain);
        }
        if (key_ == "type") {
          return once(fields.type);
        }
        if (key_ == "createdAt") {
          return once(fields.created_at);
        }
        if (key_ == "Id" || key_ == "Source" || key_ == "Domain" || key_ == "Type" ||
            key_ == "CreatedAt" || key_ == "requestType" || key_ == "RequestType" ||
            key_ == "userInfo" || key_ == "UserInfo") {
          return &bail_;
        }
        return nullptr;
      case frame::request_type:
        if (key_ == "id") {
          return once(fields.right_id);
        }
        if (key_ == "name") {
          return once(fields.right_name);
        }
        return key_ == "Id" || key_ == "Name" ? &bail_ : nullptr;
      case frame::user:
        if (key_ == "email") {
          return once(fields.email);
        }
        if (key_ == "name") {
          return once(fields.name);
        }
        return key_ == "Email" || key_ == "Name" || key_ == "customFields" || key_ == "CustomFields"
                   ? &bail_
                   : nullptr;
      case frame::custom_fields:
      case frame::skip:
        return nullptr;
    }
    return nullptr;
  }

  // A value other than a string where a key is read: the document reading decides (a null that
  // stands for absent, an integer id, a value of the wrong type). Elsewhere it is ignored.
  bool value() {
    if (in(frame::custom_fields)) {
      // Only a string or an integer is kept; a second value under one key is the document's.
      return custom_keys_.insert(key_).second;
    }
    return target() == nullptr;
  }
  bool integer(std::int64_t v) {
    if (in(frame::custom_fields)) {
      return custom_field(std::to_string(v));
    }
    return value();
  }
  bool custom_field(std::string v) {
    if (!custom_keys_.insert(key_).second) {
      return false;
    }
    fields.custom_fields.emplace_back(key_, std::move(v));
    return true;
  }

  std::vector<frame> frames_;
  std::string key_;
  std::string bail_;
  unsigned seen_objects_ = 0;
  std::array<const std::string*, 16> seen_strings_{};  // the fields read (11 at most)
  std::size_t seen_count_ = 0;
  std::set<std::string> custom_keys_;
};

}  // namespace

std::optional<raw_webhook> read_in_one_pass(std::string_view body) {
  fast_reader reader;
  try {
    if (json::sax_parse(body, &reader)) {
      return std::move(reader.fields);
    }
  } catch (const json::exception&) {
    // the document reading says what is wrong
  }
  return std::nullopt;
}

}  // namespace dsr::mineos::detail
