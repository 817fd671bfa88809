#include <cnetmod/engine/context_local.hpp>
#include <cnetmod/engine/detail/message_batch.hpp>
#include <cnetmod/engine/detail/provided_buffer_ring.hpp>
#include <cnetmod/engine/io_context.hpp>

#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <system_error>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

namespace cnetmod {
namespace {

thread_local io_context* current_context = nullptr;

int read_sysctl(const char* path) {
    std::ifstream in(path);
    int value = -1;
    if (in) in >> value;
    return value;
}

// Turns a failed io_uring_setup into a message that says which of the usual
// causes it is and what to do about it.
[[noreturn]] void throw_setup_error(int err, unsigned entries) {
    std::string msg = "cnetmod: io_uring_setup failed (" + std::string(std::strerror(err)) + "): ";
    const int disabled = read_sysctl("/proc/sys/kernel/io_uring_disabled");
    if (err == EPERM || err == EACCES) {
        if (disabled == 2)
            msg +=
                "io_uring is disabled system-wide (sysctl kernel.io_uring_disabled=2); "
                "enable it with `sysctl -w kernel.io_uring_disabled=0`";
        else if (disabled == 1)
            msg +=
                "io_uring is restricted to the group named in kernel.io_uring_group "
                "(sysctl kernel.io_uring_disabled=1); run as root or in that group, or set "
                "kernel.io_uring_disabled=0";
        else
            msg +=
                "a seccomp filter denies io_uring (container runtimes such as Docker's default "
                "profile block it); run with a seccomp profile that allows io_uring_setup, "
                "io_uring_enter and io_uring_register";
    } else if (err == ENOSYS) {
        msg +=
            "this kernel has no io_uring, or a seccomp filter hides it (container runtimes do); "
            "cnetmod needs Linux 6.1 or later with io_uring allowed";
    } else if (err == ENOMEM) {
        rlimit lim{};
        ::getrlimit(RLIMIT_MEMLOCK, &lim);
        msg +=
            "not enough locked memory for a ring of " + std::to_string(entries) + " entries (RLIMIT_MEMLOCK is " +
            (lim.rlim_cur == RLIM_INFINITY ? std::string("unlimited") : std::to_string(lim.rlim_cur / 1024) + " KiB") +
            "); raise it with `ulimit -l unlimited` or in /etc/security/limits.conf, "
            "or lower io_context_options::sq_entries";
    } else {
        msg += "unexpected error";
    }
    throw std::system_error(err, std::system_category(), msg);
}

}  // namespace

io_context* io_context::current() noexcept {
    return current_context;
}

io_context::io_context(io_context_options options)
    : options_(options),
      wake_completion_(&io_context::on_wake),
      message_hook_([](detail::turn_hook* h) { static_cast<detail::context_hook*>(h)->ctx->flush_messages(); }) {
    wake_completion_.ctx = this;
    message_hook_.ctx = this;
    detached_.prev = detached_.next = &detached_;
    orphans_.prev = orphans_.next = &orphans_;
    setup_ring();
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) {
        io_uring_queue_exit(&ring_);
        throw std::system_error(errno, std::system_category(), "cnetmod: eventfd for io_context wake-ups");
    }
    try {
        recv_buffers_ = std::make_unique<detail::provided_buffer_ring>(ring_, 0, options_.recv_buffer_count,
                                                                       options_.recv_buffer_size);
        if (options_.registered_buffer_count > 0)
            send_buffers_ = std::make_unique<detail::registered_buffer_pool>(ring_, options_.registered_buffer_count,
                                                                             options_.registered_buffer_size);
    } catch (...) {
        ::close(wake_fd_);
        io_uring_queue_exit(&ring_);
        throw;
    }
    arm_wake();
}

namespace {
// IORING_FEAT_MIN_TIMEOUT (kernel 6.12), newer than Debian 12's headers.
constexpr unsigned feat_min_timeout = 1u << 15;
}  // namespace

