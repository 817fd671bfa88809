#include <cnetmod/engine/detail/frame_allocator.hpp>
#include <cnetmod/engine/detail/io_operation.hpp>
#include <cnetmod/engine/detail/provided_buffer_ring.hpp>
#include <cnetmod/engine/detail/socket_core.hpp>
#include <cnetmod/engine/detail/tls_socket.hpp>

#include <liburing.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <system_error>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <limits>

namespace cnetmod::detail {

// ---- what a busy socket borrows ----

// A released core that the kernel still names (a cancelled recv, a send in
// flight): the context frees it with the orphans if its last CQE never comes.
struct socket_orphan : orphan_node {
    socket_core* core;
    explicit socket_orphan(socket_core* c) : core(c) {
        destroy = [](orphan_node* n) {
            auto* self = static_cast<socket_orphan*>(n);
            socket_core* core = self->core;
            delete self;
            core->destroy();
        };
    }
    static void* operator new(std::size_t n) { return frame_allocator::allocate(n); }
    static void operator delete(void* p, std::size_t n) noexcept { frame_allocator::deallocate(p, n); }
};

namespace {

// Per-thread pools of receive and send sides. A side keeps its vectors'
// capacity in the pool (and a send queue its arenas, up to 256 KiB each,
// 32 MiB for the pool), so steady traffic allocates nothing.
template <class Side>
class side_pool {
public:
    ~side_pool() {
        for (auto* s : free_) delete s;
    }
    Side* acquire() {
        ++lent_;
        if (free_.empty()) {
            ++allocations_;
            return new Side;
        }
        Side* s = free_.back();
        free_.pop_back();
        return s;
    }
    void release(Side* s) noexcept {
        --lent_;
        if (free_.size() >= max_kept) {
            delete s;
            return;
        }
        try {
            free_.push_back(s);
        } catch (...) {
            delete s;
        }
    }
    std::size_t allocations() const noexcept { return allocations_; }
    std::size_t lent() const noexcept { return lent_; }

private:
    static constexpr std::size_t max_kept = 4096;
    std::vector<Side*> free_;
    std::size_t allocations_ = 0;
    std::size_t lent_ = 0;
};

thread_local side_pool<receive_side> receive_sides;
thread_local side_pool<send_side> send_sides;
thread_local std::size_t send_arena_bytes = 0;  // arena capacity kept by send_sides

constexpr std::size_t kept_arena_capacity = 256 * 1024;
constexpr std::size_t send_pool_budget = 32 * 1024 * 1024;

std::uint32_t clamp32(std::size_t v) noexcept {
    return static_cast<std::uint32_t>(std::min<std::size_t>(v, std::numeric_limits<std::uint32_t>::max()));
}

}  // namespace

std::size_t send_queue_allocations() noexcept {
    return send_sides.allocations();
}

std::size_t lent_socket_sides() noexcept {
    return receive_sides.lent() + send_sides.lent();
}

void* socket_core::operator new(std::size_t n) {
    return frame_allocator::allocate(n);
}
void socket_core::operator delete(void* p, std::size_t n) noexcept {
    frame_allocator::deallocate(p, n);
}

socket_core::socket_core(io_context& ctx, int fd, const stream_options& options)
    : reactor_(&reactor_of(ctx)),
      reader_(nullptr),
      fd_(fd),
      receive_high_water_(clamp32(options.receive_high_water)),
      send_high_water_(clamp32(options.send_high_water)) {
    if (options.no_delay) {
        int one = 1;
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    slot_ = reactor_->register_file(fd_);
}

void socket_core::target(io_uring_sqe* sqe) const noexcept {
    if (slot_ < 0) return;
    sqe->fd = slot_;
    sqe->flags |= IOSQE_FIXED_FILE;
}

socket_core::socket_core(relocating, const socket_core& from) noexcept
    : reactor_(from.reactor_),
      reader_(nullptr),
      fd_(from.fd_),
      slot_(from.slot_),
      receive_high_water_(from.receive_high_water_),
      send_high_water_(from.send_high_water_),
      send_calls_(from.send_calls_),
      zero_copy_sends_(from.zero_copy_sends_) {
    eof_ = from.eof_;
    shut_down_ = from.shut_down_;
    rx_error_ = from.rx_error_;
    tx_error_ = from.tx_error_;
}

// Frees the core as what it is (a plain socket or a TLS one).
void socket_core::destroy() noexcept {
    // A hook still queued here belongs to a context being torn down: a
    // pooled side must come back with its hook free.
    if (rx_) {
        drop_received();
        rx_->fallback.reset();
        rx_->rearm.queued = false;
        rx_->rearm.next = nullptr;
        receive_sides.release(std::exchange(rx_, nullptr));
    }
    if (tx_) {
        tx_->queue.drop_all(false, buffer_releaser());
        tx_->zc_holds.clear();
        tx_->writers.clear();
        tx_->flush.queued = false;
        tx_->flush.next = nullptr;
        tx_->queue.reset(0);
        send_sides.release(std::exchange(tx_, nullptr));
    }
    if (tls_)
        delete static_cast<tls_socket*>(this);
    else
        delete this;
}

// ---- lending ----

receive_side& socket_core::rx() {
    if (!rx_) {
        rx_ = receive_sides.acquire();
        rx_->rearm.core = this;
    }
    return *rx_;
}

send_side& socket_core::tx() {
    if (!tx_) {
        tx_ = send_sides.acquire();
        tx_->flush.core = this;
        tx_->queue.count_into(&reactor_->send_queue_bytes_counter());
        send_arena_bytes -= std::min(send_arena_bytes, tx_->queue.capacity());
    }
    return *tx_;
}

void socket_core::return_rx_if_idle() noexcept {
    if (rx_ && rx_->queue.empty() && !fallback_armed_ && !rx_->rearm.queued) {
        rx_->fallback.reset();
        receive_sides.release(std::exchange(rx_, nullptr));
    }
}

void socket_core::return_tx_if_idle() noexcept {
    if (!tx_ || send_inflight_ || !tx_->queue.idle() || !tx_->zc_holds.empty() || !tx_->writers.empty() ||
        tx_->flush.queued)
        return;
    // Arenas up to 256 KiB are kept (16 messages of 4 KiB and more fit
    // without growing again), within 32 MiB for the whole pool.
    tx_->queue.reset(kept_arena_capacity);
    if (send_arena_bytes + tx_->queue.capacity() > send_pool_budget) tx_->queue.reset(0);
    send_arena_bytes += tx_->queue.capacity();
    tx_->queue.count_into(nullptr);
    send_sides.release(std::exchange(tx_, nullptr));
    if (tls_) static_cast<tls_socket*>(this)->went_idle();
}

// ---- receiving ----

std::size_t socket_core::buffered() const noexcept {
    return rx_ ? rx_->queue.bytes() : 0;
}

std::span<std::byte> socket_core::front() const noexcept {
    return rx_ ? rx_->queue.front() : std::span<std::byte>();
}

void socket_core::release_chunk(const received_chunk& c) noexcept {
    if (c.buffer_id >= 0)
        reactor_->recv_buffers().release(static_cast<std::uint16_t>(c.buffer_id));
    else
        delete[] c.data;
}

void socket_core::consume(std::size_t n) noexcept {
    if (!rx_) return;
    rx_->queue.consume(n, [this](const received_chunk& c) { release_chunk(c); });
    // Resume receiving once the reader has caught up with a paused socket.
    if (paused_ && !rx_armed_ && rx_->queue.bytes() <= receive_high_water_ / 2) {
        paused_ = false;
        arm_receive();
    }
    return_rx_if_idle();
}

void socket_core::drop_received() noexcept {
    if (rx_) rx_->queue.clear([this](const received_chunk& c) { release_chunk(c); });
}

void socket_core::queue_received(std::size_t n) {
    throw_if_cannot_send();
    while (n > 0 && rx_ && !rx_->queue.empty()) {
        const std::span<std::byte> view = rx_->queue.front();
        const std::size_t take = std::min(n, view.size());
        const int id = rx_->queue.front_buffer_id();
        if (id >= 0) {
            reactor_->recv_buffers().hold(static_cast<std::uint16_t>(id));
            tx().queue.append_received(view.data(), take, id);
            schedule_flush();
        } else {
            std::memcpy(queue_space(take).data(), view.data(), take);  // a fallback buffer of our own
        }
        n -= take;
        consume(take);
    }
}

void socket_core::push_chunk(std::byte* data, std::size_t size, int buffer_id) {
    rx().queue.push(received_chunk{data, size, buffer_id});
    if (rx_armed_ && !paused_ && rx_->queue.bytes() > receive_high_water_) {
        // The reader is behind: stop taking buffers; TCP's window holds the peer back.
        paused_ = true;
        reactor_->cancel(op_id(recv_tag()));
    }
}

template <bool Tls>
void socket_core::received(std::byte* data, std::size_t size, int buffer_id) {
    if constexpr (Tls)
        static_cast<tls_socket*>(this)->received_records(data, size, buffer_id);
    else
        push_chunk(data, size, buffer_id);
}

// Makes sure some receive is in flight for a reader about to wait.
void socket_core::ensure_receiving() {
    if (rx_armed_ || fallback_armed_ || eof_ || rx_error_ || fd_ < 0 || paused_) return;
    if (reactor_->recv_buffers().available() > 0)
        arm_multishot();
    else
        arm_fallback();
}

// Arms a receive unless one is in flight (multishot or fallback): two at
// once could deliver bytes out of order.
void socket_core::arm_receive() {
    if (fd_ < 0 || eof_ || rx_error_ || rx_armed_ || fallback_armed_) return;
    if (reactor_->recv_buffers().available() > 0)
        arm_multishot();
    else if (reader_)
        arm_fallback();
    else
        reactor_->at_turn_end(rx().rearm);  // wait for buffers to come back
}

void socket_core::arm_multishot() {
    io_uring_sqe* sqe = reactor_->acquire_sqe();
    io_uring_prep_recv_multishot(sqe, fd_, nullptr, 0, 0);
    target(sqe);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = reactor_->recv_buffers().group_id();
    io_uring_sqe_set_data64(sqe, tagged(this, recv_tag()));
    rx_armed_ = true;
    ++pending_;
}

// The ring is dry and a reader waits: receive into memory of our own.
void socket_core::arm_fallback() {
    const std::size_t size = reactor_->recv_buffers().buffer_size();
    receive_side& r = rx();
    r.fallback.reset(new std::byte[size]);
    io_uring_sqe* sqe = reactor_->acquire_sqe();
    io_uring_prep_recv(sqe, fd_, r.fallback.get(), size, 0);
    target(sqe);
    io_uring_sqe_set_data64(sqe, tagged(this, fallback_tag()));
    fallback_armed_ = true;
    ++pending_;
}

void socket_core::run_rearm() {
    if (released_) {
        finish_operation();
        return;
    }
    if (fd_ < 0) {  // closed while a reader waited
        return_rx_if_idle();
        return wake_reader();  // last: it may free this core
    }
    if (!paused_) arm_receive();
    return_rx_if_idle();
}

void socket_core::start_read_wait(read_waiter& w, deadline d) {
    // One reader at a time; one that is replaced stops waiting (as before: it is not woken).
    if (reader_ && reader_ != &w) cancel_read_wait(*reader_);
    ensure_receiving();
    reader_timed_out_ = false;
    w.timer = d.is_set() ? reactor_->arm_wait_timer(d, &socket_core::on_reader_timeout, this) : nullptr;
    w.core = this;
    reader_ = &w;
}

// The reader stops waiting without being woken (it is being destroyed, or
// the socket is released under it).
void socket_core::cancel_read_wait(read_waiter& w) noexcept {
    if (w.timer) reactor_->disarm_wait_timer(std::exchange(w.timer, nullptr));
    w.core = nullptr;
    if (reader_ == &w) reader_ = nullptr;
}

// What ended a wait. Data wins over a timer that fired with it.
tcp_stream::read_status socket_core::finish_read_wait() noexcept {
    if (!front().empty()) return tcp_stream::read_status::data;
    if (reader_timed_out_) {
        reader_timed_out_ = false;
        return tcp_stream::read_status::timed_out;
    }
    if (rx_error_ != 0) return tcp_stream::read_status::failed;
    return tcp_stream::read_status::ended;
}

void socket_core::on_reader_timeout(void* p) {
    auto* s = static_cast<socket_core*>(p);
    if (s->reader_) s->reader_->timer = nullptr;
    s->reader_timed_out_ = true;
    s->wake_reader();
}

// Resumes a waiting reader once there is something to tell it (bytes, end
// of stream, an error, its deadline); otherwise keeps receiving. The reader
// runs here and may free this core: callers touch nothing after it.
void socket_core::wake_reader() {
    if (!reader_) return;
    if (buffered() == 0 && !at_end() && !reader_timed_out_) {
        ensure_receiving();
        return;
    }
    read_waiter* w = std::exchange(reader_, nullptr);
    if (w->timer) reactor_->disarm_wait_timer(std::exchange(w->timer, nullptr));
    w->core = nullptr;
    w->run(w);
}

void socket_core::throw_if_receive_failed() const {
    if (buffered() != 0 || rx_error_ == 0) return;
    if (tls_) static_cast<const tls_socket*>(this)->throw_if_failed(rx_error_);
    throw std::system_error(rx_error_, std::system_category(), "cnetmod: tcp_stream receive");
}

void socket_core::fail_receive(int error) noexcept {
    if (rx_error_ == 0) rx_error_ = static_cast<std::uint16_t>(error);
    if (rx_armed_) reactor_->cancel(op_id(recv_tag()));
}

template <bool Tls>
void socket_core::on_recv(socket_core* s, int result, std::uint32_t flags) {
    if (flags & IORING_CQE_F_BUFFER) {
        const auto id = static_cast<std::uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
        s->reactor_->recv_buffers().taken(id);
        if (result > 0) s->reactor_->bytes_received_counter().add(static_cast<std::uint64_t>(result));
        if (result > 0 && !s->released_)
            s->received<Tls>(s->reactor_->recv_buffers().data(id), static_cast<std::size_t>(result), id);
        else
            s->reactor_->recv_buffers().release(id);
    }
    if (result == 0)
        s->eof_ = true;
    else if (result == -ENOBUFS)
        s->starved_ = true;  // flow control, not an error: re-armed once buffers return
    else if (result < 0 && result != -ECANCELED)
        s->rx_error_ = static_cast<std::uint16_t>(-result);
    if (!(flags & IORING_CQE_F_MORE)) {
        s->rx_armed_ = false;
        if (s->finish_operation() || s->released_) return;
        if (s->starved_) {
            s->starved_ = false;
            s->arm_receive();
        } else if (result > 0 && !s->paused_) {
            s->arm_receive();  // the kernel ended the multishot for its own reasons
        } else if (s->paused_ && s->buffered() <= s->receive_high_water_ / 2) {
            s->paused_ = false;
            s->arm_receive();
        }
    }
    if (!s->released_) s->wake_reader();
}

template <bool Tls>
void socket_core::on_fallback_recv(socket_core* s, int result) {
    s->fallback_armed_ = false;
    std::unique_ptr<std::byte[]> buffer = std::move(s->rx_->fallback);
    if (s->finish_operation() || s->released_) return;
    if (result > 0) {
        s->reactor_->bytes_received_counter().add(static_cast<std::uint64_t>(result));
        s->received<Tls>(buffer.release(), static_cast<std::size_t>(result), -1);
    } else if (result == 0)
        s->eof_ = true;
    else if (result != -ECANCELED)
        s->rx_error_ = static_cast<std::uint16_t>(-result);
    if (result > 0) s->arm_receive();
    s->return_rx_if_idle();
    s->wake_reader();  // last: the reader may free this core
}

// ---- sending ----

void socket_core::throw_if_cannot_send() const {
    if (fd_ < 0 || shut_down_)
        throw std::system_error(std::make_error_code(std::errc::not_connected), "cnetmod: tcp_stream is closed");
    if (tls_) static_cast<const tls_socket*>(this)->throw_if_failed(0);
    if (tx_error_) throw std::system_error(tx_error_, std::system_category(), "cnetmod: tcp_stream send");
}

void socket_core::schedule_flush() {
    reactor_->at_turn_end(tx().flush);
}

std::span<std::byte> socket_core::queue_space(std::size_t n) {
    throw_if_cannot_send();
    if (n == 0) return {};
    const auto bytes = tx().queue.append_space(n);
    schedule_flush();
    return bytes;
}

void socket_core::queue(shared_buffer buffer) {
    throw_if_cannot_send();
    if (buffer.empty()) return;
    tx().queue.append(std::move(buffer));
    schedule_flush();
}

void socket_core::queue(registered_buffer buffer) {
    throw_if_cannot_send();
    if (buffer.size() == 0) return;
    if (buffer.size() < reactor_->options().send_zc_threshold) {
        // Below the crossover a copy is cheaper than pinning pages.
        const auto bytes = buffer.bytes();
        std::memcpy(queue_space(bytes.size()).data(), bytes.data(), bytes.size());
        return;
    }
    tx().queue.append(std::move(buffer));
    schedule_flush();
}

std::size_t socket_core::unsent_bytes() const noexcept {
    const std::size_t queued = tx_ ? tx_->queue.bytes() : 0;
    return tls_ ? queued + static_cast<const tls_socket*>(this)->pending_output() : queued;
}

std::size_t socket_core::send_capacity() const noexcept {
    return tx_ ? tx_->queue.capacity() : 0;
}

void socket_core::run_flush() {
    if (released_) {
        finish_operation();
        return;
    }
    if (tls_)
        static_cast<tls_socket*>(this)->flush_records();
    else
        flush();
    return_tx_if_idle();
}

void socket_core::flush() {
    if (send_inflight_ || !tx_ || !tx_->queue.has_queued() || fd_ < 0) return;
    tx_->queue.start_batch();
    submit_send();
}

void socket_core::submit_send() {
    send_queue& q = tx_->queue;
    const send_queue::next_send next = q.prepare_send();
    io_uring_sqe* sqe = reactor_->acquire_sqe();
    send_is_zero_copy_ = next.fixed != nullptr;
    if (send_is_zero_copy_) {
        io_uring_prep_send_zc_fixed(sqe, fd_, next.fixed_bytes.data(), next.fixed_bytes.size(), MSG_NOSIGNAL, 0,
                                    next.fixed->index());
        ++zero_copy_sends_;
    } else if (next.iov.size() == 1) {
        // One contiguous run: a plain send skips sendmsg's header and iovec import.
        io_uring_prep_send(sqe, fd_, next.iov[0].iov_base, next.iov[0].iov_len, MSG_NOSIGNAL);
    } else {
        tx_->msg = {};
        tx_->msg.msg_iov = next.iov.data();
        tx_->msg.msg_iovlen = next.iov.size();
        io_uring_prep_sendmsg(sqe, fd_, &tx_->msg, MSG_NOSIGNAL);
    }
    target(sqe);
    io_uring_sqe_set_data64(sqe, tagged(this, op_send));
    send_inflight_ = true;
    ++pending_;
    ++send_calls_;
}

void socket_core::on_send(socket_core* s, int result, std::uint32_t flags) {
    if (flags & IORING_CQE_F_NOTIF) {
        // The kernel let go of a zero-copy send's pages (in order per socket).
        s->tx_->zc_holds.erase(s->tx_->zc_holds.begin());
        if (s->finish_operation() || s->released_) return;
        s->return_tx_if_idle();
        return;
    }
    s->send_inflight_ = false;
    send_queue& q = s->tx_->queue;
    if (s->send_is_zero_copy_ && (flags & IORING_CQE_F_MORE)) {
        // A notification follows: the buffer stays held until then (also a
        // partly sent one whose socket closed: its rest will not be sent).
        ++s->pending_;
        const bool whole = result >= 0 && q.front_fully_sent_by(static_cast<std::size_t>(result));
        s->tx_->zc_holds.push_back(whole || s->fd_ < 0 ? q.take_sent_fixed() : registered_buffer{});
    }
    if (s->finish_operation() || s->released_) return;
    if (result < 0) {
        s->fail_send(result == -ECANCELED ? 0 : -result);
        return;
    }
    s->reactor_->bytes_sent_counter().add(static_cast<std::uint64_t>(result));
    q.advance(static_cast<std::size_t>(result), s->buffer_releaser());
    if (!q.batch_sent() && s->fd_ >= 0) {
        s->submit_send();  // partial send: the rest goes before anything newer
    } else if (!q.batch_sent()) {
        q.drop_all(false, s->buffer_releaser());  // closed mid-batch
    } else {
        q.end_batch();
        if (q.has_queued() || (s->tls_ && static_cast<tls_socket*>(s)->pending_output() > 0)) s->schedule_flush();
    }
    s->wake_writers();
    s->return_tx_if_idle();
}

void socket_core::fail_send(int error) noexcept {
    if (error != 0 && tx_error_ == 0) tx_error_ = static_cast<std::uint16_t>(error);
    drop_queued();
    wake_writers();
    return_tx_if_idle();
}

std::size_t socket_core::discard_queued() noexcept {
    if (!tx_) return 0;
    const std::size_t n = tx_->queue.discard_queued(buffer_releaser());
    wake_writers();
    return_tx_if_idle();
    return n;
}

void socket_core::drop_queued() noexcept {
    if (tx_) tx_->queue.drop_all(send_inflight_, buffer_releaser());
}

void socket_core::add_writer(drain_waiter& w) {
    tx().writers.push_back(&w);
}

void socket_core::remove_writer(drain_waiter& w) noexcept {
    if (!tx_) return;
    std::erase(tx_->writers, &w);
    return_tx_if_idle();
}

void socket_core::wake_writers() noexcept {
    if (!tx_) return;
    // Wake, in order, every writer whose threshold is met.
    auto& writers = tx_->writers;
    for (std::size_t i = 0; i < writers.size();) {
        drain_waiter* w = writers[i];
        if (unsent_bytes() <= w->threshold || tx_error_ || fd_ < 0) {
            writers.erase(writers.begin() + static_cast<std::ptrdiff_t>(i));
            w->woken = true;  // its deadline, if it fires before it runs, must not resume it again
            reactor_->schedule(w->handle);
        } else {
            ++i;
        }
    }
}

// ---- closing ----

task<void> socket_core::shutdown_send() {
    if (fd_ < 0 || shut_down_) co_return;
    shut_down_ = true;
    const int fd = fd_;
    int rc =
        co_await submit(reactor_->context(), [fd](io_uring_sqe* sqe) { io_uring_prep_shutdown(sqe, fd, SHUT_WR); });
    (void)rc;  // ENOTCONN when the peer already reset: nothing left to shut
}

void socket_core::close_now(bool reset) noexcept {
    if (fd_ < 0) return;
    if (reset) {
        linger l{1, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    if (rx_armed_) reactor_->cancel(op_id(recv_tag()));
    if (fallback_armed_) reactor_->cancel(op_id(fallback_tag()));
    if (send_inflight_) reactor_->cancel(op_id(op_send));
    // The table's reference would keep the socket open past close(): if it
    // cannot be emptied, the connection is shut down here instead.
    if (!reactor_->unregister_file(std::exchange(slot_, -1))) ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    fd_ = -1;
    drop_queued();
    // A waiting reader resumes in the loop, not inside the caller that closed.
    if (reader_) reactor_->at_turn_end(rx().rearm);
    wake_writers();
    return_tx_if_idle();
}

void socket_core::release() noexcept {
    if (reader_) cancel_read_wait(*reader_);
    if (tls_) static_cast<tls_socket*>(this)->released();
    close_now(false);
    released_ = true;
    drop_received();
    // Hooks already queued for this turn still name this core: each counts.
    if (rx_ && rx_->rearm.queued) ++pending_;
    if (tx_ && tx_->flush.queued) ++pending_;
    if (pending_ == 0) {
        destroy();
        return;
    }
    orphan_ = new socket_orphan(this);
    reactor_->add_orphan(*orphan_);  // the last CQE frees this core, or the context does
}

// Called by each CQE handler and released hook: true when this core was freed.
bool socket_core::finish_operation() noexcept {
    if (--pending_ == 0 && released_) {
        reactor_->remove_orphan(*orphan_);
        delete orphan_;
        destroy();
        return true;
    }
    return false;
}

void socket_core::on_completion(void* object, unsigned tag, int result, std::uint32_t flags) {
    auto* s = static_cast<socket_core*>(object);
    switch (tag) {
        case op_recv:
            return on_recv<false>(s, result, flags);
        case op_fallback:
            return on_fallback_recv<false>(s, result);
        case op_tls_recv:
            return on_recv<true>(s, result, flags);
        case op_tls_fallback:
            return on_fallback_recv<true>(s, result);
        case op_send:
            return on_send(s, result, flags);
    }
}

void socket_completion(void* object, unsigned tag, int result, std::uint32_t flags) {
    socket_core::on_completion(object, tag, result, flags);
}

}  // namespace cnetmod::detail
