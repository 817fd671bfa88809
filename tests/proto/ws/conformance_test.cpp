// RFC 6455 conformance, case by case: each case sends hand-made frames to
// the echo server and asserts the exact close code (or the exact answer).
#include "ws_test_support.hpp"

#include <gtest/gtest.h>

using namespace cnetmod;
using namespace cnetmod::ws_testing;

namespace {

net_init sigpipe_guard;

struct conformance : ::testing::Test {
    echo_fixture f{[] {
        ws::options o;
        o.max_message_size = 64 * 1024;
        return o;
    }()};

    raw_outcome run(std::vector<std::byte> wire) {
        auto t = [&]() -> task<raw_outcome> { co_return co_await raw_exchange(f.ctx, f.srv.port(), std::move(wire)); };
        return sync_wait(f.ctx, t());
    }
    void expect_close(std::vector<std::byte> wire, std::uint16_t code, const char* what) {
        const auto r = run(std::move(wire));
        EXPECT_EQ(r.close_code(), code) << what;
        EXPECT_TRUE(r.tcp_closed) << what << ": the server closes TCP after the close frame";
    }
};

constexpr std::uint8_t fin = 0x80;
constexpr std::uint8_t text = 0x1, binary = 0x2, cont = 0x0, close_op = 0x8, ping = 0x9, pong = 0xA;

}  // namespace

// ---- framing ----

TEST_F(conformance, echoes_text_and_binary_of_boundary_sizes) {
    for (std::size_t n : {0u, 1u, 125u, 126u, 127u, 65535u}) {
        const std::string payload(n, 'q');
        const auto r = run(concat({client_frame(fin | text, payload), client_frame(fin | binary, payload),
                                   client_frame(fin | close_op, close_payload(1000))}));
        ASSERT_GE(r.frames.size(), 3u) << n;
        EXPECT_EQ(r.frames[0], std::make_pair(text, payload));
        EXPECT_EQ(r.frames[1], std::make_pair(binary, payload));
        EXPECT_EQ(r.close_code(), 1000);
    }
}

TEST_F(conformance, unmasked_client_frame_is_1002) {
    expect_close(client_frame(fin | text, "hi", false), 1002, "unmasked");
}

TEST_F(conformance, reserved_bits_without_extension_are_1002) {
    for (std::uint8_t rsv : {0x40, 0x20, 0x10}) expect_close(client_frame(fin | rsv | text, "x"), 1002, "rsv");
}

TEST_F(conformance, reserved_opcodes_are_1002) {
    for (std::uint8_t op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF})
        expect_close(client_frame(static_cast<std::uint8_t>(fin | op), ""), 1002, "reserved opcode");
}

TEST_F(conformance, non_minimal_and_oversized_lengths_are_1002) {
    expect_close(client_frame(fin | text, "short", true, 126), 1002, "16-bit length for 5 bytes");
    expect_close(client_frame(fin | text, std::string(200, 'a'), true, 127), 1002, "64-bit length for 200 bytes");
}

// ---- fragmentation ----

TEST_F(conformance, fragments_reassemble_with_control_frames_between) {
    const auto r = run(concat({client_frame(text, "Hel"), client_frame(fin | ping, "p1"), client_frame(cont, "lo, "),
                               client_frame(fin | pong, "x"), client_frame(fin | cont, "world"),
                               client_frame(fin | close_op, close_payload(1000))}));
    ASSERT_GE(r.frames.size(), 3u);
    EXPECT_EQ(r.frames[0], std::make_pair(pong, std::string("p1"))) << "ping answered with its payload";
    EXPECT_EQ(r.frames[1], std::make_pair(text, std::string("Hello, world")));
    EXPECT_EQ(r.close_code(), 1000);
}

TEST_F(conformance, continuation_without_a_message_is_1002) {
    expect_close(client_frame(fin | cont, "orphan"), 1002, "orphan continuation");
}

TEST_F(conformance, new_message_inside_a_fragmented_one_is_1002) {
    expect_close(concat({client_frame(text, "a"), client_frame(fin | text, "b")}), 1002, "interleaved data frames");
}

TEST_F(conformance, fragmented_control_frame_is_1002) {
    expect_close(client_frame(ping, "x"), 1002, "ping without FIN");
}

TEST_F(conformance, control_frame_over_125_bytes_is_1002) {
    expect_close(client_frame(fin | ping, std::string(126, 'p')), 1002, "126-byte ping");
}

TEST_F(conformance, message_over_the_limit_is_1009_single_or_fragmented) {
    expect_close(client_frame(fin | binary, std::string(64 * 1024 + 1, 'b')), 1009, "one frame");
    expect_close(
        concat({client_frame(binary, std::string(40000, 'b')), client_frame(fin | cont, std::string(40000, 'b'))}),
        1009, "fragments");
}

// ---- UTF-8 ----

