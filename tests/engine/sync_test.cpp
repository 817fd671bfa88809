#include <cnetmod/engine/engine.hpp>

#include <gtest/gtest.h>

#include <vector>

using namespace cnetmod;
using namespace std::chrono_literals;

TEST(mutex, excludes_and_grants_in_arrival_order) {
    io_context ctx;
    mutex m;
    std::vector<int> order;
    int inside = 0, max_inside = 0;
    auto worker = [&](int id) -> task<void> {
        auto guard = co_await m.scoped_lock();
        max_inside = std::max(max_inside, ++inside);
        order.push_back(id);
        co_await async_sleep(ctx, 1ms);  // hold it across a suspension
        --inside;
    };
    auto main_task = [&]() -> task<void> {
        // Take the lock first so that every worker queues, in id order.
        auto guard = co_await m.scoped_lock();
        for (int i = 0; i < 50; ++i) spawn(ctx, worker(i));
        guard.unlock();
        while (order.size() < 50 || inside > 0) co_await async_sleep(ctx, 5ms);
    };
    sync_wait(ctx, main_task());
    std::vector<int> expected(50);
    for (int i = 0; i < 50; ++i) expected[i] = i;
    EXPECT_EQ(order, expected) << "FIFO: no waiter is overtaken";
    EXPECT_EQ(max_inside, 1);
    EXPECT_FALSE(m.is_locked());
}

TEST(mutex, a_newcomer_cannot_overtake_a_waiter) {
    io_context ctx;
    mutex m;
    std::vector<std::string> order;
    auto main_task = [&]() -> task<void> {
        auto guard = co_await m.scoped_lock();
        spawn(ctx, co_invoke([&]() -> task<void> {
                  auto g = co_await m.scoped_lock();
                  order.push_back("waiter");
              }));
        guard.unlock();  // ownership passes to the waiter, which has not run yet
        EXPECT_FALSE(m.try_lock()) << "the lock was handed over, not freed";
        auto g2 = co_await m.scoped_lock();
        order.push_back("newcomer");
    };
    sync_wait(ctx, main_task());
    EXPECT_EQ(order, (std::vector<std::string>{"waiter", "newcomer"}));
}

TEST(semaphore, bounds_concurrency_and_is_fair) {
    io_context ctx;
    semaphore sem(3);
    std::vector<int> order;
    int inside = 0, max_inside = 0;
    auto worker = [&](int id) -> task<void> {
        auto guard = co_await sem.scoped_acquire();
        max_inside = std::max(max_inside, ++inside);
        order.push_back(id);
        co_await async_sleep(ctx, 2ms);
        --inside;
    };
    auto main_task = [&]() -> task<void> {
        for (int i = 0; i < 30; ++i) spawn(ctx, worker(i));
        while (order.size() < 30 || inside > 0) co_await async_sleep(ctx, 5ms);
    };
    sync_wait(ctx, main_task());
    EXPECT_EQ(max_inside, 3);
    std::vector<int> expected(30);
    for (int i = 0; i < 30; ++i) expected[i] = i;
    EXPECT_EQ(order, expected);
    EXPECT_EQ(sem.available(), 3u);
}

TEST(semaphore, release_hands_the_unit_to_the_oldest_waiter) {
    io_context ctx;
    semaphore sem(1);
    std::vector<int> order;
    auto main_task = [&]() -> task<void> {
        auto held = co_await sem.scoped_acquire();
        for (int i = 0; i < 3; ++i)
            spawn(ctx, co_invoke([&, i]() -> task<void> {
                      auto g = co_await sem.scoped_acquire();
                      order.push_back(i);
                      co_await async_sleep(ctx, 1ms);
                  }));
        EXPECT_FALSE(sem.try_acquire());
        held.release();
        EXPECT_FALSE(sem.try_acquire()) << "a queued waiter keeps its turn";
        while (order.size() < 3) co_await async_sleep(ctx, 2ms);
    };
    sync_wait(ctx, main_task());
    EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));
}

TEST(mutex, waiter_destroyed_while_queued_leaves_the_queue) {
    mutex m;
    ASSERT_TRUE(m.try_lock());
    {
        io_context ctx;
        auto main_task = [&]() -> task<void> {
            spawn(ctx, co_invoke([&]() -> task<void> { auto g = co_await m.scoped_lock(); }));
            co_return;
        };
        sync_wait(ctx, main_task());
    }  // the queued waiter's frame is destroyed with its context here
    m.unlock();
    EXPECT_FALSE(m.is_locked()) << "the lock went to no dead waiter";
}
