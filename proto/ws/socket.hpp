/// @file
/// The callback API: WebSocket routes whose settings and handlers are given
/// once per route, and connections that carry nothing but their state and
/// the embedder's own data — no coroutine, no per-connection settings.
///
///   struct player { std::string name; };
///   srv.ws<player>("/game", {
///       .options = {.max_message_size = 64 * 1024},
///       .upgrade = [](http::request_context& rc, player& p) { p.name = rc.header("X-Name"); return true; },
///       .open = [](ws::socket<player>& s) { s.send("welcome " + s.user_data()->name); },
///       .message = [](ws::socket<player>& s, std::string_view msg, ws::opcode op) { s.send(msg, op); },
///       .close = [](ws::socket<player>& s, std::uint16_t code, std::string_view reason) { /* s is still valid here */
///       },
///   });
///
/// Handlers run on the core that accepted the connection, one at a time per
/// connection. A socket handle stays valid from open until its close
/// handler returns; after that it must not be used (keep handles in your own
/// sets, and remove them in close). send() queues the frame and returns at
/// once: everything queued in one loop turn leaves in one system call.
#pragma once

#include <cnetmod/engine/endpoint.hpp>
#include <cnetmod/engine/io_context.hpp>
#include <cnetmod/proto/http/request_context.hpp>
#include <cnetmod/proto/ws/frame.hpp>
#include <cnetmod/proto/ws/options.hpp>
#include <cnetmod/proto/ws/prepared_message.hpp>
#include <cnetmod/proto/ws/route.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace cnetmod::http {
class server;
}

namespace cnetmod::ws {

/// What send() did with a message.
enum class send_status : std::uint8_t {
    sent,          ///< queued, and the send queue is under send_high_water
    backpressure,  ///< queued, but the queue is over send_high_water: the drain handler runs once it halves
    dropped,       ///< not queued: the connection is closing, or its queue is over max_queued_bytes
};

namespace detail {
class connection_state;
struct route_base;
// The embedder's data of a callback connection, stored after its state.
void* user_data_of(connection_state* s) noexcept;
// Registers `route` (the server takes a reference) as the handler of GET `path`.
void serve_route(http::server& srv, std::string path, route_base* route);
}  // namespace detail

/// A handle to a connection of a callback route: a pointer, cheap to copy
/// and compare, valid from the open handler until the close handler returns.
class socket_base {
public:
    /// Queues a message (text or binary); compressed when permessage-deflate
    /// was negotiated and the message reaches options::compression_threshold.
    send_status send(std::string_view payload, ws::opcode op = ws::opcode::text);
    /// Queues a binary (or, with `op`, text) message of `payload`, as the other send() does.
    send_status send(std::span<const std::byte> payload, ws::opcode op = ws::opcode::binary);
    /// A message prepared once for many connections, queued by reference.
    /// The compressed form goes to connections that negotiated permessage-deflate.
    send_status send(const prepared_message& message);
    /// Queues a ping with `data`: at most 125 bytes (std::invalid_argument beyond).
    send_status ping(std::string_view data = {});
    /// Starts the closing handshake (RFC 6455 §7): the close frame goes after
    /// what is queued; the close handler runs when the peer answers, or after
    /// options::close_timeout with the connection reset. Codes as for
    /// connection::close (std::invalid_argument otherwise).
    void end(std::uint16_t code = close_code::normal, std::string_view reason = {});
    /// Resets the connection at once (no closing handshake); the close
    /// handler runs with 1006 before this returns (or, from inside a handler
    /// of this connection, when that handler returns).
    void close() noexcept;

    /// Neither side has started closing.
    bool is_open() const noexcept;
    /// Bytes queued for sending, not yet taken by the kernel.
    std::size_t buffered_amount() const noexcept;
    /// The subprotocol agreed in the handshake, or empty.
    std::string_view subprotocol() const noexcept;
    /// Whether permessage-deflate was negotiated.
    bool compression() const noexcept;
    /// The context (core) the connection belongs to.
    io_context& context() const noexcept;
    /// The peer's address. Throws std::system_error when the socket has none (it is closed).
    ip_endpoint remote_endpoint() const;

