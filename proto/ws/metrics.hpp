/// @file
/// Metrics for embedders: every core's counters in one snapshot, and the
/// Prometheus text format served from a route the embedder mounts.
///
///     ws::pubsub ps(rt);
///     http::server srv(rt);
///     srv.get("/metrics", ws::metrics_route(rt, &ps));
///
/// Counting costs each core a plain add to a counter of its own (no locked
/// instruction); a snapshot reads them all, from any thread, on demand. A
/// snapshot is not one instant across cores: each counter is as recent as
/// the moment it was read.
#pragma once

#include <cnetmod/engine/io_context.hpp>
#include <cnetmod/engine/metrics.hpp>
#include <cnetmod/engine/runtime.hpp>
#include <cnetmod/proto/http/server.hpp>
#include <cnetmod/proto/ws/pubsub.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace cnetmod::ws {

/// The WebSocket layer's figures for one core: counts since the core's
/// io_context was made, and one gauge. Server and client connections count alike.
struct ws_metrics {
    /// Close codes counted one by one: 1000 to 1015 in slots 0 to 15; every other code in the last slot.
    static constexpr std::size_t close_code_slots = 17;

    std::uint64_t connections_open = 0;          ///< Gauge: WebSocket connections open now.
    std::uint64_t handshakes_ok = 0;             ///< Upgrades answered 101 and handed to a handler.
    std::uint64_t handshakes_not_websocket = 0;  ///< Requests to a WebSocket route that were no handshake (400).
    std::uint64_t handshakes_bad_version = 0;    ///< Handshakes of another version than 13 (426).
    std::uint64_t handshakes_refused = 0;        ///< Handshakes a route's upgrade handler refused.
    std::uint64_t handshakes_failed = 0;         ///< Handshakes that failed after the 101 was queued (no memory).
    std::uint64_t messages_received = 0;         ///< Data messages received whole (or their last piece).
    std::uint64_t bytes_received = 0;            ///< Their payload bytes, after inflating.
    std::uint64_t compressed_received = 0;       ///< Of those messages, the ones that came compressed.
    std::uint64_t messages_sent = 0;             ///< Data messages queued to send (prepared ones included).
    std::uint64_t bytes_sent = 0;                ///< Their payload bytes, before compressing.
    std::uint64_t compressed_sent = 0;           ///< Of those messages, the ones sent compressed.
    std::uint64_t pubsub_deliveries = 0;         ///< Published messages queued to a subscriber on this core.
    std::uint64_t pubsub_drops = 0;              ///< Deliveries skipped or subscribers closed for being slow.
    std::array<std::uint64_t, close_code_slots> closes_sent{};      ///< Close frames sent, by code slot.
    std::array<std::uint64_t, close_code_slots> closes_received{};  ///< Close frames received, by code slot.

    /// The close code a slot counts (1000 + slot), or 0 for the last slot (every other code).
    static constexpr std::uint16_t close_code_of_slot(std::size_t slot) noexcept {
        return slot + 1 < close_code_slots ? static_cast<std::uint16_t>(1000 + slot) : 0;
    }
};

/// The WebSocket figures of `ctx`'s core; safe from any thread while `ctx` lives.
ws_metrics metrics_of(const io_context& ctx) noexcept;

/// One core's figures from every layer.
struct core_metrics {
    std::size_t core = 0;         ///< The core (runtime core index; 0 for a lone io_context).
    engine_metrics engine{};      ///< The engine's: loop turns, completions, busy time, bytes, send queues.
    http::server_metrics http{};  ///< HTTP's: connections accepted and open, requests.
    ws_metrics ws{};              ///< WebSocket's: handshakes, messages, closes, pub/sub.
};

/// Every core's figures, and the broker bridge's state when one was asked for.
struct metrics_snapshot {
    std::vector<core_metrics> cores;      ///< One entry per core, in core order.
    std::optional<broker_status> broker;  ///< The pub/sub broker bridge's, if a pubsub was given.

    /// The sum over cores (its `core` is 0).
    core_metrics total() const noexcept;
};

/// Reads every core of `rt` (from any thread, while `rt` is started), and
/// `ps`'s broker status when `ps` is given.
metrics_snapshot snapshot(runtime& rt, const pubsub* ps = nullptr);
/// Reads a lone io_context (from any thread while it lives).
metrics_snapshot snapshot(const io_context& ctx, const pubsub* ps = nullptr);

/// The snapshot in the Prometheus text exposition format (version 0.0.4):
/// names start with `cnetmod_`, every series has a `core` label, counters
/// end in `_total`; close codes are a `code` label (`other` for the last
/// slot) and handshakes a `result` label. Broker figures carry no core.
std::string to_prometheus(const metrics_snapshot& s);

/// The media type of to_prometheus's text, for the Content-Type header.
inline constexpr const char* prometheus_content_type = "text/plain; version=0.0.4; charset=utf-8";

/// A GET handler that answers with to_prometheus(snapshot(rt, ps)). `rt`
/// and `ps` must outlive the server.
http::server::handler metrics_route(runtime& rt, const pubsub* ps = nullptr);
/// The same for a server on one io_context.
http::server::handler metrics_route(io_context& ctx, const pubsub* ps = nullptr);

}  // namespace cnetmod::ws
