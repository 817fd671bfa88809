/// @file
/// The settings a WebSocket connection consults after its handshake, held
/// once per route (or per distinct ws::options) and shared by its
/// connections: a connection points to them instead of carrying a copy.
#pragma once

#include <cnetmod/proto/ws/machine.hpp>
#include <cnetmod/proto/ws/options.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <string>

namespace cnetmod::ws::detail {

class connection_state;

struct route_settings {
    using ms32 = std::chrono::duration<std::uint32_t, std::milli>;
    route_settings() = default;
    explicit route_settings(const options& o, std::string selected_subprotocol = {})
        : limits{o.max_message_size,
                 clamp32(o.max_inflate_ratio),
                 o.core_reassembly_budget,
                 clamp32(o.compression_threshold),
                 clamp32(o.takeover_compression_threshold),
                 static_cast<std::int8_t>(std::clamp(o.compression_level, 1, 12)),
                 static_cast<std::int8_t>(std::clamp(o.compression_memory_level, 1, 9)),
                 o.compression_memory_budget,
                 o.auto_pong},
          idle_timeout(o.idle_timeout),
          close_timeout(o.close_timeout),
          send_timeout(o.send_timeout),
          message_timeout(clamp_ms(o.message_timeout)),
          ping_interval(clamp_ms(o.ping_interval)),
          pong_timeout(clamp_ms(o.pong_timeout)),
          max_queued_bytes(clamp32(o.max_queued_bytes)),
          send_high_water(o.send_high_water),
          subprotocol(std::move(selected_subprotocol)) {}
    route_settings(const route_settings&) = delete;
    route_settings& operator=(const route_settings&) = delete;

    static constexpr std::uint32_t clamp32(std::size_t n) noexcept {
        return static_cast<std::uint32_t>(std::min<std::size_t>(n, UINT32_MAX));
    }
    // Negative is off (0); beyond 49 days is 49 days.
    static constexpr std::uint32_t clamp_ms(std::chrono::milliseconds d) noexcept {
        return static_cast<std::uint32_t>(std::clamp<std::int64_t>(d.count(), 0, UINT32_MAX));
    }
    // The same settings (interning compares with this).
    bool same_as(const route_settings& o) const noexcept {
        const auto& a = limits;
        const auto& b = o.limits;
        return a.max_message_size == b.max_message_size && a.max_inflate_ratio == b.max_inflate_ratio &&
               a.core_reassembly_budget == b.core_reassembly_budget &&
               a.compression_threshold == b.compression_threshold &&
               a.takeover_compression_threshold == b.takeover_compression_threshold &&
               a.compression_level == b.compression_level && a.compression_memory_level == b.compression_memory_level &&
               a.compression_memory_budget == b.compression_memory_budget && a.auto_pong == b.auto_pong &&
               a.fragments == b.fragments && idle_timeout == o.idle_timeout && close_timeout == o.close_timeout &&
               send_timeout == o.send_timeout && message_timeout == o.message_timeout &&
               ping_interval == o.ping_interval && pong_timeout == o.pong_timeout &&
               max_queued_bytes == o.max_queued_bytes && send_high_water == o.send_high_water &&
               subprotocol == o.subprotocol;
    }

    void retain() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
    void release() noexcept {
        if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy(this);
    }

    machine_limits limits;
    std::chrono::milliseconds idle_timeout{0}, close_timeout{5'000}, send_timeout{30'000};
    ms32 message_timeout{0}, ping_interval{0}, pong_timeout{0};
    std::uint32_t max_queued_bytes = 4 * 1024 * 1024;  // bounds of 4 GiB and more are 4 GiB
    std::size_t send_high_water = 1024 * 1024;
    std::string subprotocol;  // the one a connection of these settings selected, if it did
    std::atomic<std::uint32_t> refs{1};
    // How the last reference frees the object (a route frees its handlers too).
    void (*destroy)(route_settings*) = [](route_settings* s) { delete s; };
};

}  // namespace cnetmod::ws::detail
