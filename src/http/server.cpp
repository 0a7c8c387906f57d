#include "dsr/http/server.hpp"

#include "dsr/common/log.hpp"
#include "streamed_write.hpp"

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <list>
#include <map>
#include <mutex>
#include <thread>
#include <type_traits>

namespace dsr::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

namespace ssl = boost::asio::ssl;
using tls_stream = beast::ssl_stream<beast::tcp_stream>;

inline constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

// TLS 1.2 suites with forward secrecy and AEAD only (Mozilla's "intermediate" list); TLS 1.3
// suites are all AEAD and keep OpenSSL's defaults.
constexpr const char* tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

std::string openssl_reason() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) {
    return "unknown OpenSSL error";
  }
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

result<std::shared_ptr<ssl::context>> make_tls_context(const tls_files& files) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = ctx->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(
      native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_set_cipher_list(native, tls12_ciphers) != 1) {
    return make_failure(errc::io_error, "cannot set the TLS cipher list: " + openssl_reason());
  }
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(native, files.cert_file.c_str()) != 1) {
    return make_failure(
        errc::invalid_input,
        fmt::format("[server] tls_cert_file: cannot load a PEM certificate chain from {}: {}",
                    files.cert_file, openssl_reason()));
  }
  if (SSL_CTX_use_PrivateKey_file(native, files.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return make_failure(
        errc::invalid_input,
        fmt::format("[server] tls_key_file: cannot use {} as the PEM private key of the "
                    "certificate in {}: {}",
                    files.key_file, files.cert_file, openssl_reason()));
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    ERR_clear_error();
    return make_failure(errc::invalid_input,
                        fmt::format("[server] tls_key_file: the key in {} does not belong to the "
                                    "certificate in {}",
                                    files.key_file, files.cert_file));
  }
  return ctx;
}

// The TCP stream under a plain or a TLS stream: deadlines, cancellation and socket state.
beast::tcp_stream& lowest(beast::tcp_stream& s) {
  return s;
}
beast::tcp_stream& lowest(tls_stream& s) {
  return s.next_layer();
}

std::shared_ptr<spdlog::logger> log() {
  static const auto logger = subsystem_logger("http");
  return logger;
}

// Hands a request to the (callback-style) handler and resumes the coroutine on its own strand
// when the handler answers, from whatever thread that is. The boundary of every handler: one that
// throws, or drops its responder without answering (a store task that threw, say), is answered
// 500 and the server keeps serving; an answer after the first is ignored.
// `serving` is false once the event loop is over: a responder dropped then (its io_context being
// torn down) is not answered.
template <class Token>
auto async_handle(handler& h, request req, std::shared_ptr<const std::atomic<bool>> serving,
                  Token&& token) {
  return asio::async_initiate<Token, void(response)>(
      [&h, serving = std::move(serving)](auto completion, request r) {
        using completion_t = decltype(completion);
        struct pending {
          pending(completion_t c, std::shared_ptr<const std::atomic<bool>> s)
              : completion(std::move(c)), serving(std::move(s)) {}
          pending(const pending&) = delete;
          pending& operator=(const pending&) = delete;
          ~pending() {
            if (!answered.load() && serving->load()) {
              log()->error("a request handler ended without answering; answered 500");
              answer(problem(500, "internal error; the request was not completed"));
            }
          }
          void answer(response res) {
            if (answered.exchange(true)) {
              return;
            }
            auto ex = asio::get_associated_executor(completion);
            // The completion moves into the posted function: it runs once, on its strand.
            asio::post(ex, [c = std::move(completion), res = std::move(res)]() mutable {
              std::move(c)(std::move(res));
            });
          }
          completion_t completion;
          std::shared_ptr<const std::atomic<bool>> serving;
          std::atomic<bool> answered{false};
        };
        auto shared = std::make_shared<pending>(std::move(completion), serving);
        try {
          h.handle(std::move(r), [shared](response res) { shared->answer(std::move(res)); });
        } catch (const std::exception& e) {
          log()->error("a request handler failed: {}; answered 500", e.what());
          shared->answer(problem(500, "internal error; the request was not completed"));
        } catch (...) {
          log()->error("a request handler failed; answered 500");
          shared->answer(problem(500, "internal error; the request was not completed"));
        }
      },
      token, std::move(req));
}

