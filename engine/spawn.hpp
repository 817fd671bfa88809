/// @file
/// spawn(ctx, task): runs a task detached on a context. The context owns the
/// coroutine until it finishes; if it is still suspended when the context is
/// destroyed, it is destroyed with it. An exception that escapes is reported
/// through cnetmod::log (engine/log.hpp; stderr by default) with where the
/// task was spawned, never silently dropped.
///
/// sync_wait(ctx, task): runs the context's loop on the calling thread until
/// the task finishes, and returns its value (or rethrows its exception).
#pragma once

#include <cnetmod/engine/io_context.hpp>
#include <cnetmod/engine/task.hpp>

#include <exception>
#include <source_location>
#include <string_view>

namespace cnetmod {

namespace detail {

void report_escaped_exception(std::exception_ptr e, const std::source_location& where) noexcept;

// A node of the intrusive list of detached coroutines a context owns, so
// that those still suspended are destroyed with it. A node with `drop`
// stands for an owner of other work (the HTTP server's adopted handlers,
// whose frame it names): `drop` unlinks it and frees what it owns.
struct detached_node {
    detached_node* prev = nullptr;
    detached_node* next = nullptr;
    std::coroutine_handle<> frame;
    void (*drop)(detached_node*) noexcept = nullptr;
};

struct detached_task {
    struct promise_type : detached_node {
        io_context* ctx = nullptr;
        std::source_location where;

        static void* operator new(std::size_t n) { return allocate_frame(n); }
        static void operator delete(void* p, std::size_t n) noexcept { deallocate_frame(p, n); }

        detached_task get_return_object() noexcept {
            frame = std::coroutine_handle<promise_type>::from_promise(*this);
            return {std::coroutine_handle<promise_type>::from_promise(*this)};
        }
        std::suspend_always initial_suspend() noexcept { return {}; }
        std::suspend_never final_suspend() noexcept { return {}; }
        void return_void() noexcept {}
        void unhandled_exception() noexcept { report_escaped_exception(std::current_exception(), where); }
        ~promise_type();
    };
    std::coroutine_handle<promise_type> handle;
};

template <class T>
detached_task run_detached(task<T> t) {
    co_await std::move(t);
}

}  // namespace detail

/// Starts a coroutine that is itself detached (it returns
/// detail::detached_task, as the HTTP server's per-connection sessions do):
/// no wrapper frame, so long-lived per-connection work costs one frame less
/// than spawn(ctx, task). Runs at once on the context's own thread, else in a
/// later loop turn; an exception that escapes it is reported like spawn's.
void start_detached(io_context& ctx, detail::detached_task t,
                    std::source_location where = std::source_location::current());

/// Starts `t` on `ctx`. On the context's own thread the task runs at once until
/// its first suspension; from any other thread it starts in a later loop turn.
template <class T>
void spawn(io_context& ctx, task<T> t, std::source_location where = std::source_location::current()) {
    start_detached(ctx, detail::run_detached(std::move(t)), where);
}

/// Calls a coroutine lambda and keeps the lambda (its captures) alive in the
/// coroutine's frame until it finishes. `spawn(ctx, [&, i]() -> task<void> {...}())`
/// would leave the captures dangling once the temporary lambda is destroyed;
/// `spawn(ctx, co_invoke([&, i]() -> task<void> {...}))` does not.
template <class F>
auto co_invoke(F f) -> std::invoke_result_t<F&> {
    co_return co_await f();
}

namespace detail {
template <class T>
struct sync_wait_state {
    std::optional<T> value;
};
template <>
struct sync_wait_state<void> {};
}  // namespace detail

/// Runs `ctx` on this thread until `t` completes. The context must not be
/// running already; it is stopped again when `t` completes.
/// Throws what `t` threw, or std::logic_error when the context was stopped before `t` finished.
template <class T>
T sync_wait(io_context& ctx, task<T> t) {
    std::exception_ptr error;
    detail::sync_wait_state<T> state;
    bool done = false;
    auto runner = [](io_context& c, task<T> inner, detail::sync_wait_state<T>& s, std::exception_ptr& err,
                     bool& finished) -> task<void> {
        try {
            if constexpr (std::is_void_v<T>)
                co_await std::move(inner);
            else
                s.value.emplace(co_await std::move(inner));
        } catch (...) {
            err = std::current_exception();
        }
        finished = true;
        c.stop();
    };
    // The runner's frame stays here, so it is destroyed even if run() throws.
    struct frame_owner {
        std::coroutine_handle<> h;
        ~frame_owner() { h.destroy(); }
    } owner{runner(ctx, std::move(t), state, error, done).release()};
    ctx.post([h = owner.h] { h.resume(); });
    ctx.run();
    if (error) std::rethrow_exception(error);
    if (!done) throw std::logic_error("cnetmod: sync_wait: the io_context was stopped before the task finished");
    if constexpr (!std::is_void_v<T>) return std::move(*state.value);
}

}  // namespace cnetmod
