#include <cnetmod/engine/detail/timer_wheel.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <vector>

using cnetmod::detail::timer_entry;
using cnetmod::detail::timer_wheel;

namespace {

// An entry that records when it fired, through a test-wide log.
struct probe : timer_entry {
    int id = 0;
    std::vector<int>* log = nullptr;
    std::function<void(probe&)> on_fire;
    probe() : timer_entry(&probe::fired) {}
    static void fired(timer_entry* e) {
        auto* self = static_cast<probe*>(e);
        if (self->log) self->log->push_back(self->id);
        if (self->on_fire) self->on_fire(*self);
    }
};

std::vector<std::unique_ptr<probe>> make_probes(int n, std::vector<int>& log) {
    std::vector<std::unique_ptr<probe>> probes;
    for (int i = 0; i < n; ++i) {
        probes.push_back(std::make_unique<probe>());
        probes.back()->id = i;
        probes.back()->log = &log;
    }
    return probes;
}

}  // namespace

TEST(timer_wheel, fires_an_entry_at_its_tick_and_not_before) {
    timer_wheel wheel(1000);
    std::vector<int> log;
    auto p = make_probes(1, log);
    wheel.arm(*p[0], 1005);
    EXPECT_TRUE(p[0]->armed());
    EXPECT_EQ(wheel.size(), 1u);
    wheel.advance(1004);
    EXPECT_TRUE(log.empty());
    wheel.advance(1005);
    EXPECT_EQ(log, std::vector<int>{0});
    EXPECT_FALSE(p[0]->armed());
    EXPECT_TRUE(wheel.empty());
    EXPECT_EQ(wheel.next_due(), timer_wheel::never);
}

