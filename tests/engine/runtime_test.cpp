#include "test_support.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <vector>

using namespace cnetmod;
using namespace std::chrono_literals;

namespace {
net_init sigpipe_guard;

// Counts live instances, to prove that functions dropped at shutdown are freed.
struct tracked {
    static inline std::atomic<long> live{0};
    tracked() { ++live; }
    tracked(const tracked&) { ++live; }
    tracked(tracked&&) noexcept { ++live; }
    ~tracked() { --live; }
};
}  // namespace

TEST(runtime, defaults_to_the_cores_the_process_may_use) {
    runtime rt;
    EXPECT_EQ(rt.size(), runtime::allowed_cpus().size());
}

TEST(runtime, cross_core_messages_arrive_exactly_once_and_in_order_per_sender) {
    constexpr std::size_t cores = 2;
    constexpr std::uint64_t per_sender = 200'000;
    runtime rt({.cores = cores});
    // next_[receiver][sender]: the sequence number expected next. Each slot
    // is touched only by its receiver's thread.
    std::vector<std::vector<std::uint64_t>> next(cores, std::vector<std::uint64_t>(cores, 0));
    std::atomic<std::uint64_t> received{0}, out_of_order{0};
    const std::uint64_t total = cores * cores * per_sender;
    rt.start([&](io_context& ctx, std::size_t core) {
        spawn(ctx, co_invoke([&, core]() -> task<void> {
                  for (std::uint64_t seq = 0; seq < per_sender; ++seq) {
                      for (std::size_t target = 0; target < cores; ++target)
                          rt.submit_to(target, [&, core, target, seq] {
                              if (next[target][core] != seq) ++out_of_order;
                              next[target][core] = seq + 1;
                              if (received.fetch_add(1) + 1 == total) rt.stop();
                          });
                      // Yield now and then so batches of many sizes are exercised.
                      if (seq % 1000 == 999) co_await async_sleep(rt.core(core), 0ms);
                  }
              }));
    });
    rt.wait();
    EXPECT_EQ(received.load(), total);
    EXPECT_EQ(out_of_order.load(), 0u);
    for (std::size_t r = 0; r < cores; ++r)
        for (std::size_t s = 0; s < cores; ++s) EXPECT_EQ(next[r][s], per_sender) << r << " from " << s;
}

TEST(runtime, submit_to_from_a_foreign_thread_is_posted) {
    runtime rt({.cores = 2});
    rt.start();
    std::atomic<int> where{-2};
    rt.submit_to(1, [&] {
        where = runtime::current_core();
        rt.stop();
    });
    rt.wait();
    EXPECT_EQ(where.load(), 1);
}

TEST(runtime, invoke_on_returns_the_result_on_the_calling_core) {
    runtime rt({.cores = 2});
    std::atomic<int> result{0}, resumed_on{-1};
    std::atomic<bool> caught{false};
    rt.start([&](io_context& ctx, std::size_t core) {
        if (core != 0) return;
        spawn(ctx, co_invoke([&]() -> task<void> {
                  result = co_await rt.invoke_on(1, [] { return runtime::current_core() * 100 + 7; });
                  resumed_on = runtime::current_core();
                  try {
                      co_await rt.invoke_on(1, []() -> int { throw std::runtime_error("remote failure"); });
                  } catch (const std::runtime_error&) {
                      caught = true;
                  }
                  rt.stop();
              }));
    });
    rt.wait();
    EXPECT_EQ(result.load(), 107);
    EXPECT_EQ(resumed_on.load(), 0);
    EXPECT_TRUE(caught.load());
}

namespace {
// Accepts on one core's listener until it is closed, echoing each connection.
task<void> accept_on_core(io_context& ctx, tcp_listener listener, std::atomic<tcp_listener*>& published, std::mutex& m,
                          std::set<int>& accepting_cores, int core) {
    published = &listener;
    for (;;) {
        tcp_stream s;
        try {
            s = co_await listener.accept();
        } catch (const std::system_error&) {
            co_return;
        }
        {
            std::lock_guard lock(m);
            accepting_cores.insert(core);
        }
        spawn(ctx, testing_support::echo_session(std::move(s)));
    }
}
}  // namespace

TEST(runtime, one_listener_per_core_on_the_same_port) {
    constexpr std::size_t cores = 2;
    runtime rt({.cores = cores});
    std::atomic<std::uint16_t> port{0};
    std::mutex m;
    std::set<int> accepting_cores;
    std::vector<std::atomic<tcp_listener*>> listeners(cores);
    rt.start([&](io_context& ctx, std::size_t core) {
        // Core 0 picks the port; the others join it through SO_REUSEPORT.
        tcp_listener listener;
        if (core == 0) {
            listener = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0));
            port = listener.port();
        } else {
            while (port.load() == 0) std::this_thread::yield();
            listener = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(port.load()));
        }
        spawn(ctx,
              accept_on_core(ctx, std::move(listener), listeners[core], m, accepting_cores, static_cast<int>(core)));
    });
    for (auto& l : listeners)
        while (!l.load()) std::this_thread::sleep_for(1ms);

    // Clients on a context of their own, on this thread.
    io_context client_ctx;
    auto clients = [&]() -> task<int> {
        int ok = 0;
        for (int i = 0; i < 200; ++i) {
            auto s = co_await tcp_connect(client_ctx, ip_endpoint::loopback_v4(port.load()));
            co_await s.send(std::string_view("ping"));
            auto got = co_await testing_support::read_exactly(s, 4, timeout(5s));
            if (got.size() == 4) ++ok;
            co_await s.close();
        }
        co_return ok;
    };
    EXPECT_EQ(sync_wait(client_ctx, clients()), 200);
    rt.stop();
    rt.wait();
    EXPECT_EQ(accepting_cores.size(), cores) << "the kernel spread connections over every core's listener";
}

TEST(runtime, stop_with_work_in_flight_frees_everything) {
    constexpr std::size_t cores = 2;
    {
        runtime rt({.cores = cores});
        std::atomic<std::uint64_t> delivered{0};
        rt.start([&](io_context& ctx, std::size_t core) {
            // Endless ping-pong of messages carrying tracked objects…
            spawn(ctx, co_invoke([&, core]() -> task<void> {
                      for (;;) {
                          for (int i = 0; i < 100; ++i)
                              rt.submit_to((core + 1) % cores, [&, t = tracked{}] { ++delivered; });
                          co_await async_sleep(rt.core(core), 0ms);
                      }
                  }));
            // …sleepers that never wake, holding tracked objects…
            for (int i = 0; i < 100; ++i)
                spawn(ctx, [](io_context& c, tracked t) -> task<void> {
                    co_await async_sleep(c, 1h);
                    (void)t;
                }(ctx, tracked{}));
            // …and connections with unread data in their receive queues.
            spawn(ctx, co_invoke([&ctx]() -> task<void> {
                      auto listener = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0));
                      auto client = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(listener.port()));
                      auto server = co_await listener.accept();
                      client.queue(testing_support::pattern(256 * 1024, 1));
                      co_await server.recv_view();
                      co_await async_sleep(ctx, 1h);
                  }));
        });
        std::this_thread::sleep_for(100ms);
        EXPECT_GT(delivered.load(), 0u);
        EXPECT_GT(tracked::live.load(), 0);
        rt.stop();
        rt.wait();
    }
    EXPECT_EQ(tracked::live.load(), 0) << "every queued message and suspended task was destroyed";
}
