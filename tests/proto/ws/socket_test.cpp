// The callback API: routes given with srv.ws<UserData>(path, behavior),
// exercised by real clients (ws::connect, and raw frames) over loopback.
#include "ws_test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

using namespace cnetmod;
using namespace cnetmod::ws_testing;
using namespace std::chrono_literals;

namespace {

net_init sigpipe_guard;

// Counts the user data objects alive, to check their lifetime.
struct tracked {
    static inline int alive = 0;
    static inline int made = 0;
    std::string name;
    int messages = 0;
    tracked() {
        ++alive;
        ++made;
    }
    ~tracked() { --alive; }
};

struct callback_fixture {
    io_context ctx;
    http::server srv{ctx};
    std::vector<std::string> log;  // what the handlers saw, in order

    template <class U>
    void serve(std::string path, ws::behavior<U> b) {
        srv.ws<U>(std::move(path), std::move(b));
    }
    void listen() { srv.listen(0, "127.0.0.1"); }
    std::string url(std::string_view path = "/ws") const {
        return "ws://127.0.0.1:" + std::to_string(srv.port()) + std::string(path);
    }
    template <class F>
    void run(F f) {
        sync_wait(ctx, f());
    }
};

}  // namespace

TEST(ws_socket, every_handler_runs_in_order_with_the_user_data) {
    tracked::alive = tracked::made = 0;
    callback_fixture f;
    f.serve<tracked>(
        "/ws", {
                   .upgrade =
                       [&](http::request_context& rc, tracked& t) {
                           t.name = std::string(rc.header("X-Name"));
                           f.log.push_back("upgrade " + t.name);
                           return true;
                       },
                   .open =
                       [&](ws::socket<tracked>& s) {
                           f.log.push_back("open " + s.user_data()->name);
                           EXPECT_EQ(s.send("welcome " + s.user_data()->name), ws::send_status::sent);
                       },
                   .message =
                       [&](ws::socket<tracked>& s, std::string_view m, ws::opcode op) {
                           ++s.user_data()->messages;
                           f.log.push_back(std::string(op == ws::opcode::text ? "text " : "binary ") + std::string(m));
                           s.send(m, op);
                       },
                   .ping = [&](ws::socket<tracked>&, std::string_view d) { f.log.push_back("ping " + std::string(d)); },
                   .pong = [&](ws::socket<tracked>&, std::string_view d) { f.log.push_back("pong " + std::string(d)); },
                   .close =
                       [&](ws::socket<tracked>& s, std::uint16_t code, std::string_view reason) {
                           f.log.push_back("close " + std::to_string(code) + " " + std::string(reason) + " after " +
                                           std::to_string(s.user_data()->messages));
                           EXPECT_EQ(tracked::alive, 1) << "the user data lives through the close handler";
                       },
               });
    f.listen();
    f.run([&]() -> task<void> {
        // ws::connect sends no custom header: the raw client does.
        auto c = co_await ws::connect(f.ctx, f.url());
        auto hello = co_await c.recv();
        EXPECT_EQ(hello.value_or(""), "welcome ");
        co_await c.send("one");
        EXPECT_EQ((co_await c.recv()).value_or(""), "one");
        const std::string bin = std::string("\x00\xff", 2);
        co_await c.send_binary(bin);
        auto back = co_await c.recv();
        EXPECT_EQ(back.value_or(""), bin);
        EXPECT_EQ(c.last_opcode(), ws::opcode::binary);
        co_await c.ping("p1");
        co_await c.pong("q1");
        auto pong = co_await c.recv_frame();  // the library answered the ping
        EXPECT_TRUE(pong && pong->opcode == ws::opcode::pong && pong->payload == "p1");
        co_await c.close(4000, "bye");
        EXPECT_EQ(c.close_code(), 4000);
        for (int i = 0; i < 100 && tracked::alive; ++i) co_await async_sleep(f.ctx, 2ms);
    });
    EXPECT_EQ(f.log, (std::vector<std::string>{"upgrade ", "open ", "text one", std::string("binary \x00\xff", 9),
                                               "ping p1", "pong q1", "close 4000 bye after 2"}));
    EXPECT_EQ(tracked::made, 1);
    EXPECT_EQ(tracked::alive, 0) << "the user data is destroyed after the close handler";
}

