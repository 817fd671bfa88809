// Per-core metrics (engine/metrics.hpp, proto/ws/metrics.hpp): real traffic
// over loopback, then the counters must say exactly what happened. The
// server runs on a one-core runtime and the clients on this thread's own
// io_context, so the server's counters hold the server's side alone.
#include "ws_test_support.hpp"

#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>

using namespace cnetmod;
using namespace cnetmod::ws_testing;
using namespace std::chrono_literals;

namespace {

net_init sigpipe_guard;

// The bytes one side reads until the peer closes (or the deadline).
task<std::string> read_all(tcp_stream& s, std::chrono::milliseconds limit = 3s) {
    std::string in;
    const deadline d = timeout(limit);
    try {
        for (;;) {
            auto v = co_await s.recv_view(d);
            if (v.empty()) break;
            in.append(reinterpret_cast<const char*>(v.data()), v.size());
            s.consume(v.size());
        }
    } catch (const std::system_error&) {
    }
    co_return in;
}

// Sends `request` as is and returns the whole answer.
task<std::string> raw_request(io_context& ctx, std::uint16_t port, std::string request) {
    auto s = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(port));
    s.queue(std::string_view(request));
    co_return co_await read_all(s);
}

std::string handshake(std::string_view path, std::string_view version = "13") {
    return "GET " + std::string(path) +
           " HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: " +
           std::string(version) + "\r\n\r\n";
}

// Polls `done` for up to two seconds (the server's side of a close ends a
// moment after the client's).
template <class F>
bool eventually(F done) {
    for (int i = 0; i < 200; ++i) {
        if (done()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return done();
}

struct server_on_a_core {
    runtime rt{runtime_options{.cores = 1, .pin_threads = false}};
    std::unique_ptr<http::server> srv;
    server_on_a_core() {
        rt.start();
        srv = std::make_unique<http::server>(rt);
        srv->get("/ws", [](http::request_context& c) -> task<void> {
            ws::options opts;
            opts.enable_compression = true;
            co_await echo(c, opts);
        });
        srv->ws("/refusing", ws::behavior<void>{.upgrade = [](http::request_context&) { return false; }});
        srv->get("/metrics", ws::metrics_route(rt));
        srv->listen(0, "127.0.0.1");
    }
    ~server_on_a_core() {
        srv->shutdown_and_wait(1s);
        rt.stop();
        rt.wait();
    }
    std::string url() const { return "ws://127.0.0.1:" + std::to_string(srv->port()) + "/ws"; }
    ws::core_metrics now() { return ws::snapshot(rt).cores.at(0); }
};

}  // namespace

TEST(metrics, the_engine_counts_bytes_turns_completions_and_busy_time) {
    io_context ctx;
    const auto before = ctx.metrics();
    const std::string payload(10'000, 'x');
    const auto started = std::chrono::steady_clock::now();
    sync_wait(ctx, [&]() -> task<void> {
        auto listener = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0));
        auto client = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(listener.port()));
        auto server = co_await listener.accept();
        co_await client.send(std::string_view(payload));
        std::string got;
        while (got.size() < payload.size()) {
            auto v = co_await server.recv_view(timeout(3s));
            got.append(reinterpret_cast<const char*>(v.data()), v.size());
            server.consume(v.size());
        }
        co_await server.send(std::string_view(got));
        co_await server.drain(timeout(3s));
        std::size_t back = 0;
        while (back < payload.size()) {
            auto v = co_await client.recv_view(timeout(3s));
            back += v.size();
            client.consume(v.size());
        }
    }());
    const auto wall = std::chrono::steady_clock::now() - started;
    const auto m = ctx.metrics();
    // Both ends live on this context: each byte is sent once and received once, each way.
    EXPECT_EQ(m.bytes_sent - before.bytes_sent, 2 * payload.size());
    EXPECT_EQ(m.bytes_received - before.bytes_received, 2 * payload.size());
    EXPECT_EQ(m.send_queue_bytes, 0u);
    EXPECT_GT(m.loop_turns, before.loop_turns);
    EXPECT_GE(m.completions - before.completions, 4u);  // at least: connect, accept, a recv each way
    EXPECT_GE(m.sqes - before.sqes, 4u);
    EXPECT_EQ(m.loop_turns, ctx.enter_calls());
    EXPECT_GT(m.busy_ns, before.busy_ns);
    EXPECT_LE(m.busy_ns - before.busy_ns,
              static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(wall).count()));
}

