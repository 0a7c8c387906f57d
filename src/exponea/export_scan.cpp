#include "dsr/exponea/export_scan.hpp"

#include "dsr/common/sealed_file.hpp"
#include "dsr/http/body_source.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <istream>
#include <optional>
#include <streambuf>
#include <vector>

namespace dsr::exponea {
namespace {

using json = nlohmann::json;

enum section : int { ids = 0, properties = 1, events = 2 };
constexpr std::array<const char*, 3> section_names{"ids", "properties", "events"};

std::optional<section> section_of(const std::string& key) {
  for (int i = 0; i < 3; ++i) {
    if (key == section_names[static_cast<std::size_t>(i)]) {
      return static_cast<section>(i);
    }
  }
  return std::nullopt;
}

// What a container is to us.
enum class role { top, value, section, event, event_properties, other };

// Where the next value appears, which decides what it means.
enum class slot {
  none,
  top,
  value,
  section,
  event,
  event_type,
  event_timestamp,
  event_properties,
  event_request_id,
  event_category,
  event_action,
  success
};

struct spot {
  slot s = slot::none;
  int level = 0;  // 0: the customer at the top level, 1: inside `value`
  section which = ids;
};

struct frame {
  role r = role::other;
  bool object = false;
  int level = 0;
  section which = ids;
  std::string key;            // objects: the last key read
  std::uint64_t written = 0;  // members written so far (when copying)
  bool type_matches = false;  // events
  bool request_matches = false;
  bool is_consent = false;  // events of type `consent`: what they say
  std::string category;
  std::string action;
  std::optional<double> timestamp;
};

struct level_state {
  std::array<bool, 3> seen{};
  std::array<bool, 3> valid{};
  export_summary summary;
};

enum class kind { scalar, object, array };

// Where the customer is written: in the clear, or sealed chunk by chunk (sealed_file.hpp).
class export_writer {
 public:
  export_writer(std::FILE* f, std::string_view key, std::string_view file_id) : file_(f) {
    if (!key.empty()) {
      sealed_.emplace(key, file_id, [this](std::string_view s) { return put(s); });
    }
  }

  void write(std::string_view s) {
    if (sealed_) {
      sealed_->write(s);
    } else {
      put(s);
    }
  }

  bool finish() {
    const bool sealed_ok = !sealed_ || sealed_->finish();
    return sealed_ok && !failed_ && std::fflush(file_) == 0 && ::fdatasync(::fileno(file_)) == 0 &&
           std::ferror(file_) == 0;
  }

 private:
  bool put(std::string_view s) {
    if (std::fwrite(s.data(), 1, s.size(), file_) != s.size()) {
      failed_ = true;
    }
    return !failed_;
  }

  std::FILE* file_;
  std::optional<sealed_file::writer> sealed_;
  bool failed_ = false;
};

// The nlohmann SAX interface. Scans; when `out` is set, also copies the sections of `write_level`.
class scanner {
 public:
  scanner(const audit_match& audit, export_writer* out, int write_level)
      : audit_(audit), out_(out), write_level_(write_level) {}

