// The bytes a socket has received and its reader has not consumed, oldest
// first: chunks that are provided buffers of the core's ring (named by their
// id) or memory of the socket's own (id -1: a fallback receive, decrypted
// TLS). A plain data structure, no io_uring inside: whoever consumes says how
// a finished chunk is given back, so it is tested without a ring.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace cnetmod::detail {

struct received_chunk {
    std::byte* data = nullptr;
    std::size_t size = 0;
    int buffer_id = -1;  // provided-buffer id, or -1 for memory the socket owns
};

class receive_queue {
public:
    bool empty() const noexcept { return bytes_ == 0; }
    // Bytes received and not consumed.
    std::size_t bytes() const noexcept { return bytes_; }

    // The unconsumed part of the oldest chunk (writable: a WebSocket payload
    // is unmasked where it landed), or empty.
    std::span<std::byte> front() const noexcept {
        if (head_ == chunks_.size()) return {};
        const received_chunk& c = chunks_[head_];
        return {c.data + offset_, c.size - offset_};
    }
    // The provided-buffer id of the front chunk (-1: the socket's own memory).
    int front_buffer_id() const noexcept { return head_ == chunks_.size() ? -1 : chunks_[head_].buffer_id; }

    void push(received_chunk c) {
        chunks_.push_back(c);
        bytes_ += c.size;
    }

    // Marks `n` bytes consumed (at most bytes()); `release(chunk)` is called
    // for every chunk that is finished with, in order.
    template <class Release>
    void consume(std::size_t n, Release&& release) noexcept {
        while (n > 0 && head_ < chunks_.size()) {
            const received_chunk& c = chunks_[head_];
            const std::size_t left = c.size - offset_;
            const std::size_t take = n < left ? n : left;
            offset_ += take;
            bytes_ -= take;
            n -= take;
            if (offset_ == c.size) {
                release(c);
                ++head_;
                offset_ = 0;
            }
        }
        if (head_ == chunks_.size()) reset_positions();
    }

    // Drops everything unconsumed, releasing each chunk.
    template <class Release>
    void clear(Release&& release) noexcept {
        for (std::size_t i = head_; i < chunks_.size(); ++i) release(chunks_[i]);
        reset_positions();
        bytes_ = 0;
    }

    // Memory the queue keeps for its chunk list (returned with the queue to
    // its pool, not to the heap, so steady traffic allocates nothing).
    std::size_t capacity() const noexcept { return chunks_.capacity(); }

private:
    void reset_positions() noexcept {
        chunks_.clear();
        head_ = 0;
        offset_ = 0;
    }

    std::vector<received_chunk> chunks_;  // from head_ on: unconsumed, oldest first
    std::size_t head_ = 0;
    std::size_t offset_ = 0;  // consumed bytes of chunks_[head_]
    std::size_t bytes_ = 0;
};

}  // namespace cnetmod::detail
