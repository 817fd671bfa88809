/// @file
/// An IPv4 or IPv6 address with a port, and name resolution. Numeric
/// addresses parse at once; names are resolved with getaddrinfo on a helper
/// thread so the loop never blocks on DNS.
#pragma once

#include <cnetmod/engine/task.hpp>

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cnetmod {

class io_context;

/// An IPv4 or IPv6 socket address (address and port), held in a sockaddr_storage.
class ip_endpoint {
public:
    /// The IPv4 address 0.0.0.0, port 0.
    ip_endpoint() noexcept;
    /// Parses a numeric address: "127.0.0.1", "::1", "[::1]". Throws
    /// std::invalid_argument for anything else.
    ip_endpoint(std::string_view address, std::uint16_t port);
    /// Parses a numeric address as the constructor does, or returns nullopt.
    static std::optional<ip_endpoint> parse(std::string_view address, std::uint16_t port) noexcept;
    /// Copies a socket address as the kernel returned it (at most sizeof(sockaddr_storage) bytes).
    static ip_endpoint from_sockaddr(const sockaddr* sa, socklen_t len) noexcept;
    /// The address a socket is bound to (getsockname). Throws std::system_error naming the call.
    static ip_endpoint local_of(int fd);
    /// The address of a socket's peer (getpeername). Throws std::system_error naming the call.
    static ip_endpoint peer_of(int fd);

    /// 127.0.0.1 with `port`.
    static ip_endpoint loopback_v4(std::uint16_t port) noexcept;
    /// ::1 with `port`.
    static ip_endpoint loopback_v6(std::uint16_t port) noexcept;
    /// 0.0.0.0 (every IPv4 interface) with `port`.
    static ip_endpoint any_v4(std::uint16_t port) noexcept;
    /// :: (every IPv6 interface) with `port`.
    static ip_endpoint any_v6(std::uint16_t port) noexcept;

    /// AF_INET or AF_INET6.
    int family() const noexcept { return storage_.ss_family; }
    /// Whether this is an IPv6 address.
    bool is_v6() const noexcept { return family() == AF_INET6; }
    /// The port, in host byte order.
    std::uint16_t port() const noexcept;
    /// The address alone, numeric: "127.0.0.1", "::1".
    std::string address() const;
    /// The address and port: "127.0.0.1:80", "[::1]:80".
    std::string to_string() const;  // "127.0.0.1:80", "[::1]:80"

    /// The socket address, for bind(), connect() and the like.
    const sockaddr* data() const noexcept { return reinterpret_cast<const sockaddr*>(&storage_); }
    /// The size of the socket address data() points to.
    socklen_t size() const noexcept { return is_v6() ? sizeof(sockaddr_in6) : sizeof(sockaddr_in); }

    /// Same family, address and port.
    friend bool operator==(const ip_endpoint& a, const ip_endpoint& b) noexcept;

private:
    sockaddr_storage storage_{};
};

/// Resolves `host` ("localhost", "127.0.0.1", "::1", "example.org") to
/// endpoints for TCP, numeric forms without any lookup. Throws
/// std::system_error naming the host when it cannot be resolved.
task<std::vector<ip_endpoint>> resolve(io_context& ctx, std::string host, std::uint16_t port);

}  // namespace cnetmod
