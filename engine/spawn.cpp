#include <cnetmod/engine/detail/reactor.hpp>
#include <cnetmod/engine/spawn.hpp>

#include <cstdio>
#include <exception>
#include <typeinfo>

namespace cnetmod::detail {

void report_escaped_exception(std::exception_ptr e, const std::source_location& where) noexcept {
    const char* what = "unknown exception";
    const char* type = "non-standard exception";
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        what = ex.what();
        type = typeid(ex).name();
        std::fprintf(stderr, "cnetmod: exception escaped a task spawned at %s:%u (%s): %s [%s]\n", where.file_name(),
                     static_cast<unsigned>(where.line()), where.function_name(), what, type);
        return;
    } catch (...) {
    }
    std::fprintf(stderr, "cnetmod: exception escaped a task spawned at %s:%u (%s): %s\n", where.file_name(),
                 static_cast<unsigned>(where.line()), where.function_name(), type);
}

detached_task::promise_type::~promise_type() {
    if (ctx) reactor_of(*ctx).release(*this);
}

}  // namespace cnetmod::detail

namespace cnetmod {

void start_detached(io_context& ctx, detail::detached_task t, std::source_location where) {
    auto& promise = t.handle.promise();
    promise.where = where;
    if (ctx.running_in_this_thread()) {
        promise.ctx = &ctx;
        detail::reactor_of(ctx).adopt(promise);
        t.handle.resume();
    } else {
        ctx.post([h = t.handle, c = &ctx] {
            h.promise().ctx = c;
            detail::reactor_of(*c).adopt(h.promise());
            h.resume();
        });
    }
}

}  // namespace cnetmod
