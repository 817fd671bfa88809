#include <cnetmod/engine/detail/provided_buffer_ring.hpp>

#include <liburing.h>
#include <sys/mman.h>
#include <system_error>

#include <cstdlib>
#include <string>

namespace cnetmod::detail {

provided_buffer_ring::provided_buffer_ring(io_uring& ring, std::uint16_t group_id, unsigned count, unsigned buffer_size)
    : ring_(ring), group_id_(group_id), count_(count), buffer_size_(buffer_size) {
    if (count == 0 || count > 32768 || (count & (count - 1)) != 0)
        throw std::invalid_argument("cnetmod: recv_buffer_count must be a power of two in 1..32768, got " +
                                    std::to_string(count));
    if (buffer_size == 0) throw std::invalid_argument("cnetmod: recv_buffer_size must be positive");

    // The ring of descriptors must be page aligned: mmap gives that.
    entries_bytes_ = count * sizeof(io_uring_buf);
    void* entries = ::mmap(nullptr, entries_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (entries == MAP_FAILED)
        throw std::system_error(errno, std::system_category(), "cnetmod: mmap of the provided-buffer ring");
    entries_ = static_cast<io_uring_buf_ring*>(entries);

    // The buffers are faulted in now (MAP_POPULATE): the kernel hands them
    // out in ring order, so over time every one is written, and a page fault
    // in the receive path, or RSS that grows with the first connections and
    // looks like theirs, is worse than paying for the core's buffers up front.
    memory_bytes_ = ((std::size_t{count} * buffer_size + 4095) / 4096) * 4096;
    void* memory =
        ::mmap(nullptr, memory_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE | MAP_POPULATE, -1, 0);
    if (memory == MAP_FAILED) {
        const int err = errno;
        ::munmap(entries_, entries_bytes_);
        throw std::system_error(err, std::system_category(), "cnetmod: mmap of the receive buffers");
    }
    memory_ = static_cast<std::byte*>(memory);

    io_uring_buf_ring_init(entries_);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uint64_t>(entries_);
    reg.ring_entries = count;
    reg.bgid = group_id;
    if (int rc = io_uring_register_buf_ring(&ring_, &reg, 0); rc < 0) {
        ::munmap(memory_, memory_bytes_);
        ::munmap(entries_, entries_bytes_);
        throw std::system_error(-rc, std::system_category(),
                                "cnetmod: io_uring_register_buf_ring failed (provided-buffer rings need kernel 5.19+)");
    }
    registered_ = true;

    const int mask = io_uring_buf_ring_mask(count);
    for (unsigned i = 0; i < count; ++i)
        io_uring_buf_ring_add(entries_, memory_ + std::size_t{i} * buffer_size, buffer_size,
                              static_cast<unsigned short>(i), mask, static_cast<int>(i));
    io_uring_buf_ring_advance(entries_, static_cast<int>(count));
    available_ = count;
    references_.assign(count, 0);
}

provided_buffer_ring::~provided_buffer_ring() {
    unregister();
    ::munmap(memory_, memory_bytes_);
    ::munmap(entries_, entries_bytes_);
}

void provided_buffer_ring::unregister() noexcept {
    if (registered_) {
        io_uring_unregister_buf_ring(&ring_, group_id_);
        registered_ = false;
    }
}

void provided_buffer_ring::recycle(std::uint16_t id) noexcept {
    io_uring_buf_ring_add(entries_, data(id), buffer_size_, id, io_uring_buf_ring_mask(count_), 0);
    io_uring_buf_ring_advance(entries_, 1);
    ++available_;
}

}  // namespace cnetmod::detail
