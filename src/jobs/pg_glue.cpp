// libpq glue (pg_glue.hpp).

#include "dsr/jobs/pg_glue.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>

namespace dsr::pg {

params& params::add(std::optional<std::string> v, int format) {
  lengths_.push_back(v ? static_cast<int>(v->size()) : 0);
  formats_.push_back(format);
  values_.push_back(std::move(v));
  return *this;
}

params& params::text(std::string_view v) {
  return add(std::string(v), 0);
}
params& params::integer(std::int64_t v) {
  return add(std::to_string(v), 0);
}
params& params::boolean(bool v) {
  return add(v ? "t" : "f", 0);
}
params& params::null() {
  return add(std::nullopt, 0);
}
params& params::bytes(std::string_view v) {
  return add(std::string(v), 1);
}

params& params::text_array(const std::vector<std::string>& v) {
  std::string out = "{";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i != 0) {
      out += ',';
    }
    out += '"';
    for (char c : v[i]) {
      if (c == '"' || c == '\\') {
        out += '\\';
      }
      out += c;
    }
    out += '"';
  }
  out += '}';
  return add(std::move(out), 0);
}

params& params::integer_array(const std::vector<std::int64_t>& v) {
  std::string out = "{";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i != 0) {
      out += ',';
    }
    out += std::to_string(v[i]);
  }
  out += '}';
  return add(std::move(out), 0);
}

params& params::optional_integer_array(const std::vector<std::optional<std::int64_t>>& v) {
  std::string out = "{";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i != 0) {
      out += ',';
    }
    out += v[i] ? std::to_string(*v[i]) : std::string("NULL");
  }
  out += '}';
  return add(std::move(out), 0);
}

std::vector<const char*> params::pointers() const {
  std::vector<const char*> out;
  out.reserve(values_.size());
  for (const auto& v : values_) {
    out.push_back(v ? v->data() : nullptr);
  }
  return out;
}

bool rows::ok() const {
  if (r_ == nullptr) {
    return false;
  }
  const auto s = PQresultStatus(r_);
  return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
}

std::int64_t rows::affected() const {
  const char* n = r_ == nullptr ? nullptr : PQcmdTuples(r_);
  return n == nullptr || *n == '\0' ? 0 : std::strtoll(n, nullptr, 10);
}

std::string rows::text(int row, int col) const {
  return std::string(PQgetvalue(r_, row, col), static_cast<std::size_t>(PQgetlength(r_, row, col)));
}

std::int64_t rows::integer(int row, int col) const {
  return std::strtoll(PQgetvalue(r_, row, col), nullptr, 10);
}

std::optional<std::int64_t> rows::optional_integer(int row, int col) const {
  if (is_null(row, col)) {
    return std::nullopt;
  }
  return integer(row, col);
}

bool rows::boolean(int row, int col) const {
  return PQgetvalue(r_, row, col)[0] == 't';
}

std::string rows::bytes(int row, int col) const {
  std::size_t n = 0;
  unsigned char* raw =
      PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(r_, row, col)), &n);
  if (raw == nullptr) {
    return {};
  }
  std::string out(reinterpret_cast<const char*>(raw), n);
  PQfreemem(raw);
  return out;
}

std::string rows::sqlstate() const {
  const char* s = r_ == nullptr ? nullptr : PQresultErrorField(r_, PG_DIAG_SQLSTATE);
  return s == nullptr ? std::string() : std::string(s);
}

std::string rows::message() const {
  const char* s = r_ == nullptr ? nullptr : PQresultErrorField(r_, PG_DIAG_MESSAGE_PRIMARY);
  return s == nullptr ? std::string() : std::string(s);
}

rows exec(PGconn* c, const char* sql, const params& p, std::chrono::milliseconds timeout) {
  const auto values = p.pointers();
  if (timeout.count() <= 0) {
    return rows(PQexecParams(c, sql, p.size(), nullptr, values.data(), p.lengths().data(),
                             p.formats().data(), 0));
  }
  // A blocking connection flushes the whole statement before PQsendQueryParams returns.
  if (PQsendQueryParams(c, sql, p.size(), nullptr, values.data(), p.lengths().data(),
                        p.formats().data(), 0) == 0) {
    return rows(nullptr);
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  PGresult* last = nullptr;
  for (;;) {
    while (PQisBusy(c) != 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd fd{PQsocket(c), POLLIN, 0};
      const int ready = left.count() > 0 ? ::poll(&fd, 1, static_cast<int>(left.count())) : 0;
      if (ready == 0) {
        // No answer in time: the connection is abandoned (the server ends its session, and rolls
        // back any transaction, when it notices), and libpq reports it broken.
        ::shutdown(PQsocket(c), SHUT_RDWR);
      }
      if (ready < 0 && errno == EINTR) {
        continue;
      }
      if (PQconsumeInput(c) == 0) {
        break;
      }
    }
    PGresult* r = PQgetResult(c);
    if (r == nullptr) {
      break;
    }
    if (last != nullptr) {
      PQclear(last);
    }
    last = r;
    if (PQstatus(c) == CONNECTION_BAD) {
      break;
    }
  }
  return rows(last);
}

}  // namespace dsr::pg
