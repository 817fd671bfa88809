#include <cnetmod/engine/detail/reactor.hpp>
#include <cnetmod/engine/waiter_queue.hpp>

namespace cnetmod::detail {

void waiter_queue::wake(queued_waiter& w) {
    if (w.ctx)
        reactor_of(*w.ctx).schedule(w.handle);
    else
        w.handle.resume();
}

}  // namespace cnetmod::detail
