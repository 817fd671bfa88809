/// @file
/// ws::connection: one WebSocket (RFC 6455), server or client side, on a
/// tcp_stream. Reading happens inside recv()/recv_frame(): frames are parsed
/// where they landed in the receive buffers, unmasked in place with SIMD,
/// and text is validated as UTF-8 as it arrives. Sending builds each frame
/// in the stream's send queue; everything sent in one loop turn leaves in one
/// system call.
///
/// Bad input from the peer never throws: the connection is failed with the
/// RFC's close code (1002 protocol error, 1007 invalid UTF-8, 1009 too big),
/// and recv() returns an empty optional; close_code() tells why. An
/// operation on a closed connection throws ws::connection_closed.
#pragma once

#include <cnetmod/engine/io_context.hpp>
#include <cnetmod/engine/task.hpp>
#include <cnetmod/engine/tcp_stream.hpp>
#include <cnetmod/proto/ws/frame.hpp>
#include <cnetmod/proto/ws/machine.hpp>
#include <cnetmod/proto/ws/options.hpp>
#include <cnetmod/proto/ws/prepared_message.hpp>

#include <system_error>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace cnetmod::ws {

/// A message, or a control frame, as recv_frame() returns it.
struct frame {
    ws::opcode opcode = ws::opcode::text;  ///< text, binary, ping, pong or close
    std::string payload;                   ///< the message's bytes, a control frame's data, or a close frame's body
};

/// A message as recv_view() returns it: a view of the payload, valid until
/// the next recv*() or close on the connection.
struct message_view {
    ws::opcode opcode = ws::opcode::text;  ///< text or binary
    std::span<const std::byte> payload;    ///< the message's bytes
    /// The payload as characters.
    std::string_view text() const noexcept { return {reinterpret_cast<const char*>(payload.data()), payload.size()}; }
};

/// Thrown by an operation on a connection that is closed or closing.
class connection_closed : public std::system_error {
public:
    /// The connection's close code is `code`; the message names it.
    explicit connection_closed(std::uint16_t code)
        : std::system_error(std::make_error_code(std::errc::not_connected),
                            "cnetmod: WebSocket connection is closed (code " + std::to_string(code) + ")"),
          code_(code) {}
    /// The connection's close code when the operation was refused.
    std::uint16_t close_code() const noexcept { return code_; }

private:
    std::uint16_t code_;
};

class prepared_message;

/// Peers cut off by the bounds of ws::options since the process started,
/// over all cores (each also closed the connection with the code named).
struct cutoff_counts {
    std::uint64_t send_queue = 0;       ///< max_queued_bytes passed: 1008
    std::uint64_t reassembly = 0;       ///< core_reassembly_budget passed: 1008
    std::uint64_t message_timeout = 0;  ///< message_timeout passed: 1008
    std::uint64_t dead_peer = 0;        ///< no answer to a liveness ping: reset (1006)
    std::uint64_t inflate = 0;          ///< inflating passed max_inflate_ratio or max_message_size: 1009
};
/// The counts so far, summed over every core; safe from any thread.
cutoff_counts cutoffs() noexcept;

namespace detail {
class connection_state;
struct subscription_set;
}  // namespace detail

/// One WebSocket (RFC 6455), server or client side, on a tcp_stream, with a coroutine API: co_await recv() for the
/// next message, co_await send() to send one. Move-only; used on its context's thread. Bad input from the peer never
/// throws: the connection fails with the RFC's close code and recv() returns an empty optional; an operation on a
/// closed connection throws connection_closed.
class connection {
public:
    /// A connection bound to nothing; only to be assigned to or destroyed.
    connection() noexcept;
    /// Binds a stream whose opening handshake is done. `deflate`: the
    /// handshake negotiated permessage-deflate (RFC 7692), so compressed
    /// messages may arrive; `deflate_send`: this side compresses too (it
    /// sends each message as a DEFLATE stream of its own, which the peer
    /// may take only when it resets its inflater per message: this form is
    /// no context takeover and 32 KiB windows both ways).
    connection(tcp_stream stream, role r, const options& opts, std::string subprotocol = {}, bool deflate = false,
               bool deflate_send = true);
    /// Binds a stream whose handshake agreed permessage-deflate as `agreed`
    /// says (context takeover and windows each way: negotiate_deflate_server,
    /// check_deflate_response).
    connection(tcp_stream stream, role r, const options& opts, std::string subprotocol, const deflate_agreement& agreed,
               bool deflate_send = true);
    /// Takes over the other connection; it is left bound to nothing.
    connection(connection&&) noexcept;
    /// Ends the connection held, as the destructor does, and takes over the other.
    connection& operator=(connection&&) noexcept;
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;
    /// An open connection is closed with 1001 (going away), flushed, and its
    /// TCP connection closed gracefully in the background.
    ~connection();

