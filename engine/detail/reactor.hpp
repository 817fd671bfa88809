// The reactor behind an io_context: its ring, the loop turn, the timer wheel
// and the hooks engine components use (SQEs, the ready queue, turn-end work,
// orphaned state, deadlines). Not part of the public API: io_context shows
// embedders run/stop/post, and engine code reaches this through
// detail::reactor_of(ctx). Public headers never include it: what their
// inline code needs (resuming a coroutine, preparing an SQE for submit) goes
// through functions defined in the engine's .cpp files. It names io_uring
// types only by forward declaration; the .cpp files that prepare SQEs
// include <liburing.h> themselves.
#pragma once

#include <cnetmod/engine/deadline.hpp>
#include <cnetmod/engine/detail/completion.hpp>
#include <cnetmod/engine/detail/timer_wheel.hpp>
#include <cnetmod/engine/io_context.hpp>
#include <cnetmod/engine/metrics.hpp>
#include <cnetmod/engine/registered_buffer.hpp>
#include <cnetmod/engine/spawn.hpp>
#include <cnetmod/engine/unique_function.hpp>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

struct io_uring;
struct io_uring_sqe;

namespace cnetmod::detail {

class provided_buffer_ring;
struct message_batch;

// A completion or hook that belongs to a reactor and knows it.
struct context_completion : completion {
    reactor* home = nullptr;
    using completion::completion;
};
struct context_hook : turn_hook {
    reactor* home = nullptr;
    using turn_hook::turn_hook;
};

// Work a layer must do when the context is torn down, before its ring goes:
// freeing what it owns on this core that no coroutine owns (a callback
// WebSocket, say). Registered once; run once.
struct teardown_hook {
    void (*run)(teardown_hook*) = nullptr;
    teardown_hook* next = nullptr;
};

// State released by its owner while the kernel still holds operations that
// name it (a closed socket's cancelled recv). It frees itself when its last
// CQE arrives; whatever is left when the context is destroyed is freed after
// the ring is gone.
struct orphan_node {
    orphan_node* prev = nullptr;
    orphan_node* next = nullptr;
    void (*destroy)(orphan_node*) = nullptr;
};

// A deadline for a waiter that is not itself an SQE (a recv from the
// stream's queue, an accept from the listener's queue), pooled by the
// reactor so its owner need not embed a timer_entry. Disarming returns it to
// the pool at once: the wheel holds no kernel resource.
struct wait_timer : timer_entry {
    void (*on_expire)(void* owner) = nullptr;
    void* owner = nullptr;
    reactor* home = nullptr;
    std::uint32_t index = 0;
};

class reactor {
public:
    reactor(io_context& ctx, io_context_options options);
    ~reactor();
    reactor(const reactor&) = delete;
    reactor& operator=(const reactor&) = delete;

    io_context& context() noexcept { return ctx_; }
    const io_context_options& options() const noexcept { return options_; }
    const io_context_features& features() const noexcept { return features_; }

    // ---- the loop (io_context's public face forwards here) ----
    void run();
    void stop() noexcept;
    bool stop_requested() const noexcept { return stop_requested_.load(std::memory_order_relaxed); }
    void post(unique_function fn);
    // Frees state the kernel may still name and leaves the ring closed; run
    // once, by io_context's destructor, before the reactor itself goes.
    void tear_down() noexcept;

    // ---- the ring ----
    io_uring& ring() noexcept { return *ring_; }
    // A free SQE; submits what is queued if the SQ is full.
    io_uring_sqe* acquire_sqe();
    // Makes room for `n` adjacent SQEs (a linked pair must not be split by a submit).
    void reserve_sqes(unsigned n);
    // Points `sqe` at `c` and, given a deadline, links an IORING_OP_LINK_TIMEOUT
    // (kernel 5.5) to it; the caller reserved two SQEs for that.
    void bind(io_uring_sqe* sqe, completion* c, __kernel_timespec* link_timeout);
    // Asks the kernel to cancel the operation whose SQE carried `user_data`.
    void cancel(const void* user_data);
    // A slot of the registered-file table for `fd` (a synchronous update of
    // one entry), or -1 when the table is full or absent. The socket keeps
    // its descriptor too (for setsockopt, getpeername, close).
    int register_file(int fd) noexcept;
    // Empties the slot (operations still in flight keep the file until they
    // end), so that closing the descriptor closes the socket; false when the
    // kernel refused (the caller then shuts the socket down itself). The
    // slot is reused only after the next submission: SQEs already prepared
    // may still name it.
    bool unregister_file(int slot) noexcept;
    // True while the context is being torn down: nothing new may be submitted.
    bool closing() const noexcept { return closing_; }

    provided_buffer_ring& recv_buffers() noexcept { return *recv_buffers_; }
    // A free registered send buffer, or nullopt (none free, or none configured).
    std::optional<registered_buffer> acquire_registered_buffer() noexcept {
        return send_buffers_ ? send_buffers_->acquire() : std::nullopt;
    }

    // ---- the loop turn ----
    // Resumes `h` in this turn's ready queue.
    void schedule(std::coroutine_handle<> h) { ready_.push_back(h); }
    void at_turn_end(turn_hook& hook) noexcept {
        if (hook.queued) return;
        hook.queued = true;
        hook.next = hooks_;
        hooks_ = &hook;
    }