TEST(metrics, a_writer_held_by_a_peer_that_does_not_read_is_backpressure_and_queued_bytes) {
    io_context ctx;
    sync_wait(ctx, [&]() -> task<void> {
        auto listener = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0));
        auto client = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(listener.port()));
        auto server = co_await listener.accept();  // never reads
        const std::string chunk(256 * 1024, 'y');
        bool timed_out = false;
        try {
            // Far more than the kernel's buffers take: the queue passes
            // send_high_water (1 MiB) and send() waits for it to drain.
            for (int i = 0; i < 64; ++i) co_await client.send(std::string_view(chunk), timeout(300ms));
        } catch (const std::system_error&) {
            timed_out = true;
        }
        EXPECT_TRUE(timed_out);
        const auto m = ctx.metrics();
        EXPECT_GE(m.backpressure_events, 1u);  // each send that found the queue over the mark waited once
        EXPECT_EQ(m.send_queue_bytes, client.queued_bytes());
        EXPECT_GT(m.send_queue_bytes, 1024u * 1024u / 2);
        client.abort();
        EXPECT_EQ(ctx.metrics().send_queue_bytes, 0u);  // dropped with the socket
    }());
}

TEST(metrics, the_websocket_layer_counts_messages_handshakes_and_closes) {
    server_on_a_core f;
    const auto before = f.now();
    io_context ctx;
    constexpr int messages = 7;
    sync_wait(ctx, [&]() -> task<void> {
        auto c = co_await ws::connect(ctx, f.url());
        for (int i = 0; i < messages; ++i) {
            co_await c.send(numbered(i, 100 + i));
            EXPECT_EQ((co_await c.recv()).value_or(""), numbered(i, 100 + i));
        }
        co_await c.close(4001, "done");
        // Not handshakes: a plain GET, another version, a refusing route.
        const auto plain = co_await raw_request(ctx, f.srv->port(), "GET /ws HTTP/1.1\r\nHost: t\r\n\r\n");
        EXPECT_TRUE(plain.starts_with("HTTP/1.1 400")) << plain;
        const auto v12 = co_await raw_request(ctx, f.srv->port(), handshake("/ws", "12"));
        EXPECT_TRUE(v12.starts_with("HTTP/1.1 426")) << v12;
        const auto refused = co_await raw_request(ctx, f.srv->port(), handshake("/refusing"));
        EXPECT_TRUE(refused.starts_with("HTTP/1.1 403")) << refused;
    }());
    ASSERT_TRUE(eventually([&] { return f.now().ws.connections_open == 0; }));
    const auto m = f.now();
    std::uint64_t bytes = 0;
    for (int i = 0; i < messages; ++i) bytes += 100 + i;
    EXPECT_EQ(m.ws.messages_received - before.ws.messages_received, static_cast<std::uint64_t>(messages));
    EXPECT_EQ(m.ws.messages_sent - before.ws.messages_sent, static_cast<std::uint64_t>(messages));
    EXPECT_EQ(m.ws.bytes_received - before.ws.bytes_received, bytes);
    EXPECT_EQ(m.ws.bytes_sent - before.ws.bytes_sent, bytes);
    EXPECT_EQ(m.ws.handshakes_ok, 1u);
    EXPECT_EQ(m.ws.handshakes_not_websocket, 1u);
    EXPECT_EQ(m.ws.handshakes_bad_version, 1u);
    EXPECT_EQ(m.ws.handshakes_refused, 1u);
    EXPECT_EQ(m.ws.handshakes_failed, 0u);
    // 4001 is not among 1000..1015: the last slot. The server echoes it.
    const std::size_t other = ws::ws_metrics::close_code_slots - 1;
    EXPECT_EQ(m.ws.closes_received[other], 1u);
    EXPECT_EQ(m.ws.closes_sent[other], 1u);
    EXPECT_EQ(m.http.connections_accepted, 4u);
    EXPECT_EQ(m.http.requests, 4u);
    EXPECT_TRUE(eventually([&] { return f.now().http.connections_open == 0; }));
    EXPECT_EQ(m.engine.send_queue_bytes, 0u);
    EXPECT_GT(m.engine.bytes_received, bytes);  // frames and handshakes around the payloads
}

TEST(metrics, the_client_side_counts_on_its_own_core) {
    server_on_a_core f;
    io_context ctx;
    const auto before = ws::metrics_of(ctx);
    sync_wait(ctx, [&]() -> task<void> {
        ws::options opts;
        opts.enable_compression = true;
        auto c = co_await ws::connect(ctx, f.url(), opts);
        co_await c.send(std::string(300, 'a'));  // compressed: deflate is agreed, and it shrinks
        EXPECT_TRUE((co_await c.recv()).has_value());
        co_await c.close();
    }());
    const auto m = ws::metrics_of(ctx);
    EXPECT_EQ(m.messages_sent - before.messages_sent, 1u);
    EXPECT_EQ(m.messages_received - before.messages_received, 1u);
    EXPECT_EQ(m.bytes_sent - before.bytes_sent, 300u);
    EXPECT_EQ(m.closes_sent[0] - before.closes_sent[0], 1u);  // 1000
    EXPECT_EQ(m.closes_received[0] - before.closes_received[0], 1u);
    EXPECT_EQ(m.connections_open, 0u);
    // Both sides compress, and a 300-byte run shrinks.
    EXPECT_EQ(m.compressed_sent - before.compressed_sent, 1u);
    EXPECT_EQ(m.compressed_received - before.compressed_received, 1u);
}

