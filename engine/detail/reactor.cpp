#include <cnetmod/engine/detail/message_batch.hpp>
#include <cnetmod/engine/detail/provided_buffer_ring.hpp>
#include <cnetmod/engine/detail/reactor.hpp>

#include <liburing.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <system_error>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

namespace cnetmod::detail {
namespace {

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

namespace {
// The context whose loop runs on this thread (io_context::current()).
thread_local io_context* current_context = nullptr;
}  // namespace

reactor::reactor(io_context& ctx, io_context_options options)
    : ctx_(ctx),
      options_(options),
      ring_(std::make_unique<io_uring>()),
      wake_completion_(&reactor::on_wake),
      wheel_(tick_of(deadline::clock::now())),
      message_hook_([](turn_hook* h) { static_cast<context_hook*>(h)->home->flush_messages(); }) {
    wake_completion_.home = this;
    message_hook_.home = this;
    detached_.prev = detached_.next = &detached_;
    orphans_.prev = orphans_.next = &orphans_;
    setup_ring();
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) {
        io_uring_queue_exit(ring_.get());
        throw std::system_error(errno, std::system_category(), "cnetmod: eventfd for io_context wake-ups");
    }
    try {
        recv_buffers_ =
            std::make_unique<provided_buffer_ring>(*ring_, 0, options_.recv_buffer_count, options_.recv_buffer_size);
        if (options_.registered_buffer_count > 0)
            send_buffers_ = std::make_unique<registered_buffer_pool>(*ring_, options_.registered_buffer_count,
                                                                     options_.registered_buffer_size);
    } catch (...) {
        ::close(wake_fd_);
        io_uring_queue_exit(ring_.get());
        throw;
    }
    register_file_table();
    arm_wake();
}

// A sparse registered-file table (kernel 5.19); without one every socket
// simply uses its descriptor.
void reactor::register_file_table() noexcept {
    // The kernel refuses a table larger than RLIMIT_NOFILE (EMFILE).
    unsigned n = options_.registered_files;
    rlimit files{};
    if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY)
        n = static_cast<unsigned>(std::min<rlim_t>(n, files.rlim_cur));
    if (n == 0 || io_uring_register_files_sparse(ring_.get(), n) < 0) return;
    features_.registered_files = n;
    free_file_slots_.reserve(n);
    for (unsigned i = n; i > 0; --i) free_file_slots_.push_back(i - 1);
}

int reactor::register_file(int fd) noexcept {
    if (free_file_slots_.empty() || closing_) return -1;
    const std::uint32_t slot = free_file_slots_.back();
    if (io_uring_register_files_update(ring_.get(), slot, &fd, 1) != 1) return -1;
    free_file_slots_.pop_back();
    return static_cast<int>(slot);
}

bool reactor::unregister_file(int slot) noexcept {
    if (slot < 0) return true;
    if (closing_) return true;  // the ring and its table go anyway
    int none = -1;
    if (io_uring_register_files_update(ring_.get(), static_cast<unsigned>(slot), &none, 1) != 1) return false;
    try {
        emptied_file_slots_.push_back(static_cast<std::uint32_t>(slot));
    } catch (...) {
        // The slot is lost to this context; nothing else is.
    }
    return true;
}

namespace {
// IORING_FEAT_MIN_TIMEOUT (kernel 6.12), newer than Debian 12's headers.
constexpr unsigned feat_min_timeout = 1u << 15;
}  // namespace

