/// @file
/// runtime: N io_contexts on N threads, each pinned to a core. Cores share
/// nothing; work crosses between them only through submit_to, which carries a
/// function to another core's ring with IORING_OP_MSG_RING (kernel 5.18),
/// one message per target core per loop turn however many functions it holds.
///
///   runtime rt({.cores = 4});
///   rt.run([](io_context& ctx, std::size_t core) { ... per-core set-up ... });
#pragma once

#include <cnetmod/engine/io_context.hpp>
#include <cnetmod/engine/task.hpp>
#include <cnetmod/engine/unique_function.hpp>

#include <coroutine>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <type_traits>
#include <vector>

namespace cnetmod {

/// How many cores a runtime runs and how each io_context is set up.
struct runtime_options {
    /// Cores to run on; 0 means every core this process may use (sched_getaffinity).
    std::size_t cores = 0;
    /// Pin each core's thread to one CPU of the allowed set.
    bool pin_threads = true;
    /// The options of every core's io_context.
    io_context_options context{};
};

/// N io_contexts on N threads, one per core, sharing nothing; work crosses between cores only through submit_to() and
/// invoke_on().
class runtime {
public:
    /// What runs on each core: its context and its index (0 to size() - 1).
    using init_function = std::function<void(io_context&, std::size_t core)>;

    /// Makes the cores' contexts (runtime_options::cores of them); no thread runs until start().
    explicit runtime(runtime_options options = {});
    /// Stops the cores and waits for them, if they still run.
    ~runtime();
    runtime(const runtime&) = delete;
    runtime& operator=(const runtime&) = delete;

    /// The CPUs this process may run on, in order.
    /// The calling thread's affinity set (sched_getaffinity), or 0 to hardware_concurrency() - 1 when that fails.
    static std::vector<int> allowed_cpus();

    /// The number of cores.
    std::size_t size() const noexcept { return cores_; }

    /// Starts every core, runs `init` on each (on its own thread, before its
    /// loop), and returns. Throws if a core cannot start (its error).
    void start(init_function init = {});
    /// start() then wait() — blocks until stop().
    void run(init_function init = {});
    /// Blocks until every core's loop has ended and shut down.
    /// Then destroys the cores' contexts: a runtime can start() again.
    void wait();
    /// Asks every core to stop; safe from any thread, also from a core.
    /// Functions in flight between cores are dropped unrun, and everything
    /// each core owns is freed.
    void stop() noexcept;

    /// Core `i`'s context (i < size()).
    io_context& core(std::size_t i) noexcept { return *contexts_[i]; }
    /// Between start() and wait().
    bool started() const noexcept { return !threads_.empty(); }
    /// Runs `fn` on every core as the first thing in its loop (before the
    /// init function) each time the runtime starts: for a component made
    /// before start() that needs its cores (ws::pubsub's broker bridge).
    /// Register before start().
    /// Throws std::logic_error after start().
    void on_start(init_function fn);

    /// The core the calling thread runs, or -1 off the runtime.
    static int current_core() noexcept;
    /// The runtime the calling thread is a core of, or nullptr.
    static runtime* current() noexcept;

    /// Runs `fn` on core `target`. From a core of this runtime it travels by
    /// MSG_RING, batched with everything else sent there this turn; from any
    /// other thread it is posted. Functions from one sender arrive in order.
    /// Before start() or after wait(), `fn` is dropped.
    void submit_to(std::size_t target, detail::unique_function fn);

    /// Runs `fn` on core `target` and resumes the caller, on its own core,
    /// with the result (or the exception `fn` threw).
    template <class F>
    auto invoke_on(std::size_t target, F fn) -> task<std::invoke_result_t<F&>>;

private:
    void core_main(std::size_t index, int cpu);

    runtime_options options_;
    std::size_t cores_;
    std::vector<int> cpus_;
    std::vector<std::unique_ptr<io_context>> contexts_;
    std::vector<std::thread> threads_;
    init_function init_;
    std::vector<init_function> starters_;

    // Start-up and shutdown rendezvous between the core threads.
    struct rendezvous;
    std::unique_ptr<rendezvous> sync_;
};

namespace detail {
template <class R>
struct invoke_result_slot {
    std::optional<R> value;
    void set(auto&& fn) { value.emplace(fn()); }
    R take() { return std::move(*value); }
};
template <>
struct invoke_result_slot<void> {
    void set(auto&& fn) { fn(); }
    void take() {}
};
}  // namespace detail

template <class F>
auto runtime::invoke_on(std::size_t target, F fn) -> task<std::invoke_result_t<F&>> {
    using R = std::invoke_result_t<F&>;
    struct awaiter {
        // A constructor, not aggregate initialisation: g++ 12 miscompiles an
        // aggregate temporary awaited in place (its members are not copied).
        awaiter(runtime& r, std::size_t t, F f) : rt(r), target(t), fn(std::move(f)) {}
        runtime& rt;
        std::size_t target;
        F fn;
        detail::invoke_result_slot<R> slot;
        std::exception_ptr error;
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<> h) {
            const int origin = runtime::current_core();
            rt.submit_to(target, [this, h, origin] {
                try {
                    slot.set(fn);
                } catch (...) {
                    error = std::current_exception();
                }
                if (origin >= 0)
                    rt.submit_to(static_cast<std::size_t>(origin), [h] { h.resume(); });
                else
                    h.resume();
            });
        }
        R await_resume() {
            if (error) std::rethrow_exception(error);
            return slot.take();
        }
    };
    co_return co_await awaiter(*this, target, std::move(fn));
}

}  // namespace cnetmod