void io_context::setup_ring() {
    const unsigned entries = options_.sq_entries;
    const unsigned base = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
    const unsigned r_disabled = options_.bind_to_running_thread ? IORING_SETUP_R_DISABLED : 0u;
    // Most capable first. SINGLE_ISSUER needs 6.0, DEFER_TASKRUN 6.1,
    // COOP_TASKRUN and TASKRUN_FLAG 5.19; EINVAL means "not this kernel".
    const unsigned defer = options_.defer_taskrun ? IORING_SETUP_DEFER_TASKRUN : IORING_SETUP_COOP_TASKRUN;
    const unsigned attempts[] = {
        IORING_SETUP_SINGLE_ISSUER | defer | r_disabled,
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | r_disabled,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        0u,
    };
    int rc = -EINVAL;
    for (unsigned extra : attempts) {
        io_uring_params params{};
        params.flags = base | extra;
        params.cq_entries = entries * 4;
        rc = io_uring_queue_init_params(entries, &ring_, &params);
        if (rc == 0) {
            features_.setup_flags = params.flags;
            features_.single_issuer = (params.flags & IORING_SETUP_SINGLE_ISSUER) != 0;
            features_.defer_taskrun = (params.flags & IORING_SETUP_DEFER_TASKRUN) != 0;
            features_.coop_taskrun = (params.flags & IORING_SETUP_COOP_TASKRUN) != 0;
            features_.min_timeout = (params.features & feat_min_timeout) != 0;
            enabled_ = (params.flags & IORING_SETUP_R_DISABLED) == 0;
            ring_ready_ = true;
            return;
        }
        if (rc != -EINVAL) break;
    }
    throw_setup_error(-rc, entries);
}

io_context::~io_context() {
    closing_ = true;
    if (enabled_ && (owner_thread_ == std::thread::id{} || owner_thread_ == std::this_thread::get_id()))
        discard_pending_messages();
    // Destroy detached coroutines; their destructors release sockets and
    // queue what the kernel may still reference for after the ring is gone.
    while (detached_.next != &detached_) detached_.next->frame.destroy();
    ready_.clear();
    local_posts_.clear();
    {
        std::lock_guard lock(remote_mutex_);
        remote_posts_.clear();
    }
    for (auto* batch : outgoing_) delete batch;
    recv_buffers_->unregister();
    // The pool's memory stays until the orphans holding its buffers are gone.
    std::unique_ptr<detail::registered_buffer_pool> send_buffers = std::move(send_buffers_);
    if (send_buffers) io_uring_unregister_buffers(&ring_);
    io_uring_queue_exit(&ring_);
    while (orphans_.next != &orphans_) {
        detail::orphan_node* node = orphans_.next;
        remove_orphan(*node);
        node->destroy(node);
    }
    recv_buffers_.reset();
    send_buffers.reset();
    locals_.reset();
    ::close(wake_fd_);
}

void io_context::enable_on_this_thread() {
    const auto me = std::this_thread::get_id();
    if (!enabled_) {
        // Debian's liburing 2.3 declares io_uring_enable_rings but does not
        // export it: register IORING_REGISTER_ENABLE_RINGS (5.10) directly.
        if (::syscall(__NR_io_uring_register, ring_.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0) < 0)
            throw std::system_error(errno, std::system_category(), "cnetmod: IORING_REGISTER_ENABLE_RINGS");
        enabled_ = true;
        owner_thread_ = me;
    } else if (owner_thread_ == std::thread::id{}) {
        owner_thread_ = me;
    }
    if (features_.single_issuer && owner_thread_ != me)
        throw std::logic_error(
            "cnetmod: io_context::run() called on another thread than its first run(); a ring set up "
            "with IORING_SETUP_SINGLE_ISSUER accepts submissions from one thread only");
}

void io_context::run() {
    enable_on_this_thread();
    io_context* previous = std::exchange(current_context, this);
    struct restore {
        io_context* previous;
        io_context* self;
        ~restore() {
            current_context = previous;
            self->stop_requested_.store(false, std::memory_order_relaxed);
        }
    } guard{previous, this};
    while (!stop_requested_.load(std::memory_order_relaxed)) turn();
}

void io_context::stop() noexcept {
    stop_requested_.store(true, std::memory_order_relaxed);
    if (!running_in_this_thread()) {
        std::uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
    }
}

