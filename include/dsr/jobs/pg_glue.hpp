#pragma once
// RAII glue over libpq for the PostgreSQL engine: a connection, a result, and parameters sent as
// text (bytea as binary). Every statement goes out with PQexecParams, an unnamed statement that
// lives for one call: no prepared statement or other state is kept in the session, so a pooler in
// transaction mode (PgBouncer) works. Nothing here knows about jobs.

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dsr::pg {

struct connection_deleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using connection = std::unique_ptr<PGconn, connection_deleter>;

// Parameters of one statement, $1 first.
class params {
 public:
  params& text(std::string_view v);
  params& integer(std::int64_t v);
  params& boolean(bool v);
  params& null();
  params& bytes(std::string_view v);  // bytea, sent in binary
  params& optional_integer(const std::optional<std::int64_t>& v) {
    return v ? integer(*v) : null();
  }
  // A text[] literal: {"a","b"} with quotes and backslashes escaped.
  params& text_array(const std::vector<std::string>& v);
  params& integer_array(const std::vector<std::int64_t>& v);
  // NULL where an element is empty.
  params& optional_integer_array(const std::vector<std::optional<std::int64_t>>& v);

  int size() const { return static_cast<int>(values_.size()); }
  std::vector<const char*> pointers() const;
  const std::vector<int>& lengths() const { return lengths_; }
  const std::vector<int>& formats() const { return formats_; }

 private:
  params& add(std::optional<std::string> v, int format);
  std::vector<std::optional<std::string>> values_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
};

// One statement's result; text format.
class rows {
 public:
  explicit rows(PGresult* r) : r_(r) {}
  rows(rows&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  rows& operator=(rows&& o) noexcept {
    std::swap(r_, o.r_);
    return *this;
  }
  rows(const rows&) = delete;
  rows& operator=(const rows&) = delete;
  ~rows() { PQclear(r_); }

  // The statement ran (PGRES_COMMAND_OK or PGRES_TUPLES_OK).
  bool ok() const;
  int count() const { return r_ == nullptr ? 0 : PQntuples(r_); }
  std::int64_t affected() const;
  bool is_null(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }
  std::string text(int row, int col) const;
  std::int64_t integer(int row, int col) const;
  std::optional<std::int64_t> optional_integer(int row, int col) const;
  bool boolean(int row, int col) const;
  std::string bytes(int row, int col) const;  // a bytea column, unescaped
  // The five-character SQLSTATE, "" when none (a broken connection).
  std::string sqlstate() const;
  // The server's primary message (never holds a parameter's value).
  std::string message() const;

 private:
  PGresult* r_;
};

// Runs one statement and returns its (last) result. With a `timeout` (> 0), a server that has not
// answered within it (a network cut that leaves the socket open, a stalled proxy) is given up on:
// the connection is shut down, so that the result is an error and PQstatus says CONNECTION_BAD.
rows exec(PGconn* c, const char* sql, const params& p = {},
          std::chrono::milliseconds timeout = std::chrono::milliseconds(0));

}  // namespace dsr::pg
