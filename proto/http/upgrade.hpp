/// @file
/// The boundary between HTTP and the protocols a request upgrades to. HTTP
/// names none of them: a layer above registers into this one.
///
/// - upgrade_protocol<Protocol> is specialised by the layer that implements
///   Protocol (proto/ws/upgrade.hpp for websocket_protocol); it is what
///   request_context::upgrade_to_websocket() runs.
/// - upgraded_connections is how a server's graceful shutdown reaches the
///   connections that such a layer took over: the layer registers one, once.
#pragma once

#include <chrono>
#include <cstddef>

namespace cnetmod::http {

class server;

/// The protocol of `Upgrade: websocket` (RFC 6455), as a tag.
struct websocket_protocol;

/// Specialised by the layer that implements `Protocol`, with
///   using options_type = ...;
///   static task<...> upgrade(request_context&);
///   static task<...> upgrade(request_context&, const options_type&);
/// Left undefined here: using an upgrade whose layer is not included fails to compile.
template <class Protocol>
struct upgrade_protocol;

/// True once the layer implementing `Protocol` is included.
template <class Protocol>
concept upgrade_protocol_available = requires {
    sizeof(upgrade_protocol<Protocol>);
};

/// Connections that a layer above took over from a server by an upgrade.
/// Both functions act on the calling thread's core only; `server` is the tag
/// the server put in request_context::server_tag().
struct upgraded_connections {
    /// Starts closing those of `server` (the layer's "going away"), giving each `grace`.
    void (*close)(const void* server, std::chrono::milliseconds grace) = nullptr;
    /// How many of those of `server` remain.
    std::size_t (*count)(const void* server) noexcept = nullptr;
    upgraded_connections* next = nullptr;  ///< the registry's link
};

/// Registers `c` (which must outlive every server) with every server's
/// graceful shutdown. Safe from any thread; register each entry once (from a
/// function-local static, say).
void register_upgraded_connections(upgraded_connections& c) noexcept;

namespace detail {
// The first registered entry (walk by `next`); for http::server.
upgraded_connections* first_upgraded_connections() noexcept;
}  // namespace detail

}  // namespace cnetmod::http
