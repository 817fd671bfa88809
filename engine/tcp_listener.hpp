/// @file
/// tcp_listener: a listening socket with one multishot accept (kernel 5.19)
/// that queues accepted connections for accept(). SO_REUSEPORT lets every
/// core bind its own listener on the same port, the kernel spreading
/// connections between them.
#pragma once

#include <cnetmod/engine/deadline.hpp>
#include <cnetmod/engine/endpoint.hpp>
#include <cnetmod/engine/tcp_stream.hpp>

#include <chrono>
#include <cstddef>

namespace cnetmod {

namespace detail {
class listener_state;
}

/// How a tcp_listener listens, and the options of the streams it accepts.
struct listen_options {
    /// The kernel's queue of connections not yet accepted (listen(2)'s backlog).
    int backlog = 4096;
    /// SO_REUSEPORT: other sockets (each core's, or another process's) may
    /// listen on the same port, the kernel spreading connections between them.
    bool reuse_port = true;
    /// IPV6_V6ONLY: an IPv6 listener takes no IPv4 connections.
    bool v6_only = false;
    /// Accepted connections queued before accept() takes them; past this the
    /// multishot accept pauses and the kernel's backlog holds the rest.
    std::size_t max_queued = 1024;
    /// TCP keepalive on accepted connections (set on the listening socket,
    /// which they inherit): a peer that vanished without FIN or RST (a lost
    /// NAT entry, a pulled cable) is found dead after keepalive_idle of
    /// silence plus keepalive_count unanswered probes keepalive_interval
    /// apart (60 + 6 x 10 s by default), and its socket errors with ETIMEDOUT.
    bool keepalive = true;
    /// Silence before the first keepalive probe.
    std::chrono::seconds keepalive_idle{60};
    /// Time between keepalive probes.
    std::chrono::seconds keepalive_interval{10};
    /// Unanswered probes before the connection is dead.
    int keepalive_count = 6;
    /// The options of every accepted tcp_stream.
    stream_options stream{};
};

/// A listening TCP socket on one io_context, accepting with one multishot accept; accept() takes connections in
/// order. Move-only; used on its context's thread.
class tcp_listener {
public:
    /// A closed listener.
    tcp_listener() noexcept = default;
    /// Binds and listens on `endpoint` (port 0 picks a free port). Throws
    /// std::system_error naming the address, e.g. for EADDRINUSE.
    static tcp_listener bind(io_context& ctx, const ip_endpoint& endpoint, listen_options options = {});
    /// Opens a listening socket (SO_REUSEADDR, SO_REUSEPORT as asked) without
    /// a context: plain system calls, safe from any thread. Throws like bind.
    static int open_socket(const ip_endpoint& endpoint, const listen_options& options);
    /// Throws std::system_error (EADDRINUSE, "Address already in use") when
    /// any socket listens on `endpoint`, SO_REUSEPORT or not: a bind without
    /// SO_REUSEPORT tells, and nothing is left listening afterwards.
    static void ensure_port_free(const ip_endpoint& endpoint);
    /// Takes over a listening socket and starts accepting on `ctx` (call on ctx's thread).
    static tcp_listener adopt(io_context& ctx, int fd, listen_options options = {});

    /// Takes over `other`'s socket; `other` is left closed.
    tcp_listener(tcp_listener&& other) noexcept;
    /// Closes the socket held and takes over `other`'s.
    tcp_listener& operator=(tcp_listener&& other) noexcept;
    tcp_listener(const tcp_listener&) = delete;
    tcp_listener& operator=(const tcp_listener&) = delete;
    /// Closes the socket (close()).
    ~tcp_listener();

    /// The next accepted connection. Throws std::system_error with ETIMEDOUT
    /// past the deadline, or ECANCELED once the listener is closed.
    task<tcp_stream> accept(deadline d = {});

    /// The address the socket is bound to. Throws std::system_error (getsockname).
    ip_endpoint local_endpoint() const;
    /// The port the socket is bound to (the one picked, after binding port 0).
    std::uint16_t port() const { return local_endpoint().port(); }
    /// The socket's descriptor, or -1 when closed.
    int native_handle() const noexcept;
    /// Whether the listener holds a socket.
    bool is_open() const noexcept;
    /// Stops accepting and closes the socket; waiting accept()s fail with ECANCELED.
    void close() noexcept;

private:
    explicit tcp_listener(detail::listener_state* s) noexcept : state_(s) {}
    detail::listener_state* state_ = nullptr;
};

}  // namespace cnetmod
