#include <cnetmod/engine/detail/frame_allocator.hpp>
#include <cnetmod/engine/task.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <mutex>
#include <new>
#include <utility>

namespace cnetmod::detail {
namespace {

struct free_block {
    free_block* next;
};

constexpr std::size_t class_count = frame_allocator::max_pooled_size / frame_allocator::class_size;
// Blocks are carved from slabs of this size (or of 4 blocks, when larger),
// so that long-lived objects of one size lie together instead of between the
// short-lived allocations of the heap: 10,000 idle connections then cost
// their objects' size, not the holes around them.
constexpr std::size_t slab_bytes = 16 * 1024;
constexpr std::size_t min_blocks_per_slab = 4;

// Free blocks of threads that have exited, for the others to reuse. Slabs
// are never returned to the heap: a block freed on another thread than its
// slab's joins that thread's lists, so a slab cannot know when it is free.
struct central_cache {
    std::mutex mutex;
    std::array<free_block*, class_count> heads{};
};

central_cache& central() {
    static auto* c = new central_cache;  // outlives every thread's cache
    return *c;
}

struct frame_cache {
    std::array<free_block*, class_count> heads{};
    std::size_t cached = 0;
    std::size_t heap_allocations = 0;

    ~frame_cache() {
        auto& cc = central();
        std::lock_guard lock(cc.mutex);
        for (std::size_t c = 0; c < class_count; ++c) {
            while (free_block* block = heads[c]) {
                heads[c] = block->next;
                block->next = cc.heads[c];
                cc.heads[c] = block;
            }
        }
    }

    // Takes the blocks of class `c` that exited threads left, or carves a
    // new slab; returns one block and keeps the rest.
    void* refill(std::size_t c) {
        {
            auto& cc = central();
            std::lock_guard lock(cc.mutex);
            if (free_block* list = std::exchange(cc.heads[c], nullptr)) {
                heads[c] = list->next;
                for (free_block* b = heads[c]; b; b = b->next) ++cached;
                return list;
            }
        }
        const std::size_t size = (c + 1) * frame_allocator::class_size;
        const std::size_t count = std::max(min_blocks_per_slab, slab_bytes / size);
        auto* slab = static_cast<std::byte*>(::operator new(size* count));
        ++heap_allocations;
        for (std::size_t i = count - 1; i >= 1; --i) {
            auto* block = reinterpret_cast<free_block*>(slab + i * size);
            block->next = heads[c];
            heads[c] = block;
        }
        cached += count - 1;
        return slab;
    }
};

thread_local frame_cache cache;

constexpr std::size_t class_of(std::size_t n) noexcept {
    return (n + frame_allocator::class_size - 1) / frame_allocator::class_size - 1;
}

}  // namespace

// Under AddressSanitizer every frame goes to the heap, so that a use after
// free of a frame is caught rather than hidden by the pool.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool pooling = false;
#else
constexpr bool pooling = true;
#endif

void* frame_allocator::allocate(std::size_t n) {
    if (!pooling || n == 0 || n > max_pooled_size) {
        ++cache.heap_allocations;
        return ::operator new(n);
    }
    const auto c = class_of(n);
    if (auto* block = cache.heads[c]) {
        cache.heads[c] = block->next;
        --cache.cached;
        return block;
    }
    return cache.refill(c);
}

void frame_allocator::deallocate(void* p, std::size_t n) noexcept {
    if (!pooling || n == 0 || n > max_pooled_size) {
        ::operator delete(p);
        return;
    }
    const auto c = class_of(n);
    auto* block = static_cast<free_block*>(p);
    block->next = cache.heads[c];
    cache.heads[c] = block;
    ++cache.cached;
}

std::size_t frame_allocator::cached_frames() noexcept {
    return cache.cached;
}
std::size_t frame_allocator::heap_allocations() noexcept {
    return cache.heap_allocations;
}

}  // namespace cnetmod::detail

namespace cnetmod::detail {

void* allocate_frame(std::size_t n) {
    return frame_allocator::allocate(n);
}
void deallocate_frame(void* p, std::size_t n) noexcept {
    frame_allocator::deallocate(p, n);
}

}  // namespace cnetmod::detail