bhttp::response<bhttp::string_body> to_beast(response r, unsigned version, bool keep_alive) {
  bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(r.status), version};
  res.set(bhttp::field::server, "dsr-connector");
  res.set(bhttp::field::content_type, r.content_type);
  for (auto& h : r.headers) {
    res.set(h.name, h.value);
  }
  res.body() = std::move(r.body);
  res.keep_alive(keep_alive);
  res.prepare_payload();
  return res;
}

// The connection registry entry the stop logic uses to close idle connections. Touched only on
// the connection's strand, except `strand`, which is immutable.
struct connection {
  asio::strand<asio::io_context::executor_type> strand;
  beast::tcp_stream* stream = nullptr;
  bool idle = false;
  // Set when the connection counts against its address's max_connections_per_client.
  std::optional<asio::ip::address> client;
};

class server_impl final : public server {
 public:
  server_impl(const server_options& options, handler& h)
      : options_(options),
        handler_(h),
        control_(asio::make_strand(ioc_)),
        public_(control_),
        signals_(control_),
        grace_(control_),
        work_(asio::make_work_guard(ioc_)) {}
  server_impl(const server_impl&) = delete;
  server_impl& operator=(const server_impl&) = delete;
  ~server_impl() override { destroyed_ = true; }

  result<void> reload_tls() override {
    if (!options_.tls) {
      return {};
    }
    auto ctx = make_tls_context(*options_.tls);
    if (!ctx) {
      return ctx.error();
    }
    const std::lock_guard lock(mutex_);
    tls_ = std::move(*ctx);
    return {};
  }

  result<void> bind() {
    if (auto r = reload_tls(); !r) {
      return r;
    }
    // Signals are caught from here on: one that arrives before run() (right after "listening"
    // and READY=1) waits for it instead of killing the process.
    if (options_.handle_signals) {
      signals_.add(SIGTERM);
      signals_.add(SIGINT);
      if (options_.on_reload) {
        signals_.add(SIGHUP);
      }
    }
    if (auto r = open(public_, options_.listen, "listen"); !r) {
      return r;
    }
    if (options_.admin_listen) {
      admin_.emplace(control_);
      if (auto r = open(*admin_, *options_.admin_listen, "admin_listen"); !r) {
        return r;
      }
    }
    return {};
  }

  std::optional<endpoint> local_endpoint(listener which) const override {
    const tcp::acceptor* a = which == listener::public_ ? &public_ : (admin_ ? &*admin_ : nullptr);
    if (a == nullptr) {
      return std::nullopt;
    }
    return bound_[which == listener::public_ ? 0 : 1];
  }

  void run() override {
    co_spawn(public_, listener::public_);
    if (admin_) {
      co_spawn(*admin_, listener::admin);
    }
    if (options_.handle_signals) {
      wait_signal();
    }
    unsigned threads = options_.io_threads;
    if (threads == 0) {
      threads = std::max(1u, std::thread::hardware_concurrency());
    }
    std::vector<std::thread> pool;
    for (unsigned i = 1; i < threads; ++i) {
      pool.emplace_back([this] { serve_events(); });
    }
    serve_events();
    for (auto& t : pool) {
      t.join();
    }
    serving_->store(false);
  }

  void stop() override {
    asio::post(control_, [this] { begin_stop(); });
  }

  asio::any_io_executor executor() override { return ioc_.get_executor(); }

 private:
  // Runs the event loop until it is out of work. An exception that escapes a completion handler
  // (a bug) is logged and the loop goes on: one request or job never takes the process down.
  void serve_events() {
    for (;;) {
      try {
        ioc_.run();
        return;
      } catch (const std::exception& e) {
        log()->error("internal error in an event handler: {}; serving on", e.what());
      } catch (...) {
        log()->error("internal error in an event handler; serving on");
      }
    }
  }

  result<void> open(tcp::acceptor& acceptor, const endpoint& ep, std::string_view key) {
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(ep.host == "localhost" ? "127.0.0.1" : ep.host, ec);
    if (ec) {
      return make_failure(errc::invalid_input,
                          fmt::format("[server] {}: '{}' is not an IP address", key, ep.host));
    }
    const tcp::endpoint where{address, ep.port};
    acceptor.open(where.protocol(), ec);
    if (!ec) {
      acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    }
    if (!ec) {
      acceptor.bind(where, ec);
    }
    if (!ec) {
      acceptor.listen(asio::socket_base::max_listen_connections, ec);
    }
    if (ec) {
      return make_failure(errc::io_error, fmt::format("cannot listen on {} ([server] {}): {}",
                                                      ep.to_string(), key, ec.message()));
    }
    const auto local = acceptor.local_endpoint();
    bound_[&acceptor == &public_ ? 0 : 1] = endpoint{local.address().to_string(), local.port()};
    return {};
  }

