/// @file
/// yield(ctx): suspends the coroutine and resumes it in the loop's next ready
/// step, after the other ready work and the turn's I/O — a cooperative break
/// for a long computation or a burst of sends.
#pragma once

#include <cnetmod/engine/io_context.hpp>

#include <coroutine>

namespace cnetmod {

/// An awaitable: `co_await yield(ctx)` resumes the coroutine in `ctx`'s next ready step (the one it runs on).
class yield {
public:
    /// A break on `ctx`, the context the awaiting coroutine runs on.
    explicit yield(io_context& ctx) noexcept : ctx_(ctx) {}
    /// Always false: awaiting always suspends.
    bool await_ready() const noexcept { return false; }
    /// Schedules `h` behind the ready work of `ctx`.
    void await_suspend(std::coroutine_handle<> h);
    /// Nothing to return.
    void await_resume() const noexcept {}

private:
    io_context& ctx_;
};

}  // namespace cnetmod