TEST(ws_socket, the_upgrade_handler_reads_headers_and_refuses_before_the_101) {
    tracked::alive = tracked::made = 0;
    callback_fixture f;
    f.serve<tracked>("/ws", {.upgrade =
                                 [](http::request_context& rc, tracked& t) {
                                     t.name = std::string(rc.header("X-Name"));
                                     if (t.name == "mallory") {
                                         rc.resp().set_status(http::status::unauthorized);
                                         return false;
                                     }
                                     return t.name == "alice";  // anyone else: 403
                                 },
                             .open = [](ws::socket<tracked>& s) { s.send("hi " + s.user_data()->name); }});
    f.listen();
    auto handshake = [&](std::string name) -> task<std::string> {
        auto s = co_await tcp_connect(f.ctx, ip_endpoint::loopback_v4(f.srv.port()));
        s.queue(
            "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Name: " +
            name + "\r\n\r\n");
        std::string got;
        std::byte buf[4096];
        while (got.find("\r\n\r\n") == std::string::npos) {
            const std::size_t n = co_await s.recv(buf, timeout(5s));
            if (n == 0) break;
            got.append(reinterpret_cast<const char*>(buf), n);
        }
        co_return got.substr(0, got.find("\r\n"));
    };
    f.run([&]() -> task<void> {
        EXPECT_EQ(co_await handshake("alice"), "HTTP/1.1 101 Switching Protocols");
        EXPECT_EQ(co_await handshake("mallory"), "HTTP/1.1 401 Unauthorized");
        EXPECT_EQ(co_await handshake("bob"), "HTTP/1.1 403 Forbidden");
        co_await async_sleep(f.ctx, 20ms);
    });
    EXPECT_EQ(tracked::made, 3) << "made before each upgrade handler";
    EXPECT_EQ(tracked::alive, 0) << "refused upgrades destroy their user data at once; alice's when her TCP ended";
}

TEST(ws_socket, send_reports_backpressure_and_drops_over_the_bound_then_drain_runs) {
    callback_fixture f;
    std::vector<ws::send_status> statuses;
    int drains = 0;
    ws::options o;
    o.send_high_water = 100 * 1024;  // the 101 and one 64 KiB message fit under it
    o.max_queued_bytes = 300 * 1024;
    f.serve<void>("/ws", {.options = o,
                          .open =
                              [&](ws::socket<>& s) {
                                  const std::string chunk(64 * 1024, 'x');
                                  for (int i = 0; i < 8; ++i) statuses.push_back(s.send(chunk));
                                  EXPECT_GT(s.buffered_amount(), o.send_high_water);
                              },
                          .drain =
                              [&](ws::socket<>& s) {
                                  ++drains;
                                  EXPECT_LE(s.buffered_amount(), o.send_high_water / 2);
                                  s.send("after drain");
                              }});
    f.listen();
    f.run([&]() -> task<void> {
        auto c = co_await ws::connect(f.ctx, f.url());
        int big = 0;
        for (;;) {
            auto m = co_await c.recv();
            if (!m) break;
            if (*m == "after drain") break;
            EXPECT_EQ(m->size(), 64u * 1024);
            ++big;
        }
        EXPECT_EQ(big, 5);
        co_await c.close();
    });
    using st = ws::send_status;
    EXPECT_EQ(statuses, (std::vector<st>{st::sent, st::backpressure, st::backpressure, st::backpressure,
                                         st::backpressure, st::dropped, st::dropped, st::dropped}));
    EXPECT_EQ(drains, 1);
}

TEST(ws_socket, end_and_close_from_inside_handlers) {
    callback_fixture f;
    std::vector<std::string> closes;
    f.serve<void>("/ws", {.message =
                              [&](ws::socket<>& s, std::string_view m, ws::opcode) {
                                  if (m == "end") {
                                      s.send("ending");
                                      s.end(4001, "asked to");
                                      EXPECT_FALSE(s.is_open());
                                      EXPECT_EQ(s.send("too late"), ws::send_status::dropped);
                                  } else if (m == "reset") {
                                      s.close();
                                  } else {
                                      s.send(m);
                                  }
                              },
                          .close =
                              [&](ws::socket<>&, std::uint16_t code, std::string_view reason) {
                                  closes.push_back(std::to_string(code) + " " + std::string(reason));
                              }});
    f.listen();
    f.run([&]() -> task<void> {
        auto a = co_await ws::connect(f.ctx, f.url());
        co_await a.send("end");
        EXPECT_EQ((co_await a.recv()).value_or(""), "ending");
        EXPECT_FALSE(co_await a.recv()) << "then the server's close frame";
        EXPECT_EQ(a.close_code(), 4001);
        EXPECT_EQ(a.close_reason(), "asked to");

        auto b = co_await ws::connect(f.ctx, f.url());
        co_await b.send("reset");
        EXPECT_FALSE(co_await b.recv());
        EXPECT_EQ(b.close_code(), 1006) << "a reset, no closing handshake";
        for (int i = 0; i < 100 && closes.size() < 2; ++i) co_await async_sleep(f.ctx, 2ms);
    });
    // The close handler gets the peer's close frame: its echo of 4001, without a reason.
    EXPECT_EQ(closes, (std::vector<std::string>{"4001 ", "1006 "}));
}

