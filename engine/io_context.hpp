/// @file
/// io_context: one io_uring, run by one thread — the engine's reactor for one
/// core. Each loop turn runs ready coroutines, lets connections flush their
/// send queues, then makes one io_uring_enter that both submits and waits,
/// dispatches every completion that is ready, and fires the deadlines due.
///
/// This header is what an embedder relies on: running, stopping and posting
/// to the loop, its options and statistics. The ring and the hooks engine
/// components use live in the reactor (engine/detail/reactor.hpp), reached
/// through detail::reactor_of(ctx); neither this header nor the reactor's
/// pulls in <liburing.h>.
#pragma once

#include <cnetmod/engine/metrics.hpp>
#include <cnetmod/engine/registered_buffer.hpp>
#include <cnetmod/engine/unique_function.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

namespace cnetmod {

class runtime;
class io_context;

namespace detail {
class reactor;
class context_locals;
// The engine's way in to a context's ring and hooks.
reactor& reactor_of(io_context& ctx) noexcept;

// Work a component wants done once at the end of the current loop turn,
// before the ring is entered (a send queue's flush, a batch of cross-core
// messages, a reader waiting without a coroutine frame). Registering twice in
// one turn is a no-op. Here rather than with the reactor because public types
// (read_waiter) derive from it.
struct turn_hook {
    using function = void (*)(turn_hook*);
    function run = nullptr;
    turn_hook* next = nullptr;
    bool queued = false;
    explicit turn_hook(function f) : run(f) {}
};
}  // namespace detail

/// How an io_context sets up its ring, buffers and waiting; the defaults suit a server core.
struct io_context_options {
    /// Submission queue entries; the completion queue gets four times as many.
    unsigned sq_entries = 4096;
    /// Receive buffers in the core's provided-buffer ring (a power of two) and
    /// the size of each. Together they bound the bytes received but not yet
    /// consumed on this core: 1024 x 16 KiB = 16 MiB by default.
    unsigned recv_buffer_count = 1024;
    /// Bytes in each receive buffer (see recv_buffer_count).
    unsigned recv_buffer_size = 16 * 1024;
    /// Bind the ring to the thread that first calls run() rather than to the
    /// creating thread (IORING_SETUP_R_DISABLED), so a context may be built on
    /// one thread and run on another.
    bool bind_to_running_thread = true;
    /// Ask for IORING_SETUP_DEFER_TASKRUN (completions run only when the loop
    /// enters the kernel); false starts from COOP_TASKRUN instead.
    bool defer_taskrun = true;
    /// Slots of the ring's registered-file table: a socket registered there is
    /// named by its slot in every operation, so the kernel skips the
    /// file-table lookup and reference count per operation. Sockets beyond
    /// the table (or with 0) use their descriptor as usual. The kernel caps
    /// the table at RLIMIT_NOFILE, and so does the context.
    unsigned registered_files = 16384;
    /// Registered send buffers for zero-copy sends (0: none). Registration
    /// pins the memory, which counts against RLIMIT_MEMLOCK for non-root users.
    unsigned registered_buffer_count = 0;
    /// Bytes in each registered send buffer.
    std::size_t registered_buffer_size = 256 * 1024;
    /// Registered buffers of at least this many bytes go out with SEND_ZC;
    /// smaller ones are copied into the send queue. See bench/RESULTS.md for
    /// the measured crossover.
    std::size_t send_zc_threshold = 256 * 1024;
    /// Never sleep in the kernel: each loop turn submits and reaps without
    /// waiting, so the thread spins on its core. For latency measurements on
    /// machines (VMs especially) where waking a sleeping thread dominates the
    /// round trip; it costs a whole core.
    bool busy_poll = false;
    /// Batched wake-ups: when the loop has nothing to do it sleeps until
    /// `wait_batch` completions are ready or `wait_batch_timeout` has passed,
    /// and after that until any completion (the kernel's minimum wait,
    /// IORING_FEAT_MIN_TIMEOUT, 6.12). Under moderate load one wake-up then
    /// serves many messages, for at most wait_batch_timeout more latency;
    /// 0 or 1 (the default) wakes on the first completion. Ignored by
    /// kernels without the feature.
    unsigned wait_batch = 0;
    /// The longest a batched wait (wait_batch) holds back a completion that is ready.
    std::chrono::microseconds wait_batch_timeout{50};
};

/// The ring set-up flags that the kernel accepted, after fallbacks.
struct io_context_features {
    bool single_issuer = false;  ///< IORING_SETUP_SINGLE_ISSUER: only the running thread submits
    bool defer_taskrun = false;  ///< IORING_SETUP_DEFER_TASKRUN
    bool coop_taskrun =
        false;  ///< IORING_SETUP_COOP_TASKRUN (the fallback when DEFER_TASKRUN is refused or not asked for)
    bool min_timeout = false;       ///< IORING_FEAT_MIN_TIMEOUT: batched wake-ups are possible
    unsigned registered_files = 0;  ///< slots of the registered-file table (0: none)
    unsigned setup_flags = 0;       ///< the IORING_SETUP_* flags the ring was created with
};

/// One io_uring run by one thread: the reactor of one core. Coroutines spawned on it, its sockets and its timers
/// belong to it and are touched only from its thread; other threads reach it through post() or runtime::submit_to.
class io_context {
public:
    /// Sets up the ring, its provided receive buffers and its registered files. Throws std::system_error naming what
    /// the kernel refused (a ring too large for RLIMIT_MEMLOCK, io_uring disabled, ...).
    explicit io_context(io_context_options options = {});
    ~io_context();
    io_context(const io_context&) = delete;
    io_context& operator=(const io_context&) = delete;

