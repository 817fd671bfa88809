// The log hook (cnetmod::set_log_handler) and the version: the library's
// diagnostics reach the embedder's handler with their level, from every
// core, filtered by the minimum level; the default writes to stderr; a
// handler that throws loses its message and nothing else. CNETMOD_VERSION,
// cnetmod::version() and meson.build's version agree.
#include <cnetmod/engine/engine.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace cnetmod;

namespace {

struct captured {
    std::mutex lock;
    std::vector<std::pair<log_level, std::string>> lines;
    void install(log_level min = log_level::debug) {
        set_log_handler(min, [this](log_level level, std::string_view message) {
            std::lock_guard g(lock);
            lines.emplace_back(level, std::string(message));
        });
    }
};

// A task that throws once it has run on its context.
task<void> thrower(io_context& ctx, std::string what) {
    co_await async_sleep(ctx, std::chrono::milliseconds(1));
    throw std::runtime_error(what);
}

void run_a_throwing_task(std::string what) {
    io_context ctx;
    auto driver = [&]() -> task<void> {
        spawn(ctx, thrower(ctx, what));
        co_await async_sleep(ctx, std::chrono::milliseconds(20));
    };
    sync_wait(ctx, driver());
}

struct restore_default {
    ~restore_default() { set_log_handler(log_level::info, {}); }
};

}  // namespace

TEST(log, an_escaped_exception_reaches_the_handler_as_a_warning) {
    restore_default r;
    captured c;
    c.install();
    run_a_throwing_task("lost in a detached task");
    ASSERT_EQ(c.lines.size(), 1u);
    EXPECT_EQ(c.lines[0].first, log_level::warning);
    EXPECT_NE(c.lines[0].second.find("exception escaped a task spawned at"), std::string::npos) << c.lines[0].second;
    EXPECT_NE(c.lines[0].second.find("lost in a detached task"), std::string::npos) << c.lines[0].second;
    EXPECT_EQ(c.lines[0].second.find("cnetmod:"), std::string::npos) << "the prefix is the default sink's";
    EXPECT_EQ(c.lines[0].second.find('\n'), std::string::npos);
}

TEST(log, below_the_minimum_level_nothing_is_delivered) {
    restore_default r;
    captured c;
    c.install(log_level::error);
    run_a_throwing_task("a warning only");
    EXPECT_TRUE(c.lines.empty());
}

TEST(log, the_default_writes_one_prefixed_line_to_stderr) {
    restore_default r;
    set_log_handler(log_level::info, {});
    testing::internal::CaptureStderr();
    run_a_throwing_task("to stderr");
    log(log_level::debug, "below the default level");
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find("cnetmod: exception escaped a task spawned at"), std::string::npos) << err;
    EXPECT_NE(err.find("to stderr"), std::string::npos) << err;
    EXPECT_EQ(err.find("below the default level"), std::string::npos) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
}

TEST(log, a_handler_that_throws_loses_only_its_message) {
    restore_default r;
    std::atomic<int> calls{0};
    set_log_handler(log_level::debug, [&](log_level, std::string_view) {
        ++calls;
        throw std::runtime_error("a bad handler");
    });
    run_a_throwing_task("one");
    run_a_throwing_task("two");
    EXPECT_EQ(calls.load(), 2);
}

TEST(log, every_core_of_a_runtime_logs_through_the_one_handler) {
    restore_default r;
    captured c;
    c.install();
    runtime rt({.cores = 2, .pin_threads = false});
    rt.start();
    std::atomic<int> logged{0};
    for (std::size_t core = 0; core < 2; ++core)
        rt.submit_to(core, [core, &logged] {
            log(log_level::info, "from core " + std::to_string(core));
            ++logged;
        });
    while (logged.load() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    rt.submit_to(1, [] { throw std::runtime_error("stops core 1"); });
    rt.wait();
    std::lock_guard g(c.lock);
    int infos = 0, errors = 0;
    for (const auto& [level, text] : c.lines) {
        infos += level == log_level::info && text.starts_with("from core ");
        errors += level == log_level::error && text.find("stopped by an exception: stops core") != std::string::npos;
    }
    EXPECT_EQ(infos, 2);
    EXPECT_EQ(errors, 1) << "a core's loop ended by an exception is an error";
}

TEST(log, levels_have_names) {
    EXPECT_EQ(to_string(log_level::debug), "debug");
    EXPECT_EQ(to_string(log_level::info), "info");
    EXPECT_EQ(to_string(log_level::warning), "warning");
    EXPECT_EQ(to_string(log_level::error), "error");
}

TEST(version, the_header_the_library_and_meson_build_agree) {
    EXPECT_EQ(std::string(CNETMOD_VERSION), EXPECTED_VERSION);
    EXPECT_EQ(version(), EXPECTED_VERSION);
    EXPECT_EQ(std::to_string(CNETMOD_VERSION_MAJOR) + "." + std::to_string(CNETMOD_VERSION_MINOR) + "." +
                  std::to_string(CNETMOD_VERSION_PATCH),
              EXPECTED_VERSION);
}
