// Graceful shutdown (http::server::shutdown): clients on every core get
// every message queued for them before the close, then 1001; a peer that
// never answers is reset once the grace period ends; on one io_context the
// shutdown is awaited in the loop.
#include "ws_test_support.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

using namespace cnetmod;
using namespace cnetmod::ws_testing;
using namespace std::chrono_literals;

namespace {

net_init sigpipe_guard;

// Two cores; on "flood" a connection queues `count` messages of `size`
// bytes at once, then goes back to reading.
struct flooding_server {
    static constexpr int count = 200;
    static constexpr std::size_t size = 8 * 1024;
    runtime rt{[] {
        runtime_options o;
        o.cores = 2;
        o.pin_threads = false;
        return o;
    }()};
    std::unique_ptr<http::server> srv;
    std::atomic<int> flooded{0};
    std::atomic<int> per_core[2] = {0, 0};

    flooding_server() {
        rt.start();
        srv = std::make_unique<http::server>(rt);
        srv->get("/ws", [this](http::request_context& c) -> task<void> {
            auto ws = co_await c.upgrade_to_websocket();
            per_core[runtime::current_core()]++;
            while (auto m = co_await ws.recv()) {
                if (*m != "flood") continue;
                for (int i = 0; i < count; ++i) {
                    const std::string text = numbered(i, size);
                    ws.queue_message(ws::opcode::text, std::as_bytes(std::span(text.data(), text.size())));
                }
                flooded++;
            }
        });
        srv->listen(0, "127.0.0.1");
    }
    ~flooding_server() {
        srv.reset();
        rt.stop();
        rt.wait();
    }
    std::string url() const { return "ws://127.0.0.1:" + std::to_string(srv->port()) + "/ws"; }
};

}  // namespace

TEST(graceful_shutdown, clients_on_every_core_get_all_that_was_queued_then_1001) {
    flooding_server server;
    io_context ctx;
    constexpr int clients = 24;
    std::vector<ws::connection> conns(clients);
    int complete = 0, closed_1001 = 0, finished = 0;
    std::thread stopper;
    std::chrono::steady_clock::duration shutdown_took{};
    auto t = [&]() -> task<void> {
        for (auto& c : conns) {
            c = co_await ws::connect(ctx, server.url());
            co_await c.send("flood");
        }
        while (server.flooded.load() < clients) co_await async_sleep(ctx, 5ms);
        // Everything is queued on the server (most of it still in its send
        // queues: nobody reads yet); now the shutdown starts, and the clients read.
        stopper = std::thread([&] {
            const auto start = std::chrono::steady_clock::now();
            server.srv->shutdown_and_wait(5s);
            shutdown_took = std::chrono::steady_clock::now() - start;
        });
        for (auto& c : conns)
            spawn(ctx, co_invoke([&]() -> task<void> {
                      int i = 0;
                      while (auto m = co_await c.recv()) {
                          if (*m != numbered(i, flooding_server::size)) break;
                          ++i;
                      }
                      complete += i == flooding_server::count;
                      closed_1001 += c.close_code() == ws::close_code::going_away;
                      ++finished;
                  }));
        while (finished < clients) co_await async_sleep(ctx, 5ms);
    };
    sync_wait(ctx, t());
    stopper.join();
    EXPECT_EQ(complete, clients) << "every queued message arrived before the close";
    EXPECT_EQ(closed_1001, clients);
    EXPECT_GT(server.per_core[0].load(), 0);
    EXPECT_GT(server.per_core[1].load(), 0);
    EXPECT_LT(shutdown_took, 4s) << "peers that answer end the shutdown early";
}

TEST(graceful_shutdown, a_peer_that_never_answers_is_reset_after_the_grace_period) {
    flooding_server server;
    io_context ctx;
    std::thread stopper;
    std::chrono::steady_clock::duration shutdown_took{};
    bool ended = false;
    auto t = [&]() -> task<void> {
        auto silent = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(server.srv->port()));
        silent.queue(
            std::string_view("GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
        while (server.per_core[0].load() + server.per_core[1].load() < 1) co_await async_sleep(ctx, 5ms);
        stopper = std::thread([&] {
            const auto start = std::chrono::steady_clock::now();
            server.srv->shutdown_and_wait(300ms);
            shutdown_took = std::chrono::steady_clock::now() - start;
        });
        // It reads what comes (the 101, the close frame) but never answers.
        try {
            for (;;) {
                auto v = co_await silent.recv_view(timeout(5s));
                if (v.empty()) break;
                silent.consume(v.size());
            }
            ended = true;
        } catch (const std::system_error& e) {
            ended = e.code() != std::errc::timed_out;  // reset
        }
    };
    sync_wait(ctx, t());
    stopper.join();
    EXPECT_TRUE(ended) << "the server ended the silent connection";
    EXPECT_GE(shutdown_took, 250ms);
    EXPECT_LT(shutdown_took, 2s);
}

TEST(graceful_shutdown, on_one_io_context_it_is_awaited_in_the_loop) {
    io_context ctx;
    http::server srv(ctx);
    srv.get("/ws", [](http::request_context& c) -> task<void> {
        auto ws = co_await c.upgrade_to_websocket();
        co_await ws.send("welcome");
        while (co_await ws.recv()) {
        }
    });
    srv.listen(0, "127.0.0.1");
    auto t = [&]() -> task<std::pair<std::string, int>> {
        auto c = co_await ws::connect(ctx, "ws://127.0.0.1:" + std::to_string(srv.port()) + "/ws");
        bool done = false;
        spawn(ctx, co_invoke([&]() -> task<void> {
                  co_await srv.shutdown(2s);
                  done = true;
              }));
        auto first = co_await c.recv();
        auto after = co_await c.recv();  // the close
        EXPECT_FALSE(after.has_value());
        while (!done) co_await async_sleep(ctx, 5ms);
        co_return std::make_pair(first.value_or(""), static_cast<int>(c.close_code()));
    };
    const auto [first, code] = sync_wait(ctx, t());
    EXPECT_EQ(first, "welcome");
    EXPECT_EQ(code, 1001);
}