  bool null() { return scalar("null"); }
  bool boolean(bool v) {
    if (next_spot().s == slot::success && !success_seen_) {
      success_seen_ = true;
      success_ = v;
    }
    return scalar(v ? "true" : "false");
  }
  bool number_integer(json::number_integer_t v) {
    number(static_cast<double>(v));
    return scalar(fmt::format_int(v).str());
  }
  bool number_unsigned(json::number_unsigned_t v) {
    number(static_cast<double>(v));
    return scalar(fmt::format_int(v).str());
  }
  bool number_float(json::number_float_t v, const std::string& raw) {
    number(v);
    return scalar(raw);
  }
  bool string(std::string& v) {
    const spot at = next_spot();
    if (at.s == slot::event_type) {
      stack_.back().type_matches = !audit_.type.empty() && v == audit_.type;
      stack_.back().is_consent = v == "consent";
    } else if (at.s == slot::event_request_id && stack_.size() >= 2) {
      stack_[stack_.size() - 2].request_matches = v == audit_.request_id;
    } else if (at.s == slot::event_category && stack_.size() >= 2) {
      stack_[stack_.size() - 2].category = v;
    } else if (at.s == slot::event_action && stack_.size() >= 2) {
      stack_[stack_.size() - 2].action = v;
    }
    return value(at, kind::scalar, quoted(v));
  }
  bool binary(json::binary_t&) { return fail("export-one answered with binary data"); }
  bool start_object(std::size_t) { return value(next_spot(), kind::object, "{"); }
  bool start_array(std::size_t) { return value(next_spot(), kind::array, "["); }
  bool key(std::string& k) {
    frame& f = stack_.back();
    if (f.r == role::section && f.which != events) {
      auto& sum = levels_[static_cast<std::size_t>(f.level)].summary;
      ++(f.which == ids ? sum.ids : sum.properties);
    }
    if (copying()) {
      if (f.written++ > 0) {
        put(",");
      }
      put(quoted(k));
      put(":");
    }
    f.key = k;
    return true;
  }
  bool end_object() { return end(); }
  bool end_array() { return end(); }
  bool parse_error(std::size_t position, const std::string&, const json::exception&) {
    if (error_.empty()) {
      error_ = fmt::format("export-one answered with a body that is not valid JSON (at byte {})",
                           position);
    }
    return false;
  }

  const std::string& error() const { return error_; }
  int customer_level() const { return value_is_object_ ? 1 : 0; }
  bool success() const { return success_; }
  const level_state& level(int l) const { return levels_[static_cast<std::size_t>(l)]; }
  // The sections copied, so that the caller adds the missing ones.
  const std::array<bool, 3>& written() const { return written_; }
  bool any_written() const { return sections_written_ > 0; }

 private:
  bool copying() const { return copying_ && stack_.size() >= copy_depth_; }

  spot next_spot() const {
    if (stack_.empty()) {
      return {slot::top};
    }
    const frame& p = stack_.back();
    switch (p.r) {
      case role::top:
        if (p.key == "value") {
          return {slot::value};
        }
        if (p.key == "success") {
          return {slot::success};
        }
        if (const auto w = section_of(p.key)) {
          return {slot::section, 0, *w};
        }
        return {};
      case role::value:
        if (const auto w = section_of(p.key)) {
          return {slot::section, 1, *w};
        }
        return {};
      case role::section:
        return p.which == events ? spot{slot::event, p.level} : spot{};
      case role::event:
        if (p.key == "type") {
          return {slot::event_type, p.level};
        }
        if (p.key == "timestamp") {
          return {slot::event_timestamp, p.level};
        }
        if (p.key == "properties") {
          return {slot::event_properties, p.level};
        }
        return {};
      case role::event_properties:
        if (p.key == "request_id") {
          return {slot::event_request_id, p.level};
        }
        if (p.key == "category") {
          return {slot::event_category, p.level};
        }
        if (p.key == "action") {
          return {slot::event_action, p.level};
        }
        return {};
      case role::other:
        return {};
    }
    return {};
  }

  void number(double v) {
    const spot at = next_spot();
    if (at.s == slot::event_timestamp) {
      stack_.back().timestamp = v;
      auto& last = levels_[static_cast<std::size_t>(at.level)].summary.last_event_at;
      if (!last || v > *last) {
        last = v;
      }
    }
  }

  bool scalar(const std::string& text) { return value(next_spot(), kind::scalar, text); }