TEST(ws_socket, a_protocol_error_closes_one_connection_and_the_others_go_on) {
    callback_fixture f;
    std::vector<std::uint16_t> codes;
    f.serve<void>("/ws",
                  {.message = [](ws::socket<>& s, std::string_view m, ws::opcode op) { s.send(m, op); },
                   .close = [&](ws::socket<>&, std::uint16_t code, std::string_view) { codes.push_back(code); }});
    f.listen();
    f.run([&]() -> task<void> {
        auto good = co_await ws::connect(f.ctx, f.url());
        const auto r = co_await raw_exchange(f.ctx, f.srv.port(), client_frame(0x80 | 0x1, "x", false));
        EXPECT_EQ(r.close_code(), 1002) << "an unmasked frame";
        const auto bad_utf8 = co_await raw_exchange(f.ctx, f.srv.port(), client_frame(0x80 | 0x1, "\xC3\x28"));
        EXPECT_EQ(bad_utf8.close_code(), 1007);
        co_await good.send("still here");
        EXPECT_EQ((co_await good.recv()).value_or(""), "still here");
        co_await good.close();
        for (int i = 0; i < 100 && codes.size() < 3; ++i) co_await async_sleep(f.ctx, 2ms);
    });
    std::sort(codes.begin(), codes.end());
    EXPECT_EQ(codes, (std::vector<std::uint16_t>{1000, 1002, 1007}));
}

TEST(ws_socket, a_handler_that_throws_ends_its_connection_with_1011) {
    callback_fixture f;
    f.serve<void>("/ws", {.message = [](ws::socket<>& s, std::string_view m, ws::opcode) {
                      if (m == "boom") throw std::runtime_error("handler failure (expected by the test)");
                      s.send(m);
                  }});
    f.listen();
    f.run([&]() -> task<void> {
        auto a = co_await ws::connect(f.ctx, f.url());
        auto b = co_await ws::connect(f.ctx, f.url());
        co_await a.send("boom");
        EXPECT_FALSE(co_await a.recv());
        EXPECT_EQ(a.close_code(), 1011);
        co_await b.send("fine");
        EXPECT_EQ((co_await b.recv()).value_or(""), "fine");
        co_await b.close();
    });
}

TEST(ws_socket, publish_from_a_handler_reaches_every_subscriber) {
    callback_fixture f;
    ws::pubsub topics(f.ctx);
    f.serve<void>("/chat",
                  {.open = [&](ws::socket<>& s) { topics.subscribe(s, "room"); },
                   .message = [&](ws::socket<>&, std::string_view m, ws::opcode) { topics.publish("room", m); }});
    f.listen();
    f.run([&]() -> task<void> {
        auto a = co_await ws::connect(f.ctx, f.url("/chat"));
        auto b = co_await ws::connect(f.ctx, f.url("/chat"));
        auto c = co_await ws::connect(f.ctx, f.url("/chat"));
        for (int i = 0; i < 100 && topics.local_subscribers("room") < 3; ++i) co_await async_sleep(f.ctx, 2ms);
        co_await a.send("hello room");
        for (auto* conn : {&a, &b, &c}) EXPECT_EQ((co_await conn->recv()).value_or(""), "hello room");
        co_await c.close();
        for (int i = 0; i < 100 && topics.local_subscribers("room") > 2; ++i) co_await async_sleep(f.ctx, 2ms);
        EXPECT_EQ(topics.local_subscribers("room"), 2u) << "a closed socket leaves its topics";
        co_await a.close();
        co_await b.close();
    });
}

