#pragma once
// Awaits a function run on the store thread: `co_await store_call<T>(queue, fn)` posts `fn` to the
// job_queue and resumes the coroutine on its own executor with fn's result. Include only from
// .cpp files that already use Asio.

#include "dsr/jobs/store_worker.hpp"

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <memory>

namespace dsr {

template <class T, class Fn>
boost::asio::awaitable<T> store_call(job_queue& queue, Fn fn) {
  return boost::asio::async_initiate<decltype(boost::asio::use_awaitable), void(T)>(
      [&queue](auto handler, Fn f) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        queue.run([h, f = std::move(f)](job_store& s) mutable {
          T value = f(s);
          auto ex = boost::asio::get_associated_executor(*h);
          boost::asio::post(ex,
                            [h, value = std::move(value)]() mutable { (*h)(std::move(value)); });
        });
      },
      boost::asio::use_awaitable, std::move(fn));
}

}  // namespace dsr
