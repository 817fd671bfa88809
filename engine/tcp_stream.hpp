/// @file
/// tcp_stream: a connected TCP socket on one io_context.
///
/// Receiving: one multishot recv (kernel 6.0) fills buffers from the core's
/// provided-buffer ring as data arrives; the stream keeps the filled buffers
/// in order and hands out views of them. Each buffer goes back to the ring as
/// soon as its bytes are consumed, so an idle connection holds no receive
/// buffer. When more than `receive_high_water` bytes wait unconsumed, the
/// recv is cancelled (TCP flow control then holds the peer back) and armed
/// again once the reader catches up. When the ring runs dry (-ENOBUFS) the
/// stream re-arms once buffers come back, and a reader that is waiting
/// meanwhile is served by a plain recv into memory of its own, so no
/// connection can starve the others and no byte is lost.
///
/// Sending: bytes are copied into the stream's send queue (or a
/// shared_buffer is referenced) and the whole queue goes out at the end of
/// the loop turn as one sendmsg with gathered iovecs, so many small sends in
/// one turn cost one system call. While a sendmsg is in flight, new bytes
/// fill a second buffer.
#pragma once

#include <cnetmod/engine/deadline.hpp>
#include <cnetmod/engine/endpoint.hpp>
#include <cnetmod/engine/io_context.hpp>
#include <cnetmod/engine/registered_buffer.hpp>
#include <cnetmod/engine/shared_buffer.hpp>
#include <cnetmod/engine/task.hpp>

#include <coroutine>
#include <cstddef>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>

namespace cnetmod {

class io_context;
class tls_context;

namespace detail {
class socket_core;
struct wait_timer;
// Send queues the calling thread has allocated (the rest came from its pool).
std::size_t send_queue_allocations() noexcept;
}  // namespace detail

/// A reader that waits without a coroutine frame of its own (see
/// tcp_stream::wait_readable): `run` is called in the loop when it may go on.
/// Destroying a waiter that is still registered cancels its wait.
struct read_waiter {
    /// What is called when the reader may go on; it receives the waiter itself.
    using function = void (*)(read_waiter*);
    /// A waiter that calls `f` (it is not registered until tcp_stream::wait_readable).
    explicit read_waiter(function f) noexcept : run(f) {}
    read_waiter(const read_waiter&) = delete;
    read_waiter& operator=(const read_waiter&) = delete;
    /// Cancels the wait, if still registered.
    ~read_waiter();

    /// Called in the loop when the reader may go on.
    function run;
    detail::socket_core* core = nullptr;  ///< the socket waited on, while registered
    detail::wait_timer* timer = nullptr;  ///< the wait's deadline, while armed
};

/// Buffering bounds and socket options of one tcp_stream.
struct stream_options {
    /// Unconsumed received bytes above which receiving pauses.
    std::size_t receive_high_water = 1024 * 1024;
    /// Queued unsent bytes above which send() suspends until they fall to half.
    std::size_t send_high_water = 1024 * 1024;
    /// TCP_NODELAY: the send queue already batches, so Nagle only adds latency.
    bool no_delay = true;
};

/// A connected TCP socket on one io_context: received bytes are read in place from the core's buffers, sends are
/// queued and flushed once per loop turn, and TLS may run underneath. Move-only; used on its context's thread only.
/// An operation on an empty (default-made or moved-from) stream throws std::system_error (ENOTCONN).
class tcp_stream {
public:
    /// An empty stream, holding no socket.
    tcp_stream() noexcept = default;
    /// Adopts a connected socket.
    tcp_stream(io_context& ctx, int fd, stream_options options = {});
    /// Takes over `other`'s socket; `other` is left empty.
    tcp_stream(tcp_stream&& other) noexcept;
    /// Closes the socket held at once (as the destructor does) and takes over `other`'s.
    tcp_stream& operator=(tcp_stream&& other) noexcept;
    tcp_stream(const tcp_stream&) = delete;
    tcp_stream& operator=(const tcp_stream&) = delete;
    /// Closes the socket at once (pending operations are cancelled, unsent
    /// bytes dropped). Use close() for a graceful end.
    ~tcp_stream();

