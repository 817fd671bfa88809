// A per-core ring of receive buffers registered with io_uring
// (IORING_REGISTER_PBUF_RING, kernel 5.19). Multishot recvs pick a buffer only
// when data arrives, so an idle connection holds none; each buffer goes back
// to the ring as soon as its bytes are consumed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

struct io_uring;
struct io_uring_buf_ring;

namespace cnetmod::detail {

class provided_buffer_ring {
public:
    // `count` must be a power of two (a kernel requirement), at most 32768.
    provided_buffer_ring(io_uring& ring, std::uint16_t group_id, unsigned count, unsigned buffer_size);
    ~provided_buffer_ring();
    provided_buffer_ring(const provided_buffer_ring&) = delete;
    provided_buffer_ring& operator=(const provided_buffer_ring&) = delete;

    std::uint16_t group_id() const noexcept { return group_id_; }
    unsigned buffer_size() const noexcept { return buffer_size_; }
    unsigned count() const noexcept { return count_; }
    // Buffers currently in the ring, ready for the kernel to fill.
    unsigned available() const noexcept { return available_; }

    std::byte* data(std::uint16_t id) noexcept { return memory_ + std::size_t{id} * buffer_size_; }

    // The kernel filled buffer `id` (a CQE named it): one reference, the reader's.
    void taken(std::uint16_t id) noexcept {
        --available_;
        references_[id] = 1;
    }
    // Another reference (a send of the received bytes, without copying them).
    void hold(std::uint16_t id) noexcept { ++references_[id]; }
    // Drops a reference; the last one gives the buffer back to the kernel.
    void release(std::uint16_t id) noexcept {
        if (--references_[id] == 0) recycle(id);
    }

    // Unregisters the ring from the kernel; the memory stays until destruction.
    void unregister() noexcept;

private:
    void recycle(std::uint16_t id) noexcept;

    io_uring& ring_;
    io_uring_buf_ring* entries_ = nullptr;
    std::size_t entries_bytes_ = 0;
    std::byte* memory_ = nullptr;
    std::size_t memory_bytes_ = 0;
    std::uint16_t group_id_;
    unsigned count_;
    unsigned buffer_size_;
    unsigned available_ = 0;
    bool registered_ = false;
    std::vector<std::uint16_t> references_;
};

}  // namespace cnetmod::detail
