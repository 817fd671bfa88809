// ws::connection with our own client against our own server, over loopback.
#include "ws_test_support.hpp"

#include <gtest/gtest.h>

using namespace cnetmod;
using namespace cnetmod::ws_testing;
using namespace std::chrono_literals;

namespace {
net_init sigpipe_guard;
}

TEST(ws_connection, client_and_server_exchange_text_and_binary_of_every_size) {
    echo_fixture f;
    auto t = [&]() -> task<void> {
        auto ws = co_await ws::connect(f.ctx, f.url());
        EXPECT_TRUE(ws.is_open());
        for (std::size_t n : {0u, 1u, 125u, 126u, 65535u, 65536u, 1u << 20}) {
            std::string text(n, 'a');
            for (std::size_t i = 0; i < n; ++i) text[i] = static_cast<char>('a' + i % 26);
            co_await ws.send(text);
            auto got = co_await ws.recv();
            EXPECT_TRUE(got && *got == text) << n;
            EXPECT_EQ(ws.last_opcode(), ws::opcode::text);
            std::vector<std::uint8_t> bin(n);
            for (std::size_t i = 0; i < n; ++i) bin[i] = static_cast<std::uint8_t>(i * 31);
            co_await ws.send_binary(bin);
            auto frame = co_await ws.recv_frame();
            EXPECT_TRUE(frame && frame->opcode == ws::opcode::binary && frame->payload.size() == n);
            EXPECT_TRUE(frame && std::equal(bin.begin(), bin.end(),
                                            reinterpret_cast<const std::uint8_t*>(frame->payload.data())));
        }
        co_await ws.close(1000, "done");
        EXPECT_FALSE(ws.is_open());
        EXPECT_EQ(ws.close_code(), 1000);
        EXPECT_EQ(ws.close_reason(), "") << "the reason of the close frame received: the echo carries none";
    };
    sync_wait(f.ctx, t());
}

TEST(ws_connection, fragmented_sends_arrive_whole) {
    echo_fixture f;
    auto t = [&]() -> task<void> {
        auto ws = co_await ws::connect(f.ctx, f.url());
        const std::string msg = "fragmented message with ünïcödé split anywhere";
        for (std::size_t piece : {1u, 2u, 3u, 7u, 100u}) {
            co_await ws.send_fragmented(msg, piece);
            auto got = co_await ws.recv();
            EXPECT_TRUE(got && *got == msg) << piece;
        }
        co_await ws.close();
    };
    sync_wait(f.ctx, t());
}

TEST(ws_connection, pings_are_answered_and_returned_by_recv_frame) {
    echo_fixture f;
    auto t = [&]() -> task<void> {
        auto ws = co_await ws::connect(f.ctx, f.url());
        co_await ws.ping("are you there");
        auto frame = co_await ws.recv_frame();
        EXPECT_TRUE(frame && frame->opcode == ws::opcode::pong && frame->payload == "are you there");
        EXPECT_THROW(co_await ws.ping(std::string(126, 'x')), std::invalid_argument);
        co_await ws.close();
    };
    sync_wait(f.ctx, t());
}

TEST(ws_connection, zero_copy_receive_views_the_buffer) {
    echo_fixture f;
    auto t = [&]() -> task<void> {
        auto ws = co_await ws::connect(f.ctx, f.url());
        co_await ws.send("view me");
        auto view = co_await ws.recv_view();
        EXPECT_TRUE(view && view->text() == "view me");
        co_await ws.send("and me");
        view = co_await ws.recv_view();
        EXPECT_TRUE(view && view->text() == "and me");
        co_await ws.close();
    };
    sync_wait(f.ctx, t());
}

TEST(ws_connection, server_initiated_close_reaches_the_client_and_sends_then_throw) {
    io_context ctx;
    http::server srv(ctx);
    srv.get("/ws", [](http::request_context& c) -> task<void> {
        auto ws = co_await c.upgrade_to_websocket();
        co_await ws.send("bye soon");
        co_await ws.close(4001, "custom reason");
        EXPECT_EQ(ws.close_code(), 4001);
        EXPECT_THROW(co_await ws.send("too late"), ws::connection_closed);
    });
    srv.listen(0, "127.0.0.1");
    auto t = [&]() -> task<void> {
        auto ws = co_await ws::connect(ctx, "ws://127.0.0.1:" + std::to_string(srv.port()) + "/ws");
        auto first = co_await ws.recv();
        EXPECT_TRUE(first && *first == "bye soon");
        auto end = co_await ws.recv();
        EXPECT_FALSE(end);
        EXPECT_EQ(ws.close_code(), 4001);
        EXPECT_EQ(ws.close_reason(), "custom reason");
        EXPECT_FALSE(ws.is_open());
        EXPECT_THROW(co_await ws.send("x"), ws::connection_closed);
        EXPECT_THROW(co_await ws.close(999), std::invalid_argument);
    };
    sync_wait(ctx, t());
}

