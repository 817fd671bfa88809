/// @file
/// Registered send buffers: a per-core pool of memory registered with the
/// ring (io_uring_register_buffers), from which large payloads go out with
/// IORING_OP_SEND_ZC (kernel 6.0) and IORING_RECVSEND_FIXED_BUF, the kernel
/// referencing the pages instead of copying them. A buffer returns to its pool
/// only after the kernel's notification that it no longer uses it.
///
///   auto buf = ctx.acquire_registered_buffer();      // nullopt when none is free
///   fill(buf->data()); buf->resize(n);
///   stream.queue(std::move(*buf));
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

struct io_uring;

namespace cnetmod {

namespace detail {
class registered_buffer_pool;
}

/// One registered send buffer taken from its core's pool (io_context::acquire_registered_buffer); move-only, it
/// returns to the pool when reset or destroyed, unless it was queued on a stream, which then returns it once the
/// kernel is done with its pages.
class registered_buffer {
public:
    /// An empty handle, holding no buffer.
    registered_buffer() noexcept = default;
    /// Takes over `other`'s buffer; `other` is left empty.
    registered_buffer(registered_buffer&& other) noexcept
        : pool_(std::exchange(other.pool_, nullptr)),
          data_(other.data_),
          capacity_(other.capacity_),
          size_(other.size_),
          index_(other.index_) {}
    /// Returns the buffer held, if any, and takes over `other`'s.
    registered_buffer& operator=(registered_buffer&& other) noexcept {
        if (this != &other) {
            reset();
            pool_ = std::exchange(other.pool_, nullptr);
            data_ = other.data_;
            capacity_ = other.capacity_;
            size_ = other.size_;
            index_ = other.index_;
        }
        return *this;
    }
    registered_buffer(const registered_buffer&) = delete;
    registered_buffer& operator=(const registered_buffer&) = delete;
    /// Returns the buffer to its pool (reset()).
    ~registered_buffer() { reset(); }

    /// All of the buffer, to fill.
    std::span<std::byte> data() noexcept { return {data_, capacity_}; }
    /// The bytes in use: the first size() of data().
    std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
    /// The bytes in use; capacity() until resize().
    std::size_t size() const noexcept { return size_; }
    /// The size of the whole buffer (io_context_options::registered_buffer_size).
    std::size_t capacity() const noexcept { return capacity_; }
    /// Sets the bytes in use to `n`, at most capacity().
    void resize(std::size_t n) noexcept { size_ = n < capacity_ ? n : capacity_; }
    /// The index the ring knows the buffer by.
    unsigned index() const noexcept { return index_; }
    /// Whether this handle holds a buffer.
    explicit operator bool() const noexcept { return pool_ != nullptr; }

    /// Returns the buffer to its pool now; the handle is left empty.
    void reset() noexcept;

private:
    friend class detail::registered_buffer_pool;
    registered_buffer(detail::registered_buffer_pool* pool, std::byte* data, std::size_t capacity,
                      unsigned index) noexcept
        : pool_(pool), data_(data), capacity_(capacity), size_(capacity), index_(index) {}

    detail::registered_buffer_pool* pool_ = nullptr;
    std::byte* data_ = nullptr;
    std::size_t capacity_ = 0;
    std::size_t size_ = 0;
    unsigned index_ = 0;
};

namespace detail {

class registered_buffer_pool {
public:
    registered_buffer_pool(io_uring& ring, unsigned count, std::size_t size);
    ~registered_buffer_pool();
    registered_buffer_pool(const registered_buffer_pool&) = delete;
    registered_buffer_pool& operator=(const registered_buffer_pool&) = delete;

    std::optional<registered_buffer> acquire() noexcept;
    void release(unsigned index) noexcept { free_.push_back(index); }
    std::size_t available() const noexcept { return free_.size(); }

private:
    io_uring& ring_;
    std::byte* memory_ = nullptr;
    std::size_t size_;
    std::vector<unsigned> free_;
};

}  // namespace detail

inline void registered_buffer::reset() noexcept {
    if (pool_) std::exchange(pool_, nullptr)->release(index_);
}

}  // namespace cnetmod
