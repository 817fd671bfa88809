// The WebSocket layer's per-core counters: where each one sits among the
// layer counters the engine keeps per core (engine/metrics.hpp), and the
// calls that count. Internal: not installed; ws::snapshot reads them.
#pragma once

#include <cnetmod/engine/metrics.hpp>
#include <cnetmod/proto/http/detail/counters.hpp>

#include <cstddef>
#include <cstdint>

namespace cnetmod::ws::detail {

// Indices past first_counter, where HTTP's end.
enum counter : std::size_t {
    connections_open,  // a gauge
    handshakes_ok,
    handshake_not_websocket,  // 400: not a WebSocket handshake
    handshake_bad_version,    // 426: another version than 13
    handshake_refused,        // the route's upgrade handler said no
    handshake_failed,         // failed after the 101 was queued (no memory for the connection)
    messages_in,
    bytes_in,
    compressed_in,
    messages_out,
    bytes_out,
    compressed_out,
    pubsub_deliveries,
    pubsub_drops,
    closes_sent,                         // close_code_slots of them, by code
    closes_received = closes_sent + 17,  // the same
    counters_used = closes_received + 17,
};
// Close codes 1000..1015 each have a slot; every other code shares the last.
inline constexpr std::size_t close_code_slots = 17;
inline constexpr std::size_t first_counter = http::detail::layer_counters_end;
static_assert(first_counter + counters_used <= cnetmod::detail::layer_counter_count);

inline constexpr std::size_t close_slot(std::uint16_t code) noexcept {
    return code >= 1000 && code <= 1015 ? code - 1000u : close_code_slots - 1;
}

// This thread's core's counters (a spare set off a loop).
inline core_counter* counters() noexcept {
    return cnetmod::detail::current_layer_counters() + first_counter;
}
inline void count(counter c, std::uint64_t n = 1) noexcept {
    counters()[c].add(n);
}
inline void count_close_sent(std::uint16_t code) noexcept {
    counters()[closes_sent + close_slot(code)].add();
}
inline void count_close_received(std::uint16_t code) noexcept {
    counters()[closes_received + close_slot(code)].add();
}
// A data message sent or received: its count, payload bytes and whether compressed, at once.
inline void count_message(counter first, std::size_t payload, bool compressed) noexcept {
    core_counter* c = counters() + first;
    c[0].add();
    c[1].add(payload);
    if (compressed) c[2].add();
}

// A data frame sent as the caller cut it (a fragment): its payload bytes,
// and the message once its last frame goes.
inline void count_data_frame(std::size_t payload, bool fin, bool compressed) noexcept {
    core_counter* c = counters();
    c[bytes_out].add(payload);
    if (!fin) return;
    c[messages_out].add();
    if (compressed) c[compressed_out].add();
}

}  // namespace cnetmod::ws::detail
