// io_context: one io_uring, run by one thread — the engine's reactor for one
// core. Each loop turn runs ready coroutines, lets connections flush their
// send queues, then makes one io_uring_enter that both submits and waits,
// and dispatches every completion that is ready.
#pragma once

#include <cnetmod/engine/deadline.hpp>
#include <cnetmod/engine/detail/completion.hpp>
#include <cnetmod/engine/registered_buffer.hpp>
#include <cnetmod/engine/unique_function.hpp>

#include <liburing.h>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace cnetmod {

class runtime;
class io_context;

namespace detail {
class provided_buffer_ring;
struct message_batch;
class context_locals;

// Work a component wants done once at the end of the current loop turn,
// before the ring is entered (a send queue's flush, a batch of cross-core
// messages). Registering twice in one turn is a no-op.
struct turn_hook {
    using function = void (*)(turn_hook*);
    function run = nullptr;
    turn_hook* next = nullptr;
    bool queued = false;
    explicit turn_hook(function f) : run(f) {}
};

// A completion or hook that belongs to a context and knows it.
struct context_completion : completion {
    io_context* ctx = nullptr;
    using completion::completion;
};
struct context_hook : turn_hook {
    io_context* ctx = nullptr;
    using turn_hook::turn_hook;
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

// A node of the intrusive list of detached coroutines (spawn) an io_context owns.
struct detached_node {
    detached_node* prev = nullptr;
    detached_node* next = nullptr;
    std::coroutine_handle<> frame;
};

// A timer that wakes a waiter which is not itself an SQE (a recv from the
// stream's queue, an accept from the listener's queue). It belongs to the
// io_context, so it may outlive its owner until its CQE arrives.
struct wait_timer : completion {
    void (*on_expire)(void* owner) = nullptr;
    void* owner = nullptr;
    __kernel_timespec when{};
    io_context* ctx = nullptr;
    std::uint32_t index = 0;
};
}  // namespace detail

struct io_context_options {
    // Submission queue entries; the completion queue gets four times as many.
    unsigned sq_entries = 4096;
    // Receive buffers in the core's provided-buffer ring (a power of two) and
    // the size of each. Together they bound the bytes received but not yet
    // consumed on this core: 1024 x 16 KiB = 16 MiB by default.
    unsigned recv_buffer_count = 1024;
    unsigned recv_buffer_size = 16 * 1024;
    // Bind the ring to the thread that first calls run() rather than to the
    // creating thread (IORING_SETUP_R_DISABLED), so a context may be built on
    // one thread and run on another.
    bool bind_to_running_thread = true;
    // Ask for IORING_SETUP_DEFER_TASKRUN (completions run only when the loop
    // enters the kernel); false starts from COOP_TASKRUN instead.
    bool defer_taskrun = true;
    // Registered send buffers for zero-copy sends (0: none). Registration
    // pins the memory, which counts against RLIMIT_MEMLOCK for non-root users.
    unsigned registered_buffer_count = 0;
    std::size_t registered_buffer_size = 256 * 1024;
    // Registered buffers of at least this many bytes go out with SEND_ZC;
    // smaller ones are copied into the send queue. See bench/RESULTS.md for
    // the measured crossover.
    std::size_t send_zc_threshold = 256 * 1024;
    // Never sleep in the kernel: each loop turn submits and reaps without
    // waiting, so the thread spins on its core. For latency measurements on
    // machines (VMs especially) where waking a sleeping thread dominates the
    // round trip; it costs a whole core.
    bool busy_poll = false;
    // Batched wake-ups: when the loop has nothing to do it sleeps until
    // `wait_batch` completions are ready or `wait_batch_timeout` has passed,
    // and after that until any completion (the kernel's minimum wait,
    // IORING_FEAT_MIN_TIMEOUT, 6.12). Under moderate load one wake-up then
    // serves many messages, for at most wait_batch_timeout more latency;
    // 0 or 1 (the default) wakes on the first completion. Ignored by
    // kernels without the feature.
    unsigned wait_batch = 0;
    std::chrono::microseconds wait_batch_timeout{50};
};

// The ring set-up flags that the kernel accepted, after fallbacks.
struct io_context_features {
    bool single_issuer = false;
    bool defer_taskrun = false;
    bool coop_taskrun = false;
    bool min_timeout = false;  // IORING_FEAT_MIN_TIMEOUT: batched wake-ups are possible
    unsigned setup_flags = 0;
};

class io_context {
public:
    explicit io_context(io_context_options options = {});
    ~io_context();
    io_context(const io_context&) = delete;
    io_context& operator=(const io_context&) = delete;

    // Runs the loop on the calling thread until stop(). Returns at once if
    // stop() was called before; a later run() starts afresh.
    void run();
    // Asks the loop to return after the current turn. Safe from any thread.
    void stop() noexcept;
    bool stop_requested() const noexcept { return stop_requested_.load(std::memory_order_relaxed); }

    // Runs `fn` on this context's thread, in a later loop turn. Safe from any thread.
    void post(detail::unique_function fn);

    // The context whose loop runs on the calling thread, or nullptr.
    static io_context* current() noexcept;
    bool running_in_this_thread() const noexcept { return current() == this; }

    const io_context_features& features() const noexcept { return features_; }
    const io_context_options& options() const noexcept { return options_; }

