/// @file
/// What a handler receives for one request: the request, the response to
/// fill, and — for a WebSocket handshake — the upgrade.
///
///   srv.get("/ws", [](http::request_context& ctx) -> task<void> {
///       if (!ctx.is_websocket_upgrade()) { ctx.resp().set_status(http::status::bad_request); co_return; }
///       auto ws = co_await ctx.upgrade_to_websocket();
///       ...
///   });
#pragma once

#include <cnetmod/engine/io_context.hpp>
#include <cnetmod/engine/task.hpp>
#include <cnetmod/engine/tcp_stream.hpp>
#include <cnetmod/proto/http/request.hpp>
#include <cnetmod/proto/http/response.hpp>
#include <cnetmod/proto/http/upgrade.hpp>

#include <system_error>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string_view>

namespace cnetmod::http {

/// Thrown by a handler (or by upgrade_to_websocket) to answer with the
/// response as prepared in resp() — a refused handshake, say — instead of 500.
class request_rejected : public std::system_error {
public:
    /// A rejection whose message is `what` (std::errc::protocol_error).
    explicit request_rejected(const std::string& what)
        : std::system_error(std::make_error_code(std::errc::protocol_error), what) {}
};

/// A request and the response being prepared for it.
struct exchange {
    request req;    ///< the request
    response resp;  ///< the response being prepared
};

/// What the server that made a request_context hears from it (internal).
struct request_owner {
    /// The server (an opaque tag): its graceful shutdown finds the
    /// connections it upgraded by it (upgraded_connections).
    const void* server_tag = nullptr;
    /// The handler upgraded the connection (the 101 is queued and the
    /// stream is about to be moved out: the stream must stay until the
    /// upgrade returns).
    void (*upgraded)(request_owner* self) noexcept = nullptr;
};

/// What a handler receives for one request: the request, the response to fill, and for a WebSocket handshake the
/// upgrade. Used on the core that serves the request, while the handler runs.
class request_context {
public:
    /// Made by the server for each request (internal): `ex` holds the request and response, `stream` is the
    /// connection.
    request_context(io_context& ctx, std::unique_ptr<exchange> ex, tcp_stream& stream) noexcept
        : ctx_(ctx), stream_(stream), ex_(std::move(ex)) {}
    request_context(const request_context&) = delete;
    request_context& operator=(const request_context&) = delete;

    /// The request's fields. After upgrade_to_websocket() they read empty:
    /// the request's storage is freed, so that a WebSocket connection keeps
    /// nothing of its handshake (read what you need before upgrading).
    std::string_view method() const noexcept { return req().method(); }
    /// The request's path ("/chat").
    std::string_view path() const noexcept { return req().path(); }
    /// The request's query, without the '?' ("name=ann").
    std::string_view query() const noexcept { return req().query(); }
    /// The request target as sent ("/chat?name=ann").
    std::string_view target() const noexcept { return req().target(); }
    /// A request header field by name, case-insensitively; "" when absent.
    std::string_view header(std::string_view name) const noexcept { return req().header(name); }
    /// The request body.
    const std::string& body() const noexcept { return req().body(); }
    /// The whole request (empty after an upgrade).
    const request& req() const noexcept { return ex_ ? ex_->req : empty_request(); }
    /// The response to send (ignored after an upgrade).
    response& resp() noexcept { return ex_ ? ex_->resp : discarded_response(); }
    /// The core this request is served on.
    io_context& context() const noexcept { return ctx_; }

    /// RFC 6455 §4.2.1: GET, "Connection" holding the "upgrade" token,
    /// "Upgrade: websocket", a Sec-WebSocket-Key of base64 for 16 bytes, and
    /// Sec-WebSocket-Version 13. (A handshake of another version is answered
    /// 426 with "Sec-WebSocket-Version: 13" by upgrade_to_websocket.)
    /// Whether the request is such a WebSocket opening handshake.
    bool is_websocket_upgrade() const noexcept;
    /// A WebSocket handshake of another version than 13 (answered 426).
    bool is_websocket_version_mismatch() const noexcept;

    /// Answers 101 and hands the connection to WebSocket: a
    /// task<ws::connection>, with ws::options or without. The WebSocket layer
    /// implements it (upgrade_protocol<websocket_protocol>, proto/ws/upgrade.hpp):
    /// include <cnetmod/proto/ws/ws.hpp> to use it. Throws std::system_error
    /// if the request is not a valid handshake, after answering it with 400
    /// (or 426 for another version).
    template <class Protocol = websocket_protocol>
    auto upgrade_to_websocket() {
        static_assert(upgrade_protocol_available<Protocol>,
                      "cnetmod: upgrade_to_websocket needs the WebSocket layer: #include <cnetmod/proto/ws/ws.hpp>");
        return upgrade_protocol<Protocol>::upgrade(*this);
    }
    /// Answers 101 and hands the connection to WebSocket with the options `opts` (ws::options); otherwise as
    /// upgrade_to_websocket().
    template <class Protocol = websocket_protocol>
    auto upgrade_to_websocket(const typename upgrade_protocol<Protocol>::options_type& opts) {
        return upgrade_protocol<Protocol>::upgrade(*this, opts);
    }

    /// Whether the connection was upgraded (the 101 is queued).
    bool upgraded() const noexcept { return upgraded_; }

    /// For the upgrading layer: the connection's stream, moved out by the
    /// upgrade (valid until then only).
    tcp_stream& stream() noexcept { return stream_; }
    /// For the upgrading layer: records the upgrade (the 101 is queued and the stream is about to be moved out) and
    /// tells the server.
    void mark_upgraded() noexcept {
        upgraded_ = true;
        if (owner_ && owner_->upgraded) owner_->upgraded(owner_);
    }
    /// Frees the request and the response once they are no longer needed (after an upgrade).
    void release_request() noexcept { ex_.reset(); }
    /// The server this request came through (an opaque tag): its graceful
    /// shutdown finds the connections it upgraded by it (upgraded_connections).
    const void* server_tag() const noexcept { return owner_ ? owner_->server_tag : nullptr; }
    /// For the server (internal): who hears of an upgrade.
    void set_owner(request_owner* owner) noexcept { owner_ = owner; }

private:
    static const request& empty_request() noexcept;
    static response& discarded_response() noexcept;

    io_context& ctx_;
    tcp_stream& stream_;
    std::unique_ptr<exchange> ex_;
    request_owner* owner_ = nullptr;
    bool upgraded_ = false;
};

}  // namespace cnetmod::http
