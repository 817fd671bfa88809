#include <cnetmod/engine/detail/reactor.hpp>
#include <cnetmod/engine/engine.hpp>

#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <functional>
#include <thread>
#include <vector>

using namespace cnetmod;
using namespace std::chrono_literals;

TEST(io_context, uses_single_issuer_and_deferred_task_running_where_available) {
    io_context ctx;
    // The kernel this project targets (6.1+) accepts both; older ones fall back.
    EXPECT_TRUE(ctx.features().single_issuer);
    EXPECT_TRUE(ctx.features().defer_taskrun);
}

TEST(io_context, post_is_safe_from_many_threads_and_runs_each_exactly_once) {
    io_context ctx;
    constexpr int threads = 4, per_thread = 10'000;
    std::vector<int> seen(threads * per_thread, 0);
    std::atomic<int> done{0};
    std::vector<std::thread> posters;
    for (int t = 0; t < threads; ++t)
        posters.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i)
                ctx.post([&, index = t * per_thread + i] {
                    ++seen[static_cast<std::size_t>(index)];
                    if (done.fetch_add(1) + 1 == threads * per_thread) ctx.stop();
                });
        });
    ctx.run();
    for (auto& p : posters) p.join();
    EXPECT_EQ(done.load(), threads * per_thread);
    EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), threads * per_thread);
}

TEST(io_context, posts_from_one_thread_run_in_order) {
    io_context ctx;
    std::vector<int> order;
    std::thread poster([&] {
        for (int i = 0; i < 1000; ++i) ctx.post([&, i] { order.push_back(i); });
        ctx.post([&] { ctx.stop(); });
    });
    ctx.run();
    poster.join();
    ASSERT_EQ(order.size(), 1000u);
    EXPECT_TRUE(std::is_sorted(order.begin(), order.end()));
}

TEST(io_context, stop_from_another_thread_wakes_a_blocked_loop) {
    io_context ctx;
    std::thread stopper([&] {
        std::this_thread::sleep_for(30ms);
        ctx.stop();
    });
    auto t0 = std::chrono::steady_clock::now();
    ctx.run();  // nothing to do: blocks in io_uring_enter until woken
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
    stopper.join();
}

TEST(io_context, can_be_built_on_one_thread_and_run_on_another) {
    io_context ctx;
    int value = 0;
    std::thread runner([&] {
        auto work = [&]() -> task<void> {
            co_await async_sleep(ctx, 1ms);
            value = 42;
        };
        sync_wait(ctx, work());
    });
    runner.join();
    EXPECT_EQ(value, 42);
}

TEST(io_context, one_enter_per_turn_reaps_many_completions) {
    io_context ctx;
    auto main_task = [&]() -> task<void> {
        for (int i = 0; i < 1000; ++i) spawn(ctx, co_invoke([&]() -> task<void> { co_await async_sleep(ctx, 5ms); }));
        co_await async_sleep(ctx, 50ms);
    };
    sync_wait(ctx, main_task());
    EXPECT_GE(ctx.completions(), 1000u);
    EXPECT_LT(ctx.enter_calls(), 100u) << "1000 timers submitted and reaped in a few batched enters";
}

