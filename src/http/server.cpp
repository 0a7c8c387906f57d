#include "dsr/http/server.hpp"

#include "admission.hpp"
#include "dsr/common/log.hpp"
#include "streamed_write.hpp"
#include "tls_context.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <atomic>
#include <chrono>
#include <list>
#include <mutex>
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
// `serving` is false once the server is gone, after the event loop: a responder dropped then (its
// io_context being torn down) is not answered.
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
  asio::strand<asio::any_io_executor> strand;
  beast::tcp_stream* stream = nullptr;
  bool idle = false;
  detail::admission::seat seat;  // given back when the connection ends
};

class server_impl final : public server {
 public:
  server_impl(asio::any_io_executor executor, const server_options& options, handler& h)
      : options_(options),
        handler_(h),
        executor_(std::move(executor)),
        control_(asio::make_strand(executor_)),
        public_(control_) {}
  server_impl(const server_impl&) = delete;
  server_impl& operator=(const server_impl&) = delete;
  // The event loop is over by now: a responder dropped from here on is not answered.
  ~server_impl() override { serving_->store(false); }

  result<void> reload_tls() override {
    if (!options_.tls) {
      return {};
    }
    auto ctx = detail::make_tls_context(*options_.tls);
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

  // Spawns the accept loops; they run once the executor's io_context does.
  void start() {
    co_spawn(public_, listener::public_);
    if (admin_) {
      co_spawn(*admin_, listener::admin);
    }
  }

  void stop() override {
    asio::post(control_, [this] { begin_stop(); });
  }

 private:
  std::shared_ptr<void> hold() { return options_.hold ? options_.hold() : nullptr; }

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

  asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, listener which) {
    for (;;) {
      auto strand = asio::make_strand(executor_);
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
      boost::system::error_code peer_ec;
      const auto peer = socket.remote_endpoint(peer_ec);
      const auto seat = admission_.admit(
          which, peer_ec ? std::nullopt : std::optional<asio::ip::address>(peer.address()));
      if (!seat) {
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
      auto conn = std::make_shared<connection>(connection{strand, nullptr, false, *seat});
      asio::co_spawn(strand, session(std::move(socket), which, conn, hold()),
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
  // `held` keeps a graceful stop waiting until the connection ends.
  asio::awaitable<void> session(tcp::socket socket, listener which,
                                std::shared_ptr<connection> conn, std::shared_ptr<void> held) {
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
    admission_.release(conn->seat);
    held.reset();
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

  // On the control strand.
  void begin_stop() {
    if (stopping_.exchange(true)) {
      return;
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
  }

  server_options options_;
  handler& handler_;
  asio::any_io_executor executor_;
  // The acceptors and the stop logic run on this strand.
  asio::strand<asio::any_io_executor> control_;
  tcp::acceptor public_;
  std::optional<tcp::acceptor> admin_;
  std::array<endpoint, 2> bound_;
  std::mutex mutex_;
  std::list<std::shared_ptr<connection>> connections_;
  std::shared_ptr<ssl::context> tls_;  // under mutex_; null: plain HTTP
  detail::admission admission_{options_.max_connections, options_.max_connections_per_client};
  std::atomic<bool> stopping_{false};
  // True until the server goes (async_handle answers a dropped responder only then).
  std::shared_ptr<std::atomic<bool>> serving_ = std::make_shared<std::atomic<bool>>(true);
};

}  // namespace

result<std::unique_ptr<server>> make_server(boost::asio::any_io_executor executor,
                                            const server_options& options, handler& h) {
  auto s = std::make_unique<server_impl>(std::move(executor), options, h);
  if (auto r = s->bind(); !r) {
    return r.error();
  }
  s->start();
  return std::unique_ptr<server>(std::move(s));
}

}  // namespace dsr::http
