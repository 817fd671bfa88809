// The seed's coroutine handlers after co_await ctx.upgrade_to_websocket():
// the HTTP session that called the handler ends at the upgrade (its frame
// is freed), and the handler goes on alone, owned by its io_context. These
// tests walk each way a handler can reach the upgrade and leave it: at
// once or after waiting, ending normally or by throwing, before or after
// the server object and the context go.
#include "ws_test_support.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>

using namespace cnetmod;
using namespace cnetmod::ws_testing;
using namespace std::chrono_literals;

namespace {

net_init sigpipe_guard;

// Counts handler frames alive: one lives in each handler's frame.
struct frame_guard {
    static inline int alive = 0;
    frame_guard() { ++alive; }
    ~frame_guard() { --alive; }
    frame_guard(const frame_guard&) = delete;
    frame_guard& operator=(const frame_guard&) = delete;
};

// An echo handler that may wait before upgrading, and throws on "throw".
// The prefix lives in the route's function (the server's state): a handler
// that outlives its session still reads it.
auto echo_handler(io_context& ctx, std::chrono::milliseconds wait_first, std::string prefix) {
    return [&ctx, wait_first, prefix = std::move(prefix)](http::request_context& rc) -> task<void> {
        frame_guard guard;
        if (wait_first.count() > 0) co_await async_sleep(ctx, wait_first);  // the session suspends on the handler
        auto ws = co_await rc.upgrade_to_websocket();
        EXPECT_TRUE(rc.path().empty()) << "the request is released at the upgrade";
        EXPECT_EQ(&rc.context(), &ctx) << "the request context outlives the session";
        while (auto msg = co_await ws.recv()) {
            if (*msg == "throw") throw std::runtime_error("handler failure (expected by the test)");
            if (*msg == "throw 42") throw 42;  // not a std::exception
            co_await ws.send(prefix + *msg);
        }
    };
}

}  // namespace

TEST(upgraded_handler, goes_on_alone_whether_it_upgrades_at_once_or_after_waiting) {
    frame_guard::alive = 0;
    io_context ctx;
    http::server srv(ctx);
    srv.get("/now", echo_handler(ctx, 0ms, "now:"));
    srv.get("/later", echo_handler(ctx, 30ms, "later:"));
    srv.listen(0, "127.0.0.1");
    const std::string base = "ws://127.0.0.1:" + std::to_string(srv.port());
    sync_wait(ctx, [&]() -> task<void> {
        auto a = co_await ws::connect(ctx, base + "/now");
        auto b = co_await ws::connect(ctx, base + "/later");
        for (int i = 0; i < 3; ++i) {
            co_await a.send("x" + std::to_string(i));
            co_await b.send("y" + std::to_string(i));
            EXPECT_EQ((co_await a.recv()).value_or(""), "now:x" + std::to_string(i));
            EXPECT_EQ((co_await b.recv()).value_or(""), "later:y" + std::to_string(i));
        }
        EXPECT_EQ(frame_guard::alive, 2);
        co_await a.close();
        co_await b.close();
        for (int i = 0; i < 200 && frame_guard::alive > 0; ++i) co_await async_sleep(ctx, 2ms);
        EXPECT_EQ(frame_guard::alive, 0) << "an adopted handler's frame is freed when it ends";
    }());
}

TEST(upgraded_handler, one_that_throws_after_the_upgrade_ends_its_own_connection_only) {
    frame_guard::alive = 0;
    io_context ctx;
    http::server srv(ctx);
    srv.get("/now", echo_handler(ctx, 0ms, ""));
    srv.get("/later", echo_handler(ctx, 20ms, ""));
    srv.listen(0, "127.0.0.1");
    const std::string base = "ws://127.0.0.1:" + std::to_string(srv.port());
    sync_wait(ctx, [&]() -> task<void> {
        for (const char* path : {"/now", "/later"}) {
            auto bad = co_await ws::connect(ctx, base + path);
            auto good = co_await ws::connect(ctx, base + path);
            co_await bad.send("throw");
            EXPECT_FALSE(co_await bad.recv()) << path;
            EXPECT_EQ(bad.close_code(), 1001) << path << ": the handler's connection closes as it is destroyed";
            co_await good.send("still here");
            EXPECT_EQ((co_await good.recv()).value_or(""), "still here") << path;
            co_await good.close();
        }
        for (int i = 0; i < 200 && frame_guard::alive > 0; ++i) co_await async_sleep(ctx, 2ms);
        EXPECT_EQ(frame_guard::alive, 0);
    }());
}

TEST(upgraded_handler, outlives_the_server_object_and_goes_with_the_context) {
    frame_guard::alive = 0;
    {
        io_context ctx;
        auto srv = std::make_unique<http::server>(ctx);
        srv->get("/now", echo_handler(ctx, 0ms, "kept:"));
        srv->get("/later", echo_handler(ctx, 10ms, "kept:"));
        srv->listen(0, "127.0.0.1");
        const std::string base = "ws://127.0.0.1:" + std::to_string(srv->port());
        std::vector<ws::connection> clients;
        sync_wait(ctx, [&]() -> task<void> {
            for (int i = 0; i < 6; ++i)
                clients.push_back(co_await ws::connect(ctx, base + (i % 2 ? "/later" : "/now")));
            srv.reset();  // the server object goes; its handlers' state stays while they run
            for (auto& c : clients) {
                co_await c.send("after");
                EXPECT_EQ((co_await c.recv()).value_or(""), "kept:after");
            }
            EXPECT_EQ(frame_guard::alive, 6);
        }());
        // The context goes with the handlers still waiting in recv(): they are destroyed with it.
        clients.clear();
    }
    EXPECT_EQ(frame_guard::alive, 0);
}

// After the upgrade nobody can answer a failure: a std::exception ends the
// conversation quietly, anything else is reported on stderr (as escaping
// the session would have been), and the server goes on.
TEST(upgraded_handler, a_non_standard_exception_after_the_upgrade_is_reported_and_a_standard_one_is_not) {
    frame_guard::alive = 0;
    io_context ctx;
    http::server srv(ctx);
    srv.get("/now", echo_handler(ctx, 0ms, ""));
    srv.get("/later", echo_handler(ctx, 20ms, ""));
    srv.listen(0, "127.0.0.1");
    const std::string base = "ws://127.0.0.1:" + std::to_string(srv.port());
    for (const char* path : {"/now", "/later"}) {
        for (const char* what : {"throw", "throw 42"}) {
            testing::internal::CaptureStderr();
            sync_wait(ctx, [&]() -> task<void> {
                auto bad = co_await ws::connect(ctx, base + path);
                co_await bad.send(what);
                EXPECT_FALSE(co_await bad.recv()) << path << " " << what;
                auto good = co_await ws::connect(ctx, base + path);
                co_await good.send("still here");
                EXPECT_EQ((co_await good.recv()).value_or(""), "still here") << path;
                co_await good.close();
                for (int i = 0; i < 200 && frame_guard::alive > 0; ++i) co_await async_sleep(ctx, 2ms);
            }());
            const std::string err = testing::internal::GetCapturedStderr();
            const bool reported = err.find("exception escaped") != std::string::npos;
            EXPECT_EQ(reported, std::string_view(what) == "throw 42") << path << " " << what << ": " << err;
            EXPECT_EQ(frame_guard::alive, 0);
        }
    }
}
