#include <cnetmod/engine/detail/reactor.hpp>
#include <cnetmod/engine/frame_allocator.hpp>
#include <cnetmod/engine/io_context.hpp>
#include <cnetmod/engine/io_operation.hpp>
#include <cnetmod/engine/provided_buffer_ring.hpp>
#include <cnetmod/engine/tcp_stream.hpp>
#include <cnetmod/engine/tls.hpp>
#include <cnetmod/engine/waiter_queue.hpp>

#include <liburing.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <system_error>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <memory>
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
    void release() noexcept {
        data_.reset();
        size_ = capacity_ = 0;
    }
    // Grows by `n` bytes (uninitialised) and returns where they start.
    std::byte* grow(std::size_t n) {
        if (size_ + n > capacity_) {
            const std::size_t cap = std::max({size_ + n, capacity_ * 2, std::size_t{4096}});
            std::unique_ptr<std::byte[]> bigger(new std::byte[cap]);
            if (size_) std::memcpy(bigger.get(), data_.get(), size_);
            data_ = std::move(bigger);
            capacity_ = cap;
        }
        std::byte* p = data_.get() + size_;
        size_ += n;
        return p;
    }

private:
    std::unique_ptr<std::byte[]> data_;
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;
};

// A stream's send queue: two arenas (one being sent, one being filled), the
// segments queued and in flight, and the iovecs of the send in flight.
struct send_queue {
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

    byte_arena arenas[2];
    int fill = 0;
    int inflight_arena = 1;
    std::vector<segment> queued;
    std::vector<segment> inflight;
    std::size_t inflight_index = 0;
    std::size_t inflight_offset = 0;
    std::vector<iovec> iov;
    msghdr msg{};

    bool idle() const noexcept { return queued.empty() && inflight.empty(); }
};

// Per-thread pool of send queues: a queue keeps its vectors' capacity in
// the pool (an arena of at most 64 KiB), so steady traffic allocates nothing.
class send_queue_pool {
public:
    ~send_queue_pool() {
        for (auto* q : free_) delete q;
    }
    send_queue* acquire() {
        if (free_.empty()) {
            ++allocations_;
            return new send_queue;
        }
        send_queue* q = free_.back();
        free_.pop_back();
        cached_bytes_ -= q->arenas[0].capacity() + q->arenas[1].capacity();
        return q;
    }
    void release(send_queue* q) noexcept {
        // Arenas up to 256 KiB are kept (16 messages of 4 KiB and more fit
        // without growing again), within 32 MiB for the whole pool; larger
        // ones go back to the heap.
        constexpr std::size_t kept_capacity = 256 * 1024;
        constexpr std::size_t pool_budget = 32 * 1024 * 1024;
        for (auto& arena : q->arenas) {
            arena.clear();
            if (arena.capacity() > kept_capacity || cached_bytes_ + arena.capacity() > pool_budget) arena.release();
        }
        q->fill = 0;
        q->inflight_arena = 1;
        q->inflight_index = q->inflight_offset = 0;
        if (free_.size() >= max_kept) {
            delete q;
            return;
        }
        try {
            free_.push_back(q);
            cached_bytes_ += q->arenas[0].capacity() + q->arenas[1].capacity();
        } catch (...) {
            delete q;
        }
    }

    std::size_t allocations() const noexcept { return allocations_; }

private:
    static constexpr std::size_t max_kept = 4096;
    std::vector<send_queue*> free_;
    std::size_t allocations_ = 0;
    std::size_t cached_bytes_ = 0;
};

thread_local send_queue_pool send_queues;

std::size_t send_queue_allocations() noexcept {
    return send_queues.allocations();
}

class stream_state : orphan_node {
public:
    // From the per-core slabs, beside the connection's other long-lived state.
    static void* operator new(std::size_t n) { return frame_allocator::allocate(n); }
    static void operator delete(void* p, std::size_t n) noexcept { frame_allocator::deallocate(p, n); }

