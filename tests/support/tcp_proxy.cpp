#include "support/tcp_proxy.hpp"

#include "dsr/common/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <future>
#include <stdexcept>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

namespace dsr::test {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;
inline constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

// The kernel would wait minutes for a target that does not answer.
constexpr auto connect_timeout = std::chrono::seconds(10);

// One forwarded connection: the accepted socket and the one to the target.
struct link {
  link(tcp::socket accepted, asio::io_context& ioc)
      : client(std::move(accepted)), server(ioc), connecting(ioc) {}
  tcp::socket client;
  tcp::socket server;
  asio::steady_timer connecting;
  // The directions still forwarding; the link closes gracefully when both have ended.
  int pumps = 2;
  bool closed = false;
};

// An RST rather than a FIN, as a failing network would have it: what was in flight is lost and
// the peer's next read or write fails, whether or not it had half-closed.
void reset(tcp::socket& s) {
  error_code ignored;
  if (s.is_open()) {
    s.set_option(tcp::socket::linger(true, 0), ignored);
    s.close(ignored);
  }
}

}  // namespace

// Everything but the counters is touched only on the proxy's thread (or, in the destructor, after
// it has ended): one thread runs the io_context, so it needs no strand.
struct tcp_proxy::state {
  // First, so that it goes last: the sockets and timers need it until they are gone.
  asio::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  tcp::resolver::results_type target;
  std::uint16_t port = 0;
  bool cut = false;
  std::unordered_set<std::shared_ptr<link>> open;
  std::atomic<std::size_t> connections{0};
  std::atomic<std::size_t> accepted{0};
  std::thread thread;

  asio::awaitable<void> accept_loop();
  asio::awaitable<void> forward(std::shared_ptr<link> l);
  asio::awaitable<void> pump(std::shared_ptr<link> l, tcp::socket& from, tcp::socket& to);
  void close(const std::shared_ptr<link>& l, bool abortive);
  void close_all();

  // Runs `f` on the proxy's thread and returns once it has run.
  template <class F>
  void run_on_thread(F f) {
    std::promise<void> done;
    auto finished = done.get_future();
    asio::post(ioc, [&] {
      f();
      done.set_value();
    });
    finished.wait();
  }
};

asio::awaitable<void> tcp_proxy::state::accept_loop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(use_nothrow);
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) {
      co_return;
    }
    if (ec) {
      // A client that went away before it was accepted (ECONNABORTED), or a passing shortage of
      // descriptors: the listener itself still works.
      continue;
    }
    ++accepted;
    if (cut) {
      reset(socket);
      continue;
    }
    auto l = std::make_shared<link>(std::move(socket), ioc);
    open.insert(l);
    connections = open.size();
    asio::co_spawn(ioc, forward(std::move(l)),
                   log_if_thrown("tcp_proxy", "a forwarded connection"));
  }
}

asio::awaitable<void> tcp_proxy::state::forward(std::shared_ptr<link> l) {
  l->connecting.expires_after(connect_timeout);
  l->connecting.async_wait([this, l](const error_code& ec) {
    if (!ec) {
      close(l, true);
    }
  });
  auto [ec, endpoint] = co_await asio::async_connect(l->server, target, use_nothrow);
  l->connecting.cancel();
  // Closed meanwhile: by cut(), or by the timer.
  if (ec || l->closed) {
    close(l, true);
    co_return;
  }
  // Nagle's delay would hold back the small messages of a protocol such as PostgreSQL's.
  error_code ignored;
  l->client.set_option(tcp::no_delay(true), ignored);
  l->server.set_option(tcp::no_delay(true), ignored);
  asio::co_spawn(ioc, pump(l, l->server, l->client),
                 log_if_thrown("tcp_proxy", "a forwarded connection"));
  co_await pump(l, l->client, l->server);
}

