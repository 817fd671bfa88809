// A socket's outgoing bytes, in order: copies in an arena, references to
// shared buffers, registered buffers for zero-copy sends, and received bytes
// forwarded without a copy. Bytes queued during one loop turn go out as one
// batch (one gathered send); while a batch is in flight, new bytes fill the
// other arena. A plain data structure, no io_uring inside: the socket core
// asks it for the next send's iovecs and tells it how much the kernel took.
#pragma once

#include <cnetmod/engine/metrics.hpp>
#include <cnetmod/engine/registered_buffer.hpp>
#include <cnetmod/engine/shared_buffer.hpp>

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <memory>
#include <span>
#include <utility>
#include <vector>

namespace cnetmod::detail {

// Bytes that grow without being zeroed first (std::vector<std::byte>
// would memset every queued byte before it is copied over).
class byte_arena {
public:
    std::byte* data() noexcept { return data_.get(); }
    const std::byte* data() const noexcept { return data_.get(); }
    std::size_t size() const noexcept { return size_; }
    std::size_t capacity() const noexcept { return capacity_; }
    void clear() noexcept { size_ = 0; }
    void release() noexcept;
    // Grows by `n` bytes (uninitialised) and returns where they start;
    // inline while they fit (once per frame queued).
    std::byte* grow(std::size_t n) {
        if (size_ + n > capacity_) [[unlikely]]
            return grow_into_new_block(n);
        std::byte* p = data_.get() + size_;
        size_ += n;
        return p;
    }

private:
    std::byte* grow_into_new_block(std::size_t n);
    std::unique_ptr<std::byte[]> data_;
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;
};

class send_queue {
public:
    struct segment {
        shared_buffer buffer;                 // bytes referenced, not copied
        registered_buffer fixed;              // bytes sent with SEND_ZC from a registered buffer
        const std::byte* received = nullptr;  // bytes still in provided buffer `received_id`
        int received_id = -1;
        std::size_t offset = 0;  // none of these: bytes live in the arena at `offset`
        std::size_t size = 0;

        bool in_arena() const noexcept { return !buffer && !fixed && !received; }
        const std::byte* base(const std::byte* arena) const noexcept {
            return buffer ? buffer.bytes().data() : fixed ? fixed.bytes().data() : received ? received : arena + offset;
        }
    };

    // The next send of a batch: a registered buffer alone (SEND_ZC from its
    // pages), or gathered iovecs of everything else up to the next one.
    struct next_send {
        const registered_buffer* fixed = nullptr;
        std::span<const std::byte> fixed_bytes{};
        std::span<iovec> iov{};
    };

    // ---- filling ----

    // Reserves `n` bytes at the end of the queue (uninitialised); bytes
    // copied back to back become one iovec.
    std::span<std::byte> append_space(std::size_t n);
    void append(shared_buffer buffer);
    void append(registered_buffer buffer);
    // Received bytes sent by reference: `release(buffer_id)` is called once
    // they are sent or dropped.
    void append_received(const std::byte* data, std::size_t n, int buffer_id);

    // Bytes queued or in flight that the kernel has not taken.
    std::size_t bytes() const noexcept { return bytes_; }
    // Also keeps `total` (a core's gauge of bytes in all its send queues)
    // up to date with bytes(); nullptr stops it. Only while bytes() is 0.
    void count_into(core_counter* total) noexcept { total_ = total; }
    bool has_queued() const noexcept { return !queued_.empty(); }
    bool in_batch() const noexcept { return !inflight_.empty(); }
    bool idle() const noexcept { return queued_.empty() && inflight_.empty(); }

    // ---- sending ----