  void co_spawn(tcp::acceptor& acceptor, listener which) {
    asio::co_spawn(control_, accept_loop(acceptor, which), [](const std::exception_ptr& e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          log()->error("accept loop failed: {}", ex.what());
        }
      }
    });
  }

  void wait_signal() {
    signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
      if (ec) {
        return;
      }
      if (sig == SIGHUP) {
        log()->info("SIGHUP received: reloading the configuration and credentials");
        options_.on_reload();
        wait_signal();
        return;
      }
      if (stopping_.load()) {
        log()->warn("second signal ({}): stopping now without waiting for requests in flight", sig);
        finish();
        return;
      }
      log()->info("signal {} received: draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      begin_stop();
      wait_signal();
    });
  }

  asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, listener which) {
    for (;;) {
      auto strand = asio::make_strand(ioc_);
      auto [ec, socket] = co_await acceptor.async_accept(strand, use_nothrow);
      if (ec) {
        if (ec == asio::error::operation_aborted || stopping_.load()) {
          co_return;
        }
        // Out of file descriptors or a transient network error: back off briefly rather than
        // spin, and keep accepting.
        log()->warn("accept failed: {}", ec.message());
        asio::steady_timer pause(control_, std::chrono::milliseconds(50));
        co_await pause.async_wait(use_nothrow);
        continue;
      }
      const auto slot = static_cast<std::size_t>(which);
      boost::system::error_code peer_ec;
      const auto peer = socket.remote_endpoint(peer_ec);
      std::optional<refusal> refused;
      if (per_listener_[slot].load() >= options_.max_connections) {
        refused = refusal::listener_full;
      } else if (!peer_ec && !admit_client(which, peer.address())) {
        refused = refusal::client_full;
      }
      if (refused) {
        note_refusal(which, *refused);
        if (which == listener::public_ && options_.tls) {
          // A plain-text 503 means nothing to a TLS client and a handshake costs what an
          // overloaded server lacks: the connection is closed, which clients retry.
          boost::system::error_code ignored;
          socket.close(ignored);
          continue;
        }
        asio::co_spawn(strand, reject_busy(tcp::socket(std::move(socket))), asio::detached);
        continue;
      }
      ++active_;
      ++per_listener_[slot];
      auto conn = std::make_shared<connection>(connection{strand});
      if (!peer_ec && which == listener::public_ && options_.max_connections_per_client > 0) {
        conn->client = peer.address();
      }
      asio::co_spawn(strand, session(std::move(socket), which, conn),
                     [](const std::exception_ptr& e) {
                       if (e) {
                         try {
                           std::rethrow_exception(e);
                         } catch (const std::exception& ex) {
                           log()->error("connection failed: {}", ex.what());
                         }
                       }
                     });
    }
  }

  enum class refusal { listener_full, client_full };

  // Counts a connection from `address` on `which` if that address is below its cap (only the
  // public listener has one). Called on the control strand; released in release_client().
  bool admit_client(listener which, const asio::ip::address& address) {
    if (which != listener::public_ || options_.max_connections_per_client == 0) {
      return true;
    }
    const std::lock_guard lock(mutex_);
    auto& open = per_client_[address];
    if (open >= options_.max_connections_per_client) {
      return false;
    }
    ++open;
    return true;
  }

  void release_client(const asio::ip::address& address) {
    const std::lock_guard lock(mutex_);
    const auto it = per_client_.find(address);
    if (it != per_client_.end() && --it->second == 0) {
      per_client_.erase(it);
    }
  }

  // A warning per listener and reason at most once a minute, with the number refused since the
  // last one; never the client's address (it may be personal data). On the control strand.
  void note_refusal(listener which, refusal why) {
    auto& state = refusals_[static_cast<std::size_t>(which)][static_cast<std::size_t>(why)];
    ++state.count;
    const auto now = std::chrono::steady_clock::now();
    if (state.warned && now - *state.warned < std::chrono::minutes(1)) {
      return;
    }
    const char* key = which == listener::public_ ? "listen" : "admin_listen";
    if (why == refusal::listener_full) {
      log()->warn(
          "{} connection(s) on {} refused since the last warning: it holds max_connections ({}) "
          "open connections; raise [server] max_connections if this is real load",
          state.count, key, options_.max_connections);
    } else {
      log()->warn(
          "{} connection(s) on {} refused since the last warning: one client address holds "
          "max_connections_per_client ({}) open connections; set [server] "
          "max_connections_per_client = 0 if a load balancer or proxy connects for every client",
          state.count, key, options_.max_connections_per_client);
    }
    state.count = 0;
    state.warned = now;
  }

  asio::awaitable<void> reject_busy(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    stream.expires_after(std::chrono::seconds(5));
    auto res = to_beast(problem(503, "too many connections; retry shortly", {{"Retry-After", "1"}}),
                        11, false);
    co_await bhttp::async_write(stream, res, use_nothrow);
    boost::system::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  template <class Stream>
  asio::awaitable<void> write(Stream& stream, response r, unsigned version, bool keep_alive,
                              bool& ok) {
    lowest(stream).expires_after(options_.read_timeout);
    if (r.body_stream) {
      auto source = std::move(r.body_stream);
      bhttp::response<bhttp::empty_body> head{static_cast<bhttp::status>(r.status), version};
      head.set(bhttp::field::server, "dsr-connector");
      head.set(bhttp::field::content_type, r.content_type);
      for (auto& h : r.headers) {
        head.set(h.name, h.value);
      }
      head.keep_alive(keep_alive);
      // A large body takes longer than one read timeout: the deadline restarts per piece.
      const auto restart = [&stream, this] { lowest(stream).expires_after(options_.read_timeout); };
      auto failed = co_await detail::write_streamed(stream, head, *source, restart);
      if (failed && failed->source_error) {
        log()->error("cannot send a response body: {}", *failed->source_error);
      }
      ok = !failed;
      co_return;
    }
    auto res = to_beast(std::move(r), version, keep_alive);
    auto [ec, n] = co_await bhttp::async_write(stream, res, use_nothrow);
    ok = !ec;
  }

  // One connection, plain or TLS: the same serve() loop runs over either stream type.
  asio::awaitable<void> session(tcp::socket socket, listener which,
                                std::shared_ptr<connection> conn) {
    boost::system::error_code ec;
    const auto peer = socket.remote_endpoint(ec);
    const std::string remote =
        ec ? std::string("unknown") : fmt::format("{}:{}", peer.address().to_string(), peer.port());
    std::shared_ptr<ssl::context> tls;
    if (which == listener::public_) {
      const std::lock_guard lock(mutex_);
      tls = tls_;
    }
    if (tls) {
      tls_stream stream(beast::tcp_stream(std::move(socket)), *tls);
      co_await serve_tls(stream, which, conn, remote);
    } else {
      beast::tcp_stream stream(std::move(socket));
      enlist(conn, stream);
      co_await serve(stream, which, *conn, remote);
      stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    }
    conn->stream = nullptr;
    {
      const std::lock_guard lock(mutex_);
      connections_.remove(conn);
    }
    if (conn->client) {
      release_client(*conn->client);
    }
    --per_listener_[static_cast<std::size_t>(which)];
    if (--active_ == 0 && stopping_.load() && holds_.load() == 0) {
      asio::post(control_, [this] { finish(); });
    }
  }

  void enlist(const std::shared_ptr<connection>& conn, beast::tcp_stream& stream) {
    conn->stream = &stream;
    const std::lock_guard lock(mutex_);
    connections_.push_back(conn);
  }

  asio::awaitable<void> serve_tls(tls_stream& stream, listener which,
                                  std::shared_ptr<connection> conn, const std::string& remote) {
    enlist(conn, stream.next_layer());
    if (!co_await first_byte(stream.next_layer(), *conn)) {
      co_return;
    }
    // The handshake counts as part of the first request: it must end within read_timeout.
    stream.next_layer().expires_after(options_.read_timeout);
    auto [hec] = co_await stream.async_handshake(ssl::stream_base::server, use_nothrow);
    if (hec) {
      log()->debug("TLS handshake with {} failed: {}", remote, hec.message());
      co_return;
    }
    co_await serve(stream, which, *conn, remote);
    // close_notify, bounded: a peer that never answers it does not hold the connection.
    stream.next_layer().expires_after(std::chrono::seconds(1));
    co_await stream.async_shutdown(use_nothrow);
  }

  // Waits until a new TLS connection's first byte (its ClientHello) arrives: false when none
  // comes within first_byte_timeout or a stop closes the silent connection.
  asio::awaitable<bool> first_byte(beast::tcp_stream& stream, connection& conn) {
    auto done = std::make_shared<bool>(false);
    asio::steady_timer deadline(stream.get_executor(), options_.first_byte_timeout);
    deadline.async_wait([done, &stream](const boost::system::error_code& ec) {
      if (!ec && !*done) {
        boost::system::error_code ignored;
        stream.socket().cancel(ignored);
      }
    });
    conn.idle = true;
    auto [ec] = co_await stream.socket().async_wait(tcp::socket::wait_read, use_nothrow);
    conn.idle = false;
    *done = true;
    deadline.cancel();
    if (ec) {
      co_return false;
    }
    boost::system::error_code avail_ec;
    co_return !stopping_.load() || stream.socket().available(avail_ec) > 0;
  }

  std::shared_ptr<void> hold() override {
    ++holds_;
    return std::shared_ptr<void>(nullptr, [this](void*) {
      if (--holds_ == 0 && !destroyed_.load() && stopping_.load() && active_.load() == 0) {
        asio::post(control_, [this] { finish(); });
      }
    });
  }

  template <class Stream>
  asio::awaitable<void> serve(Stream& stream, listener which, connection& conn,
                              const std::string& remote) {
    beast::flat_buffer buffer;
    bool ok = true;
    // A new plain connection must send its first byte within first_byte_timeout; a keep-alive one
    // may wait idle_timeout between requests. (Over TLS the handshake has already come.)
    bool first = std::is_same_v<Stream, beast::tcp_stream>;
    for (;;) {
      if (buffer.size() == 0) {
        // Between requests the connection is idle: a stop may close it, unless the next request
        // has already arrived (bytes waiting in the socket): that one is in flight.
        boost::system::error_code avail_ec;
        if (stopping_.load() && lowest(stream).socket().available(avail_ec) == 0) {
          co_return;
        }
        conn.idle = true;
        lowest(stream).expires_after(first ? options_.first_byte_timeout : options_.idle_timeout);
        first = false;
        auto [ec, n] = co_await stream.async_read_some(buffer.prepare(4096), use_nothrow);
        conn.idle = false;
        if (ec) {
          co_return;
        }
        buffer.commit(n);
      }
      // From the first byte, the whole request must arrive within read_timeout.
      lowest(stream).expires_after(options_.read_timeout);
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(options_.header_limit));
      parser.body_limit(options_.max_body_bytes);
      auto [ec, n] = co_await bhttp::async_read_header(stream, buffer, parser, use_nothrow);
      if (ec == bhttp::error::header_limit) {
        co_await write(
            stream,
            problem(431, fmt::format("request headers exceed {} bytes", options_.header_limit)), 11,
            false, ok);
        co_return;
      }
      if (ec == bhttp::error::body_limit) {
        // Beast checks a declared Content-Length against body_limit while reading the header.
        co_await write(stream,
                       problem(413, fmt::format("request body exceeds max_body_bytes ({})",
                                                options_.max_body_bytes)),
                       11, false, ok);
        co_return;
      }
      if (ec) {
        if (ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category() &&
            ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
          co_await write(stream, problem(400, "malformed HTTP request"), 11, false, ok);
        } else if (ec == beast::error::timeout) {
          log()->info(
              "closing connection from {}: request not received within {} s", remote,
              std::chrono::duration_cast<std::chrono::seconds>(options_.read_timeout).count());
        }
        co_return;
      }
      const unsigned version = parser.get().version();
      if (const auto expect = parser.get()[bhttp::field::expect];
          beast::iequals(expect, "100-continue")) {
        bhttp::response<bhttp::empty_body> cont{bhttp::status::continue_, version};
        auto [wec, wn] = co_await bhttp::async_write(stream, cont, use_nothrow);
        if (wec) {
          co_return;
        }
      }
      if (!parser.is_done()) {
        auto [bec, bn] = co_await bhttp::async_read(stream, buffer, parser, use_nothrow);
        if (bec == bhttp::error::body_limit) {
          co_await write(stream,
                         problem(413, fmt::format("request body exceeds max_body_bytes ({})",
                                                  options_.max_body_bytes)),
                         version, false, ok);
          co_return;
        }
        if (bec) {
          co_return;
        }
      }
      auto msg = parser.release();
      request req;
      req.method = std::string(msg.method_string());
      req.target = std::string(msg.target());
      for (const auto& f : msg) {
        req.headers.push_back({std::string(f.name_string()), std::string(f.value())});
      }
      req.body = std::move(msg.body());
      req.remote = remote;
      req.on = which;
      req.admin_shared = !options_.admin_listen.has_value();
      req.tls = !std::is_same_v<Stream, beast::tcp_stream>;
      const bool keep_alive = msg.keep_alive();
      // While the handler runs (possibly waiting on the store), no deadline applies to the
      // socket; the handler bounds its own waits.
      lowest(stream).expires_never();
      response res = co_await async_handle(handler_, std::move(req), serving_, asio::use_awaitable);
      if (res.status == 0) {
        co_return;  // the handler asked to drop the connection unanswered
      }
      const bool again = keep_alive && !stopping_.load();
      co_await write(stream, std::move(res), version, again, ok);
      if (!ok || !again) {
        co_return;
      }
    }
  }

  void begin_stop() {
    if (stopping_.exchange(true)) {
      return;
    }
    if (options_.on_stopping) {
      options_.on_stopping();
    }
    boost::system::error_code ec;
    public_.close(ec);
    if (admin_) {
      admin_->close(ec);
    }
    std::list<std::shared_ptr<connection>> conns;
    {
      const std::lock_guard lock(mutex_);
      conns = connections_;
    }
    for (auto& c : conns) {
      asio::post(c->strand, [c] {
        // A connection whose next request has already arrived (bytes waiting in the socket) is
        // in flight, not idle: it is read and answered.
        boost::system::error_code avail_ec;
        if (c->idle && c->stream != nullptr && c->stream->socket().available(avail_ec) == 0) {
          c->stream->cancel();
        }
      });
    }
    if (active_.load() == 0 && holds_.load() == 0) {
      finish();
      return;
    }
    log()->info("waiting up to {} s for {} connection(s) and {} running job(s) to finish",
                std::chrono::duration_cast<std::chrono::seconds>(options_.shutdown_grace).count(),
                active_.load(), holds_.load());
    grace_.expires_after(options_.shutdown_grace);
    grace_.async_wait([this](const boost::system::error_code& e) {
      if (!e) {
        log()->warn("shutdown grace period over; {} connection(s) and {} job(s) abandoned",
                    active_.load(), holds_.load());
        finish();
      }
    });
  }

  void finish() {
    if (finished_.exchange(true)) {
      return;
    }
    boost::system::error_code ec;
    signals_.cancel(ec);
    grace_.cancel();
    work_.reset();
    ioc_.stop();
  }

  server_options options_;
  handler& handler_;
  // Declared before ioc_: a hold dropped while ioc_ is destroyed (a job's coroutine frame) must
  // still find them.
  std::atomic<bool> destroyed_{false};
  std::atomic<std::uint64_t> holds_{0};
  asio::io_context ioc_;
  // Acceptors, signals, the grace timer and the stop logic run on this strand.
  asio::strand<asio::io_context::executor_type> control_;
  tcp::acceptor public_;
  std::optional<tcp::acceptor> admin_;
  std::array<endpoint, 2> bound_;
  asio::signal_set signals_;
  asio::steady_timer grace_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::mutex mutex_;
  std::list<std::shared_ptr<connection>> connections_;
  std::shared_ptr<ssl::context> tls_;                         // under mutex_; null: plain HTTP
  std::atomic<std::uint64_t> active_{0};                      // connections being served
  std::array<std::atomic<std::uint64_t>, 2> per_listener_{};  // by listener (public_, admin)
  std::map<asio::ip::address, std::uint64_t> per_client_;     // under mutex_; public listener
  struct refusal_state {
    std::uint64_t count = 0;
    std::optional<std::chrono::steady_clock::time_point> warned;
  };
  std::array<std::array<refusal_state, 2>, 2> refusals_{};  // [listener][refusal], control strand
  std::atomic<bool> stopping_{false};
  // True while the event loop runs (async_handle answers a dropped responder only then).
  std::shared_ptr<std::atomic<bool>> serving_ = std::make_shared<std::atomic<bool>>(true);
  std::atomic<bool> finished_{false};
};

}  // namespace

result<std::unique_ptr<server>> make_server(const server_options& options, handler& h) {
  auto s = std::make_unique<server_impl>(options, h);
  if (auto r = s->bind(); !r) {
    return r.error();
  }
  return std::unique_ptr<server>(std::move(s));
}

}  // namespace dsr::http
