// The WebSocket connection core, shared by both APIs: a tcp_stream, the
// protocol machine, a pointer to the settings of its route, and what the
// core's housekeeping needs (the per-core list for graceful shutdown and
// the liveness sweep, the close deadline, pub/sub subscriptions). The
// coroutine API (ws::connection) reads through awaiters that live in the
// caller's frame; the callback API (ws::socket) through a waiter of its own
// and the route's handlers. Internal: not installed.
#pragma once

#include <cnetmod/engine/detail/frame_allocator.hpp>
#include <cnetmod/engine/detail/timer_wheel.hpp>
#include <cnetmod/engine/io_context.hpp>
#include <cnetmod/engine/tcp_stream.hpp>
#include <cnetmod/proto/ws/connection.hpp>
#include <cnetmod/proto/ws/machine.hpp>
#include <cnetmod/proto/ws/options.hpp>
#include <cnetmod/proto/ws/route.hpp>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <string_view>

namespace cnetmod::ws::detail {

// The send queue of a stream, as the machine writes frames into it.
struct stream_sink {
    tcp_stream& stream;
    std::span<std::byte> space(std::size_t n) { return stream.queue_space(n); }
};

// Frees a callback connection (socket.cpp): as a context tears down, no handler runs.
void destroy_callback_state(connection_state* s) noexcept;

// Settings for the coroutine API's connections, made once per distinct
// ws::options (and subprotocol) per core and shared.
route_settings* intern_settings(io_context& ctx, const options& opts, std::string_view subprotocol);

class connection_state {
public:
    // From the per-core slabs, beside the stream's core and the handler's frame.
    static void* operator new(std::size_t n) { return cnetmod::detail::allocate_frame(n); }
    static void operator delete(void* p, std::size_t n) noexcept { cnetmod::detail::deallocate_frame(p, n); }

    // Takes a reference to `settings`.
    connection_state(tcp_stream stream, role r, route_settings& settings, bool deflate, bool deflate_send,
                     bool has_subprotocol);
    // permessage-deflate as `agreed`.
    connection_state(tcp_stream stream, role r, route_settings& settings, const deflate_agreement& agreed,
                     bool deflate_send, bool has_subprotocol);
    ~connection_state();
    connection_state(const connection_state&) = delete;
    connection_state& operator=(const connection_state&) = delete;

    const route_settings& settings() const noexcept { return *settings_; }
    const machine_limits& limits() const noexcept { return settings_->limits; }
    io_context& context() const noexcept { return stream_.context(); }

    // ---- state ----
    bool open() const noexcept { return machine_.is_open() && !closed_ && stream_.is_open(); }
    std::string_view subprotocol() const noexcept {
        return has_subprotocol_ ? std::string_view(settings_->subprotocol) : std::string_view();
    }

    // ---- sending ----
    // Everything queued for the peer passes here first: a peer that has let
    // more than max_queued_bytes pile up is cut off (1008), and the caller
    // gets connection_closed.
    void admit();
    bool over_queue_bound() const noexcept { return stream_.queued_bytes() > settings_->max_queued_bytes; }
    void throw_if_not_open() const;
    // A whole data message (compressed where negotiated and worth it).
    void queue_data(ws::opcode op, std::span<const std::byte> payload);
    void queue_frame(ws::opcode op, std::span<const std::byte> payload, bool fin = true, bool rsv1 = false);
    // Unchecked: the frame goes whatever the queue holds.
    void put_frame(ws::opcode op, std::span<const std::byte> payload, bool fin = true, bool rsv1 = false);
    void queue_prepared(const prepared_message& m);
    // A ping or pong the library sends on its own: over the bound it waits
    // (false) rather than cutting off a peer that may just be reading a
    // large message of ours.
    bool queue_own_control(ws::opcode op, std::span<const std::byte> payload);
    // The pong and close frame the input asked for; the pong waits while
    // the queue is over its bound.
    void write_owed();
    void queue_close(std::uint16_t code, std::string_view reason);

    // ---- closing ----
    // Cuts the peer off from outside the reader: what waits unsent is
    // dropped, a close frame with `code` goes out, the reader ends, and TCP
    // is reset after close_timeout unless it ends sooner.
    void cut_off(std::uint16_t code, std::string_view reason);
    // A close this side starts without waiting: the close frame goes after
    // what is queued; a peer that has not answered by `grace` is reset.
    void close_within(std::uint16_t code, std::string_view reason, std::chrono::milliseconds grace);
    void arm_close_timer(std::chrono::milliseconds grace);
    static void on_close_timeout(void* p);
    // The TCP connection ended without a closing handshake.
    void dropped() noexcept;
    // The closing handshake is over (or failed): the reader stops, TCP ends.
    bool finished() const noexcept { return closed_; }
    void mark_closed() noexcept { closed_ = true; }

    // ---- liveness (see core_connections) ----
    void note_activity() noexcept;
    void check_liveness(std::uint32_t now);
    void link();
    void unlink() noexcept;
    void register_as(const void* tag) noexcept { server_tag_ = tag; }
    static connection_state* registry_head(io_context& ctx) noexcept;

    // What the read path needs to hand on.
    deadline read_deadline() const {
        return settings_->idle_timeout.count() > 0 ? timeout(settings_->idle_timeout) : deadline{};
    }

    tcp_stream stream_;  // never empty: the state is made from an open stream and never gives it away
    machine machine_;
    route_settings* settings_;
    subscription_set* subs_ = nullptr;  // the topics this connection is subscribed to
    cnetmod::detail::wait_timer* close_timer_ = nullptr;
    // The core's list of connections, tagged by the server that upgraded
    // them for its shutdown (null for clients).
    connection_state* reg_prev_ = nullptr;
    connection_state* reg_next_ = nullptr;
    const void* server_tag_ = nullptr;
    std::uint32_t last_rx_ms_ = 0;       // the sweep time at which bytes last arrived
    std::uint32_t msg_start_ms_ = 0;     // when the incomplete message began
    std::uint32_t queued_seen_ = 0;      // unsent bytes at the last sweep
    std::uint32_t pending_consume_ = 0;  // bytes of the last event's input, consumed at the next read
    ws::opcode last_opcode_ = ws::opcode::text;
    bool has_subprotocol_ : 1 = false;
    bool closed_ : 1 = false;            // the reader is done: no more events
    bool reading_ : 1 = false;           // a recv*() is in progress
    bool ping_outstanding_ : 1 = false;  // a liveness ping waits for any answer
    bool callback_ : 1 = false;          // driven by a route's handlers (ws::socket)
    bool dispatching_ : 1 = false;       // a handler runs: closing waits for it to return
    bool close_reported_ : 1 = false;    // the close handler has run
};

// Bytes of a span as chars.
inline std::string_view as_text(std::span<const std::byte> b) noexcept {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

}  // namespace cnetmod::ws::detail
