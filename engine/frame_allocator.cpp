#include <cnetmod/engine/frame_allocator.hpp>

#include <array>
#include <new>

namespace cnetmod::detail {
namespace {

struct free_block {
    free_block* next;
};

constexpr std::size_t class_count = frame_allocator::max_pooled_size / frame_allocator::class_size;

struct frame_cache {
    std::array<free_block*, class_count> heads{};
    std::array<std::size_t, class_count> counts{};
    std::size_t cached = 0;
    std::size_t heap_allocations = 0;

    ~frame_cache() {
        for (auto* head : heads) {
            while (head) {
                auto* next = head->next;
                ::operator delete(head);
                head = next;
            }
        }
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
        --cache.counts[c];
        --cache.cached;
        return block;
    }
    ++cache.heap_allocations;
    return ::operator new((c + 1) * class_size);
}

void frame_allocator::deallocate(void* p, std::size_t n) noexcept {
    if (!pooling || n == 0 || n > max_pooled_size) {
        ::operator delete(p);
        return;
    }
    const auto c = class_of(n);
    if (cache.counts[c] >= max_cached_per_class) {
        ::operator delete(p);
        return;
    }
    auto* block = static_cast<free_block*>(p);
    block->next = cache.heads[c];
    cache.heads[c] = block;
    ++cache.counts[c];
    ++cache.cached;
}

std::size_t frame_allocator::cached_frames() noexcept {
    return cache.cached;
}
std::size_t frame_allocator::heap_allocations() noexcept {
    return cache.heap_allocations;
}

}  // namespace cnetmod::detail