void io_context::turn() {
    run_ready();
    run_turn_hooks();
    const bool idle = ready_.empty() && local_posts_.empty() && !stop_requested_.load(std::memory_order_relaxed) &&
                      !options_.busy_poll;
    int rc;
    if (idle && options_.wait_batch > 1 && features_.min_timeout)
        rc = enter_for_batch();
    else
        rc = idle ? io_uring_submit_and_wait(&ring_, 1) : io_uring_submit_and_get_events(&ring_);
    ++enter_calls_;
    sqes_ += ring_.sq.sqe_tail - counted_tail_;  // every SQE taken since the last turn (the tail only grows)
    counted_tail_ = ring_.sq.sqe_tail;
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && rc != -ETIME)
        throw std::system_error(-rc, std::system_category(), "cnetmod: io_uring_enter");

    // Copy a batch of CQEs out and release their slots before dispatching, so
    // handlers may submit freely.
    constexpr unsigned batch = 256;
    io_uring_cqe* cqes[batch];
    struct entry {
        std::uint64_t user_data;
        int result;
        std::uint32_t flags;
    } entries[batch];
    for (;;) {
        const unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, batch);
        if (n == 0) break;
        for (unsigned i = 0; i < n; ++i) entries[i] = {cqes[i]->user_data, cqes[i]->res, cqes[i]->flags};
        io_uring_cq_advance(&ring_, n);
        completions_ += n;
        for (unsigned i = 0; i < n; ++i) dispatch(entries[i].user_data, entries[i].result, entries[i].flags);
        if (n < batch) break;
    }
}

// Submits what is queued and sleeps until wait_batch completions are ready
// or wait_batch_timeout has passed (then until any): one io_uring_enter with
// the kernel's minimum-wait argument, which liburing 2.3 does not wrap. The
// submission-queue flush is liburing's own, for a ring without SQPOLL.
int io_context::enter_for_batch() {
    io_uring_sq& sq = ring_.sq;
    const unsigned tail = sq.sqe_tail;
    if (sq.sqe_head != tail) {
        sq.sqe_head = tail;
        io_uring_smp_store_release(sq.ktail, tail);
    }
    const unsigned to_submit = tail - io_uring_smp_load_acquire(sq.khead);
    io_uring_getevents_arg arg{};
    arg.sigmask = 0;
    arg.sigmask_sz = _NSIG / 8;
    arg.pad = static_cast<__u32>(options_.wait_batch_timeout.count());  // min_wait_usec in newer headers
    arg.ts = 0;
    return io_uring_enter2(static_cast<unsigned>(ring_.ring_fd), to_submit, options_.wait_batch,
                           IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, reinterpret_cast<sigset_t*>(&arg),
                           sizeof arg);
}

void io_context::dispatch(std::uint64_t user_data, int result, std::uint32_t flags) {
    if (user_data == 0) return;
    if (const unsigned tag = user_data & detail::tag_mask)
        return detail::socket_completion(reinterpret_cast<void*>(user_data & ~detail::tag_mask), tag, result, flags);
    auto* c = reinterpret_cast<detail::completion*>(user_data);
    c->on_complete(c, result, flags);
}

void io_context::run_ready() {
    // Posted functions first, then coroutines; each list as it stood when
    // the step began, so a coroutine that reschedules itself cannot starve I/O.
    if (!local_posts_.empty()) {
        local_running_.swap(local_posts_);
        for (auto& fn : local_running_) fn();
        local_running_.clear();
    }
    if (!ready_.empty()) {
        running_.swap(ready_);
        for (auto h : running_) h.resume();
        running_.clear();
    }
}

void io_context::at_turn_end(detail::turn_hook& hook) noexcept {
    if (hook.queued) return;
    hook.queued = true;
    hook.next = hooks_;
    hooks_ = &hook;
}

void io_context::run_turn_hooks() {
    // One pass over the hooks as they stand: a hook that registers again
    // (a stream still waiting for buffers) runs next turn, not in a loop here.
    detail::turn_hook* list = std::exchange(hooks_, nullptr);
    while (list) {
        auto* hook = list;
        list = list->next;
        hook->queued = false;
        hook->next = nullptr;
        hook->run(hook);
    }
}

