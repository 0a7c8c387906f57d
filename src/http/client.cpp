#include "dsr/http/client.hpp"

#include "dsr/common/sealed_file.hpp"
#include "dsr/config/config.hpp"
#include "streamed_write.hpp"

#include <fmt/format.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <strings.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url/parse.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <mutex>
#include <vector>

namespace dsr::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;

inline constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

// A Beast body that hands each piece of the message to a function (false: stop, I/O error).
struct sink_body {
  using value_type = std::function<bool(std::string_view)>;

  class reader {
   public:
    template <bool IsRequest, class Fields>
    reader(bhttp::header<IsRequest, Fields>&, value_type& sink) : sink_(sink) {}
    void init(const boost::optional<std::uint64_t>&, beast::error_code& ec) { ec = {}; }
    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, beast::error_code& ec) {
      std::size_t n = 0;
      for (const auto b : beast::buffers_range_ref(buffers)) {
        if (!sink_(std::string_view(static_cast<const char*>(b.data()), b.size()))) {
          ec = boost::system::errc::make_error_code(boost::system::errc::io_error);
          return n;
        }
        n += b.size();
      }
      ec = {};
      return n;
    }
    void finish(beast::error_code& ec) { ec = {}; }

   private:
    value_type& sink_;
  };
};

struct file_closer {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

struct connection {
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;

  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
};

failure transport_failure(const boost::system::error_code& ec, std::string_view doing,
                          const std::string& host) {
  errc code = errc::upstream_unreachable;
  if (ec == beast::error::timeout) {
    code = errc::upstream_timeout;
  } else if (ec == bhttp::error::body_limit || ec == bhttp::error::header_limit) {
    code = errc::upstream_too_large;
  } else if (ec.category() == asio::error::get_ssl_category() ||
             ec.category() == ssl::error::get_stream_category()) {
    code = errc::upstream_tls;
  } else if (ec.category() == bhttp::make_error_code(bhttp::error::bad_version).category() &&
             ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
    code = errc::upstream_protocol;
  }
  std::string what = ec.message();
  if (code == errc::upstream_timeout) {
    what = "timed out (see [exponea] timeout_seconds)";
  }
  if (code == errc::upstream_tls) {
    // OpenSSL's reason ("certificate verify failed") is the useful part.
    what = fmt::format("{} (check the certificate of {} or [exponea] ca_file)", what, host);
  }
  return make_failure(code, fmt::format("{} {}: {}", doing, host, what));
}

bool is_ip_literal(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

class client_impl final : public client {
 public:
  client_impl(asio::any_io_executor ex, client_options o)
      : ex_(std::move(ex)), options_(std::move(o)), ctx_(ssl::context::tls_client) {}

  result<void> init() {
    auto url = boost::urls::parse_absolute_uri(options_.base_url);
    if (!url) {
      return make_failure(errc::invalid_input,
                          fmt::format("'{}' is not an absolute URL", options_.base_url));
    }
    const auto scheme = url->scheme();
    tls_ = scheme == "https";
    if (!tls_ && scheme != "http") {
      return make_failure(errc::invalid_input, fmt::format("scheme '{}' is not http(s)", scheme));
    }
    host_ = std::string(url->host_address());
    if (host_.empty()) {
      return make_failure(errc::invalid_input, "the URL has no host");
    }
    if (!tls_ && !is_loopback_host(host_)) {
      return make_failure(errc::invalid_input,
                          fmt::format("http:// is allowed only for loopback hosts, not {}", host_));
    }
    port_ = url->has_port() ? std::string(url->port()) : (tls_ ? "443" : "80");
    host_header_ = std::string(url->encoded_host_and_port());
    base_path_ = std::string(url->encoded_path());
    while (!base_path_.empty() && base_path_.back() == '/') {
      base_path_.pop_back();
    }
    if (tls_) {
      boost::system::error_code ec;
      ctx_.set_options(ssl::context::default_workarounds | ssl::context::no_compression |
                       ssl::context::no_sslv2 | ssl::context::no_sslv3);
      SSL_CTX_set_min_proto_version(ctx_.native_handle(), TLS1_2_VERSION);
      ctx_.set_default_verify_paths(ec);
      if (!options_.ca_file.empty()) {
        ctx_.load_verify_file(options_.ca_file, ec);
        if (ec) {
          return make_failure(errc::io_error, fmt::format("cannot load the CA bundle {}: {}",
                                                          options_.ca_file, ec.message()));
        }
      }
      ctx_.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    }
    return {};
  }

  const std::string& host() const override { return host_; }

  asio::awaitable<result<void>> probe() override {
    auto conn = co_await connect(steady::now() + options_.timeout);
    if (!conn) {
      co_return conn.error();
    }
    co_return result<void>{};
  }

  asio::awaitable<result<client_response>> send(client_request req) override {
    const auto deadline = steady::now() + options_.timeout;
    for (int attempt = 0;; ++attempt) {
      auto conn = take_idle();
      const bool reused = conn != nullptr;
      if (!conn) {
        auto fresh = co_await connect(deadline);
        if (!fresh) {
          co_return fresh.error();
        }
        conn = std::move(*fresh);
      }
      bool got_bytes = false;
      bool keep_alive = false;
      // g++ 12 miscompiles co_await inside a conditional expression: plain if/else.
      result<client_response> res = make_failure(errc::upstream_protocol, "not sent");
      if (conn->tls) {
        res = co_await exchange(*conn->tls, *conn, req, deadline, got_bytes, keep_alive);
      } else {
        res = co_await exchange(*conn->plain, *conn, req, deadline, got_bytes, keep_alive);
      }
      // A kept-alive connection that fails before any answer byte may have been closed by the
      // server just as the request went out; a read is then sent once more on a fresh one.
      if (!res && reused && !got_bytes && attempt == 0 && req.idempotent &&
          !res.error().is(errc::upstream_timeout)) {
        continue;
      }
      if (res && keep_alive) {
        put_idle(std::move(conn));
      }
      co_return res;
    }
  }

 private:
  // The most recently used idle connection that the peer has not closed.
  std::unique_ptr<connection> take_idle() {
    const std::lock_guard lock(mutex_);
    while (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      // POLLRDHUP reports the peer's FIN without consuming anything (TLS records stay intact).
      pollfd p{c->lowest().socket().native_handle(), POLLRDHUP, 0};
      if (::poll(&p, 1, 0) == 0) {
        return c;
      }
    }
    return nullptr;
  }

  void put_idle(std::unique_ptr<connection> c) {
    const std::lock_guard lock(mutex_);
    if (idle_.size() < options_.max_idle_connections) {
      idle_.push_back(std::move(c));
    }
  }

  asio::awaitable<result<std::unique_ptr<connection>>> connect(steady::time_point deadline) {
    using namespace asio::experimental::awaitable_operators;
    tcp::resolver resolver(ex_);
    asio::steady_timer timer(ex_);
    timer.expires_at(deadline);
    auto resolved = co_await (resolver.async_resolve(host_, port_, use_nothrow) ||
                              timer.async_wait(use_nothrow));
    if (resolved.index() == 1) {
      co_return make_failure(errc::upstream_timeout, fmt::format("resolving {}: timed out", host_));
    }
    auto [rec, endpoints] = std::get<0>(std::move(resolved));
    if (rec) {
      co_return transport_failure(rec, "resolving", host_);
    }
    auto conn = std::make_unique<connection>();
    if (tls_) {
      conn->tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(ex_, ctx_);
    } else {
      conn->plain = std::make_unique<beast::tcp_stream>(ex_);
    }
    conn->lowest().expires_at(deadline);
    auto [cec, ep] = co_await conn->lowest().async_connect(endpoints, use_nothrow);
    if (cec) {
      co_return transport_failure(cec, "connecting to", host_);
    }
    if (tls_) {
      SSL* native = conn->tls->native_handle();
      if (is_ip_literal(host_)) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(native), host_.c_str());
      } else {
        SSL_set_tlsext_host_name(native, host_.c_str());
        SSL_set1_host(native, host_.c_str());
      }
      auto [hec] = co_await conn->tls->async_handshake(ssl::stream_base::client, use_nothrow);
      if (hec) {
        co_return transport_failure(hec, "TLS handshake with", host_);
      }
    }
    co_return std::move(conn);
  }

