/// @file
/// A refcounted, immutable byte buffer: a frame encoded once and queued on
/// many connections (broadcast) is one shared_buffer referenced by every send
/// queue. The count is atomic because a publish crosses cores; nothing else
/// about the buffer is shared or mutable after it is filled.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstring>
#include <new>
#include <span>
#include <utility>

namespace cnetmod {

/// A refcounted, immutable byte buffer (one allocation, the count before the bytes); copies share it. Filled once
/// through mutable_bytes() by its sole owner, then only read, from any core.
class shared_buffer {
public:
    /// An empty handle, holding no buffer.
    shared_buffer() noexcept = default;

    /// A buffer of `size` bytes to fill through mutable_bytes() before sharing it.
    static shared_buffer allocate(std::size_t size) {
        void* raw = ::operator new(sizeof(header) + size);
        return shared_buffer(::new (raw) header{{1}, size});
    }
    /// A buffer holding a copy of `bytes`.
    static shared_buffer copy_of(std::span<const std::byte> bytes) {
        auto b = allocate(bytes.size());
        if (!bytes.empty()) std::memcpy(b.mutable_bytes().data(), bytes.data(), bytes.size());
        return b;
    }

    /// Shares `other`'s buffer (one more reference, atomically).
    shared_buffer(const shared_buffer& other) noexcept : h_(other.h_) {
        if (h_) h_->refs.fetch_add(1, std::memory_order_relaxed);
    }
    /// Takes over `other`'s reference; `other` is left empty.
    shared_buffer(shared_buffer&& other) noexcept : h_(std::exchange(other.h_, nullptr)) {}
    /// Drops the reference held and takes `other`'s.
    shared_buffer& operator=(shared_buffer other) noexcept {
        std::swap(h_, other.h_);
        return *this;
    }
    /// Drops the reference; the last one frees the buffer.
    ~shared_buffer() { reset(); }

    /// Drops the reference now (the last one frees the buffer); the handle is left empty.
    void reset() noexcept {
        if (h_ && h_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            h_->~header();
            ::operator delete(h_);
        }
        h_ = nullptr;
    }

    /// The bytes; empty for an empty handle.
    std::span<const std::byte> bytes() const noexcept {
        return h_ ? std::span<const std::byte>(data(), h_->size) : std::span<const std::byte>{};
    }
    /// The bytes, to fill: only while this is the sole reference (before the buffer is shared).
    std::span<std::byte> mutable_bytes() noexcept {
        return h_ ? std::span<std::byte>(data(), h_->size) : std::span<std::byte>{};
    }
    /// The number of bytes.
    std::size_t size() const noexcept { return h_ ? h_->size : 0; }
    /// Whether there are no bytes (or no buffer).
    bool empty() const noexcept { return size() == 0; }
    /// References to the buffer now (a snapshot while other cores hold some).
    long use_count() const noexcept { return h_ ? static_cast<long>(h_->refs.load(std::memory_order_relaxed)) : 0; }
    /// Whether this handle holds a buffer.
    explicit operator bool() const noexcept { return h_ != nullptr; }

private:
    struct header {
        std::atomic<unsigned> refs;
        std::size_t size;
    };
    explicit shared_buffer(header* h) noexcept : h_(h) {}
    std::byte* data() const noexcept { return reinterpret_cast<std::byte*>(h_ + 1); }

    header* h_ = nullptr;
};

}  // namespace cnetmod