io_uring_sqe* io_context::acquire_sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (!sqe) {
        io_uring_submit(&ring_);
        sqe = io_uring_get_sqe(&ring_);
        if (!sqe) throw std::runtime_error("cnetmod: io_uring submission queue is full");
    }
    return sqe;
}

void io_context::reserve_sqes(unsigned n) {
    if (io_uring_sq_space_left(&ring_) < n) io_uring_submit(&ring_);
}

void io_context::cancel(const void* user_data) {
    if (closing_) return;
    io_uring_sqe* sqe = acquire_sqe();
    io_uring_prep_cancel64(sqe, reinterpret_cast<std::uint64_t>(user_data), 0);
    io_uring_sqe_set_data64(sqe, 0);
}

// ---- cross-thread posts ----

void io_context::post(detail::unique_function fn) {
    if (running_in_this_thread()) {
        local_posts_.push_back(std::move(fn));
        return;
    }
    bool signal;
    {
        std::lock_guard lock(remote_mutex_);
        remote_posts_.push_back(std::move(fn));
        signal = !std::exchange(remote_signalled_, true);
    }
    if (signal) {
        std::uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
    }
}

void io_context::arm_wake() {
    io_uring_sqe* sqe = acquire_sqe();
    io_uring_prep_read(sqe, wake_fd_, &wake_value_, sizeof wake_value_, 0);
    io_uring_sqe_set_data(sqe, &wake_completion_);
    wake_armed_ = true;
}

void io_context::on_wake(detail::completion* c, int, std::uint32_t) {
    auto* self = static_cast<detail::context_completion*>(c)->ctx;
    self->wake_armed_ = false;
    self->drain_remote_posts();
    if (!self->closing_) self->arm_wake();
}

void io_context::drain_remote_posts() {
    {
        std::lock_guard lock(remote_mutex_);
        remote_running_.swap(remote_posts_);
        remote_signalled_ = false;
    }
    for (auto& fn : remote_running_) fn();
    remote_running_.clear();
}

// ---- timers for waits that are not SQEs ----

detail::wait_timer* io_context::arm_wait_timer(deadline d, void (*on_expire)(void*), void* owner) {
    std::uint32_t index;
    if (!free_wait_timers_.empty()) {
        index = free_wait_timers_.back();
        free_wait_timers_.pop_back();
    } else {
        index = static_cast<std::uint32_t>(wait_timers_.size());
        wait_timers_.push_back(std::make_unique<detail::wait_timer>());
    }
    detail::wait_timer* t = wait_timers_[index].get();
    t->on_complete = &io_context::on_wait_timer;
    t->on_expire = on_expire;
    t->owner = owner;
    t->ctx = this;
    t->index = index;
    t->when = detail::to_kernel_timespec(d);
    io_uring_sqe* sqe = acquire_sqe();
    io_uring_prep_timeout(sqe, &t->when, 0, IORING_TIMEOUT_ABS);
    io_uring_sqe_set_data(sqe, t);
    return t;
}

void io_context::disarm_wait_timer(detail::wait_timer* t) noexcept {
    t->owner = nullptr;
    t->on_expire = nullptr;
    if (closing_) return;
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (!sqe) {
        io_uring_submit(&ring_);
        sqe = io_uring_get_sqe(&ring_);
    }
    if (sqe) {  // without an SQE the timer simply fires later and is ignored
        io_uring_prep_timeout_remove(sqe, reinterpret_cast<std::uint64_t>(t), 0);
        io_uring_sqe_set_data64(sqe, 0);
    }
}

void io_context::on_wait_timer(detail::completion* c, int result, std::uint32_t) {
    auto* t = static_cast<detail::wait_timer*>(c);
    io_context* ctx = t->ctx;
    auto* fn = t->on_expire;
    void* owner = t->owner;
    ctx->free_wait_timer(t);
    if (owner && fn && result == -ETIME) fn(owner);
}

void io_context::free_wait_timer(detail::wait_timer* t) noexcept {
    t->owner = nullptr;
    t->on_expire = nullptr;
    free_wait_timers_.push_back(t->index);
}

// ---- detached coroutines and orphaned state ----