TEST(ws_connection, subprotocol_is_selected_only_when_offered) {
    io_context ctx;
    http::server srv(ctx);
    srv.get("/ws", [](http::request_context& c) -> task<void> {
        ws::options opts;
        opts.subprotocol = "chat";
        auto ws = co_await c.upgrade_to_websocket(opts);
        co_await ws.send(std::string(ws.subprotocol()));
        co_await ws.recv();
    });
    srv.listen(0, "127.0.0.1");
    const std::string url = "ws://127.0.0.1:" + std::to_string(srv.port()) + "/ws";
    auto t = [&]() -> task<void> {
        ws::options offer;
        offer.subprotocol = "superchat, chat";
        auto a = co_await ws::connect(ctx, url, offer);
        EXPECT_EQ(a.subprotocol(), "chat");
        EXPECT_EQ(*co_await a.recv(), "chat");
        co_await a.close();
        auto b = co_await ws::connect(ctx, url);
        EXPECT_EQ(b.subprotocol(), "");
        EXPECT_EQ(*co_await b.recv(), "");
        co_await b.close();
    };
    sync_wait(ctx, t());
}

TEST(ws_connection, connect_errors_are_clear) {
    io_context ctx;
    http::server srv(ctx);
    srv.get("/plain", [](http::request_context& c) -> task<void> {
        c.resp().set_body("not a websocket");
        co_return;
    });
    srv.listen(0, "127.0.0.1");
    const std::string base = "ws://127.0.0.1:" + std::to_string(srv.port());
    auto t = [&]() -> task<void> {
        try {
            co_await ws::connect(ctx, base + "/missing");
            ADD_FAILURE() << "connected to a 404";
        } catch (const std::system_error& e) {
            EXPECT_NE(std::string(e.what()).find("HTTP/1.1 404 Not Found"), std::string::npos) << e.what();
        }
        try {
            co_await ws::connect(ctx, base + "/plain");
            ADD_FAILURE() << "connected to a plain page";
        } catch (const std::system_error& e) {
            EXPECT_NE(std::string(e.what()).find("HTTP/1.1 200 OK"), std::string::npos) << e.what();
        }
        EXPECT_THROW(co_await ws::connect(ctx, "http://127.0.0.1/"), std::invalid_argument);
        EXPECT_THROW(co_await ws::connect(ctx, "ws://127.0.0.1:99999/"), std::invalid_argument);
        EXPECT_THROW(co_await ws::connect(ctx, "not a url"), std::invalid_argument);
    };
    sync_wait(ctx, t());
    std::uint16_t closed_port;
    {
        auto probe = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0));
        closed_port = probe.port();
    }
    auto refused = [&]() -> task<void> {
        try {
            co_await ws::connect(ctx, "ws://127.0.0.1:" + std::to_string(closed_port) + "/");
            ADD_FAILURE() << "connected to a closed port";
        } catch (const std::system_error& e) {
            EXPECT_EQ(e.code().value(), ECONNREFUSED);
        }
    };
    sync_wait(ctx, refused());
}

TEST(ws_connection, parses_urls) {
    auto u = ws::parse_url("ws://[::1]:9000/chat?name=x");
    EXPECT_EQ(u.host, "::1");
    EXPECT_EQ(u.port, 9000);
    EXPECT_EQ(u.target, "/chat?name=x");
    u = ws::parse_url("ws://example.org");
    EXPECT_EQ(u.port, 80);
    EXPECT_EQ(u.target, "/");
    u = ws::parse_url("wss://example.org?x");
    EXPECT_EQ(u.port, 443);
    EXPECT_EQ(u.target, "/?x");
}

TEST(ws_connection, idle_timeout_closes_with_1001) {
    ws::options o;
    o.idle_timeout = 100ms;
    echo_fixture f(o);
    auto t = [&]() -> task<void> {
        auto ws = co_await ws::connect(f.ctx, f.url());
        auto r = co_await ws.recv();  // the server goes quiet… and gives up
        EXPECT_FALSE(r);
        EXPECT_EQ(ws.close_code(), 1001);
    };
    sync_wait(f.ctx, t());
}

TEST(ws_connection, a_peer_that_never_reads_is_cut_off) {
    io_context ctx;
    http::server srv(ctx);
    bool threw = false;
    srv.get("/ws", [&](http::request_context& c) -> task<void> {
        ws::options o;
        o.send_high_water = 64 * 1024;
        o.send_timeout = 300ms;
        auto ws = co_await c.upgrade_to_websocket(o);
        const std::string chunk(16 * 1024, 'z');
        try {
            for (int i = 0; i < 100000; ++i) co_await ws.send(chunk);  // the client never reads
        } catch (const ws::connection_closed&) {
            threw = true;
        }
    });
    srv.listen(0, "127.0.0.1");
    auto t = [&]() -> task<void> {
        auto ws = co_await ws::connect(ctx, "ws://127.0.0.1:" + std::to_string(srv.port()) + "/ws");
        co_await async_sleep(ctx, 2s);
    };
    sync_wait(ctx, t());
    EXPECT_TRUE(threw) << "send() gave up on a peer that does not drain";
}

TEST(ws_connection, send_completes_at_once_under_the_high_water_mark) {
    echo_fixture f;
    auto t = [&]() -> task<void> {
        auto ws = co_await ws::connect(f.ctx, f.url());
        const auto before = f.ctx.enter_calls();
        for (int i = 0; i < 100; ++i) co_await ws.send("small");
        EXPECT_EQ(f.ctx.enter_calls(), before) << "queued without a loop turn";
        for (int i = 0; i < 100; ++i) EXPECT_EQ(*co_await ws.recv(), "small");
        co_await ws.close();
    };
    sync_wait(f.ctx, t());
}