    /// What recv(), recv_frame() and recv_view() return, to be co_awaited
    /// at once. The awaiter holds what a waiting reader needs, in the
    /// awaiting coroutine's own frame: the connection keeps nothing for a
    /// read, and an idle connection costs its state and its owner's frame.
    class read_awaiter : public read_waiter {
    public:
        /// An awaiter on `s` (recv(), recv_frame() and recv_view() make it); `skip_control`: control frames are
        /// handled, not returned.
        read_awaiter(detail::connection_state* s, bool skip_control, deadline close_deadline = {}) noexcept;
        /// Whether an event is at hand without waiting.
        bool await_ready();
        /// Waits for the next event, without a coroutine frame of its own.
        void await_suspend(std::coroutine_handle<> h);

        /// @cond internal
    protected:
        enum class step : std::uint8_t { done, wait, finish };
        // The event read, or nothing when the connection has closed.
        const ws::event* finish_read() noexcept;
        step advance();
        step pump();
        step read_ended(tcp_stream::read_status st);
        void continue_read();
        static void on_readable(read_waiter* w);
        static task<void> finish_then_resume(read_awaiter* a);

        detail::connection_state* s_;
        std::coroutine_handle<> h_;
        deadline deadline_;
        ws::event event_;
        step step_ = step::done;
        bool skip_control_;         // recv(), recv_view(): control frames are handled, not returned
        bool got_ = false;          // event_ is the read's result
        bool close_event_ = false;  // event_ is the peer's close, returned once TCP is done
        /// @endcond
    };
    /// What recv() returns, to be co_awaited at once.
    class recv_awaiter : public read_awaiter {
    public:
        /// An awaiter on `s`.
        explicit recv_awaiter(detail::connection_state* s) noexcept : read_awaiter(s, true) {}
        /// The message, or nullopt once the connection is closed.
        std::optional<std::string> await_resume();
    };
    /// What recv_frame() returns, to be co_awaited at once.
    class recv_frame_awaiter : public read_awaiter {
    public:
        /// An awaiter on `s`; `close_deadline` bounds the wait for the peer's close (close()).
        explicit recv_frame_awaiter(detail::connection_state* s, deadline close_deadline = {}) noexcept
            : read_awaiter(s, false, close_deadline) {}
        /// The message or control frame, or nullopt once the connection is closed.
        std::optional<frame> await_resume();
    };
    /// What recv_view() returns, to be co_awaited at once.
    class recv_view_awaiter : public read_awaiter {
    public:
        /// An awaiter on `s`.
        explicit recv_view_awaiter(detail::connection_state* s) noexcept : read_awaiter(s, true) {}
        /// The message, or nullopt once the connection is closed.
        std::optional<message_view> await_resume();
    };

    /// The next text or binary message (binary bytes in the string); control
    /// frames are handled and skipped. Empty once the connection is closed.
    /// One recv*() at a time per connection.
    [[nodiscard]] recv_awaiter recv();
    /// The next message or control frame (ping, pong, close). Pings have been
    /// answered already when auto_pong is on; a close frame has been answered
    /// and is returned once, then the optional is empty.
    [[nodiscard]] recv_frame_awaiter recv_frame();
    /// The next message without copying it when it arrived in one piece: the
    /// view points into the receive buffer. Valid until the next recv*().
    [[nodiscard]] recv_view_awaiter recv_view();

    /// What send(), send_binary(), ping() and pong() return. The message is
    /// queued when the call is made (it throws ws::connection_closed then if
    /// the connection is not open); awaiting completes at once, without a
    /// coroutine frame, while the send queue is under send_high_water, and
    /// otherwise waits until it has drained to half (a peer that does not
    /// drain within send_timeout is cut off: the await throws connection_closed).
    class [[nodiscard]] send_awaiter {
    public:
        /// An awaiter on `s`, whose message is queued already.
        explicit send_awaiter(detail::connection_state* s) noexcept : s_(s) {}
        /// Whether the send queue is under send_high_water (no wait).
        bool await_ready() const noexcept;
        /// Waits until the send queue has drained to half of send_high_water.
        void await_suspend(std::coroutine_handle<> h);
        /// Throws connection_closed when the peer was cut off for not draining within send_timeout, or the connection
        /// closed meanwhile.
        void await_resume() const;

    private:
        static task<void> wait_for_room(send_awaiter* a);
        detail::connection_state* s_;
        std::coroutine_handle<> h_;
        bool failed_ = false;
    };

