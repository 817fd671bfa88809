/// @file
/// Per-core counters, kept without locked instructions and read on demand.
///
/// Each core (each io_context) keeps its own counters; only the core's own
/// thread changes them, with a plain load and store, so counting costs what
/// adding to an integer costs. Any thread may read them at any moment (a
/// relaxed load): what it sees is a recent value of each counter, not one
/// instant across all of them. The engine's own figures are
/// io_context::metrics(); the HTTP and WebSocket layers add theirs in the
/// same way (http::metrics_of, ws::snapshot), and ws::to_prometheus turns a
/// snapshot into the Prometheus text format.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace cnetmod {

class io_context;

/// A count written by one thread (the core that owns it) and read by any.
///
/// The owner adds with a relaxed load and store: no locked instruction, and
/// no other thread may write it. Subtracting wraps around as unsigned
/// arithmetic does, so a gauge kept as additions and subtractions reads
/// right once both have been counted.
class core_counter {
public:
    /// Adds `n`; only from the owning thread.
    void add(std::uint64_t n = 1) noexcept {
        value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    /// Subtracts `n`; only from the owning thread.
    void sub(std::uint64_t n = 1) noexcept {
        value_.store(value_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
    }
    /// The value now; from any thread.
    std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t> value_{0};
};

/// The engine's figures for one io_context, as read at one moment.
///
/// Every field is a count since the context was made, except the gauges
/// (marked), which say how much there is now.
struct engine_metrics {
    std::uint64_t loop_turns = 0;        ///< Loop turns, each one io_uring_enter that submits and waits.
    std::uint64_t completions = 0;       ///< Completions (CQEs) handled.
    std::uint64_t sqes = 0;              ///< Submissions (SQEs) prepared.
    std::uint64_t busy_ns = 0;           ///< CPU time (user and kernel) the core's thread used running the loop, in ns.
    std::uint64_t bytes_received = 0;    ///< Bytes sockets received (for TLS: the encrypted records).
    std::uint64_t bytes_sent = 0;        ///< Bytes the kernel took from sockets' send queues.
    std::uint64_t send_queue_bytes = 0;  ///< Gauge: bytes queued to send that the kernel has not taken yet.
    std::uint64_t backpressure_events = 0;  ///< Times a writer waited for a send queue to drain.
};

namespace detail {
/// Counters each core keeps for the layers above the engine, by index:
/// the engine names none of them. Each layer takes the indices after those
/// of the layers below it (HTTP from 0, its own header saying where it ends).
inline constexpr std::size_t layer_counter_count = 64;
/// The layer counters of the context whose loop runs on this thread
/// (nullptr when none runs). Inline so that counting costs no call.
extern thread_local constinit core_counter* current_layers;
/// This thread's spare set, for counts made off a loop (kept, read by nobody).
core_counter* spare_layer_counters() noexcept;
/// The layer counters of the context whose loop runs on this thread, or the spare set.
inline core_counter* current_layer_counters() noexcept {
    core_counter* c = current_layers;
    return c ? c : spare_layer_counters();
}
/// The layer counters of `ctx`, to read them from any thread while `ctx` lives.
const core_counter* layer_counters_of(const io_context& ctx) noexcept;
}  // namespace detail

}  // namespace cnetmod