TEST(metrics, the_route_serves_prometheus_text_that_parses_and_matches_the_snapshot) {
    server_on_a_core f;
    io_context ctx;
    std::string answer;
    sync_wait(ctx, [&]() -> task<void> {
        auto c = co_await ws::connect(ctx, f.url());
        co_await c.send("hello");
        co_await c.recv();
        co_await c.close();
        answer =
            co_await raw_request(ctx, f.srv->port(), "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    }());
    ASSERT_TRUE(answer.starts_with("HTTP/1.1 200")) << answer;
    EXPECT_NE(answer.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
    const std::string body = answer.substr(answer.find("\r\n\r\n") + 4);

    // Every line: a comment (HELP/TYPE) or name{labels} value, as the format has it.
    const std::regex sample(R"(([a-z_]+)(\{([a-z_]+="[^"]*")(,[a-z_]+="[^"]*")*\})? ([0-9]+(\.[0-9]+)?))");
    const std::regex comment(R"(# (HELP|TYPE) ([a-z_]+) .+)");
    std::istringstream lines(body);
    std::string line;
    std::set<std::string> typed;
    int samples = 0;
    while (std::getline(lines, line)) {
        std::smatch m;
        if (std::regex_match(line, m, comment)) {
            if (m[1] == "TYPE") typed.insert(m[2]);
            continue;
        }
        ASSERT_TRUE(std::regex_match(line, m, sample)) << line;
        EXPECT_TRUE(typed.count(m[1])) << "no TYPE before " << line;
        ++samples;
    }
    EXPECT_GT(samples, 25);
    EXPECT_NE(body.find("cnetmod_info{version=\"" CNETMOD_VERSION "\"} 1\n"), std::string::npos);
    EXPECT_NE(body.find("cnetmod_ws_messages_received_total{core=\"0\"} 1\n"), std::string::npos) << body;
    EXPECT_NE(body.find("cnetmod_ws_message_bytes_received_total{core=\"0\"} 5\n"), std::string::npos);
    EXPECT_NE(body.find("cnetmod_ws_handshakes_total{core=\"0\",result=\"ok\"} 1\n"), std::string::npos);
    EXPECT_NE(body.find("cnetmod_ws_closes_received_total{core=\"0\",code=\"1000\"} 1\n"), std::string::npos);
    // The request for /metrics itself was read before the snapshot.
    EXPECT_NE(body.find("cnetmod_http_requests_total{core=\"0\"} 2\n"), std::string::npos);
    EXPECT_EQ(body.find("cnetmod_broker_"), std::string::npos);  // no pubsub given
}

TEST(metrics, a_snapshot_of_several_cores_sums_to_its_total) {
    runtime rt({.cores = 2, .pin_threads = false});
    rt.start();
    http::server srv(rt);
    srv.get("/ws", [](http::request_context& c) -> task<void> {
        const ws::options opts;
        co_await echo(c, opts);
    });
    srv.listen(0, "127.0.0.1");
    io_context ctx;
    sync_wait(ctx, [&]() -> task<void> {
        for (int i = 0; i < 6; ++i) {
            auto c = co_await ws::connect(ctx, "ws://127.0.0.1:" + std::to_string(srv.port()) + "/ws");
            co_await c.send("m");
            co_await c.recv();
            co_await c.close();
        }
    }());
    srv.shutdown_and_wait(1s);
    const auto s = ws::snapshot(rt);
    rt.stop();
    rt.wait();
    ASSERT_EQ(s.cores.size(), 2u);
    EXPECT_EQ(s.cores[0].core, 0u);
    EXPECT_EQ(s.cores[1].core, 1u);
    const auto t = s.total();
    EXPECT_EQ(t.ws.messages_received, 6u);
    EXPECT_EQ(t.ws.handshakes_ok, 6u);
    EXPECT_EQ(t.http.connections_accepted, s.cores[0].http.connections_accepted + s.cores[1].http.connections_accepted);
    EXPECT_EQ(t.engine.loop_turns, s.cores[0].engine.loop_turns + s.cores[1].engine.loop_turns);
    EXPECT_FALSE(s.broker.has_value());
}