namespace {
// Runs `body` in a child process under a seccomp filter that makes
// io_uring_setup fail with `err`; returns what the child printed.
std::string run_with_io_uring_denied(int err) {
    int pipefd[2];
    if (::pipe(pipefd) != 0) return "pipe failed";
    pid_t pid = ::fork();
    if (pid == 0) {
        ::close(pipefd[0]);
        sock_filter filter[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (static_cast<unsigned>(err) & SECCOMP_RET_DATA)),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
        ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) _exit(2);
        std::string msg = "no error";
        try {
            io_context ctx;
        } catch (const std::system_error& e) {
            msg = e.what();
        }
        [[maybe_unused]] auto n = ::write(pipefd[1], msg.data(), msg.size());
        _exit(0);
    }
    ::close(pipefd[1]);
    std::string out;
    char buf[512];
    ssize_t n;
    while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
    ::close(pipefd[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return out;
}
}  // namespace

TEST(io_context, setup_failure_under_seccomp_says_which_and_what_to_do) {
    const std::string eperm = run_with_io_uring_denied(EPERM);
    EXPECT_NE(eperm.find("seccomp"), std::string::npos) << eperm;
    EXPECT_NE(eperm.find("io_uring_setup"), std::string::npos) << eperm;
    const std::string enosys = run_with_io_uring_denied(ENOSYS);
    EXPECT_NE(enosys.find("no io_uring"), std::string::npos) << enosys;
    const std::string enomem = run_with_io_uring_denied(ENOMEM);
    EXPECT_NE(enomem.find("ulimit -l"), std::string::npos) << enomem;
    EXPECT_NE(enomem.find("RLIMIT_MEMLOCK"), std::string::npos) << enomem;
}

TEST(net_init, ignores_sigpipe) {
    net_init guard;
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    ::close(fds[1]);
    // Without net_init this write would kill the test with SIGPIPE.
    EXPECT_EQ(::write(fds[0], "x", 1), -1);
    EXPECT_EQ(errno, EPIPE);
    ::close(fds[0]);
}

TEST(io_context, batched_wake_ups_still_deliver_a_lone_completion_within_the_batch_timeout) {
    io_context_options options;
    options.wait_batch = 64;
    options.wait_batch_timeout = 20ms;
    io_context ctx(options);
    if (!ctx.features().min_timeout) GTEST_SKIP() << "kernel without IORING_FEAT_MIN_TIMEOUT";
    // One timer, far fewer completions than the batch: the loop must wake
    // after the minimum wait rather than sleep until 64 completions exist.
    const auto t0 = std::chrono::steady_clock::now();
    sync_wait(ctx, co_invoke([&]() -> task<void> { co_await async_sleep(ctx, 1ms); }));
    const auto waited = std::chrono::steady_clock::now() - t0;
    EXPECT_LT(waited, 2s) << "a lone completion was held back";
    // And many at once: 200 sleepers all finish.
    int finished = 0;
    sync_wait(ctx, co_invoke([&]() -> task<void> {
                  for (int i = 0; i < 200; ++i)
                      spawn(ctx, co_invoke([&]() -> task<void> {
                                co_await async_sleep(ctx, 2ms);
                                ++finished;
                            }));
                  while (finished < 200) co_await async_sleep(ctx, 1ms);
              }));
    EXPECT_EQ(finished, 200);
}

TEST(io_context, the_kernel_here_offers_batched_wake_ups) {
    io_context ctx;
    // Kernel 6.12+ (this project's machines run 6.18).
    EXPECT_TRUE(ctx.features().min_timeout);
}

// ---- deadlines on the core's timer wheel ----

namespace {

using steady = std::chrono::steady_clock;

// A deadline embedded in test state, as a connection embeds its idle timeout.
struct recorded_deadline : detail::timer_entry {
    int id = 0;
    steady::time_point fired_at{};
    std::vector<int>* order = nullptr;
    std::function<void(recorded_deadline&)> then;
    recorded_deadline() : timer_entry(&recorded_deadline::on_fire) {}
    static void on_fire(detail::timer_entry* e) {
        auto* self = static_cast<recorded_deadline*>(e);
        self->fired_at = steady::now();
        if (self->order) self->order->push_back(self->id);
        if (self->then) self->then(*self);
    }
};

// A bound on lateness that a loaded test machine still meets; the wheel's
// own error is under two ticks (2 ms).
constexpr auto lateness_bound = 25ms;

}  // namespace

TEST(io_context, thousands_of_deadlines_armed_and_disarmed_cost_no_sqe) {
    io_context ctx;
    detail::reactor& r = detail::reactor_of(ctx);
    std::vector<recorded_deadline> entries(5000);
    std::vector<detail::wait_timer*> waits;
    std::uint64_t during = 0;
    sync_wait(ctx, co_invoke([&]() -> task<void> {
                  // Past the turn that started us (it re-arms the wake-up read).
                  co_await yield(ctx);
                  const auto before = ctx.sqes_prepared();
                  for (std::size_t i = 0; i < entries.size(); ++i) r.arm(entries[i], timeout(1s + i * 1ms));
                  for (int i = 0; i < 5000; ++i)
                      waits.push_back(r.arm_wait_timer(
                          timeout(2s + i * 1ms), [](void*) { std::abort(); }, nullptr));
                  // Some loop turns with all of them armed, then re-armed, then disarmed.
                  for (int i = 0; i < 3; ++i) co_await yield(ctx);
                  for (auto& e : entries) r.arm(e, timeout(3s));
                  co_await yield(ctx);
                  for (auto& e : entries) r.disarm(e);
                  for (auto* w : waits) r.disarm_wait_timer(w);
                  co_await yield(ctx);
                  during = ctx.sqes_prepared() - before;
              }));
    EXPECT_EQ(during, 0u) << "arming and disarming a deadline must not touch the ring";
    for (auto& e : entries) EXPECT_FALSE(e.armed());
}

TEST(io_context, a_deadline_fires_within_a_few_ms_of_its_time_and_never_before) {
    io_context ctx;
    recorded_deadline d;
    d.then = [&](recorded_deadline&) { ctx.stop(); };
    const auto due = steady::now() + 40ms;
    detail::reactor_of(ctx).arm(d, deadline{due});
    ctx.run();
    EXPECT_GE(d.fired_at, due);
    EXPECT_LT(d.fired_at - due, lateness_bound);
}

TEST(io_context, deadlines_fire_in_deadline_order) {
    io_context ctx;
    std::vector<int> order;
    const int offsets_ms[] = {30, 5, 20, 45, 10, 11};
    std::vector<recorded_deadline> entries(std::size(offsets_ms));
    const auto t0 = steady::now();
    for (std::size_t i = 0; i < entries.size(); ++i) {
        entries[i].id = offsets_ms[i];
        entries[i].order = &order;
        detail::reactor_of(ctx).arm(entries[i], deadline{t0 + std::chrono::milliseconds(offsets_ms[i])});
    }
    entries[3].then = [&](recorded_deadline&) { ctx.stop(); };  // the last one
    ctx.run();
    EXPECT_EQ(order, (std::vector<int>{5, 10, 11, 20, 30, 45}));
    for (auto& e : entries) EXPECT_GE(e.fired_at, t0 + std::chrono::milliseconds(e.id));
}

TEST(io_context, a_wait_timer_disarmed_by_its_owner_in_another_timers_callback_never_fires) {
    io_context ctx;
    detail::reactor& r = detail::reactor_of(ctx);
    struct owner_state {
        detail::reactor* r = nullptr;
        detail::wait_timer* mine = nullptr;
        detail::wait_timer* other = nullptr;
        int fired = 0;
    } first, second;
    first.r = second.r = &r;
    // Both due at the same tick: whichever fires first disarms the other.
    const deadline d = timeout(15ms);
    auto on_expire = [](void* p) {
        auto* self = static_cast<owner_state*>(p);
        ++self->fired;
        self->mine = nullptr;
        if (self->other) {
            auto* peer = self->other;
            self->other = nullptr;
            self->r->disarm_wait_timer(peer);
        }
    };
    first.mine = r.arm_wait_timer(d, on_expire, &first);
    second.mine = r.arm_wait_timer(d, on_expire, &second);
    first.other = second.mine;
    second.other = first.mine;
    sync_wait(ctx, co_invoke([&]() -> task<void> { co_await async_sleep(ctx, 60ms); }));
    EXPECT_EQ(first.fired + second.fired, 1) << "the disarmed one fired anyway";
    // The pool hands the freed entries out again and they still work.
    int later = 0;
    r.arm_wait_timer(
        timeout(5ms), [](void* p) { ++*static_cast<int*>(p); }, &later);
    r.arm_wait_timer(
        timeout(6ms), [](void* p) { ++*static_cast<int*>(p); }, &later);
    sync_wait(ctx, co_invoke([&]() -> task<void> { co_await async_sleep(ctx, 40ms); }));
    EXPECT_EQ(later, 2);
}

TEST(io_context, the_loop_sleeps_while_only_far_deadlines_are_armed) {
    io_context ctx;
    std::vector<recorded_deadline> far(100);
    for (std::size_t i = 0; i < far.size(); ++i)
        detail::reactor_of(ctx).arm(far[i], timeout(std::chrono::hours(1) + i * 1s));
    const auto enters = ctx.enter_calls();
    sync_wait(ctx, co_invoke([&]() -> task<void> { co_await async_sleep(ctx, 200ms); }));
    // One wake-up per level of the wheel at most, not one per millisecond.
    EXPECT_LT(ctx.enter_calls() - enters, 15u) << "the loop spun while only far deadlines were armed";
    for (auto& e : far) {
        EXPECT_TRUE(e.armed());
        detail::reactor_of(ctx).disarm(e);
    }
}

TEST(io_context, a_sleeping_loop_wakes_for_a_near_deadline) {
    io_context ctx;
    recorded_deadline far, near;
    detail::reactor_of(ctx).arm(far, timeout(std::chrono::hours(2)));
    near.then = [&](recorded_deadline&) { ctx.stop(); };
    const auto due = steady::now() + 30ms;
    detail::reactor_of(ctx).arm(near, deadline{due});
    const auto enters = ctx.enter_calls();
    const auto sqes = ctx.sqes_prepared();
    ctx.run();  // nothing but the two deadlines: only the wheel's wait can end this
    EXPECT_GE(near.fired_at, due);
    EXPECT_LT(near.fired_at - due, lateness_bound);
    EXPECT_LT(ctx.enter_calls() - enters, 15u);
    EXPECT_EQ(ctx.sqes_prepared() - sqes, 0u) << "the bounded wait took a timeout SQE";
    EXPECT_TRUE(far.armed());
    detail::reactor_of(ctx).disarm(far);
}

TEST(io_context, a_deadline_already_past_fires_in_the_next_turn) {
    io_context ctx;
    recorded_deadline past;
    past.then = [&](recorded_deadline&) { ctx.stop(); };
    detail::reactor_of(ctx).arm(past, deadline{steady::now() - 1s});
    const auto t0 = steady::now();
    ctx.run();
    EXPECT_FALSE(past.armed());
    EXPECT_LT(steady::now() - t0, lateness_bound);
}

TEST(io_context, batched_wake_ups_still_honour_deadlines) {
    io_context_options options;
    options.wait_batch = 64;
    options.wait_batch_timeout = 10ms;
    io_context ctx(options);
    recorded_deadline d;
    d.then = [&](recorded_deadline&) { ctx.stop(); };
    const auto due = steady::now() + 30ms;
    detail::reactor_of(ctx).arm(d, deadline{due});
    ctx.run();
    EXPECT_GE(d.fired_at, due);
    EXPECT_LT(d.fired_at - due, lateness_bound);
}
