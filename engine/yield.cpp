#include <cnetmod/engine/detail/reactor.hpp>
#include <cnetmod/engine/yield.hpp>

namespace cnetmod {

void yield::await_suspend(std::coroutine_handle<> h) {
    detail::reactor_of(ctx_).schedule(h);
}

}  // namespace cnetmod
