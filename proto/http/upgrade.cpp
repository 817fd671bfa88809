#include <cnetmod/proto/http/upgrade.hpp>

#include <atomic>

namespace cnetmod::http {
namespace {

// A push-only list: layers register once and never leave, so readers walk
// it without a lock.
std::atomic<upgraded_connections*> registry{nullptr};

}  // namespace

void register_upgraded_connections(upgraded_connections& c) noexcept {
    upgraded_connections* head = registry.load(std::memory_order_relaxed);
    do {
        c.next = head;
    } while (!registry.compare_exchange_weak(head, &c, std::memory_order_release, std::memory_order_relaxed));
}

upgraded_connections* detail::first_upgraded_connections() noexcept {
    return registry.load(std::memory_order_acquire);
}

}  // namespace cnetmod::http
