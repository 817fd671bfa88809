#include <cnetmod/engine/detail/reactor.hpp>
#include <cnetmod/engine/log.hpp>
#include <cnetmod/engine/spawn.hpp>

#include <exception>
#include <string>
#include <typeinfo>

namespace cnetmod::detail {
namespace {

std::string spawned_at(const std::source_location& where) {
    return std::string("exception escaped a task spawned at ") + where.file_name() + ":" +
           std::to_string(where.line()) + " (" + where.function_name() + "): ";
}

}  // namespace

void report_escaped_exception(std::exception_ptr e, const std::source_location& where) noexcept {
    const char* what = "unknown exception";
    const char* type = "non-standard exception";
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        what = ex.what();
        type = typeid(ex).name();
        log(log_level::warning, spawned_at(where) + what + " [" + type + "]");
        return;
    } catch (...) {
    }
    log(log_level::warning, spawned_at(where) + type);
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
