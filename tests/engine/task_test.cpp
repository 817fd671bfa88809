#include <cnetmod/engine/detail/frame_allocator.hpp>
#include <cnetmod/engine/engine.hpp>

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

using namespace cnetmod;

namespace {

task<int> value(int v) {
    co_return v;
}

task<int> add(int a, int b) {
    co_return co_await value(a) + co_await value(b);
}

task<std::string> concat(std::string a, std::string b) {
    co_return a + b;
}

task<void> thrower() {
    throw std::runtime_error("boom");
    co_return;
}

task<int> nested(int depth) {
    if (depth == 0) co_return 0;
    co_return 1 + co_await nested(depth - 1);
}

task<long> chain_of_synchronous_completions(long n) {
    long sum = 0;
    for (long i = 0; i < n; ++i) sum += co_await value(1);
    co_return sum;
}

struct move_only {
    std::unique_ptr<int> p;
};
task<move_only> make_move_only(int v) {
    co_return move_only{std::make_unique<int>(v)};
}

}  // namespace

TEST(task, returns_values_through_awaits) {
    io_context ctx;
    EXPECT_EQ(sync_wait(ctx, add(2, 40)), 42);
    EXPECT_EQ(sync_wait(ctx, concat("web", "socket")), "websocket");
    EXPECT_EQ(*sync_wait(ctx, make_move_only(7)).p, 7);
}

TEST(task, is_lazy_until_awaited) {
    bool started = false;
    auto body = [&]() -> task<void> {
        started = true;
        co_return;
    };
    io_context ctx;
    task<void> t = body();
    EXPECT_FALSE(started);
    sync_wait(ctx, std::move(t));
    EXPECT_TRUE(started);
}

TEST(task, exception_propagates_to_the_awaiter) {
    io_context ctx;
    auto outer = []() -> task<std::string> {
        try {
            co_await thrower();
        } catch (const std::runtime_error& e) {
            co_return std::string("caught ") + e.what();
        }
        co_return "not thrown";
    };
    EXPECT_EQ(sync_wait(ctx, outer()), "caught boom");
    EXPECT_THROW(sync_wait(ctx, thrower()), std::runtime_error);
}

TEST(task, deep_nesting) {
    io_context ctx;
    EXPECT_EQ(sync_wait(ctx, nested(10'000)), 10'000);
}

TEST(task, million_synchronous_completions_in_a_row_use_no_stack) {
    // Each co_await of a finished task resumes the awaiter by symmetric
    // transfer; without it this would overflow the stack.
    io_context ctx;
    EXPECT_EQ(sync_wait(ctx, chain_of_synchronous_completions(1'000'000)), 1'000'000);
}

TEST(task, frames_are_recycled_in_steady_state) {
    io_context ctx;
    sync_wait(ctx, chain_of_synchronous_completions(1000));  // warm the cache
    const auto before = detail::frame_allocator::heap_allocations();
    sync_wait(ctx, chain_of_synchronous_completions(100'000));
    const auto after = detail::frame_allocator::heap_allocations();
#if defined(__SANITIZE_ADDRESS__)
    GTEST_SKIP() << "frames bypass the pool under AddressSanitizer";
#endif
    // Only the outer frames of sync_wait may be new; the 100,000 inner ones reuse.
    EXPECT_LE(after - before, 4u);
}

TEST(spawn, runs_detached_and_reports_escaped_exceptions) {
    io_context ctx;
    int ran = 0;
    auto work = [&]() -> task<void> {
        ++ran;
        co_await async_sleep(ctx, std::chrono::milliseconds(1));
        ++ran;
        throw std::runtime_error("lost in a detached task");
    };
    testing::internal::CaptureStderr();
    auto driver = [&]() -> task<void> {
        spawn(ctx, work());
        co_await async_sleep(ctx, std::chrono::milliseconds(20));
    };
    sync_wait(ctx, driver());
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_EQ(ran, 2);
    EXPECT_NE(err.find("lost in a detached task"), std::string::npos) << err;
    EXPECT_NE(err.find("task_test.cpp"), std::string::npos) << "the report names where it was spawned: " << err;
}

TEST(spawn, unfinished_tasks_are_destroyed_with_their_context) {
    auto counter = std::make_shared<int>(0);
    {
        io_context ctx;
        auto sleeper = [](io_context& c, std::shared_ptr<int> held) -> task<void> {
            co_await async_sleep(c, std::chrono::hours(1));
            ++*held;
        };
        for (int i = 0; i < 10; ++i) spawn(ctx, sleeper(ctx, counter));
        ctx.post([&] { ctx.stop(); });
        ctx.run();
        EXPECT_EQ(counter.use_count(), 11);
    }
    EXPECT_EQ(counter.use_count(), 1) << "every suspended frame was freed";
    EXPECT_EQ(*counter, 0);
}