    // Runtime membership: the core this context serves (0 when standalone).
    std::size_t core() const noexcept { return core_; }
    runtime* owner_runtime() const noexcept { return runtime_; }

    // ---- for engine components (not part of the stable API) ----
    io_uring& ring() noexcept { return ring_; }
    // A free SQE; submits what is queued if the SQ is full.
    io_uring_sqe* acquire_sqe();
    // Makes room for `n` adjacent SQEs (a linked pair must not be split by a submit).
    void reserve_sqes(unsigned n);
    detail::provided_buffer_ring& recv_buffers() noexcept { return *recv_buffers_; }
    // A free registered send buffer, or nullopt (none free, or none configured).
    std::optional<registered_buffer> acquire_registered_buffer() noexcept {
        return send_buffers_ ? send_buffers_->acquire() : std::nullopt;
    }
    // Resumes `h` in this turn's ready queue.
    void schedule(std::coroutine_handle<> h) { ready_.push_back(h); }
    void at_turn_end(detail::turn_hook& hook) noexcept;
    // Asks the kernel to cancel the operation whose SQE carried `user_data`.
    void cancel(const void* user_data);
    // True while the context is being torn down: nothing new may be submitted.
    bool closing() const noexcept { return closing_; }
    // Keeps released state until its last CQE (see orphan_node).
    void add_orphan(detail::orphan_node& node) noexcept;
    void remove_orphan(detail::orphan_node& node) noexcept;

    detail::wait_timer* arm_wait_timer(deadline d, void (*on_expire)(void*), void* owner);
    void disarm_wait_timer(detail::wait_timer* t) noexcept;

    void adopt(detail::detached_node& node) noexcept;
    void release(detail::detached_node& node) noexcept;

    // Cross-core messages (used by runtime::submit_to).
    void send_message(io_context& target, detail::unique_function fn);
    void attach_runtime(runtime& rt, std::size_t core, std::size_t cores);

    // Statistics, for tests and benchmarks.
    std::uint64_t enter_calls() const noexcept { return enter_calls_; }
    std::uint64_t completions() const noexcept { return completions_; }
    // SQEs this context has prepared (each one an operation the kernel runs).
    std::uint64_t sqes_prepared() const noexcept { return sqes_ + (ring_.sq.sqe_tail - counted_tail_); }

    // Drains messages that reached this ring after its loop stopped, freeing
    // them unrun. Called on the owning thread by the runtime at shutdown.
    void discard_pending_messages() noexcept;

private:
    friend struct detail::message_batch;

    void setup_ring();
    void enable_on_this_thread();
    void turn();
    int enter_for_batch();
    void run_ready();
    void run_turn_hooks();
    void dispatch(std::uint64_t user_data, int result, std::uint32_t flags);
    void arm_wake();
    void drain_remote_posts();
    void flush_messages();
    static void on_wake(detail::completion* c, int result, std::uint32_t flags);
    static void on_wait_timer(detail::completion* c, int result, std::uint32_t flags);
    void free_wait_timer(detail::wait_timer* t) noexcept;

    io_context_options options_;
    io_context_features features_;
    io_uring ring_{};
    bool ring_ready_ = false;
    bool enabled_ = false;
    bool closing_ = false;
    std::thread::id owner_thread_{};
    std::unique_ptr<detail::provided_buffer_ring> recv_buffers_;
    std::unique_ptr<detail::registered_buffer_pool> send_buffers_;

    std::atomic<bool> stop_requested_{false};

    // Coroutines to resume this turn; swapped out while they run.
    std::vector<std::coroutine_handle<>> ready_;
    std::vector<std::coroutine_handle<>> running_;
    // Functions posted from this thread.
    std::vector<detail::unique_function> local_posts_;
    std::vector<detail::unique_function> local_running_;
    detail::turn_hook* hooks_ = nullptr;

    // Functions posted from other threads, and the eventfd that wakes the loop.
    std::mutex remote_mutex_;
    std::vector<detail::unique_function> remote_posts_;
    std::vector<detail::unique_function> remote_running_;
    bool remote_signalled_ = false;
    int wake_fd_ = -1;
    std::uint64_t wake_value_ = 0;
    detail::context_completion wake_completion_;
    bool wake_armed_ = false;

    detail::detached_node detached_{};  // sentinel of a circular list

    std::vector<std::unique_ptr<detail::wait_timer>> wait_timers_;
    std::vector<std::uint32_t> free_wait_timers_;

    detail::orphan_node orphans_{};  // sentinel of a circular list

    // Runtime membership and outgoing MSG_RING batches, one slot per core.
    runtime* runtime_ = nullptr;
    std::size_t core_ = 0;
    std::vector<detail::message_batch*> outgoing_;
    std::vector<io_context*> outgoing_targets_;
    detail::context_hook message_hook_;
    // Objects the layers above keep per context (engine/context_local.hpp).
    friend class detail::context_locals;
    std::unique_ptr<detail::context_locals> locals_;

    std::uint64_t enter_calls_ = 0;
    std::uint64_t completions_ = 0;
    std::uint64_t sqes_ = 0;
    unsigned counted_tail_ = 0;  // the SQ tail as of the last count
};

}  // namespace cnetmod