asio::awaitable<void> tcp_proxy::state::pump(std::shared_ptr<link> l, tcp::socket& from,
                                             tcp::socket& to) {
  std::array<char, 16384> buffer;
  for (;;) {
    auto [read_ec, n] = co_await from.async_read_some(asio::buffer(buffer), use_nothrow);
    if (read_ec == asio::error::eof) {
      // A half-close, passed on: the other direction may still carry an answer.
      error_code ignored;
      to.shutdown(tcp::socket::shutdown_send, ignored);
      break;
    }
    if (read_ec) {
      close(l, true);
      co_return;
    }
    auto [write_ec, written] =
        co_await asio::async_write(to, asio::buffer(buffer.data(), n), use_nothrow);
    if (write_ec) {
      close(l, true);
      co_return;
    }
  }
  if (--l->pumps == 0) {
    close(l, false);
  }
}

void tcp_proxy::state::close(const std::shared_ptr<link>& l, bool abortive) {
  if (l->closed) {
    return;
  }
  l->closed = true;
  l->connecting.cancel();
  if (abortive) {
    reset(l->client);
    reset(l->server);
  } else {
    error_code ignored;
    l->client.close(ignored);
    l->server.close(ignored);
  }
  open.erase(l);
  connections = open.size();
}

void tcp_proxy::state::close_all() {
  // A copy: close() erases from the set.
  const std::vector<std::shared_ptr<link>> links(open.begin(), open.end());
  for (const auto& l : links) {
    close(l, true);
  }
}

tcp_proxy::tcp_proxy(std::string target_host, std::uint16_t target_port)
    : state_(std::make_unique<state>()) {
  auto& s = *state_;
  error_code ec;
  tcp::resolver resolver(s.ioc);
  s.target = resolver.resolve(target_host, std::to_string(target_port),
                              tcp::resolver::numeric_service, ec);
  if (ec) {
    throw std::runtime_error("tcp_proxy: cannot resolve the target " + target_host + ": " +
                             ec.message());
  }
  const tcp::endpoint listen(asio::ip::address_v4::loopback(), 0);
  if (s.acceptor.open(listen.protocol(), ec); ec) {
    throw std::runtime_error("tcp_proxy: cannot open a TCP socket: " + ec.message());
  }
  if (s.acceptor.bind(listen, ec); ec) {
    throw std::runtime_error("tcp_proxy: cannot bind 127.0.0.1:0: " + ec.message());
  }
  if (s.acceptor.listen(asio::socket_base::max_listen_connections, ec); ec) {
    throw std::runtime_error("tcp_proxy: cannot listen on 127.0.0.1: " + ec.message());
  }
  const auto bound = s.acceptor.local_endpoint(ec);
  if (ec) {
    throw std::runtime_error("tcp_proxy: cannot read the port it listens on: " + ec.message());
  }
  s.port = bound.port();
  asio::co_spawn(s.ioc, s.accept_loop(), log_if_thrown("tcp_proxy", "the listener"));
  s.thread = std::thread([&s] { s.ioc.run(); });
}

tcp_proxy::~tcp_proxy() {
  auto& s = *state_;
  s.ioc.stop();
  if (s.thread.joinable()) {
    s.thread.join();
  }
  // The thread has ended: nothing else touches the sockets. The coroutines still suspended go
  // with the io_context.
  error_code ignored;
  s.acceptor.close(ignored);
  s.close_all();
}

std::uint16_t tcp_proxy::port() const {
  return state_->port;
}

void tcp_proxy::cut() {
  auto& s = *state_;
  s.run_on_thread([&s] {
    s.cut = true;
    s.close_all();
  });
}

void tcp_proxy::restore() {
  auto& s = *state_;
  s.run_on_thread([&s] { s.cut = false; });
}

std::size_t tcp_proxy::connections() const {
  return state_->connections;
}

std::size_t tcp_proxy::accepted() const {
  return state_->accepted;
}

}  // namespace dsr::test
