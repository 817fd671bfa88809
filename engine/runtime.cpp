#include <cnetmod/engine/detail/reactor.hpp>
#include <cnetmod/engine/log.hpp>
#include <cnetmod/engine/runtime.hpp>

#include <pthread.h>
#include <sched.h>

#include <barrier>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <string>

namespace cnetmod {
namespace {
thread_local int this_core = -1;
thread_local runtime* this_runtime = nullptr;
}  // namespace

struct runtime::rendezvous {
    explicit rendezvous(std::size_t n)
        : created(static_cast<std::ptrdiff_t>(n) + 1), stopped(static_cast<std::ptrdiff_t>(n)) {}
    // Every core has built its ring (peers need each other's ring fds) — the
    // starting thread joins this one too.
    std::barrier<> created;
    // Every loop has ended: nobody sends any more, so each core may drain
    // what reached it and tear down.
    std::barrier<> stopped;
    std::mutex mutex;
    std::exception_ptr start_error;
    bool failed = false;
};

std::vector<int> runtime::allowed_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<int> cpus;
    if (::sched_getaffinity(0, sizeof set, &set) == 0) {
        for (int i = 0; i < CPU_SETSIZE; ++i)
            if (CPU_ISSET(i, &set)) cpus.push_back(i);
    }
    if (cpus.empty())
        for (unsigned i = 0; i < std::max(1u, std::thread::hardware_concurrency()); ++i)
            cpus.push_back(static_cast<int>(i));
    return cpus;
}

runtime::runtime(runtime_options options) : options_(options), cpus_(allowed_cpus()) {
    cores_ = options_.cores ? options_.cores : cpus_.size();
    // Each core's ring is bound to its own thread from creation.
    options_.context.bind_to_running_thread = false;
}

runtime::~runtime() {
    stop();
    wait();
}

int runtime::current_core() noexcept {
    return this_core;
}

runtime* runtime::current() noexcept {
    return this_runtime;
}

void runtime::start(init_function init) {
    if (!threads_.empty()) throw std::logic_error("cnetmod: runtime already started");
    init_ = std::move(init);
    contexts_.resize(cores_);
    sync_ = std::make_unique<rendezvous>(cores_);
    threads_.reserve(cores_);
    for (std::size_t i = 0; i < cores_; ++i)
        threads_.emplace_back([this, i] { core_main(i, options_.pin_threads ? cpus_[i % cpus_.size()] : -1); });
    sync_->created.arrive_and_wait();
    if (sync_->failed) {
        wait();
        std::rethrow_exception(sync_->start_error);
    }
}

void runtime::on_start(init_function fn) {
    if (started()) throw std::logic_error("cnetmod: runtime::on_start after start()");
    starters_.push_back(std::move(fn));
}

void runtime::run(init_function init) {
    start(std::move(init));
    wait();
}

void runtime::wait() {
    for (auto& t : threads_)
        if (t.joinable()) t.join();
    threads_.clear();
    // Out of the vector first: what the contexts' teardown submits sees no
    // context (and is dropped) instead of one half destroyed.
    auto dying = std::move(contexts_);
    contexts_.clear();
    dying.clear();
}

void runtime::stop() noexcept {
    for (auto& ctx : contexts_)
        if (ctx) ctx->stop();
}

void runtime::submit_to(std::size_t target, detail::unique_function fn) {
    if (target >= cores_)
        throw std::out_of_range("cnetmod: submit_to core " + std::to_string(target) + " of " + std::to_string(cores_));
    if (contexts_.empty() || !contexts_[target]) return;  // not running: dropped, like work in flight at stop()
    io_context& to = *contexts_[target];
    if (this_runtime == this && this_core >= 0)
        detail::reactor_of(*contexts_[static_cast<std::size_t>(this_core)]).send_message(to, std::move(fn));
    else
        to.post(std::move(fn));
}

void runtime::core_main(std::size_t index, int cpu) {
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set);
    }
    try {
        contexts_[index] = std::make_unique<io_context>(options_.context);
        detail::reactor_of(*contexts_[index]).attach_runtime(*this, index, cores_);
    } catch (...) {
        std::lock_guard lock(sync_->mutex);
        if (!sync_->failed) sync_->start_error = std::current_exception();
        sync_->failed = true;
    }
    sync_->created.arrive_and_wait();
    io_context* ctx = contexts_[index].get();
    if (!sync_->failed) {
        this_core = static_cast<int>(index);
        this_runtime = this;
        try {
            for (const auto& starter : starters_) ctx->post([&starter, ctx, index] { starter(*ctx, index); });
            if (init_) {
                // Set-up runs as the first thing in the loop, so it may spawn
                // tasks and use the ring like any other work.
                ctx->post([this, ctx, index] { init_(*ctx, index); });
            }
            ctx->run();
        } catch (const std::exception& e) {
            log(log_level::error, "core " + std::to_string(index) + " stopped by an exception: " + e.what());
            stop();
        }
    }
    sync_->stopped.arrive_and_wait();
    // Messages that reached this ring after its loop ended are freed unrun
    // here, on the owning thread (a DEFER_TASKRUN ring delivers only to it).
    // The contexts themselves are destroyed by wait(), once every thread is gone.
    if (ctx) detail::reactor_of(*ctx).discard_pending_messages();
    this_core = -1;
    this_runtime = nullptr;
}

}  // namespace cnetmod