    // Moves what is queued into the batch to send; filling goes on in the
    // other arena. Only when no batch is in flight.
    void start_batch() noexcept;
    // Makes `n` bytes the batch to send (filled by the caller: TLS records),
    // in the arena that is not being filled. Only when no batch is in flight.
    std::span<std::byte> start_batch_of(std::size_t n);
    next_send prepare_send();
    // The kernel took `sent` bytes of the batch; finished segments let go of
    // what they reference (`release(id)` for received bytes).
    template <class Release>
    void advance(std::size_t sent, Release&& release) noexcept {
        set_bytes(bytes_ - (sent < bytes_ ? sent : bytes_));
        while (sent > 0 && inflight_index_ < inflight_.size()) {
            const std::size_t left = inflight_[inflight_index_].size - inflight_offset_;
            if (sent < left) {
                inflight_offset_ += sent;
                return;
            }
            sent -= left;
            release_segment(inflight_[inflight_index_], release);
            ++inflight_index_;
            inflight_offset_ = 0;
        }
    }
    bool batch_sent() const noexcept { return inflight_index_ == inflight_.size(); }
    // After the whole batch went: its arena is free for filling again.
    void end_batch() noexcept;
    // A zero-copy send of the batch's front segment completed in full: its
    // registered buffer moves out, to be held until the kernel's notification.
    registered_buffer take_sent_fixed() noexcept { return std::move(inflight_[inflight_index_].fixed); }
    bool front_fully_sent_by(std::size_t sent) const noexcept {
        return sent == inflight_[inflight_index_].size - inflight_offset_;
    }

    // ---- dropping ----

    // Drops what is queued and not yet in a batch; returns the bytes dropped.
    template <class Release>
    std::size_t discard_queued(Release&& release) noexcept {
        std::size_t n = 0;
        for (segment& seg : queued_) {
            n += seg.size;
            release_segment(seg, release);
        }
        queued_.clear();
        arenas_[fill_].clear();
        set_bytes(bytes_ - (n < bytes_ ? n : bytes_));
        return n;
    }
    // Drops everything; a batch the kernel may still be reading from is
    // kept in memory (`batch_in_flight`) and only forgotten by the count.
    template <class Release>
    void drop_all(bool batch_in_flight, Release&& release) noexcept {
        discard_queued(release);
        set_bytes(0);
        if (!batch_in_flight) {
            for (std::size_t i = inflight_index_; i < inflight_.size(); ++i) release_segment(inflight_[i], release);
            end_batch();
        }
    }

    // ---- TLS ----

    // Hands every queued segment's bytes to `each` (plaintext to encrypt),
    // then drops them; returns the bytes handed over.
    template <class Each, class Release>
    std::size_t take_queued(Each&& each, Release&& release) {
        const std::byte* arena = arenas_[fill_].data();
        std::size_t n = 0;
        for (const segment& seg : queued_) {
            each(std::span<const std::byte>(seg.base(arena), seg.size));
            n += seg.size;
        }
        return discard_queued(release), n;
    }

    // ---- memory ----

    // Arena bytes held (both arenas).
    std::size_t capacity() const noexcept { return arenas_[0].capacity() + arenas_[1].capacity(); }
    // Makes an idle queue ready for reuse, keeping arenas up to `kept_capacity`.
    void reset(std::size_t kept_capacity) noexcept;

private:
    void set_bytes(std::size_t b) noexcept {
        if (total_ && b != bytes_) total_->add(b - bytes_);  // unsigned: a decrease wraps, and the sum comes out right
        bytes_ = b;
    }
    template <class Release>
    static void release_segment(segment& seg, Release& release) noexcept {
        seg.buffer.reset();
        seg.fixed.reset();
        if (seg.received_id >= 0) release(std::exchange(seg.received_id, -1));
    }

    byte_arena arenas_[2];
    int fill_ = 0;
    int inflight_arena_ = 1;
    std::vector<segment> queued_;
    std::vector<segment> inflight_;
    std::size_t inflight_index_ = 0;
    std::size_t inflight_offset_ = 0;
    std::size_t bytes_ = 0;
    core_counter* total_ = nullptr;
    std::vector<iovec> iov_;
};

}  // namespace cnetmod::detail