TEST_F(conformance, invalid_utf8_text_is_1007) {
    for (const char* bad : {"\xC0\x80", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xFF", "ok\x80"})
        expect_close(client_frame(fin | text, bad), 1007, "invalid UTF-8");
}

TEST_F(conformance, utf8_split_across_fragments_is_valid) {
    const auto r = run(concat({client_frame(text, "\xF0\x9F"), client_frame(cont, "\x98"),
                               client_frame(fin | cont, "\x80!"), client_frame(fin | close_op, close_payload(1000))}));
    ASSERT_GE(r.frames.size(), 1u);
    EXPECT_EQ(r.frames[0].second, "\xF0\x9F\x98\x80!");
}

TEST_F(conformance, invalid_utf8_fails_before_the_message_ends) {
    // The final fragment is never sent: the server must fail on the first.
    expect_close(client_frame(text, "good\xED\xA0\x80"), 1007, "fail fast");
}

TEST_F(conformance, truncated_utf8_at_message_end_is_1007) {
    expect_close(concat({client_frame(text, "abc"), client_frame(fin | cont, "\xE2\x82")}), 1007, "truncated");
}

// ---- close ----

TEST_F(conformance, valid_close_codes_are_echoed) {
    for (std::uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999}) {
        const auto r = run(client_frame(fin | close_op, close_payload(code, "bye")));
        EXPECT_EQ(r.close_code(), code);
        EXPECT_TRUE(r.tcp_closed);
    }
}

TEST_F(conformance, close_without_code_is_answered_without_code) {
    const auto r = run(client_frame(fin | close_op, ""));
    ASSERT_FALSE(r.frames.empty());
    EXPECT_EQ(r.frames.back(), std::make_pair(close_op, std::string()));
    EXPECT_TRUE(r.tcp_closed);
}

TEST_F(conformance, invalid_close_codes_are_1002) {
    for (std::uint16_t code : {0, 999, 1004, 1005, 1006, 1012, 1015, 1016, 2000, 2999, 5000, 65535})
        expect_close(client_frame(fin | close_op, close_payload(code)), 1002, "invalid close code");
}

TEST_F(conformance, one_byte_close_payload_is_1002) {
    expect_close(client_frame(fin | close_op, "\x03"), 1002, "1-byte close");
}

TEST_F(conformance, non_utf8_close_reason_is_1002) {
    expect_close(client_frame(fin | close_op, close_payload(1000, "\xFF\xFE")), 1002, "bad reason");
}

TEST_F(conformance, nothing_after_close_is_processed) {
    const auto r = run(concat({client_frame(fin | close_op, close_payload(1000)), client_frame(fin | text, "late")}));
    for (const auto& f : r.frames) EXPECT_NE(f.second, "late");
    EXPECT_EQ(r.close_code(), 1000);
}

// ---- isolation ----

TEST_F(conformance, a_bad_peer_disturbs_no_other_connection) {
    auto t = [&]() -> task<bool> {
        auto good = co_await ws::connect(f.ctx, f.url());
        co_await good.send("before");
        auto first = co_await good.recv();
        const auto bad = co_await raw_exchange(f.ctx, f.srv.port(), client_frame(fin | 0x3, "x"));
        co_await good.send("after");
        auto second = co_await good.recv();
        co_await good.close();
        co_return first == "before" && bad.close_code() == 1002 && second == "after";
    };
    EXPECT_TRUE(sync_wait(f.ctx, t()));
}

// ---- handshake ----

namespace {
task<std::string> raw_http(io_context& ctx, std::uint16_t port, std::string request) {
    auto s = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(port));
    s.queue(request);
    std::string in;
    for (;;) {
        auto v = co_await s.recv_view(timeout(std::chrono::seconds(5)));
        if (v.empty()) break;
        in.append(reinterpret_cast<const char*>(v.data()), v.size());
        s.consume(v.size());
        if (http::find_head_end(in) != std::string::npos && in.starts_with("HTTP/1.1 101")) break;
    }
    co_return in;
}
}  // namespace

TEST_F(conformance, handshake_answers_with_the_rfc_accept_key) {
    auto t = [&]() -> task<std::string> {
        co_return co_await raw_http(
            f.ctx, f.srv.port(),
            "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    };
    const auto r = sync_wait(f.ctx, t());
    EXPECT_TRUE(r.starts_with("HTTP/1.1 101 Switching Protocols\r\n")) << r;
    EXPECT_NE(r.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), std::string::npos)
        << r;  // RFC 6455 §1.3
    EXPECT_EQ(ws::accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST_F(conformance, other_versions_get_426_and_bad_handshakes_400) {
    auto t = [&](std::string req) -> task<std::string> {
        co_return co_await raw_http(f.ctx, f.srv.port(), std::move(req));
    };
    auto r = sync_wait(f.ctx, t("GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"));
    EXPECT_TRUE(r.starts_with("HTTP/1.1 426 Upgrade Required\r\n")) << r;
    EXPECT_NE(r.find("Sec-WebSocket-Version: 13\r\n"), std::string::npos) << r;
    for (std::string bad : {"Sec-WebSocket-Key: short\r\n", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\n", ""}) {
        r = sync_wait(f.ctx, t("GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + bad +
                               "Sec-WebSocket-Version: 13\r\n\r\n"));
        EXPECT_TRUE(r.starts_with("HTTP/1.1 400 Bad Request\r\n")) << bad << r;
    }
    r = sync_wait(f.ctx, t("GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
                           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
    EXPECT_TRUE(r.starts_with("HTTP/1.1 400 Bad Request\r\n")) << "no Connection: Upgrade: " << r;
    r = sync_wait(
        f.ctx,
        t("POST /ws HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
    EXPECT_TRUE(r.starts_with("HTTP/1.1 405 ")) << r;
}