    /// Sends a text message (`text` must be UTF-8). Throws connection_closed when the connection is not open.
    send_awaiter send(std::string_view text);
    /// Sends a binary message. Throws connection_closed when the connection is not open.
    send_awaiter send_binary(std::span<const std::uint8_t> data);
    /// Sends a binary message. Throws connection_closed when the connection is not open.
    send_awaiter send_binary(std::span<const std::byte> data);
    /// Sends a binary message of `bytes`. Throws connection_closed when the connection is not open.
    send_awaiter send_binary(std::string_view bytes);
    /// Queues a whole message (text or binary) without waiting: never
    /// suspends and ignores send_high_water, so the caller bounds what it
    /// queues (buffered_amount() tells how much waits). A load generator or
    /// a broadcast loop sends this way, without a coroutine per message.
    /// Throws ws::connection_closed when the connection is not open.
    void queue_message(ws::opcode op, std::span<const std::byte> payload);
    /// A message prepared once (and compressed once) for many connections: the same frame is queued on each by
    /// reference, the compressed one on those that negotiated permessage-deflate. Never suspends. Throws
    /// connection_closed when the connection is not open.
    void queue_prepared(const prepared_message& message);
    /// Sends a prepared message as queue_prepared() queues it, and waits for room as send() does.
    send_awaiter send(const prepared_message& message);
    /// A message of several frames of `fragment_size` bytes: the first with `op`, the rest continuations. Throws
    /// connection_closed when the connection is not open.
    send_awaiter send_fragmented(std::string_view payload, std::size_t fragment_size, ws::opcode op = ws::opcode::text);
    /// A ping with `data`: at most 125 bytes (std::invalid_argument beyond).
    send_awaiter ping(std::string_view data = "");
    /// A pong with `data` (unsolicited, or answering a ping when auto_pong is off); at most 125 bytes,
    /// std::invalid_argument beyond.
    send_awaiter pong(std::string_view data = "");
    /// Starts the closing handshake (RFC 6455 §7) and waits, up to
    /// close_timeout, for the peer's close frame. Codes: 1000–1003,
    /// 1007–1011, 3000–4999 (std::invalid_argument otherwise).
    task<void> close(std::uint16_t code = close_code::normal, std::string_view reason = "");

    /// Whether the connection is open: no close sent or received, no failure.
    bool is_open() const noexcept;
    /// The close code received (or sent, when this side failed the
    /// connection); 1005 when the close frame had none, 1006 when the TCP
    /// connection dropped without one, 0 while open.
    std::uint16_t close_code() const noexcept;
    /// The reason that goes with close_code(); empty when none.
    std::string_view close_reason() const noexcept;
    /// The subprotocol agreed in the handshake, or empty.
    std::string_view subprotocol() const noexcept;
    /// The opcode (text or binary) of the last message recv() returned, so
    /// that an echo can answer binary with binary.
    ws::opcode last_opcode() const noexcept;
    /// The context the connection belongs to.
    io_context& context() const noexcept;
    /// permessage-deflate was negotiated: messages at or above
    /// options::compression_threshold go compressed when that makes them smaller.
    bool compression() const noexcept;
    /// Bytes queued for sending, not yet taken by the kernel.
    std::size_t buffered_amount() const noexcept;

    /// Internal (pub/sub, graceful shutdown): the connection's state.
    detail::connection_state* state() const noexcept { return state_.get(); }

private:
    send_awaiter send_binary_as(ws::opcode op, std::span<const std::byte> payload);
    std::unique_ptr<detail::connection_state> state_;
};

// Internal hooks for pub/sub and graceful shutdown, on the connection's core.
namespace detail {
// The pub/sub subscriptions a connection holds (released when it closes or is destroyed).
subscription_set*& subscriptions(connection_state& s) noexcept;
bool is_open(const connection_state& s) noexcept;
std::size_t queued_bytes(const connection_state& s) noexcept;
void queue_prepared(connection_state& s, const prepared_message& m);
// Sends a close frame with `code` after what is queued; the peer has until
// `grace` to drain and answer, then the connection is reset.
void close_within(connection_state& s, std::uint16_t code, std::string_view reason, std::chrono::milliseconds grace);
// Server connections, per core, tagged by the server that upgraded them.
void register_server_connection(connection& c, const void* server_tag) noexcept;
// Starts close_within on every open connection of `server_tag` on this core; returns how many remain.
std::size_t close_server_connections(const void* server_tag, std::uint16_t code, std::string_view reason,
                                     std::chrono::milliseconds grace);
std::size_t count_server_connections(const void* server_tag) noexcept;
}  // namespace detail

}  // namespace cnetmod::ws
