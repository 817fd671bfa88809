#include <cnetmod/engine/endpoint.hpp>
#include <cnetmod/engine/io_context.hpp>

#include <arpa/inet.h>
#include <netdb.h>
#include <system_error>

#include <coroutine>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace cnetmod {

ip_endpoint::ip_endpoint() noexcept {
    storage_.ss_family = AF_INET;
}

ip_endpoint::ip_endpoint(std::string_view address, std::uint16_t port) {
    auto parsed = parse(address, port);
    if (!parsed)
        throw std::invalid_argument("cnetmod: not a numeric IPv4 or IPv6 address: '" + std::string(address) + "'");
    *this = *parsed;
}

std::optional<ip_endpoint> ip_endpoint::parse(std::string_view address, std::uint16_t port) noexcept {
    if (address.size() >= 2 && address.front() == '[' && address.back() == ']')
        address = address.substr(1, address.size() - 2);
    if (address.size() >= INET6_ADDRSTRLEN) return std::nullopt;
    char text[INET6_ADDRSTRLEN] = {};
    if (!address.empty()) std::memcpy(text, address.data(), address.size());
    ip_endpoint ep;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ep.storage_);
    if (::inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        return ep;
    }
    ep.storage_ = {};
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ep.storage_);
    if (::inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        return ep;
    }
    return std::nullopt;
}

ip_endpoint ip_endpoint::from_sockaddr(const sockaddr* sa, socklen_t len) noexcept {
    ip_endpoint ep;
    std::memcpy(&ep.storage_, sa, std::min<std::size_t>(len, sizeof ep.storage_));
    return ep;
}

namespace {
ip_endpoint socket_name(int fd, bool peer) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    const int rc = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
                        : ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    if (rc < 0)
        throw std::system_error(errno, std::system_category(), peer ? "cnetmod: getpeername" : "cnetmod: getsockname");
    return ip_endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}
}  // namespace

ip_endpoint ip_endpoint::local_of(int fd) {
    return socket_name(fd, false);
}
ip_endpoint ip_endpoint::peer_of(int fd) {
    return socket_name(fd, true);
}

ip_endpoint ip_endpoint::loopback_v4(std::uint16_t port) noexcept {
    return *parse("127.0.0.1", port);
}
ip_endpoint ip_endpoint::loopback_v6(std::uint16_t port) noexcept {
    return *parse("::1", port);
}
ip_endpoint ip_endpoint::any_v4(std::uint16_t port) noexcept {
    return *parse("0.0.0.0", port);
}
ip_endpoint ip_endpoint::any_v6(std::uint16_t port) noexcept {
    return *parse("::", port);
}

std::uint16_t ip_endpoint::port() const noexcept {
    return is_v6() ? ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port)
                   : ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
}

std::string ip_endpoint::address() const {
    char text[INET6_ADDRSTRLEN] = {};
    if (is_v6())
        ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, text, sizeof text);
    else
        ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, text, sizeof text);
    return text;
}

std::string ip_endpoint::to_string() const {
    // Appended piece by piece: g++ 12 at -O3 warns falsely (-Wrestrict) on "[" + std::string.
    std::string out;
    if (is_v6()) out += '[';
    out += address();
    if (is_v6()) out += ']';
    out += ':';
    out += std::to_string(port());
    return out;
}

bool operator==(const ip_endpoint& a, const ip_endpoint& b) noexcept {
    return a.family() == b.family() && std::memcmp(a.data(), b.data(), a.size()) == 0;
}

namespace {

// Carries one getaddrinfo from a helper thread back to the loop. The
// waiting coroutine may be destroyed first (its context torn down while the
// lookup runs): its awaiter then clears `ctx` under the lock, and the helper
// posts nothing (the context may be gone).
struct resolution {
    std::string host;
    std::uint16_t port;
    std::vector<ip_endpoint> endpoints;
    int error = 0;
    std::coroutine_handle<> waiter;
    std::mutex lock;
    io_context* ctx = nullptr;  // null once the waiter is gone
};

struct resolve_awaiter {
    // A constructor, not aggregate initialisation: g++ 12 miscompiles an
    // aggregate temporary awaited in place (its members are not copied).
    resolve_awaiter(io_context& c, std::shared_ptr<resolution> j) : ctx(c), job(std::move(j)) {}
    ~resolve_awaiter() {
        std::lock_guard l(job->lock);
        job->ctx = nullptr;
    }
    resolve_awaiter(const resolve_awaiter&) = delete;
    resolve_awaiter& operator=(const resolve_awaiter&) = delete;
    io_context& ctx;
    std::shared_ptr<resolution> job;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) {
        job->waiter = h;
        job->ctx = &ctx;
        std::thread([j = job] {
            addrinfo hints{};
            hints.ai_family = AF_UNSPEC;
            hints.ai_socktype = SOCK_STREAM;
            hints.ai_flags = AI_ADDRCONFIG;
            addrinfo* list = nullptr;
            const std::string service = std::to_string(j->port);
            j->error = ::getaddrinfo(j->host.c_str(), service.c_str(), &hints, &list);
            if (j->error == 0) {
                for (auto* ai = list; ai; ai = ai->ai_next)
                    if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
                        j->endpoints.push_back(ip_endpoint::from_sockaddr(ai->ai_addr, ai->ai_addrlen));
                ::freeaddrinfo(list);
            }
            std::lock_guard l(j->lock);
            if (j->ctx)  // the waiter is there, so is its context; it may still go before this runs:
                j->ctx->post([j] {
                    if (j->ctx) j->waiter.resume();  // on the loop's thread, as the awaiter's destructor
                });
        }).detach();
    }
    void await_resume() const noexcept {}
};

}  // namespace

task<std::vector<ip_endpoint>> resolve(io_context& ctx, std::string host, std::uint16_t port) {
    if (auto numeric = ip_endpoint::parse(host, port)) co_return std::vector<ip_endpoint>{*numeric};
    auto job = std::make_shared<resolution>();
    job->host = host;
    job->port = port;
    co_await resolve_awaiter{ctx, job};
    if (job->error != 0)
        throw std::system_error(std::make_error_code(std::errc::host_unreachable),
                                "cnetmod: cannot resolve '" + host + "': " + ::gai_strerror(job->error));
    if (job->endpoints.empty())
        throw std::system_error(std::make_error_code(std::errc::host_unreachable),
                                "cnetmod: '" + host + "' has no IPv4 or IPv6 address");
    co_return std::move(job->endpoints);
}

}  // namespace cnetmod