  template <class Stream>
  asio::awaitable<result<client_response>> exchange(Stream& stream, connection& conn,
                                                    const client_request& req,
                                                    steady::time_point deadline, bool& got_bytes,
                                                    bool& keep_alive) {
    conn.lowest().expires_at(deadline);
    if (auto sent = co_await write_request(stream, req); !sent) {
      co_return sent.error();
    }
    // The header first: its status decides where the body goes (memory or the file).
    bhttp::response_parser<bhttp::empty_body> head;
    head.body_limit(boost::none);
    auto [hec, hn] = co_await bhttp::async_read_header(stream, conn.buffer, head, use_nothrow);
    got_bytes = head.got_some();
    if (hec) {
      co_return transport_failure(hec, "reading the answer of", host_);
    }
    const unsigned status = head.get().result_int();
    client_response out;
    out.status = status;
    for (const auto& f : head.get()) {
      out.headers.push_back({std::string(f.name_string()), std::string(f.value())});
    }
    if (status >= 200 && status < 300 && !req.response_file.empty()) {
      auto body = co_await read_body_to_file(stream, conn, head, req);
      if (!body) {
        co_return body.error();
      }
      keep_alive = *body;
      out.body_in_file = true;
      co_return out;
    }
    if (head.content_length() && *head.content_length() > options_.max_response_bytes) {
      co_return too_large(options_.max_response_bytes);
    }
    bhttp::response_parser<bhttp::string_body> parser(std::move(head));
    parser.body_limit(options_.max_response_bytes);
    auto [rec, rn] = co_await bhttp::async_read(stream, conn.buffer, parser, use_nothrow);
    if (rec) {
      co_return transport_failure(rec, "reading the answer of", host_);
    }
    auto res = parser.release();
    keep_alive = res.keep_alive();
    out.body = std::move(res.body());
    co_return out;
  }

