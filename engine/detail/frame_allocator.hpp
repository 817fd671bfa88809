// Per-core recycling allocator for coroutine frames and for the per-socket
// state objects. Each thread keeps free lists by size class, carved from
// slabs, so a steady state of spawned and awaited tasks allocates nothing
// from the heap and long-lived objects lie together, not scattered between
// short-lived allocations. A block freed on another thread simply joins that
// thread's lists; an exiting thread hands its lists to the others.
#pragma once

#include <cstddef>

namespace cnetmod::detail {

struct frame_allocator {
    // Frames up to max_pooled_size bytes are pooled, in classes of class_size.
    static constexpr std::size_t class_size = 16;
    static constexpr std::size_t max_pooled_size = 8192;

    static void* allocate(std::size_t n);
    static void deallocate(void* p, std::size_t n) noexcept;

    // Frames currently cached by the calling thread (for tests and benchmarks).
    static std::size_t cached_frames() noexcept;
    // Heap allocations the calling thread has made for frames.
    static std::size_t heap_allocations() noexcept;
};

}  // namespace cnetmod::detail