  // A value begins at `at`: a scalar (`text` is its JSON) or a container ("{" / "[").
  bool value(spot at, kind k, const std::string& text) {
    role pushed = role::other;
    bool starts_section = false;
    switch (at.s) {
      case slot::top:
        if (k != kind::object) {
          return fail("export-one answered with JSON that is not an object");
        }
        pushed = role::top;
        break;
      case slot::value:
        if (!value_seen_) {
          value_seen_ = true;
          value_is_object_ = k == kind::object;
          pushed = value_is_object_ ? role::value : role::other;
        }
        break;
      case slot::section: {
        auto& l = levels_[static_cast<std::size_t>(at.level)];
        if (!l.seen[at.which]) {
          l.seen[at.which] = true;
          l.valid[at.which] = k == (at.which == events ? kind::array : kind::object);
          if (l.valid[at.which]) {
            pushed = role::section;
            starts_section = out_ != nullptr && at.level == write_level_;
          }
        }
        break;
      }
      case slot::event:
        ++levels_[static_cast<std::size_t>(at.level)].summary.events;
        pushed = k == kind::object ? role::event : role::other;
        break;
      case slot::event_properties:
        pushed = k == kind::object ? role::event_properties : role::other;
        break;
      default:
        break;
    }
    if (copying()) {
      frame& parent = stack_.back();
      if (!parent.object && parent.written++ > 0) {
        put(",");
      }
    }
    if (starts_section) {
      put(fmt::format("{}\"{}\":", sections_written_++ > 0 ? "," : "", section_names[at.which]));
    }
    if (k == kind::scalar) {
      if (copying()) {
        put(text);
      }
      return true;
    }
    if (stack_.size() >= max_export_depth) {
      return fail(fmt::format("export-one answered with JSON nested deeper than {} levels",
                              max_export_depth));
    }
    frame f;
    f.r = pushed;
    f.object = k == kind::object;
    f.level = at.level;
    f.which = at.which;
    stack_.push_back(std::move(f));
    if (starts_section) {
      copying_ = true;
      copy_depth_ = stack_.size();
      written_[at.which] = true;
    }
    if (copying()) {
      put(text);
    }
    return true;
  }

  bool end() {
    const frame& f = stack_.back();
    if (copying()) {
      put(f.object ? "}" : "]");
      if (stack_.size() == copy_depth_) {
        copying_ = false;
      }
    }
    if (f.r == role::event && f.type_matches && f.request_matches) {
      levels_[static_cast<std::size_t>(f.level)].summary.holds_audit_event = true;
    }
    if (f.r == role::event && f.is_consent && f.timestamp) {
      auto& found = levels_[static_cast<std::size_t>(f.level)].summary.consents_found;
      found.resize(audit_.consents.size());
      for (std::size_t i = 0; i < audit_.consents.size(); ++i) {
        const auto& c = audit_.consents[i];
        // Exponea may give the timestamp back as a float: whole seconds are compared.
        if (c.category == f.category && c.action == f.action &&
            std::llround(*f.timestamp) == c.timestamp) {
          found[i] = true;
        }
      }
    }
    stack_.pop_back();
    return true;
  }

  bool fail(std::string why) {
    if (error_.empty()) {
      error_ = std::move(why);
    }
    return false;
  }

  void put(const std::string& s) {
    if (out_ != nullptr) {
      out_->write(s);
    }
  }

  static std::string quoted(const std::string& s) {
    return json(s).dump(-1, ' ', false, json::error_handler_t::replace);
  }

  const audit_match& audit_;
  export_writer* out_;
  int write_level_;
  std::vector<frame> stack_;
  std::array<level_state, 2> levels_{};
  bool value_seen_ = false;
  bool success_seen_ = false;
  bool success_ = true;
  bool value_is_object_ = false;
  bool copying_ = false;
  std::size_t copy_depth_ = 0;
  std::array<bool, 3> written_{};
  int sections_written_ = 0;
  std::string error_;
};

struct file_closer {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using file_ptr = std::unique_ptr<std::FILE, file_closer>;

failure io_failure(const char* doing, const std::filesystem::path& p) {
  return make_failure(errc::io_error,
                      fmt::format("cannot {} {}: {}", doing, p.string(), std::strerror(errno)));
}

result<file_ptr> open_answer(const std::filesystem::path& p) {
  file_ptr in(std::fopen(p.c_str(), "rbe"));
  if (!in) {
    return io_failure("read", p);
  }
  std::setvbuf(in.get(), nullptr, _IOFBF, 256 * 1024);
  return in;
}

// A body_source (the sealed download, opened chunk by chunk) as a stream for the parser.
class source_buffer final : public std::streambuf {
 public:
  explicit source_buffer(http::body_source& source) : source_(source), buffer_(64 * 1024) {}
  const std::optional<std::string>& error() const { return error_; }

