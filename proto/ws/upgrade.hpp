/// @file
/// The server side of the opening handshake (RFC 6455 §4.2.2), which the
/// WebSocket layer registers into HTTP: with this header included,
/// http::request_context::upgrade_to_websocket() answers 101 and returns a
/// task<ws::connection>.
#pragma once

#include <cnetmod/engine/task.hpp>
#include <cnetmod/proto/http/request_context.hpp>
#include <cnetmod/proto/http/upgrade.hpp>
#include <cnetmod/proto/ws/connection.hpp>
#include <cnetmod/proto/ws/options.hpp>
#include <cnetmod/proto/ws/socket.hpp>

template <>
/// The WebSocket layer's side of http::upgrade_protocol: what request_context::upgrade_to_websocket() and
/// http::server::ws() run.
struct cnetmod::http::upgrade_protocol<cnetmod::http::websocket_protocol> {
    /// The options an upgrade takes.
    using options_type = ws::options;
    /// Throws std::system_error if the request is not a valid handshake, after
    /// answering it with 400 (or 426 for another version).
    /// Answers 101 and returns the connection, with default ws::options.
    static task<ws::connection> upgrade(request_context& rc);
    /// The same with the options `opts`.
    static task<ws::connection> upgrade(request_context& rc, const ws::options& opts);
    /// http::server::ws<UserData>(path, behavior): a route with callback handlers.
    template <class UserData>
    using behavior = ws::behavior<UserData>;
    /// Serves `path` on `srv` as a callback route (ws::serve).
    template <class UserData>
    static void serve(server& srv, std::string path, ws::behavior<UserData> b) {
        ws::serve(srv, std::move(path), std::move(b));
    }
};