    /// Runs the loop on the calling thread until stop(). Returns at once if
    /// stop() was called before; a later run() starts afresh.
    /// Throws std::logic_error when called on another thread than the first run() of a ring that is bound to one
    /// thread (IORING_SETUP_SINGLE_ISSUER).
    void run();
    /// Asks the loop to return after the current turn. Safe from any thread.
    void stop() noexcept;
    /// Whether stop() was called and run() has not started afresh since.
    bool stop_requested() const noexcept;

    /// Runs `fn` on this context's thread, in a later loop turn. Safe from any thread.
    void post(detail::unique_function fn);

    /// The context whose loop runs on the calling thread, or nullptr.
    static io_context* current() noexcept;
    /// Whether this context's loop runs on the calling thread.
    bool running_in_this_thread() const noexcept { return current() == this; }

    /// The ring set-up flags the kernel accepted.
    const io_context_features& features() const noexcept;
    /// The options this context was made with.
    const io_context_options& options() const noexcept;

    /// Runtime membership: the core this context serves (0 when standalone).
    std::size_t core() const noexcept;
    /// The runtime this context is a core of, or nullptr when standalone.
    runtime* owner_runtime() const noexcept;

    /// A free registered send buffer for a zero-copy send, or nullopt (none
    /// free, or none configured in io_context_options).
    std::optional<registered_buffer> acquire_registered_buffer() noexcept;

    /// io_uring_enter system calls this context has made (statistics, for tests and benchmarks).
    std::uint64_t enter_calls() const noexcept;
    /// Completions this context has dispatched.
    std::uint64_t completions() const noexcept;
    /// SQEs this context has prepared (each one an operation the kernel runs).
    std::uint64_t sqes_prepared() const noexcept;
    /// The engine's counters for this core (engine/metrics.hpp); safe from
    /// any thread while the context lives.
    engine_metrics metrics() const noexcept;

private:
    friend detail::reactor& detail::reactor_of(io_context& ctx) noexcept;

    friend class detail::context_locals;

    std::unique_ptr<detail::reactor> reactor_;
    std::unique_ptr<detail::context_locals> locals_;  // context_local.hpp: objects of the layers above
};

inline detail::reactor& detail::reactor_of(io_context& ctx) noexcept {
    return *ctx.reactor_.get();
}

}  // namespace cnetmod