  template <class Stream>
  asio::awaitable<result<void>> write_request(Stream& stream, const client_request& req) {
    const std::string target = base_path_ + req.target;
    const auto fill = [&](auto& msg) {
      msg.method_string(req.method);
      msg.target(target.empty() ? "/" : target);
      msg.version(11);
      msg.set(bhttp::field::host, host_header_);
      msg.set(bhttp::field::user_agent, "dsr-connector/" DSR_VERSION);
      for (const auto& h : req.headers) {
        msg.set(h.name, h.value);
      }
      msg.keep_alive(true);
    };
    if (req.body_stream) {
      bhttp::request<bhttp::empty_body> msg;
      fill(msg);
      const auto within_call_deadline = [] {};
      auto failed =
          co_await detail::write_streamed(stream, msg, *req.body_stream, within_call_deadline);
      if (failed && failed->source_error) {
        co_return make_failure(errc::io_error, *failed->source_error);
      }
      if (failed) {
        co_return transport_failure(failed->ec, "sending to", host_);
      }
      co_return result<void>{};
    }
    bhttp::request<bhttp::string_body> msg;
    fill(msg);
    msg.body() = req.body;
    msg.prepare_payload();
    auto [wec, wn] = co_await bhttp::async_write(stream, msg, use_nothrow);
    if (wec) {
      co_return transport_failure(wec, "sending to", host_);
    }
    co_return result<void>{};
  }

  // Streams the body to req.response_file; true when the connection may be kept.
  template <class Stream>
  asio::awaitable<result<bool>> read_body_to_file(Stream& stream, connection& conn,
                                                  bhttp::response_parser<bhttp::empty_body>& head,
                                                  const client_request& req) {
    const auto& path = req.response_file;
    const std::uint64_t limit =
        req.max_file_bytes == 0 ? std::numeric_limits<std::uint64_t>::max() : req.max_file_bytes;
    if (head.content_length() && *head.content_length() > limit) {
      co_return too_large(limit);
    }
    // Created 0600 (exports hold personal data), as a new file: a leftover of an earlier try of
    // this call is removed first, and a symlink planted in its place is never followed.
    ::unlink(path.c_str());
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    std::unique_ptr<std::FILE, file_closer> file(fd < 0 ? nullptr : ::fdopen(fd, "wb"));
    if (!file) {
      const auto why = std::strerror(errno);
      if (fd >= 0) {
        ::close(fd);
      }
      co_return make_failure(errc::io_error,
                             fmt::format("cannot write {}: {}", path.string(), why));
    }
    const auto put = [f = file.get()](std::string_view bytes) {
      return std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
    };
    std::optional<sealed_file::writer> sealed;
    if (!req.response_key.empty()) {
      sealed.emplace(req.response_key, path.filename().string(), put);
    }
    bhttp::response_parser<sink_body> parser(std::move(head));
    parser.body_limit(limit);
    parser.get().body() = [&](std::string_view piece) {
      return sealed ? sealed->write(piece) : put(piece);
    };
    auto [rec, rn] = co_await bhttp::async_read(stream, conn.buffer, parser, use_nothrow);
    const bool keep = !rec && parser.get().keep_alive();
    const bool written = !rec && (!sealed || sealed->finish()) && std::fflush(file.get()) == 0 &&
                         std::ferror(file.get()) == 0;
    file.reset();
    if (!written) {
      std::error_code ignored;
      std::filesystem::remove(path, ignored);
      if (rec == bhttp::error::body_limit) {
        co_return too_large(limit);
      }
      if (!rec || rec == boost::system::errc::io_error) {
        co_return make_failure(errc::io_error, fmt::format("cannot write {}", path.string()));
      }
      co_return transport_failure(rec, "reading the answer of", host_);
    }
    co_return keep;
  }

  failure too_large(std::uint64_t limit) const {
    return make_failure(errc::upstream_too_large,
                        fmt::format("the answer of {} is larger than {} bytes", host_, limit));
  }

  asio::any_io_executor ex_;
  client_options options_;
  ssl::context ctx_;
  bool tls_ = false;
  std::string host_;
  std::string port_;
  std::string host_header_;
  std::string base_path_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<connection>> idle_;
};

}  // namespace

std::optional<std::string_view> client_response::header(std::string_view name) const {
  for (const auto& h : headers) {
    if (h.name.size() == name.size() &&
        ::strncasecmp(h.name.data(), name.data(), name.size()) == 0) {
      return h.value;
    }
  }
  return std::nullopt;
}

result<std::unique_ptr<client>> make_client(asio::any_io_executor executor,
                                            const client_options& options) {
  auto c = std::make_unique<client_impl>(std::move(executor), options);
  if (auto r = c->init(); !r) {
    return r.error();
  }
  return std::unique_ptr<client>(std::move(c));
}

}  // namespace dsr::http