    stream_state(io_context& ctx, int fd, stream_options options)
        : ctx_(ctx),
          fd_(fd),
          options_(options),
          rearm_hook_(
              [](turn_hook* h) { static_cast<hook*>(h)->self->run_hook(&stream_state::rearm_after_starvation); }),
          flush_hook_([](turn_hook* h) { static_cast<hook*>(h)->self->run_hook(&stream_state::flush); }) {
        flush_hook_.self = rearm_hook_.self = this;
        if (options_.no_delay) {
            int one = 1;
            ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
    }

    ~stream_state() {
        if (tx_) {
            release_segments(tx_->queued, 0);
            release_segments(tx_->inflight, tx_->inflight_index);
            send_queues.release(tx_);
        }
    }

    io_context& ctx() const noexcept { return ctx_; }
    int fd() const noexcept { return fd_; }
    bool is_open() const noexcept { return fd_ >= 0; }

    // ---- receiving ----

    std::size_t buffered() const noexcept { return rx_bytes_; }

    // The front of the receive queue, or empty.
    std::span<const std::byte> front() const noexcept {
        if (rx_head_ == chunks_.size()) return {};
        const chunk& c = chunks_[rx_head_];
        return {c.data + rx_offset_, c.size - rx_offset_};
    }

    bool at_end() const noexcept { return rx_bytes_ == 0 && (eof_ || rx_error_ != 0 || fd_ < 0); }

    void throw_if_receive_failed() const {
        if (rx_bytes_ == 0 && rx_error_ != 0) {
            if (tls_ && tls_->failed())
                throw std::system_error(rx_error_, std::system_category(), "cnetmod: TLS: " + tls_->error_text());
            throw std::system_error(rx_error_, std::system_category(), "cnetmod: tcp_stream receive");
        }
    }

    // ---- TLS ----
    //
    // With TLS the stream carries records: what the socket receives is fed
    // to the session and the decrypted bytes become the receive queue; what
    // is queued for sending is plaintext, encrypted at the end-of-turn flush
    // into one buffer of records. Readers and writers see plaintext only.

    void start_tls(const tls_context& context, std::string_view server_name, deadline handshake_deadline) {
        if (tls_) throw std::logic_error("cnetmod: TLS is already on for this stream");
        if (rx_bytes_ > 0) throw std::logic_error("cnetmod: start_tls on a stream with unread bytes");
        tls_ = std::make_unique<tls_session>(context, server_name);
        if (handshake_deadline.is_set())
            tls_timer_ = reactor_of(ctx_).arm_wait_timer(handshake_deadline, &stream_state::on_tls_timeout, this);
        if (!context.is_server()) {
            tls_->handshake();  // the ClientHello
            reactor_of(ctx_).at_turn_end(flush_hook_);
        }
        ensure_receiving();
    }

    const tls_session* tls() const noexcept { return tls_.get(); }

    // Queues close_notify ahead of a graceful close.
    void tls_close_notify() {
        if (!tls_ || tls_->failed() || fd_ < 0) return;
        // What is queued goes into records first: nothing is written after close_notify.
        if (tls_->handshake_done() && tx_ && !tx_->queued.empty()) encrypt_queued();
        tls_->shutdown();
        flush_tls();  // now, so that the records are submitted before the shutdown that follows the drain
    }

    // Bytes not yet taken by the kernel: queued, in flight, and records
    // OpenSSL holds for the next send.
    std::size_t unsent_bytes() const noexcept { return tx_bytes_ + (tls_ ? tls_->pending_output() : 0); }

    void consume(std::size_t n) noexcept {
        while (n > 0 && rx_head_ < chunks_.size()) {
            chunk& c = chunks_[rx_head_];
            const std::size_t left = c.size - rx_offset_;
            const std::size_t take = n < left ? n : left;
            rx_offset_ += take;
            rx_bytes_ -= take;
            n -= take;
            if (rx_offset_ == c.size) {
                release_chunk(c);
                ++rx_head_;
                rx_offset_ = 0;
            }
        }
        if (rx_head_ == chunks_.size()) {
            chunks_.clear();
            rx_head_ = 0;
        }
        // Resume receiving once the reader has caught up with a paused stream.
        if (paused_ && !rx_armed_ && rx_bytes_ <= options_.receive_high_water / 2) {
            paused_ = false;
            arm_receive();
        }
    }

    // Makes sure some receive is in flight for a reader about to wait.
    void ensure_receiving() {
        if (rx_armed_ || fallback_armed_ || eof_ || rx_error_ || fd_ < 0 || paused_) return;
        if (reactor_of(ctx_).recv_buffers().available() > 0)
            arm_multishot();
        else
            arm_fallback();
    }

    // A waiting reader (tcp_stream::receive_awaiter), and its deadline.
    void start_read_wait(std::coroutine_handle<> h, deadline d) {
        arm_read_wait(d);
        reader_ = h;
    }

    // The same wait for a reader that keeps no coroutine frame: `w` runs.
    void start_read_wait(read_waiter& w, deadline d) {
        arm_read_wait(d);
        reader_cb_ = &w;
    }

    // What ended a wait, without throwing. Data wins over a timer that fired with it.
    tcp_stream::read_status finish_read_wait_status() noexcept {
        if (reader_timer_) {
            reactor_of(ctx_).disarm_wait_timer(reader_timer_);
            reader_timer_ = nullptr;
        }
        if (!front().empty()) return tcp_stream::read_status::data;
        if (std::exchange(reader_timed_out_, false)) return tcp_stream::read_status::timed_out;
        if (rx_error_ != 0) return tcp_stream::read_status::failed;
        return tcp_stream::read_status::ended;
    }

    // The same, as receive_awaiter reports it: the view, empty at the end,
    // or std::system_error (ETIMEDOUT past the deadline, or the socket's error).
    std::span<const std::byte> finish_read_wait() {
        switch (finish_read_wait_status()) {
            case tcp_stream::read_status::data:
                return front();
            case tcp_stream::read_status::timed_out:
                throw std::system_error(std::make_error_code(std::errc::timed_out), "cnetmod: tcp_stream receive");
            case tcp_stream::read_status::failed:
                throw_if_receive_failed();
                break;
            case tcp_stream::read_status::ended:
                break;
        }
        return {};
    }

    bool reader_can_continue() const noexcept { return rx_bytes_ > 0 || at_end() || reader_timed_out_; }

    // ---- sending ----

    std::size_t queued_bytes() const noexcept { return unsent_bytes(); }
    std::uint64_t send_calls() const noexcept { return send_calls_; }

    void throw_if_cannot_send() const {
        if (fd_ < 0 || shut_down_)
            throw std::system_error(std::make_error_code(std::errc::not_connected), "cnetmod: tcp_stream is closed");
        if (tls_ && tls_->failed())
            throw std::system_error(std::make_error_code(std::errc::protocol_error),
                                    "cnetmod: TLS: " + tls_->error_text());
        if (tx_error_) throw std::system_error(tx_error_, std::system_category(), "cnetmod: tcp_stream send");
    }

    void queue(std::span<const std::byte> bytes) {
        auto space = queue_space(bytes.size());
        if (!bytes.empty()) std::memcpy(space.data(), bytes.data(), bytes.size());
    }

    std::span<std::byte> queue_space(std::size_t n) {
        throw_if_cannot_send();
        if (n == 0) return {};
        send_queue& q = tx();
        auto& arena = q.arenas[q.fill];
        const std::size_t offset = arena.size();
        const std::span<std::byte> bytes(arena.grow(n), n);
        // Bytes copied back to back are one iovec.
        if (!q.queued.empty() && q.queued.back().in_arena() && q.queued.back().offset + q.queued.back().size == offset)
            q.queued.back().size += bytes.size();
        else
            q.queued.push_back(segment{{}, {}, nullptr, -1, offset, bytes.size()});
        tx_bytes_ += bytes.size();
        reactor_of(ctx_).at_turn_end(flush_hook_);
        return bytes;
    }

    void queue(shared_buffer buffer) {
        throw_if_cannot_send();
        if (buffer.empty()) return;
        const std::size_t n = buffer.size();
        tx().queued.push_back(segment{std::move(buffer), {}, nullptr, -1, 0, n});
        tx_bytes_ += n;
        reactor_of(ctx_).at_turn_end(flush_hook_);
    }

    void queue(registered_buffer buffer) {
        throw_if_cannot_send();
        if (buffer.size() == 0) return;
        if (buffer.size() < ctx_.options().send_zc_threshold) {
            // Below the crossover a copy is cheaper than pinning pages.
            queue(buffer.bytes());
            return;
        }
        const std::size_t n = buffer.size();
        tx().queued.push_back(segment{{}, std::move(buffer), nullptr, -1, 0, n});
        tx_bytes_ += n;
        reactor_of(ctx_).at_turn_end(flush_hook_);
    }

    std::uint64_t zero_copy_sends() const noexcept { return zero_copy_sends_; }
    std::size_t send_capacity() const noexcept {
        return tx_ ? tx_->arenas[0].capacity() + tx_->arenas[1].capacity() : 0;
    }

    // Moves the next `n` received bytes into the send queue by reference: the
    // provided buffer goes back to the ring once the send is done with it.
    void queue_received(std::size_t n) {
        throw_if_cannot_send();
        while (n > 0 && rx_head_ < chunks_.size()) {
            chunk& c = chunks_[rx_head_];
            const std::size_t take = std::min(n, c.size - rx_offset_);
            if (c.buffer_id >= 0) {
                reactor_of(ctx_).recv_buffers().hold(static_cast<std::uint16_t>(c.buffer_id));
                tx().queued.push_back(segment{{}, {}, c.data + rx_offset_, c.buffer_id, 0, take});
                tx_bytes_ += take;
                reactor_of(ctx_).at_turn_end(flush_hook_);
            } else {
                queue(std::span<const std::byte>(c.data + rx_offset_, take));  // a fallback buffer of our own
            }
            n -= take;
            consume(take);
        }
    }

    // Suspends until queued bytes fall to `threshold`, an error, or the deadline.
    struct drain_wait {
        // A constructor, not aggregate initialisation: g++ 12 miscompiles an
        // aggregate temporary awaited in place (its members are not copied).
        drain_wait(stream_state& state, std::size_t limit, deadline at) : s(state), threshold(limit), d(at) {}
        stream_state& s;
        std::size_t threshold;
        deadline d;
        queued_waiter node{};
        wait_timer* timer = nullptr;
        bool timed_out = false;

        bool await_ready() const noexcept { return s.unsent_bytes() <= threshold || s.tx_error_ || s.fd_ < 0; }
        void await_suspend(std::coroutine_handle<> h) {
            node.handle = h;
            node.ctx = &s.ctx_;
            s.writers_.push_back(this);
            if (d.is_set()) timer = reactor_of(s.ctx_).arm_wait_timer(d, &drain_wait::on_timeout, this);
        }
        static void on_timeout(void* p) {
            auto* self = static_cast<drain_wait*>(p);
            self->timer = nullptr;
            self->timed_out = true;
            std::erase(self->s.writers_, self);
            self->node.handle.resume();
        }
        void await_resume() {
            if (timer) {
                reactor_of(s.ctx_).disarm_wait_timer(timer);
                timer = nullptr;
            }
            if (timed_out)
                throw std::system_error(std::make_error_code(std::errc::timed_out), "cnetmod: tcp_stream send");
            if (s.tx_error_) throw std::system_error(s.tx_error_, std::system_category(), "cnetmod: tcp_stream send");
            if (s.fd_ < 0 && s.unsent_bytes() > threshold)
                throw std::system_error(std::make_error_code(std::errc::not_connected), "cnetmod: tcp_stream closed");
        }
        ~drain_wait() {
            if (timer) reactor_of(s.ctx_).disarm_wait_timer(timer);
            std::erase(s.writers_, this);
        }
    };

    // ---- closing ----

    task<void> shutdown_send() {
        if (fd_ < 0 || shut_down_) co_return;
        shut_down_ = true;
        const int fd = fd_;
        int rc = co_await submit(ctx_, [fd](io_uring_sqe* sqe) { io_uring_prep_shutdown(sqe, fd, SHUT_WR); });
        (void)rc;  // ENOTCONN when the peer already reset: nothing left to shut
    }

    // Closes the descriptor at once; pending operations are cancelled.
    void close_now(bool reset) noexcept {
        if (fd_ < 0) return;
        if (reset) {
            linger l{1, 0};
            ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        }
        if (rx_armed_) reactor_of(ctx_).cancel(op_id(op_recv));
        if (fallback_armed_) reactor_of(ctx_).cancel(op_id(op_fallback));
        if (send_inflight_) reactor_of(ctx_).cancel(op_id(op_send));
        ::close(fd_);
        fd_ = -1;
        drop_queued();
        // Waiters resume in the loop, not inside the caller that closed.
        if (auto h = std::exchange(reader_, {})) reactor_of(ctx_).schedule(h);
        if (reader_cb_) reactor_of(ctx_).at_turn_end(rearm_hook_);  // which wakes it, in the loop
        wake_writers();
    }

    // The handle is gone: close, and free this state once the kernel is done
    // with it and the loop has run the hooks it queued for the turn's end.
    void release() noexcept {
        released_ = true;
        if (flush_hook_.queued) ++pending_;
        if (rearm_hook_.queued) ++pending_;
        if (tls_timer_) reactor_of(ctx_).disarm_wait_timer(std::exchange(tls_timer_, nullptr));
        if (reader_timer_) {
            reactor_of(ctx_).disarm_wait_timer(reader_timer_);
            reader_timer_ = nullptr;
        }
        reader_ = {};
        reader_cb_ = nullptr;
        close_now(false);
        drop_received();
        if (pending_ == 0) {
            delete this;
        } else {
            destroy = [](orphan_node* n) { delete static_cast<stream_state*>(n); };
            reactor_of(ctx_).add_orphan(*this);  // the last CQE deletes it, or the context does
        }
    }

    // An end-of-turn hook: its work, or, once released, its share of pending_.
    void run_hook(void (stream_state::*work)()) {
        if (released_) {
            finish_operation();
            return;
        }
        (this->*work)();
    }

    // Called by each CQE handler: true when this state was freed.
    bool finish_operation() noexcept {
        if (--pending_ == 0 && released_) {
            reactor_of(ctx_).remove_orphan(*this);
            delete this;
            return true;
        }
        return false;
    }

private:
public:
    // The operations whose CQEs name this state (user_data = address | tag).
    enum op_tag : unsigned { op_recv = 1, op_fallback = 2, op_send = 3 };
    static void on_completion(void* object, unsigned tag, int result, std::uint32_t flags) {
        auto* s = static_cast<stream_state*>(object);
        switch (tag) {
            case op_recv:
                return on_recv(s, result, flags);
            case op_fallback:
                return on_fallback_recv(s, result, flags);
            case op_send:
                return on_send(s, result, flags);
        }
    }

private:
    const void* op_id(op_tag tag) const noexcept { return reinterpret_cast<const void*>(tagged(this, tag)); }
    struct hook : turn_hook {
        stream_state* self = nullptr;
        using turn_hook::turn_hook;
    };
    struct chunk {
        std::byte* data;
        std::size_t size;
        int buffer_id;  // provided-buffer id, or -1 for memory of the stream's own
    };
    using segment = send_queue::segment;

    // Lets go of what a sent or dropped segment references.
    void release_segment(segment& seg) noexcept {
        seg.buffer.reset();
        if (seg.received_id >= 0) {
            reactor_of(ctx_).recv_buffers().release(static_cast<std::uint16_t>(seg.received_id));
            seg.received_id = -1;
        }
    }

    void release_segments(std::vector<segment>& segments, std::size_t from) noexcept {
        for (std::size_t i = from; i < segments.size(); ++i) release_segment(segments[i]);
        segments.clear();
    }

    // ---- receive internals ----

    void release_chunk(const chunk& c) noexcept {
        if (c.buffer_id >= 0)
            reactor_of(ctx_).recv_buffers().release(static_cast<std::uint16_t>(c.buffer_id));
        else
            delete[] c.data;
    }

    // Starts receiving for a reader about to wait, and arms its deadline.
    void arm_read_wait(deadline d) {
        ensure_receiving();
        reader_timed_out_ = false;
        if (d.is_set()) reader_timer_ = reactor_of(ctx_).arm_wait_timer(d, &stream_state::on_reader_timeout, this);
    }

    void drop_received() noexcept {
        for (std::size_t i = rx_head_; i < chunks_.size(); ++i) release_chunk(chunks_[i]);
        chunks_.clear();
        rx_head_ = rx_offset_ = rx_bytes_ = 0;
    }

    // Arms a receive unless one is in flight (multishot or fallback): two at
    // once could deliver bytes out of order.
    void arm_receive() {
        if (fd_ < 0 || eof_ || rx_error_ || rx_armed_ || fallback_armed_) return;
        if (reactor_of(ctx_).recv_buffers().available() > 0)
            arm_multishot();
        else if (reader_ || reader_cb_)
            arm_fallback();
        else
            reactor_of(ctx_).at_turn_end(rearm_hook_);
    }

    void arm_multishot() {
        io_uring_sqe* sqe = reactor_of(ctx_).acquire_sqe();
        io_uring_prep_recv_multishot(sqe, fd_, nullptr, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = reactor_of(ctx_).recv_buffers().group_id();
        io_uring_sqe_set_data64(sqe, tagged(this, op_recv));
        rx_armed_ = true;
        ++pending_;
    }

    // The ring is dry and a reader waits: receive into memory of our own.
    void arm_fallback() {
        const std::size_t size = reactor_of(ctx_).recv_buffers().buffer_size();
        fallback_buffer_.reset(new std::byte[size]);
        io_uring_sqe* sqe = reactor_of(ctx_).acquire_sqe();
        io_uring_prep_recv(sqe, fd_, fallback_buffer_.get(), size, 0);
        io_uring_sqe_set_data64(sqe, tagged(this, op_fallback));
        fallback_armed_ = true;
        ++pending_;
    }

    void rearm_after_starvation() {
        if (released_) return;
        if (fd_ < 0) {
            wake_reader();  // closed while a frameless reader waited
            return;
        }
        if (paused_) return;
        arm_receive();
    }

    void push_chunk(std::byte* data, std::size_t size, int buffer_id) {
        chunks_.push_back(chunk{data, size, buffer_id});
        rx_bytes_ += size;
        if (rx_armed_ && !paused_ && rx_bytes_ > options_.receive_high_water) {
            // The reader is behind: stop taking buffers; TCP's window holds the peer back.
            paused_ = true;
            reactor_of(ctx_).cancel(op_id(op_recv));
        }
    }

    // Bytes the socket delivered: the receive queue's, or the TLS session's.
    void received(std::byte* data, std::size_t size, int buffer_id) {
        if (!tls_) {
            push_chunk(data, size, buffer_id);
            return;
        }
        tls_->feed(std::span<const std::byte>(data, size));
        release_chunk(chunk{data, size, buffer_id});  // the session copied it: the buffer goes back now
        if (rx_error_ == 0) pump_tls();
    }

    // Advances the handshake, then moves whatever decrypts into the receive queue.
    void pump_tls() {
        if (!tls_->handshake_done()) {
            const auto st = tls_->handshake();
            if (tls_->pending_output() > 0) reactor_of(ctx_).at_turn_end(flush_hook_);
            if (st == tls_session::step::failed) return fail_tls(EPROTO);
            if (st == tls_session::step::want_more) return;
            if (tls_timer_) reactor_of(ctx_).disarm_wait_timer(std::exchange(tls_timer_, nullptr));
            if (tx_ && !tx_->queued.empty())
                reactor_of(ctx_).at_turn_end(flush_hook_);  // plaintext held for the handshake
        }
        // Decrypted into per-core scratch, then into a chunk of its exact size.
        thread_local std::unique_ptr<std::byte[]> scratch(new std::byte[scratch_size]);
        while (std::size_t n = tls_->read(std::span<std::byte>(scratch.get(), scratch_size))) {
            auto* copy = new std::byte[n];
            std::memcpy(copy, scratch.get(), n);
            push_chunk(copy, n, -1);
        }
        if (tls_->pending_output() > 0) reactor_of(ctx_).at_turn_end(flush_hook_);  // a KeyUpdate's answer, an alert
        if (tls_->failed())
            fail_tls(EPROTO);
        else if (tls_->closed_by_peer())
            eof_ = true;
    }

    // The TLS session failed (or its handshake ran out of time): the reader
    // sees a receive error naming the reason, and the alert goes out if it can.
    void fail_tls(int error) {
        if (tls_timer_) reactor_of(ctx_).disarm_wait_timer(std::exchange(tls_timer_, nullptr));
        if (rx_error_ == 0) rx_error_ = error;
        if (rx_armed_) reactor_of(ctx_).cancel(op_id(op_recv));
        // Nothing more can be sent (but the alert OpenSSL may have queued).
        if (tx_error_ == 0) tx_error_ = error;
        drop_queued();
        wake_writers();
    }

    static void on_tls_timeout(void* p) {
        auto* s = static_cast<stream_state*>(p);
        s->tls_timer_ = nullptr;
        s->fail_tls(ETIMEDOUT);
        s->wake_reader();
    }

    static void on_recv(stream_state* s, int result, std::uint32_t flags) {
        if (flags & IORING_CQE_F_BUFFER) {
            const auto id = static_cast<std::uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
            reactor_of(s->ctx_).recv_buffers().taken(id);
            if (result > 0 && !s->released_)
                s->received(reactor_of(s->ctx_).recv_buffers().data(id), static_cast<std::size_t>(result), id);
            else
                reactor_of(s->ctx_).recv_buffers().release(id);
        }
        if (result == 0)
            s->eof_ = true;
        else if (result == -ENOBUFS)
            s->starved_ = true;  // flow control, not an error: re-armed once buffers return
        else if (result < 0 && result != -ECANCELED)
            s->rx_error_ = -result;
        if (!(flags & IORING_CQE_F_MORE)) {
            s->rx_armed_ = false;
            if (s->finish_operation()) return;
            if (s->released_) return;
            if (s->starved_) {
                s->starved_ = false;
                s->arm_receive();
            } else if (result > 0 && !s->paused_) {
                s->arm_receive();  // the kernel ended the multishot for its own reasons
            } else if (s->paused_ && s->rx_bytes_ <= s->options_.receive_high_water / 2) {
                s->paused_ = false;
                s->arm_receive();
            }
        }
        if (!s->released_) s->wake_reader();
    }

    static void on_fallback_recv(stream_state* s, int result, std::uint32_t) {
        s->fallback_armed_ = false;
        std::unique_ptr<std::byte[]> buffer = std::move(s->fallback_buffer_);
        if (s->finish_operation()) return;
        if (s->released_) return;
        if (result > 0)
            s->received(buffer.release(), static_cast<std::size_t>(result), -1);
        else if (result == 0)
            s->eof_ = true;
        else if (result != -ECANCELED)
            s->rx_error_ = -result;
        if (result > 0) s->arm_receive();
        s->wake_reader();
    }

    static void on_reader_timeout(void* p) {
        auto* s = static_cast<stream_state*>(p);
        s->reader_timer_ = nullptr;
        s->reader_timed_out_ = true;
        s->wake_reader();
    }

    // Resumes a waiting reader once there is something to tell it (bytes,
    // end of stream, an error, its deadline); otherwise keeps receiving.
    void wake_reader() {
        if (!reader_ && !reader_cb_) return;
        if (!reader_can_continue()) {
            ensure_receiving();
            return;
        }
        if (reader_cb_) {
            read_waiter* w = std::exchange(reader_cb_, nullptr);
            w->run(w);
            return;
        }
        std::exchange(reader_, {}).resume();
    }

    // ---- send internals ----

    // The send queue, borrowed from the pool when the stream has none.
    send_queue& tx() {
        if (!tx_) tx_ = send_queues.acquire();
        return *tx_;
    }

    // Gives the send queue back once nothing is queued or in flight.
    void return_tx_if_idle() noexcept {
        if (tx_ && !send_inflight_ && tx_->idle()) {
            send_queues.release(std::exchange(tx_, nullptr));
            // Idle: OpenSSL's record buffers and grown BIO storage go too.
            if (tls_ && tls_->pending_output() == 0) tls_->release_buffers();
        }
    }

    void flush() {
        if (tls_) return flush_tls();
        if (send_inflight_ || !tx_ || tx_->queued.empty() || fd_ < 0) return;
        send_queue& q = *tx_;
        q.inflight.swap(q.queued);
        q.inflight_arena = q.fill;
        q.fill ^= 1;
        q.inflight_index = 0;
        q.inflight_offset = 0;
        submit_inflight();
    }

    // TLS: the queued plaintext (once the handshake is done) becomes records,
    // and the session's output goes out as one send from the arena that is
    // not being filled. Plaintext queued during the handshake waits there.
    void flush_tls() {
        if (send_inflight_ || fd_ < 0 || shut_down_) return;
        if (tls_->handshake_done() && tx_ && !tx_->queued.empty()) encrypt_queued();
        const std::size_t n = tls_->pending_output();
        if (n == 0) return return_tx_if_idle();
        send_queue& q = tx();
        const int out = q.fill ^ 1;
        q.arenas[out].clear();
        tls_->take_output(std::span<std::byte>(q.arenas[out].grow(n), n));
        q.inflight.clear();
        q.inflight.push_back(segment{{}, {}, nullptr, -1, 0, n});
        q.inflight_arena = out;
        q.inflight_index = q.inflight_offset = 0;
        tx_bytes_ += n;
        submit_inflight();
    }

    void encrypt_queued() {
        send_queue& q = *tx_;
        const std::byte* arena = q.arenas[q.fill].data();
        std::size_t plain = 0;
        bool refused = false;
        for (const segment& seg : q.queued) {
            refused = refused || !tls_->write(std::span<const std::byte>(seg.base(arena), seg.size));
            plain += seg.size;
        }
        release_segments(q.queued, 0);
        q.arenas[q.fill].clear();
        tx_bytes_ -= plain;
        if (refused && tx_error_ == 0) {
            // The session failed or was shut down: those bytes cannot go.
            tx_error_ = EPIPE;
            wake_writers();
        }
    }

    void submit_inflight() {
        send_queue& q = *tx_;
        const std::byte* arena = q.arenas[q.inflight_arena].data();
        const segment& first = q.inflight[q.inflight_index];
        send_is_zero_copy_ = static_cast<bool>(first.fixed);
        if (send_is_zero_copy_) {
            // A registered buffer goes alone, from its own pages.
            io_uring_sqe* sqe = reactor_of(ctx_).acquire_sqe();
            io_uring_prep_send_zc_fixed(sqe, fd_, first.base(arena) + q.inflight_offset, first.size - q.inflight_offset,
                                        MSG_NOSIGNAL, 0, first.fixed.index());
            io_uring_sqe_set_data64(sqe, tagged(this, op_send));
            send_inflight_ = true;
            ++pending_;
            ++send_calls_;
            ++zero_copy_sends_;
            return;
        }
        q.iov.clear();
        for (std::size_t i = q.inflight_index; i < q.inflight.size() && q.iov.size() < IOV_MAX; ++i) {
            const segment& seg = q.inflight[i];
            if (seg.fixed) break;  // it follows in a send of its own
            const std::size_t skip = i == q.inflight_index ? q.inflight_offset : 0;
            q.iov.push_back(iovec{const_cast<std::byte*>(seg.base(arena) + skip), seg.size - skip});
        }
        io_uring_sqe* sqe = reactor_of(ctx_).acquire_sqe();
        if (q.iov.size() == 1) {
            // One contiguous run: a plain send skips sendmsg's header and iovec import.
            io_uring_prep_send(sqe, fd_, q.iov[0].iov_base, q.iov[0].iov_len, MSG_NOSIGNAL);
        } else {
            q.msg = {};
            q.msg.msg_iov = q.iov.data();
            q.msg.msg_iovlen = q.iov.size();
            io_uring_prep_sendmsg(sqe, fd_, &q.msg, MSG_NOSIGNAL);
        }
        io_uring_sqe_set_data64(sqe, tagged(this, op_send));
        send_inflight_ = true;
        ++pending_;
        ++send_calls_;
    }

    static void on_send(stream_state* s, int result, std::uint32_t flags) {
        if (flags & IORING_CQE_F_NOTIF) {
            // The kernel let go of a zero-copy send's pages (in order per socket).
            s->zc_holds_.erase(s->zc_holds_.begin());
            s->finish_operation();
            return;
        }
        s->send_inflight_ = false;
        if (s->send_is_zero_copy_ && (flags & IORING_CQE_F_MORE)) {
            // A notification follows: the buffer stays held until then.
            ++s->pending_;
            segment& seg = s->tx_->inflight[s->tx_->inflight_index];
            const bool completes =
                result >= 0 && static_cast<std::size_t>(result) == seg.size - s->tx_->inflight_offset;
            s->zc_holds_.push_back(completes ? std::move(seg.fixed) : registered_buffer{});
        }
        if (s->finish_operation()) return;
        if (s->released_) return;
        if (result < 0) {
            if (result != -ECANCELED) s->tx_error_ = -result;
            s->drop_queued();
            s->wake_writers();
            return;
        }
        s->advance(static_cast<std::size_t>(result));
        send_queue& q = *s->tx_;
        if (q.inflight_index < q.inflight.size() && s->fd_ >= 0) {
            s->submit_inflight();  // partial send: the rest goes before anything newer
        } else {
            q.inflight.clear();
            q.arenas[q.inflight_arena].clear();
            if (!q.queued.empty() || (s->tls_ && s->tls_->pending_output() > 0))
                reactor_of(s->ctx_).at_turn_end(s->flush_hook_);
            else
                s->return_tx_if_idle();
        }
        s->wake_writers();
    }

    void advance(std::size_t sent) noexcept {
        tx_bytes_ -= std::min(sent, tx_bytes_);  // after an abort dropped the queue, a late CQE may still count bytes
        send_queue& q = *tx_;
        while (sent > 0 && q.inflight_index < q.inflight.size()) {
            const std::size_t left = q.inflight[q.inflight_index].size - q.inflight_offset;
            if (sent < left) {
                q.inflight_offset += sent;
                return;
            }
            sent -= left;
            release_segment(q.inflight[q.inflight_index]);
            ++q.inflight_index;
            q.inflight_offset = 0;
        }
    }

    // Drops what is queued and not yet handed to the kernel (a send in
    // flight completes); returns the bytes dropped.
    std::size_t discard_queued() noexcept {
        if (!tx_) return 0;
        send_queue& q = *tx_;
        std::size_t n = 0;
        for (const segment& seg : q.queued) n += seg.size;
        release_segments(q.queued, 0);
        q.arenas[q.fill].clear();
        tx_bytes_ -= std::min(n, tx_bytes_);
        return_tx_if_idle();
        wake_writers();
        return n;
    }

    void drop_queued() noexcept {
        tx_bytes_ = 0;
        if (!tx_) return;
        send_queue& q = *tx_;
        release_segments(q.queued, 0);
        q.arenas[q.fill].clear();
        if (!send_inflight_) {
            release_segments(q.inflight, q.inflight_index);
            q.arenas[q.inflight_arena].clear();
        }
        return_tx_if_idle();
    }

    void wake_writers() {
        // Wake, in order, every writer whose threshold is met.
        for (std::size_t i = 0; i < writers_.size();) {
            drain_wait* w = writers_[i];
            if (unsent_bytes() <= w->threshold || tx_error_ || fd_ < 0) {
                writers_.erase(writers_.begin() + static_cast<std::ptrdiff_t>(i));
                reactor_of(ctx_).schedule(w->node.handle);
            } else {
                ++i;
            }
        }
    }

    friend class cnetmod::tcp_stream;

    io_context& ctx_;
    int fd_;
    stream_options options_;
    int pending_ = 0;  // operations the kernel still holds that name this state
    bool released_ = false;
    bool shut_down_ = false;

    // rx_*: the receive side.
    std::vector<chunk> chunks_;  // filled buffers, oldest first from rx_head_
    std::size_t rx_head_ = 0;
    std::size_t rx_offset_ = 0;  // consumed bytes of chunks_[rx_head_]
    std::size_t rx_bytes_ = 0;   // received, not consumed
    int rx_error_ = 0;
    bool eof_ = false;
    bool rx_armed_ = false;        // multishot recv in flight
    bool fallback_armed_ = false;  // plain recv into fallback_buffer_ in flight
    bool paused_ = false;          // recv cancelled while the reader catches up
    bool starved_ = false;         // the multishot ended with -ENOBUFS
    std::unique_ptr<std::byte[]> fallback_buffer_;
    std::coroutine_handle<> reader_;
    read_waiter* reader_cb_ = nullptr;
    wait_timer* reader_timer_ = nullptr;
    bool reader_timed_out_ = false;
    hook rearm_hook_;

    // tx_*: the send side. Its queue memory (tx_) is lent by the core's
    // pool while bytes are queued or in flight and goes back when the queue
    // drains, so an idle connection holds none and a busy one allocates none.
    send_queue* tx_ = nullptr;
    std::size_t tx_bytes_ = 0;
    int tx_error_ = 0;
    bool send_inflight_ = false;
    bool send_is_zero_copy_ = false;
    std::uint64_t send_calls_ = 0;
    std::uint64_t zero_copy_sends_ = 0;
    // Registered buffers of finished zero-copy sends, until their notifications.
    std::vector<registered_buffer> zc_holds_;
    std::vector<drain_wait*> writers_;
    hook flush_hook_;

    // TLS, when started: the session and its handshake's deadline.
    std::unique_ptr<tls_session> tls_;
    wait_timer* tls_timer_ = nullptr;
    static constexpr std::size_t scratch_size = 64 * 1024;
};

}  // namespace cnetmod::detail

namespace cnetmod {

void detail::socket_completion(void* object, unsigned tag, int result, std::uint32_t flags) {
    detail::stream_state::on_completion(object, tag, result, flags);
}

// The state, or a not_connected error for a default-constructed or moved-from stream.
static detail::stream_state& checked(detail::stream_state* s) {
    if (!s) throw std::system_error(std::make_error_code(std::errc::not_connected), "cnetmod: empty tcp_stream");
    return *s;
}

tcp_stream::tcp_stream(io_context& ctx, int fd, stream_options options)
    : state_(new detail::stream_state(ctx, fd, options)) {}

tcp_stream::tcp_stream(tcp_stream&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}

tcp_stream& tcp_stream::operator=(tcp_stream&& other) noexcept {
    if (this != &other) {
        if (state_) state_->release();
        state_ = std::exchange(other.state_, nullptr);
    }
    return *this;
}

tcp_stream::~tcp_stream() {
    if (state_) state_->release();
}

bool tcp_stream::is_open() const noexcept {
    return state_ && state_->is_open();
}
int tcp_stream::native_handle() const noexcept {
    return state_ ? state_->fd() : -1;
}
io_context& tcp_stream::context() const noexcept {
    return state_->ctx();
}

ip_endpoint tcp_stream::local_endpoint() const {
    return ip_endpoint::local_of(native_handle());
}
ip_endpoint tcp_stream::remote_endpoint() const {
    return ip_endpoint::peer_of(native_handle());
}

bool tcp_stream::receive_awaiter::await_ready() const noexcept {
    return !s_ || !s_->front().empty() || s_->at_end();
}

void tcp_stream::receive_awaiter::await_suspend(std::coroutine_handle<> h) {
    s_->start_read_wait(h, d_);
}

std::span<const std::byte> tcp_stream::receive_awaiter::await_resume() {
    return checked(s_).finish_read_wait();
}

void tcp_stream::wait_readable(read_waiter& w, deadline d) {
    checked(state_).start_read_wait(w, d);
}

bool tcp_stream::at_end() const noexcept {
    return !state_ || state_->at_end();
}

tcp_stream::read_status tcp_stream::finish_wait_readable() noexcept {
    return state_ ? state_->finish_read_wait_status() : read_status::ended;
}

void tcp_stream::consume(std::size_t n) noexcept {
    state_->consume(n);
}

std::span<std::byte> tcp_stream::writable_view() noexcept {
    if (!state_) return {};
    // The provided buffers (and fallback buffers) belong to this stream's reader alone.
    auto view = state_->front();
    return {const_cast<std::byte*>(view.data()), view.size()};
}

std::span<std::byte> tcp_stream::queue_space(std::size_t n) {
    return checked(state_).queue_space(n);
}

task<void> tcp_stream::drain_to(std::size_t bytes, deadline d) {
    if (!state_) co_return;
    co_await detail::stream_state::drain_wait{*state_, bytes, d};
}

task<std::size_t> tcp_stream::recv(std::span<std::byte> out, deadline d) {
    auto view = co_await recv_view(d);
    std::size_t copied = 0;
    // Take everything already buffered that fits, across chunks.
    while (!view.empty() && copied < out.size()) {
        const std::size_t n = std::min(view.size(), out.size() - copied);
        std::memcpy(out.data() + copied, view.data(), n);
        copied += n;
        state_->consume(n);
        view = state_->front();
    }
    co_return copied;
}

std::size_t tcp_stream::buffered() const noexcept {
    return state_ ? state_->buffered() : 0;
}

void tcp_stream::queue(std::span<const std::byte> bytes) {
    checked(state_).queue(bytes);
}

void tcp_stream::queue(shared_buffer buffer) {
    checked(state_).queue(std::move(buffer));
}

task<void> tcp_stream::send(std::span<const std::byte> bytes, deadline d) {
    queue(bytes);
    detail::stream_state& s = *state_;
    if (s.queued_bytes() > s.options_.send_high_water)
        co_await detail::stream_state::drain_wait{s, s.options_.send_high_water / 2, d};
}

task<void> tcp_stream::drain(deadline d) {
    if (!state_) co_return;
    co_await detail::stream_state::drain_wait{*state_, 0, d};
}

std::size_t tcp_stream::queued_bytes() const noexcept {
    return state_ ? state_->queued_bytes() : 0;
}
std::uint64_t tcp_stream::send_calls() const noexcept {
    return state_ ? state_->send_calls() : 0;
}
std::size_t tcp_stream::send_capacity() const noexcept {
    return state_ ? state_->send_capacity() : 0;
}
std::uint64_t tcp_stream::zero_copy_sends() const noexcept {
    return state_ ? state_->zero_copy_sends() : 0;
}

void tcp_stream::queue_received(std::size_t n) {
    checked(state_).queue_received(n);
}

void tcp_stream::queue(registered_buffer buffer) {
    checked(state_).queue(std::move(buffer));
}

task<void> tcp_stream::close(deadline d) {
    if (!state_ || !state_->is_open()) co_return;
    detail::stream_state& s = *state_;
    try {
        s.tls_close_notify();
        co_await drain(d);
        co_await s.shutdown_send();
        // Read until the peer closes its side too, so the close is not turned
        // into a reset by unread data.
        for (;;) {
            auto view = co_await recv_view(d);
            if (view.empty()) break;
            s.consume(view.size());
        }
    } catch (const std::system_error&) {
        // Deadline or a reset: close regardless.
    }
    s.close_now(false);
}

void tcp_stream::start_tls(const tls_context& context, std::string_view server_name, deadline handshake_deadline) {
    checked(state_).start_tls(context, server_name, handshake_deadline);
}
bool tcp_stream::is_tls() const noexcept {
    return state_ && state_->tls();
}
bool tcp_stream::tls_failed() const noexcept {
    return state_ && state_->tls() && state_->tls()->failed();
}
std::string tcp_stream::tls_error() const {
    return state_ && state_->tls() ? state_->tls()->error_text() : std::string();
}
std::string_view tcp_stream::tls_version() const noexcept {
    return state_ && state_->tls() ? state_->tls()->version() : std::string_view();
}
std::string_view tcp_stream::alpn() const noexcept {
    return state_ && state_->tls() ? state_->tls()->alpn() : std::string_view();
}

void tcp_stream::abort() noexcept {
    if (state_) state_->close_now(true);
}

std::size_t tcp_stream::discard_queued() noexcept {
    return state_ ? state_->discard_queued() : 0;
}

task<tcp_stream> tcp_connect(io_context& ctx, ip_endpoint endpoint, deadline d, std::stop_token stop,
                             stream_options options) {
    int fd = ::socket(endpoint.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::system_error(errno, std::system_category(), "cnetmod: socket");
    const sockaddr* addr = endpoint.data();
    const socklen_t len = endpoint.size();
    const int rc = co_await submit(
        ctx, [fd, addr, len](io_uring_sqe* sqe) { io_uring_prep_connect(sqe, fd, addr, len); }, d, stop);
    if (rc < 0) {
        ::close(fd);
        throw std::system_error(-rc, std::system_category(), "cnetmod: connect to " + endpoint.to_string());
    }
    co_return tcp_stream(ctx, fd, options);
}

task<tcp_stream> tcp_connect(io_context& ctx, std::string host, std::uint16_t port, deadline d, std::stop_token stop,
                             stream_options options) {
    auto endpoints = co_await resolve(ctx, host, port);
    std::exception_ptr last;
    for (const auto& ep : endpoints) {
        try {
            co_return co_await tcp_connect(ctx, ep, d, stop, options);
        } catch (const std::system_error&) {
            last = std::current_exception();
        }
    }
    std::rethrow_exception(last);
}

}  // namespace cnetmod
