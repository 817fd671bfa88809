// The socket core: one connected socket on one io_context — its descriptor,
// the operations the kernel holds for it, and its lifetime. What only a busy
// socket needs (the receive queue with a fallback buffer, the send queue with
// its waiting writers and zero-copy holds) is lent by the core's pools while
// bytes wait and given back when the socket goes idle, so an idle socket is
// the 64 bytes below and nothing else.
//
// Receiving: one multishot recv into the core's provided-buffer ring; each
// buffer goes back to the ring once its bytes are consumed. Above
// `receive_high_water` unconsumed bytes the recv is cancelled (TCP's window
// then holds the peer back) and armed again once the reader catches up.
// -ENOBUFS is flow control, not an error: the core re-arms when buffers come
// back, and a reader that waits meanwhile is served by a plain recv into a
// buffer of the socket's own, so no connection starves the others.
//
// Sending: queued bytes go out at the end of the loop turn as one gathered
// send; while it is in flight new bytes fill the send queue's other arena.
//
// Every SQE's user_data is this object's address with an operation tag
// (completion.hpp), so no completion object exists per operation. TLS is a
// layer over the core (tls_socket.hpp): a plain socket holds no TLS state.
#pragma once

#include <cnetmod/engine/detail/completion.hpp>
#include <cnetmod/engine/detail/provided_buffer_ring.hpp>
#include <cnetmod/engine/detail/reactor.hpp>
#include <cnetmod/engine/detail/receive_queue.hpp>
#include <cnetmod/engine/detail/send_queue.hpp>
#include <cnetmod/engine/io_context.hpp>
#include <cnetmod/engine/tcp_stream.hpp>

#include <coroutine>
#include <cstdint>
#include <vector>

namespace cnetmod::detail {

struct receive_side;
struct send_side;
struct socket_orphan;

// A writer waiting for the send queue to fall to `threshold` bytes.
struct drain_waiter {
    std::size_t threshold = 0;
    std::coroutine_handle<> handle{};
    bool woken = false;  // taken off the list and scheduled
};

class socket_core {
public:
    // Operation tags carried in user_data.
    // Operation tags carried in user_data. A TLS socket's receives carry
    // tags of their own, so the plain receive path has no TLS branch.
    enum op_tag : unsigned { op_recv = 1, op_fallback = 2, op_send = 3, op_tls_recv = 5, op_tls_fallback = 6 };

    static void* operator new(std::size_t n);
    static void operator delete(void* p, std::size_t n) noexcept;

    socket_core(io_context& ctx, int fd, const stream_options& options);
    socket_core(const socket_core&) = delete;
    ~socket_core() = default;
    socket_core& operator=(const socket_core&) = delete;

    io_context& ctx() const noexcept { return reactor_->context(); }
    reactor& home() const noexcept { return *reactor_; }
    int fd() const noexcept { return fd_; }
    bool is_open() const noexcept { return fd_ >= 0; }
    bool is_tls() const noexcept { return tls_; }
    bool is_registered() const noexcept { return slot_ >= 0; }

    // ---- receiving ----

    std::size_t buffered() const noexcept;
    // The oldest unconsumed bytes (one chunk's worth), or empty.
    std::span<std::byte> front() const noexcept;
    bool at_end() const noexcept { return buffered() == 0 && (eof_ || rx_error_ != 0 || fd_ < 0); }
    void consume(std::size_t n) noexcept;
    // Moves the next `n` received bytes into the send queue by reference.
    void queue_received(std::size_t n);
    // A reader about to wait: receive if nothing is in flight, arm its deadline.
    void start_read_wait(read_waiter& w, deadline d);
    tcp_stream::read_status finish_read_wait() noexcept;
    // `w` stops waiting without being woken (it is being destroyed, or the
    // socket is released under it).
    void cancel_read_wait(read_waiter& w) noexcept;
    void throw_if_receive_failed() const;

    // ---- sending ----

    void throw_if_cannot_send() const;
    std::span<std::byte> queue_space(std::size_t n);
    void queue(shared_buffer buffer);
    void queue(registered_buffer buffer);
    // Bytes the kernel has not taken: queued, in flight, and (TLS) records
    // the session holds for the next send.
    std::size_t unsent_bytes() const noexcept;
    std::size_t discard_queued() noexcept;
    std::size_t send_capacity() const noexcept;
    std::uint64_t send_calls() const noexcept { return send_calls_; }
    std::uint64_t zero_copy_sends() const noexcept { return zero_copy_sends_; }
    std::size_t send_high_water() const noexcept { return send_high_water_; }
    int send_error() const noexcept { return tx_error_; }
    // Writers wait here (tcp_stream::send, drain); woken in order once their
    // threshold is met, the socket fails or closes.
    void add_writer(drain_waiter& w);
    void remove_writer(drain_waiter& w) noexcept;

    // ---- closing ----

    task<void> shutdown_send();
    // Closes the descriptor at once; pending operations are cancelled.
    void close_now(bool reset) noexcept;
    // The handle is gone: close, and free this core once the kernel is done
    // with it and the loop has run the hooks it queued for the turn's end.
    void release() noexcept;

