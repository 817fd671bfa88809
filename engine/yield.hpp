// yield(ctx): suspends the coroutine and resumes it in the loop's next ready
// step, after the other ready work and the turn's I/O — a cooperative break
// for a long computation or a burst of sends.
#pragma once

#include <cnetmod/engine/io_context.hpp>

#include <coroutine>

namespace cnetmod {

class yield {
public:
    explicit yield(io_context& ctx) noexcept : ctx_(ctx) {}
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h);
    void await_resume() const noexcept {}

private:
    io_context& ctx_;
};

}  // namespace cnetmod