 protected:
  int_type underflow() override {
    auto got = source_.read(buffer_);
    if (!got) {
      error_ = got.error().detail;
      return traits_type::eof();
    }
    if (*got == 0) {
      return traits_type::eof();
    }
    setg(buffer_.data(), buffer_.data(), buffer_.data() + *got);
    return traits_type::to_int_type(buffer_[0]);
  }

 private:
  http::body_source& source_;
  std::vector<char> buffer_;
  std::optional<std::string> error_;
};

// Parses the answer once through `s`: a plain file, or with `answer_key` one sealed with it (file
// id = the file's name).
result<void> run(scanner& s, const std::filesystem::path& answer, std::string_view answer_key) {
  bool ok = false;
  if (answer_key.empty()) {
    auto in = open_answer(answer);
    if (!in) {
      return in.error();
    }
    ok = json::sax_parse(in->get(), &s);
  } else {
    auto source =
        http::sealed_file_source(answer, std::string(answer_key), answer.filename().string());
    if (!source) {
      return source.error();
    }
    source_buffer buffer(**source);
    std::istream in(&buffer);
    ok = json::sax_parse(in, &s);
    if (buffer.error()) {
      return make_failure(errc::io_error, *buffer.error());
    }
  }
  if (!ok || !s.error().empty()) {
    return make_failure(errc::invalid_input,
                        s.error().empty() ? std::string("export-one answer rejected") : s.error());
  }
  return {};
}

}  // namespace

result<export_summary> scan_export(const std::filesystem::path& answer, const audit_match& audit,
                                   const std::filesystem::path& save_to, std::string_view key,
                                   std::string_view answer_key) {
  scanner first(audit, nullptr, -1);
  if (auto r = run(first, answer, answer_key); !r) {
    return r.error();
  }
  const int level = first.customer_level();
  export_summary summary = first.level(level).summary;
  summary.consents_found.resize(audit.consents.size());
  summary.success = first.success();
  if (save_to.empty() || !summary.success) {
    return summary;
  }

  // Second pass: copy the customer's sections, now that we know where it is.
  const auto tmp = std::filesystem::path(save_to.string() + ".tmp");
  // A new file, never a symlink followed: a leftover of an interrupted scan is removed first.
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    return io_failure("write", tmp);
  }
  file_ptr out(::fdopen(fd, "wb"));
  if (!out) {
    ::close(fd);
    return io_failure("write", tmp);
  }
  std::setvbuf(out.get(), nullptr, _IOFBF, 256 * 1024);
  export_writer writer(out.get(), key, audit.request_id);
  writer.write("{");
  scanner copy(audit, &writer, level);
  if (auto r = run(copy, answer, answer_key); !r) {
    out.reset();
    std::filesystem::remove(tmp);
    return r.error();
  }
  static constexpr std::array<const char*, 3> empty{"{}", "{}", "[]"};
  bool first_section = !copy.any_written();
  for (std::size_t i = 0; i < 3; ++i) {
    if (!copy.written()[i]) {
      writer.write(
          fmt::format("{}\"{}\":{}", first_section ? "" : ",", section_names[i], empty[i]));
      first_section = false;
    }
  }
  writer.write("}");
  const bool written = writer.finish();
  if (!written) {
    const auto err = io_failure("write", tmp);
    out.reset();
    std::filesystem::remove(tmp);
    return err;
  }
  out.reset();
  std::error_code ec;
  std::filesystem::rename(tmp, save_to, ec);
  if (ec) {
    const auto why = ec.message();
    std::filesystem::remove(tmp, ec);
    return make_failure(errc::io_error, fmt::format("cannot write {}: {}", save_to.string(), why));
  }
  return summary;
}

}  // namespace dsr::exponea
