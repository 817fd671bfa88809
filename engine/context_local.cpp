#include <cnetmod/engine/context_local.hpp>

#include <atomic>

namespace cnetmod::detail {

std::size_t next_context_local_index() noexcept {
    static std::atomic<std::size_t> next{0};
    return next.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace cnetmod::detail
