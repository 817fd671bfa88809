/// @file
/// task<T>: a lazy coroutine that starts when awaited. An exception thrown
/// in the body propagates to the awaiter. Frames come from the per-core
/// frame_allocator.
///
/// Awaiting runs the task inline from await_suspend: if it finishes there,
/// await_suspend returns false and the awaiter simply continues, so a million
/// synchronous completions in a row use no stack at all, whether or not the
/// compiler turns symmetric transfer into tail calls (g++ does not at -O0 or
/// under AddressSanitizer). A task that suspends resumes its awaiter later by
/// symmetric transfer from final_suspend.
#pragma once

#include <coroutine>
#include <cstddef>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

namespace cnetmod {

template <class T = void>
class task;

namespace detail {

// Coroutine frames come from the per-core recycling allocator
// (engine/detail/frame_allocator.hpp); declared here so that the allocator
// itself stays internal.
void* allocate_frame(std::size_t n);
void deallocate_frame(void* p, std::size_t n) noexcept;

// What a detached task (detach_task) hands its end to.
struct task_owner {
    // The task has finished and its frame is destroyed; `error` is what it threw, if anything.
    void (*finished)(task_owner* self, std::exception_ptr error) noexcept;
};

struct task_promise_base {
    // detached: no awaiter; continuation_ holds the task_owner to tell at the end.
    enum class run_state : unsigned char { idle, inline_running, inline_finished, detached };

    std::coroutine_handle<> continuation_ = std::noop_coroutine();
    std::exception_ptr exception_;
    run_state state_ = run_state::idle;

    static void* operator new(std::size_t n) { return allocate_frame(n); }
    static void operator delete(void* p, std::size_t n) noexcept { deallocate_frame(p, n); }

    std::suspend_always initial_suspend() noexcept { return {}; }

    struct final_awaiter {
        bool await_ready() noexcept { return false; }
        template <class Promise>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) noexcept {
            auto& p = h.promise();
            if (p.state_ == run_state::detached) {
                // Nobody awaits it: the frame goes now (it is suspended here),
                // then its owner hears how it ended.
                auto* owner = static_cast<task_owner*>(p.continuation_.address());
                std::exception_ptr error = std::move(p.exception_);
                h.destroy();
                owner->finished(owner, std::move(error));
                return std::noop_coroutine();
            }
            if (p.state_ == run_state::inline_running) {
                // Finished inside the awaiter's await_suspend: it continues from there.
                p.state_ = run_state::inline_finished;
                return std::noop_coroutine();
            }
            return p.continuation_;
        }
        void await_resume() noexcept {}
    };
    final_awaiter final_suspend() noexcept { return {}; }

    void unhandled_exception() noexcept { exception_ = std::current_exception(); }
    void rethrow_if_failed() {
        if (exception_) std::rethrow_exception(exception_);
    }
};

template <class T>
struct task_promise : task_promise_base {
    std::optional<T> value_;

    task<T> get_return_object() noexcept;
    template <class U>
    void return_value(U&& v) {
        value_.emplace(std::forward<U>(v));
    }
    T take() {
        rethrow_if_failed();
        return std::move(*value_);
    }
};

template <>
struct task_promise<void> : task_promise_base {
    task<void> get_return_object() noexcept;
    void return_void() noexcept {}
    void take() { rethrow_if_failed(); }
};

}  // namespace detail

template <class T>
/// A lazy coroutine returning T: it starts when co_awaited (once), and the awaiter gets its value or its exception.
/// Move-only; destroying a task destroys its coroutine. Run one without an awaiter with spawn() or sync_wait().
class [[nodiscard]] task {
public:
    /// The coroutine's promise (internal).
    using promise_type = detail::task_promise<T>;
    /// What co_await gives.
    using value_type = T;

    /// An empty task, holding no coroutine.
    task() noexcept = default;
    /// Takes ownership of a coroutine (what the promise does).
    explicit task(std::coroutine_handle<promise_type> h) noexcept : handle_(h) {}
    /// Takes over `other`'s coroutine; `other` is left empty.
    task(task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
    /// Destroys the coroutine held, if any, and takes over `other`'s.
    task& operator=(task&& other) noexcept {
        if (this != &other) {
            destroy();
            handle_ = std::exchange(other.handle_, {});
        }
        return *this;
    }
    task(const task&) = delete;
    task& operator=(const task&) = delete;
    /// Destroys the coroutine, if held.
    ~task() { destroy(); }

    /// Whether this task holds a coroutine.
    bool valid() const noexcept { return static_cast<bool>(handle_); }

    /// Runs the task and resumes the awaiter with its result: inline if it completes without suspending, else when it
    /// finishes. Awaiting an empty or finished task does not run anything.
    auto operator co_await() && noexcept {
        struct awaiter {
            explicit awaiter(std::coroutine_handle<promise_type> handle) noexcept : h(handle) {}
            std::coroutine_handle<promise_type> h;
            bool await_ready() const noexcept { return !h || h.done(); }
            bool await_suspend(std::coroutine_handle<> awaiting) noexcept {
                auto& p = h.promise();
                p.continuation_ = awaiting;
                p.state_ = detail::task_promise_base::run_state::inline_running;
                h.resume();
                if (p.state_ == detail::task_promise_base::run_state::inline_finished) return false;
                p.state_ = detail::task_promise_base::run_state::idle;  // suspended: it resumes us when done
                return true;
            }
            T await_resume() { return h.promise().take(); }
        };
        return awaiter(handle_);
    }

    /// For runners: the coroutine, still owned by the task.
    std::coroutine_handle<promise_type> handle() const noexcept { return handle_; }
    /// For runners (spawn, sync_wait): hands over the coroutine.
    std::coroutine_handle<promise_type> release() noexcept { return std::exchange(handle_, {}); }

private:
    void destroy() noexcept {
        if (handle_) handle_.destroy();
    }
    std::coroutine_handle<promise_type> handle_;
};

namespace detail {
// Detaches a started task that is suspended (or running, from inside it)
// from its awaiter: the awaiter is no longer resumed; when the task
// finishes, its frame is destroyed and owner->finished runs. The awaiter
// must not destroy the frame any more (task::release() it).
inline void detach_task(std::coroutine_handle<task_promise<void>> h, task_owner* owner) noexcept {
    auto& p = h.promise();
    p.state_ = task_promise_base::run_state::detached;
    p.continuation_ = std::coroutine_handle<>::from_address(owner);
}

template <class T>
task<T> task_promise<T>::get_return_object() noexcept {
    return task<T>{std::coroutine_handle<task_promise<T>>::from_promise(*this)};
}
inline task<void> task_promise<void>::get_return_object() noexcept {
    return task<void>{std::coroutine_handle<task_promise<void>>::from_promise(*this)};
}
}  // namespace detail

}  // namespace cnetmod