void reactor::setup_ring() {
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
        rc = io_uring_queue_init_params(entries, ring_.get(), &params);
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

void reactor::tear_down() noexcept {
    closing_ = true;
    if (enabled_ && (owner_thread_ == std::thread::id{} || owner_thread_ == std::this_thread::get_id()))
        discard_pending_messages();
    // What layers own outside coroutines goes first, while the ring works.
    while (teardown_hook* h = teardown_hooks_) {
        teardown_hooks_ = h->next;
        h->run(h);
    }
    // Destroy detached coroutines; their destructors release sockets and
    // queue what the kernel may still reference for after the ring is gone.
    while (detached_.next != &detached_) {
        detached_node* n = detached_.next;
        if (n->drop)
            n->drop(n);
        else
            n->frame.destroy();
    }
    ready_.clear();
    local_posts_.clear();
    {
        std::lock_guard lock(remote_mutex_);
        remote_posts_.clear();
    }
    for (auto* batch : outgoing_) delete batch;
    outgoing_.clear();
    recv_buffers_->unregister();
    // The pool's memory stays until the orphans holding its buffers are gone.
    std::unique_ptr<registered_buffer_pool> send_buffers = std::move(send_buffers_);
    if (send_buffers) io_uring_unregister_buffers(ring_.get());
    io_uring_queue_exit(ring_.get());
    while (orphans_.next != &orphans_) {
        orphan_node* node = orphans_.next;
        remove_orphan(*node);
        node->destroy(node);
    }
    recv_buffers_.reset();
    send_buffers.reset();
    ::close(wake_fd_);
}

// Out of line, where io_uring is a complete type.
reactor::~reactor() = default;

void reactor::enable_on_this_thread() {
    const auto me = std::this_thread::get_id();
    if (!enabled_) {
        // Debian's liburing 2.3 declares io_uring_enable_rings but does not
        // export it: register IORING_REGISTER_ENABLE_RINGS (5.10) directly.
        if (::syscall(__NR_io_uring_register, ring_->ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0) < 0)
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

void reactor::run() {
    enable_on_this_thread();
    io_context* previous = std::exchange(current_context, &ctx_);
    core_counter* previous_layers = std::exchange(current_layers, layer_counters_);
    // Busy time is this thread's CPU time while it runs the loop: read from
    // the kernel when asked (metrics()), so no turn reads a clock for it.
    busy_start_ns_.store(thread_cpu_ns(), std::memory_order_relaxed);
    loop_tid_.store(static_cast<int>(::gettid()), std::memory_order_release);
    struct restore {
        io_context* previous;
        core_counter* previous_layers;
        reactor* self;
        ~restore() {
            current_context = previous;
            current_layers = previous_layers;
            self->loop_tid_.store(0, std::memory_order_release);
            self->busy_ns_.add(thread_cpu_ns() - self->busy_start_ns_.load(std::memory_order_relaxed));
            self->stop_requested_.store(false, std::memory_order_relaxed);
        }
    } guard{previous, previous_layers, this};
    while (!stop_requested_.load(std::memory_order_relaxed)) turn();
}

void reactor::stop() noexcept {
    stop_requested_.store(true, std::memory_order_relaxed);
    if (current_context != &ctx_) {
        std::uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
    }
}

void reactor::turn() {
    run_ready();
    run_turn_hooks();
    const bool idle = ready_.empty() && local_posts_.empty() && !stop_requested_.load(std::memory_order_relaxed) &&
                      !options_.busy_poll;
    const int rc = enter(idle);
    enter_calls_.add();
    // Every SQE prepared so far is submitted: no SQE names an emptied slot now.
    if (!emptied_file_slots_.empty()) {
        free_file_slots_.insert(free_file_slots_.end(), emptied_file_slots_.begin(), emptied_file_slots_.end());
        emptied_file_slots_.clear();
    }
    sqes_.add(ring_->sq.sqe_tail - counted_tail_);  // every SQE taken since the last turn (the tail only grows)
    counted_tail_ = ring_->sq.sqe_tail;
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
        const unsigned n = io_uring_peek_batch_cqe(ring_.get(), cqes, batch);
        if (n == 0) break;
        for (unsigned i = 0; i < n; ++i) entries[i] = {cqes[i]->user_data, cqes[i]->res, cqes[i]->flags};
        io_uring_cq_advance(ring_.get(), n);
        completions_.add(n);
        for (unsigned i = 0; i < n; ++i) dispatch(entries[i].user_data, entries[i].result, entries[i].flags);
        if (n < batch) break;
    }
    expire_deadlines();
}

namespace {
// An idle loop with only far deadlines still wakes this often; the wheel
// itself covers any span, this only bounds the timespec arithmetic.
constexpr std::uint64_t longest_sleep_ms = 3'600'000;
}  // namespace

// The turn's one io_uring_enter. An idle loop with deadlines armed sleeps at
// most until the wheel's next tick, through the enter's own timeout argument
// (IORING_FEAT_EXT_ARG, 5.11; liburing falls back to one timeout SQE per
// wait without it): never one SQE per deadline.
int reactor::enter(bool idle) {
    if (!idle) return io_uring_submit_and_get_events(ring_.get());
    __kernel_timespec timeout{};
    __kernel_timespec* bound = nullptr;
    if (!wheel_.empty()) {
        const auto now = deadline::clock::now().time_since_epoch();
        const auto now_ms = std::chrono::floor<std::chrono::milliseconds>(now);
        const std::uint64_t due = wheel_.next_due();
        const auto now_tick = static_cast<std::uint64_t>(now_ms.count());
        if (due <= now_tick) return io_uring_submit_and_get_events(ring_.get());
        const std::uint64_t ahead = std::min(due - now_tick, longest_sleep_ms);
        timeout = to_kernel_timespec(std::chrono::milliseconds(ahead) - (now - now_ms));
        bound = &timeout;
    }
    if (options_.wait_batch > 1 && features_.min_timeout) return enter_for_batch(bound);
    if (!bound) return io_uring_submit_and_wait(ring_.get(), 1);
    io_uring_cqe* cqe = nullptr;
    return io_uring_submit_and_wait_timeout(ring_.get(), &cqe, 1, bound, nullptr);
}

// Submits what is queued and sleeps until wait_batch completions are ready
// or wait_batch_timeout has passed (then until any): one io_uring_enter with
// the kernel's minimum-wait argument, which liburing 2.3 does not wrap. The
// submission-queue flush is liburing's own, for a ring without SQPOLL.
// `timeout`, when given, bounds the whole wait (the wheel's next tick).
int reactor::enter_for_batch(__kernel_timespec* timeout) {
    io_uring_sq& sq = ring_->sq;
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
    arg.ts = reinterpret_cast<std::uint64_t>(timeout);
    return io_uring_enter2(static_cast<unsigned>(ring_->ring_fd), to_submit, options_.wait_batch,
                           IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, reinterpret_cast<sigset_t*>(&arg),
                           sizeof arg);
}

void reactor::dispatch(std::uint64_t user_data, int result, std::uint32_t flags) {
    if (user_data == 0) return;
    if (const unsigned tag = user_data & tag_mask) {
        void* object = reinterpret_cast<void*>(user_data & ~tag_mask);
        if (tag == sleep_tag) return sleep_completion(object, result);
        return socket_completion(object, tag, result, flags);
    }
    auto* c = reinterpret_cast<completion*>(user_data);
    c->on_complete(c, result, flags);
}

void reactor::run_ready() {
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

void reactor::run_turn_hooks() {
    // One pass over the hooks as they stand: a hook that registers again
    // (a stream still waiting for buffers) runs next turn, not in a loop here.
    turn_hook* list = std::exchange(hooks_, nullptr);
    while (list) {
        auto* hook = list;
        list = list->next;
        hook->queued = false;
        hook->next = nullptr;
        hook->run(hook);
    }
}

io_uring_sqe* reactor::acquire_sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
    if (!sqe) {
        io_uring_submit(ring_.get());
        sqe = io_uring_get_sqe(ring_.get());
        if (!sqe) throw std::runtime_error("cnetmod: io_uring submission queue is full");
    }
    return sqe;
}

void reactor::reserve_sqes(unsigned n) {
    if (io_uring_sq_space_left(ring_.get()) < n) io_uring_submit(ring_.get());
}

void reactor::bind(io_uring_sqe* sqe, completion* c, __kernel_timespec* link_timeout) {
    io_uring_sqe_set_data(sqe, c);
    if (!link_timeout) return;
    sqe->flags |= IOSQE_IO_LINK;
    io_uring_sqe* link = acquire_sqe();
    io_uring_prep_link_timeout(link, link_timeout, IORING_TIMEOUT_ABS);
    io_uring_sqe_set_data64(link, 0);
}

std::uint64_t reactor::sqes_prepared() const noexcept {
    return sqes_.value() + (ring_->sq.sqe_tail - counted_tail_);
}

namespace {
// CPU time (user and kernel) of the calling thread, or of thread `tid` (the
// clock id glibc's pthread_getcpuclockid makes; a thread that is gone reads 0).
std::uint64_t cpu_ns(clockid_t clock) noexcept {
    timespec ts{};
    if (::clock_gettime(clock, &ts) != 0) return 0;
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}
}  // namespace

std::uint64_t reactor::thread_cpu_ns() noexcept {
    return cpu_ns(CLOCK_THREAD_CPUTIME_ID);
}

std::uint64_t reactor::busy_ns() const noexcept {
    std::uint64_t busy = busy_ns_.value();
    if (const int tid = loop_tid_.load(std::memory_order_acquire)) {
        const auto clock =
            static_cast<clockid_t>((~static_cast<unsigned>(tid) << 3) | 6);  // per thread, CPUCLOCK_SCHED
        const std::uint64_t now = cpu_ns(clock), start = busy_start_ns_.load(std::memory_order_relaxed);
        if (now > start) busy += now - start;
    }
    return busy;
}

engine_metrics reactor::metrics() const noexcept {
    // SQEs as of the last turn: the ring's tail is this thread's alone.
    return {enter_calls_.value(), completions_.value(),      sqes_.value(),        busy_ns(), bytes_received_.value(),
            bytes_sent_.value(),  send_queue_bytes_.value(), backpressure_.value()};
}

const core_counter* layer_counters_of(const io_context& ctx) noexcept {
    return reactor_of(const_cast<io_context&>(ctx)).layer_counters();
}

void reactor::cancel(const void* user_data) {
    if (closing_) return;
    io_uring_sqe* sqe = acquire_sqe();
    io_uring_prep_cancel64(sqe, reinterpret_cast<std::uint64_t>(user_data), 0);
    io_uring_sqe_set_data64(sqe, 0);
}

// ---- cross-thread posts ----

void reactor::post(unique_function fn) {
    if (current_context == &ctx_) {
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

void reactor::arm_wake() {
    io_uring_sqe* sqe = acquire_sqe();
    io_uring_prep_read(sqe, wake_fd_, &wake_value_, sizeof wake_value_, 0);
    io_uring_sqe_set_data(sqe, &wake_completion_);
    wake_armed_ = true;
}

void reactor::on_wake(completion* c, int, std::uint32_t) {
    auto* self = static_cast<context_completion*>(c)->home;
    self->wake_armed_ = false;
    self->drain_remote_posts();
    if (!self->closing_) self->arm_wake();
}

void reactor::drain_remote_posts() {
    {
        std::lock_guard lock(remote_mutex_);
        remote_running_.swap(remote_posts_);
        remote_signalled_ = false;
    }
    for (auto& fn : remote_running_) fn();
    remote_running_.clear();
}

// ---- deadlines ----

std::uint64_t reactor::tick_of(deadline::clock::time_point t) noexcept {
    const auto ms = std::chrono::floor<std::chrono::milliseconds>(t.time_since_epoch()).count();
    return ms < 0 ? 0 : static_cast<std::uint64_t>(ms);
}

void reactor::arm(timer_entry& e, deadline d) noexcept {
    if (!d.is_set()) return wheel_.disarm(e);
    // Rounded up to the next tick, so a deadline never fires early.
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(d.at.time_since_epoch()).count();
    wheel_.arm(e, ms < 0 ? 0 : static_cast<std::uint64_t>(ms));
}

void reactor::expire_deadlines() {
    if (!wheel_.empty()) wheel_.advance(tick_of(deadline::clock::now()));
}

wait_timer* reactor::arm_wait_timer(deadline d, void (*on_expire)(void*), void* owner) {
    std::uint32_t index;
    if (!free_wait_timers_.empty()) {
        index = free_wait_timers_.back();
        free_wait_timers_.pop_back();
    } else {
        index = static_cast<std::uint32_t>(wait_timers_.size());
        wait_timers_.push_back(std::make_unique<wait_timer>());
    }
    wait_timer* t = wait_timers_[index].get();
    t->fire = &reactor::on_wait_timer;
    t->on_expire = on_expire;
    t->owner = owner;
    t->home = this;
    t->index = index;
    arm(*t, d);
    return t;
}

void reactor::disarm_wait_timer(wait_timer* t) noexcept {
    wheel_.disarm(*t);
    free_wait_timer(t);
}

// The entry goes back to the pool before the owner hears of it, so the
// owner may arm a new timer from on_expire.
void reactor::on_wait_timer(timer_entry* e) {
    auto* t = static_cast<wait_timer*>(e);
    auto* fn = t->on_expire;
    void* owner = t->owner;
    t->home->free_wait_timer(t);
    fn(owner);
}

void reactor::free_wait_timer(wait_timer* t) noexcept {
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

void reactor::adopt(detached_node& node) noexcept {
    push_back(detached_, node);
}
void reactor::release(detached_node& node) noexcept {
    unlink(node);
}
void reactor::add_orphan(orphan_node& node) noexcept {
    push_back(orphans_, node);
}
void reactor::remove_orphan(orphan_node& node) noexcept {
    unlink(node);
}

// ---- cross-core messages ----

message_batch::message_batch(io_context& from, io_context& to)
    : completion(&message_batch::on_delivered, completion_kind::message_batch), source(&from), target(&to) {
    failure.on_complete = &message_batch::on_send_failed;
    failure.batch = this;
}

void message_batch::on_delivered(completion* c, int, std::uint32_t) {
    auto* batch = static_cast<message_batch*>(c);
    for (auto& fn : batch->functions) fn();
    delete batch;
}

void message_batch::on_send_failed(completion* c, int result, std::uint32_t) {
    auto* batch = static_cast<send_failure*>(c)->batch;
    reactor& source = reactor_of(*batch->source);
    if (source.closing_) {
        delete batch;
        return;
    }
    // The target's CQ was full (-EOVERFLOW) or it was briefly busy: send the
    // batch again next turn, ahead of anything queued for that core since.
    (void)result;
    auto*& pending = source.outgoing_[batch->target->core()];
    if (pending) {
        for (auto& fn : pending->functions) batch->functions.push_back(std::move(fn));
        delete pending;
    }
    pending = batch;
    source.at_turn_end(source.message_hook_);
}

void reactor::attach_runtime(runtime& rt, std::size_t core, std::size_t cores) {
    runtime_ = &rt;
    core_ = core;
    outgoing_.assign(cores, nullptr);
}

void reactor::send_message(io_context& target, unique_function fn) {
    if (&target == &ctx_) {
        local_posts_.push_back(std::move(fn));
        return;
    }
    auto*& batch = outgoing_[target.core()];
    if (!batch) batch = new message_batch(ctx_, target);
    batch->functions.push_back(std::move(fn));
    at_turn_end(message_hook_);
}

void reactor::flush_messages() {
    for (auto*& batch : outgoing_) {
        if (!batch) continue;
        io_uring_sqe* sqe = acquire_sqe();
        // The target's CQE carries the batch; the source hears back only on failure.
        io_uring_prep_msg_ring(sqe, reactor_of(*batch->target).ring_->ring_fd, 0,
                               reinterpret_cast<std::uint64_t>(static_cast<completion*>(batch)), 0);
        io_uring_sqe_set_data(sqe, static_cast<completion*>(&batch->failure));
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        batch = nullptr;
    }
}

void reactor::discard_pending_messages() noexcept {
    const bool was_closing = std::exchange(closing_, true);
    io_uring_cqe* cqes[256];
    // A DEFER_TASKRUN ring runs a bounded amount of deferred work per enter
    // (20 items on recent kernels), so enter until an enter yields nothing.
    for (;;) {
        io_uring_get_events(ring_.get());
        unsigned reaped = 0;
        for (;;) {
            const unsigned n = io_uring_peek_batch_cqe(ring_.get(), cqes, 256);
            if (n == 0) break;
            for (unsigned i = 0; i < n; ++i) {
                if (cqes[i]->user_data & tag_mask) continue;  // a socket's: its state is freed with the orphans
                auto* c = reinterpret_cast<completion*>(cqes[i]->user_data);
                if (c && c->kind == completion_kind::message_batch) delete static_cast<message_batch*>(c);
            }
            io_uring_cq_advance(ring_.get(), n);
            reaped += n;
        }
        if (reaped == 0) break;
    }
    closing_ = was_closing;
}

}  // namespace cnetmod::detail

namespace cnetmod {
io_context* io_context::current() noexcept {
    return detail::current_context;
}
}  // namespace cnetmod
