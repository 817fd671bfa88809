#include <cnetmod/engine/engine.hpp>

#include <gtest/gtest.h>

#include <vector>

using namespace cnetmod;
using namespace std::chrono_literals;

TEST(timer, sleeps_complete_in_order_of_expiry) {
    io_context ctx;
    std::vector<int> order;
    auto sleeper = [](io_context& c, std::vector<int>& out, int ms) -> task<void> {
        co_await async_sleep(c, std::chrono::milliseconds(ms));
        out.push_back(ms);
    };
    auto main_task = [&]() -> task<void> {
        for (int ms : {50, 10, 40, 20, 30, 0}) spawn(ctx, sleeper(ctx, order, ms));
        co_await async_sleep(ctx, 100ms);
    };
    sync_wait(ctx, main_task());
    EXPECT_EQ(order, (std::vector<int>{0, 10, 20, 30, 40, 50}));
}

TEST(timer, sleep_lasts_at_least_its_duration) {
    io_context ctx;
    auto main_task = [&]() -> task<std::chrono::steady_clock::duration> {
        auto t0 = std::chrono::steady_clock::now();
        co_await async_sleep(ctx, 30ms);
        co_return std::chrono::steady_clock::now() - t0;
    };
    EXPECT_GE(sync_wait(ctx, main_task()), 30ms);
}

TEST(timer, sleep_until_a_deadline) {
    io_context ctx;
    auto main_task = [&]() -> task<bool> {
        auto d = timeout(25ms);
        co_await async_sleep_until(ctx, d);
        co_return std::chrono::steady_clock::now() >= d.at;
    };
    EXPECT_TRUE(sync_wait(ctx, main_task()));
}

TEST(timer, cancelled_sleep_throws_operation_canceled_and_others_continue) {
    io_context ctx;
    std::stop_source stop;
    bool cancelled = false, other_finished = false;
    auto main_task = [&]() -> task<void> {
        spawn(ctx, co_invoke([&]() -> task<void> {
                  try {
                      co_await async_sleep(ctx, 1h, stop.get_token());
                  } catch (const std::system_error& e) {
                      cancelled = e.code().value() == ECANCELED;
                  }
              }));
        spawn(ctx, co_invoke([&]() -> task<void> {
                  co_await async_sleep(ctx, 30ms);
                  other_finished = true;
              }));
        co_await async_sleep(ctx, 10ms);
        auto t0 = std::chrono::steady_clock::now();
        stop.request_stop();
        co_await async_sleep(ctx, 50ms);
        EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
    };
    sync_wait(ctx, main_task());
    EXPECT_TRUE(cancelled);
    EXPECT_TRUE(other_finished);
}

TEST(timer, stop_requested_before_the_sleep_cancels_at_once) {
    io_context ctx;
    std::stop_source stop;
    stop.request_stop();
    auto main_task = [&]() -> task<void> { co_await async_sleep(ctx, 1h, stop.get_token()); };
    EXPECT_THROW(sync_wait(ctx, main_task()), std::system_error);
}

TEST(timer, stop_from_another_thread_cancels) {
    io_context ctx;
    std::stop_source stop;
    std::thread canceller([&] {
        std::this_thread::sleep_for(20ms);
        stop.request_stop();
    });
    auto main_task = [&]() -> task<int> {
        try {
            co_await async_sleep(ctx, 1h, stop.get_token());
        } catch (const std::system_error& e) {
            co_return e.code().value();
        }
        co_return 0;
    };
    EXPECT_EQ(sync_wait(ctx, main_task()), ECANCELED);
    canceller.join();
}