    /// Whether the stream holds a socket that is not closed.
    bool is_open() const noexcept;
    /// The socket's descriptor, or -1 when empty.
    int native_handle() const noexcept;
    /// The context the stream belongs to (the stream must not be empty).
    io_context& context() const noexcept;
    /// The ring names this socket by a slot of its registered-file table
    /// (io_context_options::registered_files, at most RLIMIT_NOFILE slots),
    /// not by its descriptor.
    bool is_registered() const noexcept;
    /// The socket's own address. Throws std::system_error (getsockname).
    ip_endpoint local_endpoint() const;
    /// The peer's address. Throws std::system_error (getpeername).
    ip_endpoint remote_endpoint() const;

    // ---- receiving ----

    /// What recv_view returns: awaiting it needs no coroutine frame of its own.
    class receive_awaiter {
    public:
        /// An awaiter on `s` with deadline `d` (recv_view() makes it).
        receive_awaiter(detail::socket_core* s, deadline d) noexcept : s_(s), d_(d) {}
        /// Whether bytes (or the end of the stream) are already there.
        bool await_ready() const noexcept;
        /// Registers the awaiting coroutine as the stream's reader.
        void await_suspend(std::coroutine_handle<> h);
        /// The view recv_view() promises; throws as it says.
        std::span<const std::byte> await_resume();

    private:
        // The awaiting coroutine, as the socket's reader.
        struct resumer : read_waiter {
            std::coroutine_handle<> handle;
            resumer() : read_waiter([](read_waiter* w) { static_cast<resumer*>(w)->handle.resume(); }) {}
        };
        detail::socket_core* s_;
        deadline d_;
        resumer waiter_;
    };

    /// Waits for received bytes and returns a view of the oldest unconsumed
    /// ones (one buffer's worth at most). The view stays valid until the next
    /// consume(), recv*() or close on this stream. Empty at end of stream.
    /// Throws std::system_error on a socket error, ETIMEDOUT past the deadline.
    receive_awaiter recv_view(deadline d = {}) noexcept { return receive_awaiter(state_, d); }
    /// How a frameless wait (wait_readable()) ended, as finish_wait_readable() tells.
    enum class read_status {
        data,       ///< bytes are buffered
        ended,      ///< end of stream, or an empty stream
        timed_out,  ///< the deadline passed
        failed      ///< a socket error (or a TLS failure)
    };
    /// The frameless form of recv_view, for a reader that is a state machine (the WebSocket frame reader keeps an
    /// idle connection without any coroutine frame this way): `w.run(&w)` is called in the loop once bytes, end of
    /// stream, an error or the deadline arrive; the reader then asks finish_wait_readable() which, and reads through
    /// writable_view(). One reader at a time.
    void wait_readable(read_waiter& w, deadline d = {});
    /// After `w.run`: why the wait ended (ended also for an empty stream).
    read_status finish_wait_readable() noexcept;
    /// Nothing buffered and nothing more to come (end of stream, an error, or closed).
    bool at_end() const noexcept;
    /// Marks `n` bytes of the current view consumed; whole buffers go back to the ring.
    void consume(std::size_t n) noexcept;
    /// The current view's bytes, writable in place (a WebSocket payload is
    /// unmasked where it landed). Empty when nothing is buffered.
    std::span<std::byte> writable_view() noexcept;
    /// Copies up to out.size() received bytes; 0 at end of stream.
    /// Throws as recv_view() does.
    task<std::size_t> recv(std::span<std::byte> out, deadline d = {});
    /// Bytes received and not yet consumed.
    std::size_t buffered() const noexcept;

    // ---- sending ----