namespace {
// Both lists are circular and doubly linked around a sentinel node.
template <class Node>
void push_back(Node& sentinel, Node& node) noexcept {
    node.next = &sentinel;
    node.prev = sentinel.prev;
    sentinel.prev->next = &node;
    sentinel.prev = &node;
}

template <class Node>
void unlink(Node& node) noexcept {
    if (!node.next) return;
    node.prev->next = node.next;
    node.next->prev = node.prev;
    node.prev = node.next = nullptr;
}
}  // namespace

void io_context::adopt(detail::detached_node& node) noexcept {
    push_back(detached_, node);
}
void io_context::release(detail::detached_node& node) noexcept {
    unlink(node);
}
void io_context::add_orphan(detail::orphan_node& node) noexcept {
    push_back(orphans_, node);
}
void io_context::remove_orphan(detail::orphan_node& node) noexcept {
    unlink(node);
}

// ---- cross-core messages ----

detail::message_batch::message_batch(io_context& from, io_context& to)
    : completion(&message_batch::on_delivered, completion_kind::message_batch), source(&from), target(&to) {
    failure.on_complete = &message_batch::on_send_failed;
    failure.batch = this;
}

void detail::message_batch::on_delivered(completion* c, int, std::uint32_t) {
    auto* batch = static_cast<message_batch*>(c);
    for (auto& fn : batch->functions) fn();
    delete batch;
}

void detail::message_batch::on_send_failed(completion* c, int result, std::uint32_t) {
    auto* batch = static_cast<send_failure*>(c)->batch;
    io_context& source = *batch->source;
    if (source.closing_) {
        delete batch;
        return;
    }
    // The target's CQ was full (-EOVERFLOW) or it was briefly busy: send the
    // batch again next turn, ahead of anything queued for that core since.
    (void)result;
    auto*& pending = source.outgoing_[batch->target->core_];
    if (pending) {
        for (auto& fn : pending->functions) batch->functions.push_back(std::move(fn));
        delete pending;
    }
    pending = batch;
    source.at_turn_end(source.message_hook_);
}

void io_context::attach_runtime(runtime& rt, std::size_t core, std::size_t cores) {
    runtime_ = &rt;
    core_ = core;
    outgoing_.assign(cores, nullptr);
}

void io_context::send_message(io_context& target, detail::unique_function fn) {
    if (&target == this) {
        local_posts_.push_back(std::move(fn));
        return;
    }
    auto*& batch = outgoing_[target.core_];
    if (!batch) batch = new detail::message_batch(*this, target);
    batch->functions.push_back(std::move(fn));
    at_turn_end(message_hook_);
}

void io_context::flush_messages() {
    for (auto*& batch : outgoing_) {
        if (!batch) continue;
        io_uring_sqe* sqe = acquire_sqe();
        // The target's CQE carries the batch; the source hears back only on failure.
        io_uring_prep_msg_ring(sqe, batch->target->ring_.ring_fd, 0,
                               reinterpret_cast<std::uint64_t>(static_cast<detail::completion*>(batch)), 0);
        io_uring_sqe_set_data(sqe, static_cast<detail::completion*>(&batch->failure));
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        batch = nullptr;
    }
}

void io_context::discard_pending_messages() noexcept {
    const bool was_closing = std::exchange(closing_, true);
    io_uring_cqe* cqes[256];
    // A DEFER_TASKRUN ring runs a bounded amount of deferred work per enter
    // (20 items on recent kernels), so enter until an enter yields nothing.
    for (;;) {
        io_uring_get_events(&ring_);
        unsigned reaped = 0;
        for (;;) {
            const unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, 256);
            if (n == 0) break;
            for (unsigned i = 0; i < n; ++i) {
                if (cqes[i]->user_data & detail::tag_mask) continue;  // a socket's: its state is freed with the orphans
                auto* c = reinterpret_cast<detail::completion*>(cqes[i]->user_data);
                if (c && c->kind == detail::completion_kind::message_batch)
                    delete static_cast<detail::message_batch*>(c);
            }
            io_uring_cq_advance(&ring_, n);
            reaped += n;
        }
        if (reaped == 0) break;
    }
    closing_ = was_closing;
}

}  // namespace cnetmod