    // Dispatches a CQE whose user_data named this core (completion.hpp).
    static void on_completion(void* object, unsigned tag, int result, std::uint32_t flags);

protected:
    // A TLS layer taking over an idle socket that nothing names yet.
    struct relocating {};
    socket_core(relocating, const socket_core& from) noexcept;

    friend class tls_socket;
    friend struct receive_side;
    friend struct send_side;
    friend struct socket_orphan;

    // Bytes the socket delivered: a plain socket queues them; a TLS one decrypts.
    template <bool Tls>
    void received(std::byte* data, std::size_t size, int buffer_id);
    op_tag recv_tag() const noexcept { return tls_ ? op_tls_recv : op_recv; }
    op_tag fallback_tag() const noexcept { return tls_ ? op_tls_fallback : op_fallback; }
    void push_chunk(std::byte* data, std::size_t size, int buffer_id);
    void release_chunk(const received_chunk& c) noexcept;
    receive_side& rx();
    send_side& tx();
    void return_rx_if_idle() noexcept;
    void return_tx_if_idle() noexcept;
    void ensure_receiving();
    void arm_receive();
    void arm_multishot();
    void arm_fallback();
    void wake_reader();
    void wake_writers() noexcept;
    // The end-of-turn flush, with the send side it needs.
    void schedule_flush();
    // Gives back a provided buffer whose bytes the send queue forwarded
    // (queue_received) once they are sent or dropped.
    auto buffer_releaser() noexcept {
        return [this](int id) { reactor_->recv_buffers().release(static_cast<std::uint16_t>(id)); };
    }
    // The end-of-turn hooks of the lent sides (they count as operations once released).
    void run_flush();
    void run_rearm();
    void flush();
    void submit_send();
    void drop_queued() noexcept;
    void drop_received() noexcept;
    void fail_receive(int error) noexcept;
    void fail_send(int error) noexcept;
    bool finish_operation() noexcept;
    void destroy() noexcept;
    // Points a prepared SQE at this socket by its registered slot, when it has one.
    void target(io_uring_sqe* sqe) const noexcept;
    const void* op_id(op_tag tag) const noexcept { return reinterpret_cast<const void*>(tagged(this, tag)); }

    template <bool Tls>
    static void on_recv(socket_core* s, int result, std::uint32_t flags);
    template <bool Tls>
    static void on_fallback_recv(socket_core* s, int result);
    static void on_send(socket_core* s, int result, std::uint32_t flags);
    static void on_reader_timeout(void* p);

    reactor* reactor_;            // the core's loop (io_context's engine side)
    receive_side* rx_ = nullptr;  // lent while bytes are buffered or a fallback recv is in flight
    send_side* tx_ = nullptr;     // lent while bytes are queued, in flight or held for SEND_ZC
    union {
        read_waiter* reader_;    // the reader waiting for bytes (one at most)
        socket_orphan* orphan_;  // after release, while the kernel still holds operations
    };
    int fd_;
    int slot_ = -1;              // in the ring's registered-file table, or -1: operations name fd_
    std::uint16_t pending_ = 0;  // operations the kernel holds that name this core (and queued hooks, once released)
    std::uint16_t rx_error_ = 0;
    std::uint16_t tx_error_ = 0;
    bool rx_armed_ : 1 = false;        // multishot recv in flight
    bool fallback_armed_ : 1 = false;  // plain recv into the fallback buffer in flight
    bool paused_ : 1 = false;          // recv cancelled while the reader catches up
    bool starved_ : 1 = false;         // the multishot ended with -ENOBUFS
    bool eof_ : 1 = false;
    bool released_ : 1 = false;
    bool shut_down_ : 1 = false;
    bool send_inflight_ : 1 = false;
    bool send_is_zero_copy_ : 1 = false;
    bool reader_timed_out_ : 1 = false;
    bool tls_ : 1 = false;  // this is a tls_socket
    std::uint32_t receive_high_water_;
    std::uint32_t send_high_water_;
    std::uint32_t send_calls_ = 0;
    std::uint32_t zero_copy_sends_ = 0;
};

// The receive side of a busy socket: its queue, the buffer of a fallback
// recv, and the hook that re-arms receiving (or wakes a frameless reader of
// a closed socket) at the end of the turn.
struct receive_side {
    receive_queue queue;
    std::unique_ptr<std::byte[]> fallback;
    struct hook : turn_hook {
        socket_core* core = nullptr;
        using turn_hook::turn_hook;
    } rearm{[](turn_hook* h) { static_cast<hook*>(h)->core->run_rearm(); }};
};

// The send side of a busy socket: its queue, the writers waiting for room,
// the registered buffers of zero-copy sends until the kernel lets go of
// their pages, and the end-of-turn flush.
struct send_side {
    send_queue queue;
    std::vector<drain_waiter*> writers;
    std::vector<registered_buffer> zc_holds;
    struct hook : turn_hook {
        socket_core* core = nullptr;
        using turn_hook::turn_hook;
    } flush{[](turn_hook* h) { static_cast<hook*>(h)->core->run_flush(); }};
    msghdr msg{};
};

// Receive and send sides the calling thread's sockets hold now: 0 once every
// socket on it is idle.
std::size_t lent_socket_sides() noexcept;

// An idle plain socket holds this much engine state and nothing more.
static_assert(sizeof(socket_core) <= 64, "an idle socket's engine state must fit in 64 bytes");

}  // namespace cnetmod::detail
