/// @file
/// The client side: ws::connect opens a TCP connection, performs the opening
/// handshake (RFC 6455 §4.1) and returns the same ws::connection the server
/// side uses, in the client role (every frame masked with a fresh key).
#pragma once

#include <cnetmod/engine/io_context.hpp>
#include <cnetmod/engine/task.hpp>
#include <cnetmod/engine/tcp_stream.hpp>
#include <cnetmod/proto/ws/connection.hpp>
#include <cnetmod/proto/ws/options.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace cnetmod::ws {

/// The parts of a ws:// URL.
struct url {
    std::string scheme;        ///< "ws" or "wss"
    std::string host;          ///< without brackets for IPv6
    std::uint16_t port = 80;   ///< the port; 80 for ws:// and 443 for wss:// when the URL names none
    std::string target = "/";  ///< path and query
};
/// Parses "ws://host[:port][/path][?query]" (IPv6 hosts in brackets).
/// Throws std::invalid_argument saying what is wrong.
url parse_url(std::string_view text);

/// Connects and performs the handshake within opts.handshake_timeout.
/// Throws std::system_error: connection refused, host unreachable, timeout,
/// or a refused handshake (the message quotes the server's status line).
task<connection> connect(io_context& ctx, std::string_view url, const options& opts);
/// With default options. (An overload, not a default argument: g++ 12
/// miscompiles a temporary `options{}` inside a co_await expression, so
/// name options in a variable before passing them, as the seed does.)
task<connection> connect(io_context& ctx, std::string_view url);

/// What a client's opening handshake leaves: the stream, TLS running on it
/// for wss://, with any bytes the server sent after its answer still
/// buffered (they are frames already), and what was agreed.
struct client_handshake {
    tcp_stream stream;            ///< the connected stream, TLS running on it for wss://
    std::string subprotocol;      ///< the subprotocol the server selected, or empty
    bool deflate = false;         ///< permessage-deflate agreed: compressed messages may arrive
    bool deflate_send = false;    ///< and this side may send compressed ones (see connection's constructor)
    deflate_agreement agreement;  ///< when deflate: context takeover and windows each way
};
/// The handshake alone, as connect() performs it, for a client that frames
/// its messages itself (wsbench's load loop) and drives a ws::machine in
/// the client role over the stream. Throws as connect() does.
task<client_handshake> handshake(io_context& ctx, std::string_view url, const options& opts);

}  // namespace cnetmod::ws