TEST(ws_socket, open_sockets_are_freed_when_the_context_goes) {
    tracked::alive = tracked::made = 0;
    {
        callback_fixture f;
        f.serve<tracked>("/ws", {});
        f.listen();
        std::vector<ws::connection> clients;
        f.run([&]() -> task<void> {
            for (int i = 0; i < 20; ++i) clients.push_back(co_await ws::connect(f.ctx, f.url()));
            for (int i = 0; i < 100 && tracked::alive < 20; ++i) co_await async_sleep(f.ctx, 2ms);
        });
        EXPECT_EQ(tracked::alive, 20);
    }
    EXPECT_EQ(tracked::alive, 0) << "the context's teardown freed the callback connections (and their user data)";
}

// A fragment handler: messages in several frames, or larger than one
// receive buffer, come piece by piece with nothing gathered; whole ones
// still go to `message`; the size bound covers the pieces together.
TEST(ws_socket, a_fragment_handler_gets_large_and_fragmented_messages_piece_by_piece) {
    struct upload {
        std::size_t pieces = 0, bytes = 0;
        std::uint64_t sum = 0;  // of the bytes, in order: the pieces must come in order
    };
    callback_fixture f;
    std::vector<std::uint16_t> codes;
    ws::options o;
    o.max_message_size = 4 * 1024 * 1024;
    f.serve<upload>(
        "/ws", {.options = o,
                .message = [](ws::socket<upload>& s, std::string_view m,
                              ws::opcode op) { s.send("whole " + std::string(m), op); },
                .fragment =
                    [](ws::socket<upload>& s, std::string_view piece, ws::opcode op, bool last) {
                        upload& u = *s.user_data();
                        ++u.pieces;
                        for (char c : piece) u.sum = u.sum * 31 + static_cast<unsigned char>(c);
                        u.bytes += piece.size();
                        if (!last) return;
                        s.send(std::string(op == ws::opcode::text ? "text" : "binary") +
                               " pieces>1:" + std::to_string(u.pieces > 1) + " bytes:" + std::to_string(u.bytes) +
                               " sum:" + std::to_string(u.sum));
                        u = {};
                    },
                .close = [&](ws::socket<upload>&, std::uint16_t code, std::string_view) { codes.push_back(code); }});
    f.listen();
    auto sum_of = [](std::string_view s) {
        std::uint64_t sum = 0;
        for (char c : s) sum = sum * 31 + static_cast<unsigned char>(c);
        return std::to_string(sum);
    };
    f.run([&]() -> task<void> {
        auto c = co_await ws::connect(f.ctx, f.url());
        co_await c.send("small");
        EXPECT_EQ((co_await c.recv()).value_or(""), "whole small");
        // Three frames of text, cut inside a character.
        const std::string text = "h\xC3\xA9llo w\xE2\x82\xACrld, in frames";
        co_await c.send_fragmented(text, 3);
        EXPECT_EQ((co_await c.recv()).value_or(""),
                  "text pieces>1:1 bytes:" + std::to_string(text.size()) + " sum:" + sum_of(text));
        // One frame of 3 MiB: far more than a receive buffer.
        std::string big(3 * 1024 * 1024, '\0');
        for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + (i >> 12));
        co_await c.send_binary(big);
        EXPECT_EQ((co_await c.recv()).value_or(""),
                  "binary pieces>1:1 bytes:" + std::to_string(big.size()) + " sum:" + sum_of(big));
        // Over max_message_size across frames: 1009, however it is cut.
        try {
            co_await c.send_fragmented(std::string(5 * 1024 * 1024, 'z'), 1024 * 1024);
        } catch (const ws::connection_closed&) {  // the server may close while this still sends
        }
        EXPECT_FALSE(co_await c.recv());
        EXPECT_EQ(c.close_code(), 1009);
        for (int i = 0; i < 100 && codes.empty(); ++i) co_await async_sleep(f.ctx, 2ms);
    });
    EXPECT_EQ(codes, (std::vector<std::uint16_t>{1009}));
}

