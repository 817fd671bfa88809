#include <cnetmod/engine/detail/completion.hpp>
#include <cnetmod/engine/detail/reactor.hpp>
#include <cnetmod/engine/timer.hpp>

#include <liburing.h>
#include <system_error>

namespace cnetmod::detail {

void sleep_operation::await_suspend(std::coroutine_handle<> h) {
    waiter_ = h;
    if (stop_.stop_requested()) {
        result_ = -ECANCELED;
        reactor_of(ctx_).schedule(h);
        return;
    }
    io_uring_sqe* sqe = reactor_of(ctx_).acquire_sqe();
    // Absolute CLOCK_MONOTONIC expiry: the duration was fixed when the sleep was created.
    io_uring_prep_timeout(sqe, &when_, 0, IORING_TIMEOUT_ABS);
    io_uring_sqe_set_data64(sqe, tagged(this, sleep_tag));
    if (stop_.stop_possible()) stop_callback_.emplace(stop_, canceller{this});
}

void sleep_operation::canceller::operator()() noexcept {
    io_context& ctx = op->ctx_;
    const auto id = tagged(op, sleep_tag);
    auto remove = [&ctx, id] {
        reactor& r = reactor_of(ctx);
        if (r.closing()) return;
        io_uring_sqe* sqe = r.acquire_sqe();
        io_uring_prep_timeout_remove(sqe, id, 0);
        io_uring_sqe_set_data64(sqe, 0);
    };
    if (ctx.running_in_this_thread())
        remove();
    else
        ctx.post(remove);
}

void sleep_completion(void* object, int result) {
    auto* self = static_cast<sleep_operation*>(object);
    self->result_ = result;
    self->waiter_.resume();
}

void sleep_operation::await_resume() {
    stop_callback_.reset();
    // -ETIME is a timeout that expired: the normal end of a sleep.
    if (result_ == -ECANCELED)
        throw std::system_error(ECANCELED, std::system_category(), "cnetmod: async_sleep cancelled");
    if (result_ < 0 && result_ != -ETIME)
        throw std::system_error(-result_, std::system_category(), "cnetmod: async_sleep");
}

}  // namespace cnetmod::detail