    /// The connection's state (internal: pub/sub and the library's own layers).
    detail::connection_state* state() const noexcept { return s_; }
    /// Whether both handles name the same connection.
    friend bool operator==(const socket_base& a, const socket_base& b) noexcept { return a.s_ == b.s_; }

    /// @cond internal
protected:
    explicit socket_base(detail::connection_state* s) noexcept : s_(s) {}
    detail::connection_state* s_;
    /// @endcond
};

template <class UserData = void>
/// A handle to a connection of a callback route whose connections each store a UserData (void: none). Handlers
/// receive it; see socket_base.
class socket : public socket_base {
public:
    /// A handle on `s` (the route makes them for its handlers).
    explicit socket(detail::connection_state* s) noexcept : socket_base(s) {}
    /// The embedder's data, made (default-constructed) before the upgrade
    /// handler and destroyed after the close handler.
    UserData* user_data() const noexcept requires(!std::is_void_v<UserData>) {
        return static_cast<UserData*>(detail::user_data_of(s_));
    }
};

namespace detail {
template <class UserData>
struct upgrade_signature {
    using type = std::function<bool(http::request_context&, UserData&)>;
};
template <>
struct upgrade_signature<void> {
    using type = std::function<bool(http::request_context&)>;
};
}  // namespace detail

template <class UserData = void>
/// The settings and handlers of one WebSocket route (http::server::ws). Every handler may be left empty; they run on
/// the connection's core, one at a time per connection.
struct behavior {
    /// The handle the handlers receive.
    using socket_type = ws::socket<UserData>;
    /// The upgrade handler's type: bool(http::request_context&, UserData&), without the UserData for void.
    using upgrade_handler = typename detail::upgrade_signature<UserData>::type;

    /// Limits, timeouts, compression and the subprotocol to select, for
    /// every connection of the route (the route keeps one copy).
    ws::options options{};
    /// First, for every request to the route: reads the request's headers
    /// and query, fills the user data; false refuses the upgrade, answered
    /// with rc.resp() as the handler left it (403 if it left 200). A request
    /// it lets through that is not a valid handshake is answered 400 (426
    /// for another version); a valid one gets the 101.
    upgrade_handler upgrade{};
    /// The connection is open (after the 101); the socket may send from here on.
    std::function<void(socket_type&)> open{};
    /// A whole message; the view is valid until the handler returns.
    std::function<void(socket_type&, std::string_view message, ws::opcode op)> message{};
    /// When set, a message that is not at hand whole (sent in several
    /// frames, or larger than what has been received so far) comes piece by
    /// piece as it arrives, instead of being gathered for `message`: no
    /// reassembly buffer however large it is (options::max_message_size
    /// still bounds the whole). `last` ends the message; text pieces may
    /// split a character (the whole message is checked as UTF-8, and a bad
    /// byte fails the connection with 1007 as soon as it arrives). Messages
    /// that arrive whole still go to `message` (to `fragment` as one piece
    /// with `last` when `message` is not set), and compressed ones are
    /// always gathered (they inflate whole). options::message_timeout counts
    /// from the last piece handed out: a slow upload that keeps moving is
    /// not cut off. The view is valid until the handler returns.
    std::function<void(socket_type&, std::string_view piece, ws::opcode op, bool last)> fragment{};
    /// The send queue went back under half of send_high_water after a send
    /// returned backpressure.
    std::function<void(socket_type&)> drain{};
    /// Pings are answered by the library (options::auto_pong).
    /// A ping arrived, with its data (valid until the handler returns).
    std::function<void(socket_type&, std::string_view data)> ping{};
    /// A pong arrived, with its data (valid until the handler returns).
    std::function<void(socket_type&, std::string_view data)> pong{};
    /// The connection has ended: `code` is the peer's close code (1005 for
    /// none), the one this side failed or closed with, or 1006 when TCP
    /// ended without a closing handshake. The last handler to run.
    std::function<void(socket_type&, std::uint16_t code, std::string_view reason)> close{};
};

namespace detail {

// A route, type-erased for the connection core: settings first (the
// connection's settings pointer), then how to make the embedder's data and
// run its handlers.
struct route_base : route_settings {
    explicit route_base(const ws::options& o) : route_settings(o, o.subprotocol), options(o) {}

