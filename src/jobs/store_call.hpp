#pragma once
// Awaits a function run on the store thread: `co_await store_call<T>(queue, fn)` posts `fn` to the
// job_queue and resumes the coroutine on its own executor with fn's result. T is a result<...>:
// an exception thrown by `fn` (a bug) comes back as a failure, so that the store thread goes on
// and the coroutine decides what to do. Include only from .cpp files that already use Asio.

#include "dsr/jobs/store_worker.hpp"

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <memory>
#include <string>
#include <type_traits>

namespace dsr {

template <class T, class Fn>
boost::asio::awaitable<T> store_call(job_queue& queue, Fn fn) {
  static_assert(std::is_constructible_v<T, failure>, "store_call returns a result<...>");
  return boost::asio::async_initiate<decltype(boost::asio::use_awaitable), void(T)>(
      [&queue](auto handler, Fn f) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        queue.run([h, f = std::move(f)](job_store& s) mutable {
          T value = [&]() -> T {
            try {
              return f(s);
            } catch (const std::exception& e) {
              return make_failure(errc::store_unavailable,
                                  std::string("internal error in the job store: ") + e.what());
            }
          }();
          auto ex = boost::asio::get_associated_executor(*h);
          boost::asio::post(ex,
                            [h, value = std::move(value)]() mutable { (*h)(std::move(value)); });
        });
      },
      boost::asio::use_awaitable, std::move(fn));
}

}  // namespace dsr