    /// Queues a copy of `bytes` for the end-of-turn flush; never suspends.
    void queue(std::span<const std::byte> bytes);
    /// Queues a copy of `text`, as bytes; never suspends.
    void queue(std::string_view text) { queue(std::as_bytes(std::span(text.data(), text.size()))); }
    /// Queues a reference to a shared buffer (no copy).
    void queue(shared_buffer buffer);
    /// Queues the next `n` received bytes (from the current recv_view) for
    /// sending without copying them, and consumes them: the receive buffer
    /// returns to the ring once the send is done. An echo or a proxy forwards
    /// data this way.
    void queue_received(std::size_t n);
    /// Queues a registered buffer: at or above the context's send_zc_threshold
    /// it is sent with SEND_ZC straight from its pages, and returns to its pool
    /// once the kernel is done with it; below, its bytes are copied.
    void queue(registered_buffer buffer);
    /// Queues `bytes`; completes at once while the queue is under the
    /// high-water mark, else suspends until it drains to half of it.
    /// Throws std::system_error on a socket error, ETIMEDOUT past the deadline.
    task<void> send(std::span<const std::byte> bytes, deadline d = {});
    /// Sends `text` as bytes, as send(std::span<const std::byte>, deadline) does.
    task<void> send(std::string_view text, deadline d = {}) {
        return send(std::as_bytes(std::span(text.data(), text.size())), d);
    }
    /// Reserves `n` bytes at the end of the send queue for the caller to fill
    /// (a frame built in place); valid until the next queue call. Never suspends.
    std::span<std::byte> queue_space(std::size_t n);
    /// Waits until every queued byte has been accepted by the kernel.
    /// Throws std::system_error on a socket error, ETIMEDOUT past the deadline.
    task<void> drain(deadline d = {});
    /// Waits until at most `bytes` remain queued.
    /// Throws like drain().
    task<void> drain_to(std::size_t bytes, deadline d = {});
    /// Bytes queued or in flight, not yet accepted by the kernel.
    std::size_t queued_bytes() const noexcept;
    /// Drops the bytes queued and not yet handed to the kernel (a send in
    /// flight still completes), e.g. for a peer that is being cut off for
    /// not reading; writers waiting for room are woken. Returns the bytes dropped.
    std::size_t discard_queued() noexcept;
    /// System calls that sent data, for tests and benchmarks.
    std::uint64_t send_calls() const noexcept;
    /// Of those, the zero-copy ones (SEND_ZC).
    std::uint64_t zero_copy_sends() const noexcept;
    /// Bytes of send-queue memory this stream holds. An idle stream holds
    /// none: its queue goes back to the core's pool once it drains (keeping
    /// at most 64 KiB per arena there) and is borrowed again by the next send.
    std::size_t send_capacity() const noexcept;

    // ---- TLS ----

    /// Runs TLS over this stream from now on (server or client, as `context`
    /// is): readers and writers see plaintext; the records move underneath
    /// (OpenSSL over in-memory queues, no extra system calls). A client sends
    /// its hello at once, with `server_name` as SNI and the name its certificate
    /// must carry; bytes queued before the handshake ends wait for it. A
    /// handshake that fails, or is not done by `handshake_deadline`, shows as
    /// a receive error (std::system_error, "cnetmod: TLS: <reason>").
    /// TLS starts on a new connection: on a stream that has received, sent or
    /// waited for anything, start_tls throws std::logic_error.
    void start_tls(const tls_context& context, std::string_view server_name = {}, deadline handshake_deadline = {});
    /// Whether TLS runs over this stream (start_tls() was called).
    bool is_tls() const noexcept;
    /// The TLS session failed (handshake, verification, a bad record); tls_error() says why.
    bool tls_failed() const noexcept;
    /// Why the TLS session failed, in OpenSSL's words; empty when it did not, or without TLS.
    std::string tls_error() const;
    /// After the handshake: the protocol version, "TLSv1.3"; empty without TLS.
    std::string_view tls_version() const noexcept;
    /// After the handshake: the ALPN protocol agreed ("http/1.1"), or empty.
    std::string_view alpn() const noexcept;

    // ---- closing ----

    /// Graceful close: sends what is queued, shuts down the sending side, waits
    /// (until the deadline) for the peer to finish, then closes the socket.
    task<void> close(deadline d = timeout(std::chrono::seconds(5)));
    /// Abortive close: drops what is queued and resets the connection (RST).
    void abort() noexcept;

private:
    detail::socket_core* state_ = nullptr;
};

/// Connects to `endpoint`. Throws std::system_error (ECONNREFUSED,
/// ETIMEDOUT past the deadline, ECANCELED on stop).
task<tcp_stream> tcp_connect(io_context& ctx, ip_endpoint endpoint, deadline d = {}, std::stop_token stop = {},
                             stream_options options = {});
/// Resolves `host` and tries each address in turn until one connects.
/// Throws the last address's error, or std::system_error naming the host when it cannot be resolved.
task<tcp_stream> tcp_connect(io_context& ctx, std::string host, std::uint16_t port, deadline d = {},
                             std::stop_token stop = {}, stream_options options = {});

}  // namespace cnetmod