    // ---- deadlines: the core's timer wheel, 1 ms ticks, no SQE ----
    // Arms `e` to fire in the first loop turn at or after `d` (within a tick
    // or so); re-arms it if armed. A deadline that is not set disarms it.
    void arm(timer_entry& e, deadline d) noexcept;
    void disarm(timer_entry& e) noexcept { wheel_.disarm(e); }
    // A pooled entry that calls on_expire(owner) at `d`; disarm it (at most
    // once, and not after it fired) to cancel.
    wait_timer* arm_wait_timer(deadline d, void (*on_expire)(void*), void* owner);
    void disarm_wait_timer(wait_timer* t) noexcept;
    // The wheel's tick for a point in time: whole milliseconds of steady_clock.
    static std::uint64_t tick_of(deadline::clock::time_point t) noexcept;

    // ---- ownership ----
    // Keeps released state until its last CQE (see orphan_node).
    void add_orphan(orphan_node& node) noexcept;
    void remove_orphan(orphan_node& node) noexcept;
    void adopt(detached_node& node) noexcept;
    // `hook` runs first in tear_down(), while the ring still works.
    void at_tear_down(teardown_hook& hook) noexcept {
        hook.next = teardown_hooks_;
        teardown_hooks_ = &hook;
    }
    void release(detached_node& node) noexcept;

    // ---- runtime membership and cross-core messages ----
    void send_message(io_context& target, unique_function fn);
    void attach_runtime(runtime& rt, std::size_t core, std::size_t cores);
    std::size_t core() const noexcept { return core_; }
    runtime* owner_runtime() const noexcept { return runtime_; }
    // Drains messages that reached this ring after its loop stopped, freeing
    // them unrun. Called on the owning thread by the runtime at shutdown.
    void discard_pending_messages() noexcept;

    // ---- statistics ----
    std::uint64_t enter_calls() const noexcept { return enter_calls_.value(); }
    std::uint64_t completions() const noexcept { return completions_.value(); }
    std::uint64_t sqes_prepared() const noexcept;
    // The figures io_context::metrics() reports; safe from any thread.
    engine_metrics metrics() const noexcept;
    // Counted by sockets on this core (their own thread).
    core_counter& bytes_received_counter() noexcept { return bytes_received_; }
    core_counter& bytes_sent_counter() noexcept { return bytes_sent_; }
    core_counter& send_queue_bytes_counter() noexcept { return send_queue_bytes_; }
    core_counter& backpressure_counter() noexcept { return backpressure_; }
    // The layers' counters (engine/metrics.hpp: layer_counter_count of them).
    core_counter* layer_counters() noexcept { return layer_counters_; }
    const core_counter* layer_counters() const noexcept { return layer_counters_; }

private:
    friend struct message_batch;

    void setup_ring();
    void register_file_table() noexcept;
    void enable_on_this_thread();
    void turn();
    int enter(bool idle);
    int enter_for_batch(__kernel_timespec* timeout);
    void run_ready();
    void run_turn_hooks();
    static std::uint64_t thread_cpu_ns() noexcept;
    std::uint64_t busy_ns() const noexcept;
    void expire_deadlines();
    void dispatch(std::uint64_t user_data, int result, std::uint32_t flags);
    void arm_wake();
    void drain_remote_posts();
    void flush_messages();
    static void on_wake(completion* c, int result, std::uint32_t flags);
    static void on_wait_timer(timer_entry* e);
    void free_wait_timer(wait_timer* t) noexcept;

    io_context& ctx_;
    io_context_options options_;
    io_context_features features_;
    std::unique_ptr<io_uring> ring_;
    bool ring_ready_ = false;
    bool enabled_ = false;
    bool closing_ = false;
    std::thread::id owner_thread_{};
    std::unique_ptr<provided_buffer_ring> recv_buffers_;
    std::unique_ptr<registered_buffer_pool> send_buffers_;
    std::vector<std::uint32_t> free_file_slots_;     // of the registered-file table, highest first
    std::vector<std::uint32_t> emptied_file_slots_;  // free once this turn's SQEs are submitted

    std::atomic<bool> stop_requested_{false};

    // Coroutines to resume this turn; swapped out while they run.
    std::vector<std::coroutine_handle<>> ready_;
    std::vector<std::coroutine_handle<>> running_;
    // Functions posted from this thread.
    std::vector<unique_function> local_posts_;
    std::vector<unique_function> local_running_;
    turn_hook* hooks_ = nullptr;
    teardown_hook* teardown_hooks_ = nullptr;

    // Functions posted from other threads, and the eventfd that wakes the loop.
    std::mutex remote_mutex_;
    std::vector<unique_function> remote_posts_;
    std::vector<unique_function> remote_running_;
    bool remote_signalled_ = false;
    int wake_fd_ = -1;
    std::uint64_t wake_value_ = 0;
    context_completion wake_completion_;
    bool wake_armed_ = false;

    detached_node detached_{};  // sentinel of a circular list

    timer_wheel wheel_;
    std::vector<std::unique_ptr<wait_timer>> wait_timers_;
    std::vector<std::uint32_t> free_wait_timers_;

    orphan_node orphans_{};  // sentinel of a circular list

    // Runtime membership and outgoing MSG_RING batches, one slot per core.
    runtime* runtime_ = nullptr;
    std::size_t core_ = 0;
    std::vector<message_batch*> outgoing_;
    context_hook message_hook_;

    // Statistics and metrics: written by this context's thread only, read by any.
    core_counter enter_calls_;
    core_counter completions_;
    core_counter sqes_;
    core_counter busy_ns_;
    core_counter bytes_received_;
    core_counter bytes_sent_;
    core_counter send_queue_bytes_;
    core_counter backpressure_;
    core_counter layer_counters_[layer_counter_count];
    std::atomic<int> loop_tid_{0};                 // the thread running the loop now, 0 when none
    std::atomic<std::uint64_t> busy_start_ns_{0};  // its CPU time when run() began
    unsigned counted_tail_ = 0;                    // the SQ tail as of the last count
};

}  // namespace cnetmod::detail
