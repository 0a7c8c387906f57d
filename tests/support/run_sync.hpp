#pragma once
// Runs one coroutine to completion on a private io_context and returns its value: lets tests call
// awaitable interfaces (clients, flows) from plain test code.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

namespace dsr::test {

template <class T>
T run_sync(boost::asio::io_context& ioc, boost::asio::awaitable<T> a) {
  auto f = boost::asio::co_spawn(ioc, std::move(a), boost::asio::use_future);
  ioc.restart();
  ioc.run();
  return f.get();
}

}  // namespace dsr::test
