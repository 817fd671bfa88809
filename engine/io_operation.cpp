#include <cnetmod/engine/detail/io_operation.hpp>
#include <cnetmod/engine/detail/reactor.hpp>

namespace cnetmod::detail {

io_uring_sqe* acquire_operation_sqe(io_context& ctx, bool linked) {
    reactor& r = reactor_of(ctx);
    if (linked) r.reserve_sqes(2);  // a submit between the pair would split the link
    return r.acquire_sqe();
}

void bind_operation(io_context& ctx, io_uring_sqe* sqe, completion* c, __kernel_timespec* link_timeout) {
    reactor_of(ctx).bind(sqe, c, link_timeout);
}

void resume_in_loop(io_context& ctx, std::coroutine_handle<> h) {
    reactor_of(ctx).schedule(h);
}

void cancel_operation(io_context& ctx, const void* id) {
    if (ctx.running_in_this_thread())
        reactor_of(ctx).cancel(id);
    else
        ctx.post([&ctx, id] { reactor_of(ctx).cancel(id); });
}

}  // namespace cnetmod::detail