TEST(timer_wheel, fires_in_due_order_across_levels) {
    timer_wheel wheel(7);
    std::vector<int> log;
    // Due ticks spread over several levels, armed out of order.
    const std::vector<std::uint64_t> due = {5'000'000, 70, 9, 4'100, 300'000, 64, 63, 262'144, 8};
    auto p = make_probes(static_cast<int>(due.size()), log);
    for (std::size_t i = 0; i < due.size(); ++i) wheel.arm(*p[i], due[i]);
    wheel.advance(6'000'000);
    std::vector<int> expected(due.size());
    for (std::size_t i = 0; i < due.size(); ++i) expected[i] = static_cast<int>(i);
    std::sort(expected.begin(), expected.end(),
              [&](int a, int b) { return due[static_cast<std::size_t>(a)] < due[static_cast<std::size_t>(b)]; });
    EXPECT_EQ(log, expected);
}

TEST(timer_wheel, advancing_tick_by_tick_fires_each_entry_exactly_at_its_tick) {
    timer_wheel wheel(0);
    std::mt19937_64 rng(12345);
    std::vector<int> log;
    auto p = make_probes(2000, log);
    std::vector<std::uint64_t> fired_at(p.size(), 0);
    std::uint64_t now = 0;
    for (auto& e : p) {
        e->on_fire = [&fired_at, &now](probe& self) { fired_at[static_cast<std::size_t>(self.id)] = now; };
        wheel.arm(*e, 1 + rng() % 20'000);
    }
    for (now = 1; now <= 20'000; ++now) wheel.advance(now);
    for (std::size_t i = 0; i < p.size(); ++i) EXPECT_EQ(fired_at[i], p[i]->due_tick) << "entry " << i;
    EXPECT_TRUE(wheel.empty());
}

TEST(timer_wheel, disarmed_entries_never_fire) {
    timer_wheel wheel(0);
    std::vector<int> log;
    auto p = make_probes(1000, log);
    for (auto& e : p) wheel.arm(*e, 10 + static_cast<std::uint64_t>(e->id) * 37);
    for (auto& e : p)
        if (e->id % 2) wheel.disarm(*e);
    wheel.disarm(*p[1]);  // twice: a no-op
    EXPECT_EQ(wheel.size(), 500u);
    wheel.advance(1'000'000);
    ASSERT_EQ(log.size(), 500u);
    for (int id : log) EXPECT_EQ(id % 2, 0);
}

TEST(timer_wheel, rearming_moves_the_deadline) {
    timer_wheel wheel(0);
    std::vector<int> log;
    auto p = make_probes(2, log);
    wheel.arm(*p[0], 100);
    wheel.arm(*p[1], 200);
    wheel.arm(*p[0], 300);  // later than p[1] now
    EXPECT_EQ(wheel.size(), 2u);
    wheel.advance(250);
    EXPECT_EQ(log, std::vector<int>{1});
    wheel.advance(300);
    EXPECT_EQ(log, (std::vector<int>{1, 0}));
}

TEST(timer_wheel, past_deadlines_fire_at_the_next_advance_before_anything_later) {
    timer_wheel wheel(500);
    std::vector<int> log;
    auto p = make_probes(3, log);
    wheel.arm(*p[0], 501);
    wheel.arm(*p[1], 400);  // already past
    wheel.arm(*p[2], 500);  // the current tick: past too
    EXPECT_EQ(wheel.next_due(), 500u) << "overdue entries make the wheel due now";
    wheel.advance(500);  // same tick: the overdue ones still fire
    EXPECT_EQ(log, (std::vector<int>{1, 2}));
    wheel.advance(501);
    EXPECT_EQ(log, (std::vector<int>{1, 2, 0}));
}

TEST(timer_wheel, far_deadlines_of_days_fire_on_time_after_one_jump) {
    constexpr std::uint64_t day = 24ull * 3600 * 1000;
    timer_wheel wheel(123'456);
    std::vector<int> log;
    auto p = make_probes(3, log);
    wheel.arm(*p[0], 123'456 + 30 * day);
    wheel.arm(*p[1], 123'456 + day + 1);
    wheel.arm(*p[2], ~std::uint64_t{0} - 1);  // as far as a tick goes
    EXPECT_LE(wheel.next_due(), 123'456 + day + 1);
    wheel.advance(123'456 + day);
    EXPECT_TRUE(log.empty());
    wheel.advance(123'456 + day + 1);
    EXPECT_EQ(log, std::vector<int>{1});
    wheel.advance(123'456 + 30 * day - 1);
    EXPECT_EQ(log, std::vector<int>{1});
    wheel.advance(123'456 + 30 * day);
    EXPECT_EQ(log, (std::vector<int>{1, 0}));
    wheel.advance(~std::uint64_t{0} - 2);
    EXPECT_EQ(log.size(), 2u);
    wheel.advance(~std::uint64_t{0} - 1);
    EXPECT_EQ(log, (std::vector<int>{1, 0, 2}));
}

TEST(timer_wheel, next_due_is_never_after_the_earliest_deadline_and_converges_to_it) {
    timer_wheel wheel(1'000);
    std::vector<int> log;
    auto p = make_probes(2, log);
    wheel.arm(*p[0], 1'000 + 50'000);
    wheel.arm(*p[1], 1'000 + 90'000);
    // Following next_due() reaches the exact tick in a few coarse steps.
    int steps = 0;
    while (log.empty()) {
        const std::uint64_t due = wheel.next_due();
        ASSERT_LE(due, 51'000u);
        wheel.advance(due);
        ASSERT_LT(++steps, 12) << "one step per level at most";
    }
    EXPECT_EQ(wheel.now(), 51'000u);
    EXPECT_EQ(log, std::vector<int>{0});
}

TEST(timer_wheel, a_callback_may_disarm_an_entry_due_at_the_same_tick) {
    timer_wheel wheel(0);
    std::vector<int> log;
    auto p = make_probes(3, log);
    p[0]->on_fire = [&](probe&) { wheel.disarm(*p[1]); };
    for (auto& e : p) wheel.arm(*e, 10);
    wheel.advance(10);
    EXPECT_EQ(log, (std::vector<int>{0, 2}));
    EXPECT_FALSE(p[1]->armed());
    EXPECT_TRUE(wheel.empty());
}

TEST(timer_wheel, a_callback_may_rearm_itself_and_others) {
    timer_wheel wheel(0);
    std::vector<int> log;
    auto p = make_probes(2, log);
    int repeats = 0;
    p[0]->on_fire = [&](probe& self) {
        if (++repeats < 5) wheel.arm(self, self.due_tick + 10);
        wheel.arm(*p[1], self.due_tick + 100);  // pushed back each time
    };
    wheel.arm(*p[0], 10);
    wheel.arm(*p[1], 15);
    wheel.advance(1'000);
    EXPECT_EQ(log, (std::vector<int>{0, 0, 0, 0, 0, 1}));
    EXPECT_EQ(p[1]->due_tick, 150u);
}

TEST(timer_wheel, an_entry_rearmed_into_the_past_from_its_callback_waits_for_the_next_advance) {
    timer_wheel wheel(0);
    std::vector<int> log;
    auto p = make_probes(1, log);
    p[0]->on_fire = [&](probe& self) { wheel.arm(self, 0); };
    wheel.arm(*p[0], 5);
    wheel.advance(5);
    EXPECT_EQ(log.size(), 1u);
    EXPECT_TRUE(p[0]->armed());
    EXPECT_EQ(wheel.next_due(), 5u);
    wheel.advance(5);
    EXPECT_EQ(log.size(), 2u);
    wheel.disarm(*p[0]);
}

TEST(timer_wheel, a_callback_may_destroy_the_owner_of_its_entry) {
    timer_wheel wheel(0);
    std::vector<int> log;
    auto p = make_probes(2, log);
    p[0]->on_fire = [&](probe&) { p[0].reset(); };
    wheel.arm(*p[0], 3);
    wheel.arm(*p[1], 3);
    wheel.advance(3);
    EXPECT_EQ(log, (std::vector<int>{0, 1}));
    EXPECT_EQ(p[0], nullptr);
}

TEST(timer_wheel, random_arms_disarms_and_advances_match_a_simple_model) {
    timer_wheel wheel(0);
    std::mt19937_64 rng(777);
    std::vector<int> log;
    auto p = make_probes(500, log);
    std::vector<std::uint64_t> model(p.size(), 0);  // 0: not armed
    std::uint64_t now = 0;
    for (int round = 0; round < 20'000; ++round) {
        auto& e = *p[rng() % p.size()];
        const auto i = static_cast<std::size_t>(e.id);
        switch (rng() % 4) {
            case 0:
            case 1: {
                const std::uint64_t spans[] = {3, 100, 5'000, 400'000};
                const std::uint64_t due = now + 1 + rng() % spans[rng() % 4];
                wheel.arm(e, due);
                model[i] = due;
                break;
            }
            case 2:
                wheel.disarm(e);
                model[i] = 0;
                break;
            default: {
                now += rng() % 300;
                log.clear();
                wheel.advance(now);
                std::vector<std::pair<std::uint64_t, int>> expected;
                for (std::size_t k = 0; k < model.size(); ++k)
                    if (model[k] && model[k] <= now) {
                        expected.emplace_back(model[k], static_cast<int>(k));
                        model[k] = 0;
                    }
                std::sort(expected.begin(), expected.end());
                ASSERT_EQ(log.size(), expected.size()) << "round " << round;
                std::vector<int> fired_ids = log, expected_ids;
                for (auto& [due, id] : expected) expected_ids.push_back(id);
                std::sort(fired_ids.begin(), fired_ids.end());
                std::sort(expected_ids.begin(), expected_ids.end());
                ASSERT_EQ(fired_ids, expected_ids) << "round " << round;
                // Fired in due order.
                for (std::size_t k = 1; k < log.size(); ++k)
                    ASSERT_LE(p[static_cast<std::size_t>(log[k - 1])]->due_tick,
                              p[static_cast<std::size_t>(log[k])]->due_tick);
                break;
            }
        }
        std::size_t armed = 0;
        for (auto d : model) armed += d != 0;
        ASSERT_EQ(wheel.size(), armed);
        if (armed) {
            const std::uint64_t earliest =
                *std::min_element(model.begin(), model.end(),
                                  [](std::uint64_t a, std::uint64_t b) { return (a ? a : ~0ull) < (b ? b : ~0ull); });
            ASSERT_LE(wheel.next_due(), earliest);
        }
    }
}