    ws::options options;  // for the handshake: compression and subprotocol
    std::size_t user_size = 0, user_align = 1;
    void (*construct_user)(void* at) = nullptr;
    void (*destroy_user)(void* at) noexcept = nullptr;
    bool (*upgrade)(route_base&, http::request_context&, void* user) = nullptr;
    void (*open)(route_base&, connection_state*) = nullptr;
    void (*message)(route_base&, connection_state*, std::string_view, ws::opcode) = nullptr;
    void (*fragment)(route_base&, connection_state*, std::string_view, ws::opcode, bool) = nullptr;
    void (*drain)(route_base&, connection_state*) = nullptr;
    void (*ping)(route_base&, connection_state*, std::string_view) = nullptr;
    void (*pong)(route_base&, connection_state*, std::string_view) = nullptr;
    void (*close)(route_base&, connection_state*, std::uint16_t, std::string_view) = nullptr;
};

template <class UserData>
struct route final : route_base {
    using socket_type = ws::socket<UserData>;
    behavior<UserData> b;

    explicit route(behavior<UserData> bh) : route_base(bh.options), b(std::move(bh)) {
        destroy = [](route_settings* s) { delete static_cast<route*>(s); };
        if constexpr (!std::is_void_v<UserData>) {
            user_size = sizeof(UserData);
            user_align = alignof(UserData);
            construct_user = [](void* at) { ::new (at) UserData(); };
            destroy_user = [](void* at) noexcept { static_cast<UserData*>(at)->~UserData(); };
        }
        if (b.upgrade)
            upgrade = [](route_base& r, http::request_context& rc, void* user) {
                auto& self = static_cast<route&>(r);
                if constexpr (std::is_void_v<UserData>)
                    return self.b.upgrade(rc);
                else
                    return self.b.upgrade(rc, *static_cast<UserData*>(user));
            };
        if (b.open)
            open = [](route_base& r, connection_state* s) {
                socket_type h(s);
                static_cast<route&>(r).b.open(h);
            };
        if (b.message)
            message = [](route_base& r, connection_state* s, std::string_view m, ws::opcode op) {
                socket_type h(s);
                static_cast<route&>(r).b.message(h, m, op);
            };
        if (b.fragment) {
            limits.fragments = true;
            fragment = [](route_base& r, connection_state* s, std::string_view piece, ws::opcode op, bool last) {
                socket_type h(s);
                static_cast<route&>(r).b.fragment(h, piece, op, last);
            };
        }
        if (b.drain)
            drain = [](route_base& r, connection_state* s) {
                socket_type h(s);
                static_cast<route&>(r).b.drain(h);
            };
        if (b.ping)
            ping = [](route_base& r, connection_state* s, std::string_view d) {
                socket_type h(s);
                static_cast<route&>(r).b.ping(h, d);
            };
        if (b.pong)
            pong = [](route_base& r, connection_state* s, std::string_view d) {
                socket_type h(s);
                static_cast<route&>(r).b.pong(h, d);
            };
        if (b.close)
            close = [](route_base& r, connection_state* s, std::uint16_t code, std::string_view reason) {
                socket_type h(s);
                static_cast<route&>(r).b.close(h, code, reason);
            };
    }
};

}  // namespace detail

/// Serves `path` on `srv` as a WebSocket route with callback handlers (what
/// http::server::ws<UserData>(path, behavior) does).
template <class UserData>
void serve(http::server& srv, std::string path, behavior<UserData> b) {
    detail::serve_route(srv, std::move(path), new detail::route<UserData>(std::move(b)));
}

}  // namespace cnetmod::ws
