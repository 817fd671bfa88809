// Helpers shared by the engine tests: an echo server and deterministic payloads.
#pragma once

#include <cnetmod/engine/detail/provided_buffer_ring.hpp>
#include <cnetmod/engine/engine.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace cnetmod::testing_support {

// Bytes that differ per connection and per position, so a byte delivered to
// the wrong connection or out of order is caught.
inline std::vector<std::byte> pattern(std::size_t size, std::uint32_t seed) {
    std::vector<std::byte> out(size);
    std::uint32_t x = seed * 2654435761u + 1;
    for (auto& b : out) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b = static_cast<std::byte>(x);
    }
    return out;
}

inline task<void> echo_session(tcp_stream s) {
    for (;;) {
        auto view = co_await s.recv_view();
        if (view.empty()) break;
        s.queue(view);
        s.consume(view.size());
    }
    co_await s.close();
}

// Accepts until the listener is closed, echoing on each connection.
inline task<void> echo_server(io_context& ctx, tcp_listener& listener) {
    for (;;) {
        tcp_stream s;
        try {
            s = co_await listener.accept();
        } catch (const std::system_error&) {
            co_return;  // closed
        }
        spawn(ctx, echo_session(std::move(s)));
    }
}

// Reads exactly `n` bytes (or until end of stream).
inline task<std::vector<std::byte>> read_exactly(tcp_stream& s, std::size_t n, deadline d = {}) {
    std::vector<std::byte> out;
    out.reserve(n);
    while (out.size() < n) {
        auto view = co_await s.recv_view(d);
        if (view.empty()) break;
        const std::size_t take = std::min(view.size(), n - out.size());
        out.insert(out.end(), view.begin(), view.begin() + static_cast<std::ptrdiff_t>(take));
        s.consume(take);
    }
    co_return out;
}

}  // namespace cnetmod::testing_support
