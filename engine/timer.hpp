/// @file
/// Timers: async_sleep suspends a coroutine for a duration with one
/// IORING_OP_TIMEOUT. A stop_token cancels the sleep (IORING_OP_TIMEOUT_REMOVE),
/// which then throws std::system_error(ECANCELED). Timers that expire at the
/// same time complete in the order they were started.
#pragma once

#include <cnetmod/engine/deadline.hpp>
#include <cnetmod/engine/io_context.hpp>
#include <cnetmod/engine/task.hpp>

#include <chrono>
#include <coroutine>
#include <optional>
#include <stop_token>

namespace cnetmod {

namespace detail {

// Its SQE's user_data is its address tagged as a sleep (no completion object).
class sleep_operation {
public:
    sleep_operation(io_context& ctx, std::chrono::nanoseconds d, std::stop_token stop)
        : ctx_(ctx), stop_(std::move(stop)) {
        when_ = to_kernel_timespec(
            deadline{deadline::clock::now() + std::chrono::duration_cast<deadline::clock::duration>(d)});
    }
    sleep_operation(io_context& ctx, deadline at, std::stop_token stop)
        : ctx_(ctx), stop_(std::move(stop)), when_(to_kernel_timespec(at)) {}

    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h);
    void await_resume();

private:
    struct canceller {
        sleep_operation* op;
        void operator()() noexcept;
    };
    friend void sleep_completion(void* object, int result);

    io_context& ctx_;
    std::stop_token stop_;
    std::optional<std::stop_callback<canceller>> stop_callback_;
    __kernel_timespec when_{};
    std::coroutine_handle<> waiter_;
    int result_ = 0;
};

}  // namespace detail

/// Suspends for `d`. Throws std::system_error(ECANCELED) if `stop` is requested first.
template <class Rep, class Period>
detail::sleep_operation async_sleep(io_context& ctx, std::chrono::duration<Rep, Period> d, std::stop_token stop = {}) {
    return detail::sleep_operation(ctx, std::chrono::duration_cast<std::chrono::nanoseconds>(d), std::move(stop));
}

/// Suspends until `at`.
/// Throws std::system_error(ECANCELED) if `stop` is requested first.
inline detail::sleep_operation async_sleep_until(io_context& ctx, deadline at, std::stop_token stop = {}) {
    return detail::sleep_operation(ctx, at, std::move(stop));
}

}  // namespace cnetmod
