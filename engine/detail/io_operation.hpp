// The awaitable behind every single-SQE operation (connect, accept, send,
// close, …): prepares the SQE, suspends, and resumes with the CQE's result.
// A deadline becomes a linked timeout (IORING_OP_LINK_TIMEOUT, kernel 5.5)
// and a stop_token an IORING_OP_ASYNC_CANCEL; either way the operation
// resumes only with its own CQE, so nothing the kernel holds is freed early.
#pragma once

#include <cnetmod/engine/deadline.hpp>
#include <cnetmod/engine/detail/completion.hpp>
#include <cnetmod/engine/io_context.hpp>

#include <system_error>

#include <coroutine>
#include <optional>
#include <stop_token>

struct io_uring_sqe;

namespace cnetmod {

namespace detail {

// The ring work around a user's prepare function, out of line (io_operation.cpp)
// so that this header needs neither the reactor nor <liburing.h>.
// A free SQE; with `linked`, room for the linked timeout right after it.
io_uring_sqe* acquire_operation_sqe(io_context& ctx, bool linked);
// Points the SQE at `c` and links a timeout at `link_timeout` (absolute) if given.
void bind_operation(io_context& ctx, io_uring_sqe* sqe, completion* c, __kernel_timespec* link_timeout);
// Resumes `h` in the loop's ready queue (an operation cancelled before it started).
void resume_in_loop(io_context& ctx, std::coroutine_handle<> h);
// Asks the kernel to cancel the operation named `id`, from any thread.
void cancel_operation(io_context& ctx, const void* id);

template <class Prepare>
class io_operation : completion {
public:
    io_operation(io_context& ctx, Prepare prepare, deadline d, std::stop_token stop)
        : completion(&io_operation::on_cqe),
          ctx_(ctx),
          prepare_(std::move(prepare)),
          deadline_(d),
          stop_(std::move(stop)) {}

    bool await_ready() const noexcept { return false; }

    void await_suspend(std::coroutine_handle<> h) {
        waiter_ = h;
        if (stop_.stop_requested()) {
            // Already cancelled: complete through the loop without touching the kernel.
            result_ = -ECANCELED;
            cancelled_ = true;
            resume_in_loop(ctx_, h);
            return;
        }
        if (deadline_.is_set()) timeout_ = to_kernel_timespec(deadline_);
        io_uring_sqe* sqe = acquire_operation_sqe(ctx_, deadline_.is_set());
        prepare_(sqe);
        bind_operation(ctx_, sqe, static_cast<completion*>(this), deadline_.is_set() ? &timeout_ : nullptr);
        if (stop_.stop_possible()) stop_callback_.emplace(stop_, canceller{this});
    }

    // The CQE's result: >= 0 on success, -errno on failure; a cancellation by
    // the deadline reads as -ETIMEDOUT, by the stop_token as -ECANCELED.
    int await_resume() noexcept {
        stop_callback_.reset();
        if (result_ == -ECANCELED && !cancelled_ && deadline_.is_set()) return -ETIMEDOUT;
        return result_;
    }

private:
    struct canceller {
        io_operation* op;
        void operator()() noexcept {
            op->cancelled_ = true;
            cancel_operation(op->ctx_, static_cast<completion*>(op));
        }
    };

    static void on_cqe(completion* c, int result, std::uint32_t) {
        auto* self = static_cast<io_operation*>(c);
        self->result_ = result;
        self->waiter_.resume();
    }

    io_context& ctx_;
    Prepare prepare_;
    deadline deadline_;
    std::stop_token stop_;
    std::optional<std::stop_callback<canceller>> stop_callback_;
    __kernel_timespec timeout_{};
    std::coroutine_handle<> waiter_;
    int result_ = 0;
    bool cancelled_ = false;
};

}  // namespace detail

// co_await submit(ctx, [&](io_uring_sqe* sqe) { io_uring_prep_...(sqe, ...); }, deadline, stop)
// yields the CQE's result (negative errno on failure). The building block for
// operations the engine does not wrap itself; the caller includes
// <liburing.h> for the prep functions (this header does not).
template <class Prepare>
auto submit(io_context& ctx, Prepare prepare, deadline d = {}, std::stop_token stop = {}) {
    return detail::io_operation<Prepare>(ctx, std::move(prepare), d, std::move(stop));
}

// Throws std::system_error for a negative io_uring result, naming the operation.
inline int check_result(int result, const char* what) {
    if (result < 0) throw std::system_error(-result, std::system_category(), what);
    return result;
}

}  // namespace cnetmod