// A route with only a fragment handler streams everything: a message that
// arrives whole is its own last piece. Its message_timeout counts from the
// last piece handed out: an upload that keeps moving outlives it, one that
// stalls is closed 1008.
TEST(ws_socket, a_fragment_only_route_gets_whole_messages_as_one_piece_and_times_out_only_a_stalled_upload) {
    callback_fixture f;
    ws::options o;
    o.message_timeout = 300ms;
    std::vector<std::string> pieces;  // "<piece>|<last>", in order
    std::vector<std::uint16_t> codes;
    f.serve<int>("/ws",
                 {.options = o,
                  .fragment =
                      [&](ws::socket<int>& s, std::string_view piece, ws::opcode, bool last) {
                          pieces.push_back(std::string(piece) + "|" + (last ? "last" : "more"));
                          if (last) s.send("got " + std::to_string(pieces.size()));
                      },
                  .close = [&](ws::socket<int>&, std::uint16_t code, std::string_view) { codes.push_back(code); }});
    f.listen();
    // The raw client's handshake, then its frames one by one with pauses.
    auto open_raw = [&]() -> task<tcp_stream> {
        auto s = co_await tcp_connect(f.ctx, ip_endpoint::loopback_v4(f.srv.port()));
        co_await s.send(
            std::string_view("GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
        std::string head;
        while (http::find_head_end(head) == std::string::npos) {
            auto v = co_await s.recv_view(timeout(5s));
            if (v.empty()) break;
            head.append(reinterpret_cast<const char*>(v.data()), v.size());
            s.consume(v.size());
        }
        EXPECT_TRUE(head.starts_with("HTTP/1.1 101")) << head;
        co_return s;
    };
    // Reads the server's next frame: its opcode and payload.
    auto next_frame = [&](tcp_stream& s) -> task<std::pair<int, std::string>> {
        std::string in;
        for (;;) {
            if (in.size() >= 2) {
                const auto r = ws::parse_frame_header(std::as_bytes(std::span(in.data(), in.size())));
                if (r.state == ws::header_parse_result::status::complete &&
                    in.size() >= r.size + r.header.payload_length)
                    co_return std::pair<int, std::string>{static_cast<int>(r.header.op),
                                                          in.substr(r.size, r.header.payload_length)};
            }
            auto v = co_await s.recv_view(timeout(5s));
            if (v.empty()) co_return std::pair<int, std::string>{-1, in};
            in.append(reinterpret_cast<const char*>(v.data()), v.size());
            s.consume(v.size());
        }
    };
    auto send_frame = [](tcp_stream& s, std::vector<std::byte> frame) -> task<void> {
        co_await s.send(std::span<const std::byte>(frame));
    };
    f.run([&]() -> task<void> {
        auto moving = co_await open_raw();
        co_await send_frame(moving, client_frame(0x80 | 0x1, "whole"));
        auto answer = co_await next_frame(moving);
        EXPECT_EQ(answer.second, "got 1");
        // Six pieces 120 ms apart: 600 ms in all, twice message_timeout.
        co_await send_frame(moving, client_frame(0x2, "p0"));
        for (int i = 1; i < 6; ++i) {
            co_await async_sleep(f.ctx, 120ms);
            co_await send_frame(moving, client_frame(i == 5 ? 0x80 : 0x0, "p" + std::to_string(i)));
        }
        answer = co_await next_frame(moving);
        EXPECT_EQ(answer.first, 0x1);
        EXPECT_EQ(answer.second, "got 7") << "the moving upload was cut off";
        // A piece, then nothing: closed 1008 after message_timeout.
        auto stalled = co_await open_raw();
        co_await send_frame(stalled, client_frame(0x2, "s0"));
        const auto start = std::chrono::steady_clock::now();
        const auto close = co_await next_frame(stalled);
        EXPECT_EQ(close.first, 0x8);
        EXPECT_GE(close.second.size(), 2u);
        if (close.second.size() >= 2) {
            EXPECT_EQ((static_cast<unsigned char>(close.second[0]) << 8) | static_cast<unsigned char>(close.second[1]),
                      1008);
        }
        EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
        co_await send_frame(stalled, client_frame(0x80 | 0x8, close_payload(1008)));  // the handshake's answer
        co_await send_frame(moving, client_frame(0x80 | 0x8, close_payload(1000)));
        for (int i = 0; i < 200 && codes.size() < 2; ++i) co_await async_sleep(f.ctx, 5ms);
    });
    const std::vector<std::string> expected{"whole|last", "p0|more", "p1|more", "p2|more",
                                            "p3|more",    "p4|more", "p5|last", "s0|more"};
    EXPECT_EQ(pieces, expected);
    std::sort(codes.begin(), codes.end());
    EXPECT_EQ(codes, (std::vector<std::uint16_t>{1000, 1008}));
}
