#include <cnetmod/engine/detail/send_queue.hpp>

#include <algorithm>
#include <climits>
#include <cstring>

namespace cnetmod::detail {

void byte_arena::release() noexcept {
    data_.reset();
    size_ = capacity_ = 0;
}

std::byte* byte_arena::grow_into_new_block(std::size_t n) {
    const std::size_t cap = std::max({size_ + n, capacity_ * 2, std::size_t{4096}});
    std::unique_ptr<std::byte[]> bigger(new std::byte[cap]);
    if (size_) std::memcpy(bigger.get(), data_.get(), size_);
    data_ = std::move(bigger);
    capacity_ = cap;
    std::byte* p = data_.get() + size_;
    size_ += n;
    return p;
}

std::span<std::byte> send_queue::append_space(std::size_t n) {
    if (n == 0) return {};
    byte_arena& arena = arenas_[fill_];
    const std::size_t offset = arena.size();
    const std::span<std::byte> bytes(arena.grow(n), n);
    if (!queued_.empty() && queued_.back().in_arena() && queued_.back().offset + queued_.back().size == offset)
        queued_.back().size += n;
    else
        queued_.push_back(segment{{}, {}, nullptr, -1, offset, n});
    set_bytes(bytes_ + n);
    return bytes;
}

void send_queue::append(shared_buffer buffer) {
    const std::size_t n = buffer.size();
    if (n == 0) return;
    queued_.push_back(segment{std::move(buffer), {}, nullptr, -1, 0, n});
    set_bytes(bytes_ + n);
}

void send_queue::append(registered_buffer buffer) {
    const std::size_t n = buffer.size();
    if (n == 0) return;
    queued_.push_back(segment{{}, std::move(buffer), nullptr, -1, 0, n});
    set_bytes(bytes_ + n);
}

void send_queue::append_received(const std::byte* data, std::size_t n, int buffer_id) {
    queued_.push_back(segment{{}, {}, data, buffer_id, 0, n});
    set_bytes(bytes_ + n);
}

void send_queue::start_batch() noexcept {
    inflight_.swap(queued_);
    inflight_arena_ = fill_;
    fill_ ^= 1;
    inflight_index_ = 0;
    inflight_offset_ = 0;
}

std::span<std::byte> send_queue::start_batch_of(std::size_t n) {
    const int out = fill_ ^ 1;
    arenas_[out].clear();
    const std::span<std::byte> bytes(arenas_[out].grow(n), n);
    inflight_.clear();
    inflight_.push_back(segment{{}, {}, nullptr, -1, 0, n});
    inflight_arena_ = out;
    inflight_index_ = inflight_offset_ = 0;
    set_bytes(bytes_ + n);
    return bytes;
}

send_queue::next_send send_queue::prepare_send() {
    const std::byte* arena = arenas_[inflight_arena_].data();
    const segment& first = inflight_[inflight_index_];
    if (first.fixed) {
        // A registered buffer goes alone, from its own pages.
        return {&first.fixed,
                std::span<const std::byte>(first.base(arena) + inflight_offset_, first.size - inflight_offset_),
                {}};
    }
    iov_.clear();
    for (std::size_t i = inflight_index_; i < inflight_.size() && iov_.size() < IOV_MAX; ++i) {
        const segment& seg = inflight_[i];
        if (seg.fixed) break;  // it follows in a send of its own
        const std::size_t skip = i == inflight_index_ ? inflight_offset_ : 0;
        iov_.push_back(iovec{const_cast<std::byte*>(seg.base(arena) + skip), seg.size - skip});
    }
    return {nullptr, {}, std::span<iovec>(iov_)};
}

void send_queue::end_batch() noexcept {
    inflight_.clear();
    arenas_[inflight_arena_].clear();
    inflight_index_ = inflight_offset_ = 0;
}

void send_queue::reset(std::size_t kept_capacity) noexcept {
    for (auto& arena : arenas_) {
        arena.clear();
        if (arena.capacity() > kept_capacity) arena.release();
    }
    fill_ = 0;
    inflight_arena_ = 1;
    inflight_index_ = inflight_offset_ = 0;
    set_bytes(0);
}

}  // namespace cnetmod::detail
