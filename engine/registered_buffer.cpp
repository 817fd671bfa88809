#include <cnetmod/engine/registered_buffer.hpp>

#include <liburing.h>
#include <sys/uio.h>
#include <system_error>

#include <cstdlib>
#include <string>

namespace cnetmod::detail {

registered_buffer_pool::registered_buffer_pool(io_uring& ring, unsigned count, std::size_t size)
    : ring_(ring), size_(size) {
    const std::size_t bytes = ((std::size_t{count} * size + 4095) / 4096) * 4096;
    memory_ = static_cast<std::byte*>(std::aligned_alloc(4096, bytes));
    if (!memory_) throw std::bad_alloc();
    std::vector<iovec> iovs(count);
    for (unsigned i = 0; i < count; ++i) iovs[i] = iovec{memory_ + std::size_t{i} * size, size};
    if (int rc = io_uring_register_buffers(&ring_, iovs.data(), count); rc < 0) {
        std::free(memory_);
        throw std::system_error(-rc, std::system_category(),
                                "cnetmod: io_uring_register_buffers for " + std::to_string(count) + " x " +
                                    std::to_string(size) +
                                    " bytes (pinned memory counts against RLIMIT_MEMLOCK; raise `ulimit -l` "
                                    "or lower io_context_options::registered_buffer_count)");
    }
    free_.reserve(count);
    for (unsigned i = count; i-- > 0;) free_.push_back(i);
}

// The io_context unregisters the buffers before it exits the ring; the
// memory outlives that, until the last buffer the kernel held is released.
registered_buffer_pool::~registered_buffer_pool() {
    std::free(memory_);
}

std::optional<registered_buffer> registered_buffer_pool::acquire() noexcept {
    if (free_.empty()) return std::nullopt;
    const unsigned index = free_.back();
    free_.pop_back();
    return registered_buffer(this, memory_ + std::size_t{index} * size_, size_, index);
}

}  // namespace cnetmod::detail
