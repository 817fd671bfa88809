// The bounds of ws::options against peers that misbehave on purpose: each
// test has a bystander that must keep working. The server runs on its own
// thread; the peers are plain blocking sockets, so that a peer can stop
// reading or stall mid-message exactly as an attacker would.
#include "ws_test_support.hpp"
#include <cnetmod/proto/ws/permessage_deflate.hpp>

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <optional>
#include <thread>

using namespace cnetmod;
using namespace cnetmod::ws_testing;
using namespace std::chrono_literals;

namespace {

net_init sigpipe_guard;

// An echo server (or another handler) on a thread of its own.
struct threaded_server {
    io_context ctx;
    http::server srv{ctx};
    std::thread loop;

    threaded_server(
        ws::options opts, std::function<task<void>(http::request_context&, const ws::options&)> handler =
                              [](http::request_context& c, const ws::options& o) { return echo(c, o); }) {
        srv.get("/ws", [opts, handler](http::request_context& c) -> task<void> { co_await handler(c, opts); });
        srv.listen(0, "127.0.0.1");
        loop = std::thread([this] { ctx.run(); });
    }
    ~threaded_server() {
        ctx.stop();
        loop.join();
    }
};

// A blocking WebSocket client on a plain socket.
struct peer {
    int fd = -1;
    std::string in;

    explicit peer(std::uint16_t port, std::string extra_headers = {}) {
        fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const ip_endpoint ep = ip_endpoint::loopback_v4(port);
        if (::connect(fd, ep.data(), ep.size()) != 0) throw std::runtime_error("connect");
        timeval tv{10, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        write(
            "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
            extra_headers + "\r\n");
        while (http::find_head_end(in) == std::string::npos)
            if (!fill()) throw std::runtime_error("closed during the handshake");
        if (!in.starts_with("HTTP/1.1 101")) throw std::runtime_error("refused: " + in);
        in.erase(0, http::find_head_end(in));
    }
    ~peer() {
        if (fd >= 0) ::close(fd);
    }
    void write(std::string_view bytes) const {
        while (!bytes.empty()) {
            const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) throw std::runtime_error("send");
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
    }
    void write(const std::vector<std::byte>& frame) const {
        write(std::string_view(reinterpret_cast<const char*>(frame.data()), frame.size()));
    }
    bool fill() {
        char buf[65536];
        ssize_t n;
        do {
            // EINTR: a ring this thread made in an earlier test is torn down by task work sent to it.
            n = ::recv(fd, buf, sizeof buf, 0);
        } while (n < 0 && errno == EINTR);
        if (n <= 0) return false;
        in.append(buf, static_cast<std::size_t>(n));
        return true;
    }
    // The next frame (opcode, payload); nullopt once the connection ends.
    std::optional<std::pair<std::uint8_t, std::string>> frame() {
        for (;;) {
            const auto r = ws::parse_frame_header(std::as_bytes(std::span(in.data(), in.size())));
            if (r.state == ws::header_parse_result::status::complete && in.size() >= r.size + r.header.payload_length) {
                const auto n = static_cast<std::size_t>(r.header.payload_length);
                std::pair<std::uint8_t, std::string> out{static_cast<std::uint8_t>(r.header.op), in.substr(r.size, n)};
                in.erase(0, r.size + n);
                return out;
            }
            if (!fill()) return std::nullopt;
        }
    }
    // Reads to the close frame: its code, or 0 when TCP ended without one.
    std::uint16_t close_code() {
        while (auto f = frame())
            if (f->first == 0x8)
                return f->second.size() >= 2
                           ? static_cast<std::uint16_t>((static_cast<std::uint8_t>(f->second[0]) << 8) |
                                                        static_cast<std::uint8_t>(f->second[1]))
                           : 1005;
        return 0;
    }
    // Echoes `text`, answering the server's pings on the way.
    bool echo(std::string_view text) {
        write(client_frame(0x81, text));
        while (auto f = frame()) {
            if (f->first == 0x9) {
                write(client_frame(0x8A, f->second));
                continue;
            }
            return f->first == 0x1 && f->second == text;
        }
        return false;
    }
};

constexpr std::uint8_t fin = 0x80, text = 0x1, binary = 0x2, ping = 0x9, pong = 0xA;

}  // namespace

// RFC 6455 §5.5.3: pings read together get one pong, for the latest, so a
// ping flood cannot make the server queue a pong per ping.
TEST(limits, pings_read_together_get_one_pong_for_the_latest) {
    threaded_server s({});
    peer bystander(s.srv.port());
    peer p(s.srv.port());
    std::string flood;
    for (int i = 0; i < 1000; ++i) {
        const auto f = client_frame(fin | ping, "p" + std::to_string(i));
        flood.append(reinterpret_cast<const char*>(f.data()), f.size());
    }
    const auto last = client_frame(fin | text, "after");
    flood.append(reinterpret_cast<const char*>(last.data()), last.size());
    p.write(flood);
    int pongs = 0;
    std::string latest;
    for (;;) {
        auto f = p.frame();
        ASSERT_TRUE(f);
        if (f->first == pong) {
            ++pongs;
            latest = f->second;
            continue;
        }
        EXPECT_EQ(*f, std::make_pair(text, std::string("after")));
        break;
    }
    EXPECT_GE(pongs, 1);
    EXPECT_LT(pongs, 1000) << "a pong per ping";
    EXPECT_EQ(latest, "p999") << "the last pong answers the latest ping";
    EXPECT_TRUE(bystander.echo("still here"));
}

// A peer that never reads while the server keeps queueing (queue_message
// ignores send_high_water) is cut off at max_queued_bytes with 1008.
TEST(limits, a_peer_that_never_reads_is_cut_off_at_max_queued_bytes) {
    ws::options opts;
    opts.max_queued_bytes = 1024 * 1024;
    opts.close_timeout = 3s;
    std::atomic<std::uint16_t> code{0};
    std::atomic<std::size_t> most_queued{0};
    const auto before = ws::cutoffs().send_queue;
    threaded_server s(opts, [&](http::request_context& c, const ws::options& o) -> task<void> {
        auto ws = co_await c.upgrade_to_websocket(o);
        const std::string chunk(64 * 1024, 'q');
        try {
            for (;;) {
                ws.queue_message(ws::opcode::binary, std::as_bytes(std::span(chunk.data(), chunk.size())));
                most_queued = std::max(most_queued.load(), ws.buffered_amount());
                co_await async_sleep(ws.context(), 1ms);
            }
        } catch (const ws::connection_closed& e) {
            code = e.close_code();
        }
    });
    peer silent(s.srv.port());  // never reads
    for (int i = 0; i < 400 && code == 0; ++i) std::this_thread::sleep_for(10ms);
    EXPECT_EQ(code.load(), 1008);
    EXPECT_LE(most_queued.load(), opts.max_queued_bytes + 64 * 1024 + 32)
        << "the bound was passed by more than a message";
    EXPECT_EQ(ws::cutoffs().send_queue, before + 1);
    // The close frame is the last thing the peer reads.
    EXPECT_EQ(silent.close_code(), 1008);
}

// Incomplete messages of one core share core_reassembly_budget: a peer
// whose message would pass it gets 1008, the others finish theirs.
TEST(limits, incomplete_messages_share_the_cores_reassembly_budget) {
    ws::options opts;
    opts.core_reassembly_budget = 6 * 1024 * 1024;
    opts.max_message_size = 8 * 1024 * 1024;
    threaded_server s(opts);
    peer bystander(s.srv.port());
    const std::string payload(3 * 1024 * 1024, 'r');
    const auto frame = client_frame(fin | binary, payload);
    const std::string_view wire(reinterpret_cast<const char*>(frame.data()), frame.size());
    const std::size_t part = wire.size() - 512 * 1024;  // all but the last 512 KiB
    peer first(s.srv.port());
    first.write(wire.substr(0, part));
    std::this_thread::sleep_for(200ms);
    const auto before = ws::cutoffs().reassembly;
    peer second(s.srv.port());
    second.write(wire.substr(0, part));
    EXPECT_EQ(second.close_code(), 1008) << "the second large message passed the budget";
    EXPECT_EQ(ws::cutoffs().reassembly, before + 1);
    first.write(wire.substr(part));
    auto back = first.frame();
    ASSERT_TRUE(back);
    EXPECT_EQ(back->second.size(), payload.size());
    EXPECT_TRUE(back->second == payload);
    EXPECT_TRUE(bystander.echo("still here"));
}

// A message must be complete message_timeout after it began.
TEST(limits, a_message_that_stalls_is_closed_after_message_timeout) {
    ws::options opts;
    opts.message_timeout = 300ms;
    threaded_server s(opts);
    peer bystander(s.srv.port());
    const auto before = ws::cutoffs().message_timeout;
    peer stalled(s.srv.port());
    const auto frame = client_frame(fin | binary, std::string(100000, 's'));
    stalled.write(std::string_view(reinterpret_cast<const char*>(frame.data()), 50000));
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(stalled.close_code(), 1008);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
    EXPECT_EQ(ws::cutoffs().message_timeout, before + 1);
    // Fragments count as one message: a slow sender of fragments is bounded too.
    peer fragments(s.srv.port());
    fragments.write(client_frame(binary, "a"));
    std::this_thread::sleep_for(150ms);
    fragments.write(client_frame(0x0, "b"));
    EXPECT_EQ(fragments.close_code(), 1008);
    EXPECT_TRUE(bystander.echo("still here"));
}

// Liveness: a silent peer is pinged after ping_interval and reset when
// nothing comes within pong_timeout; a peer that answers stays.
TEST(limits, a_silent_peer_is_pinged_then_reset_and_an_answering_one_stays) {
    ws::options opts;
    opts.ping_interval = 200ms;
    opts.pong_timeout = 200ms;
    std::atomic<std::uint16_t> server_side_code{0};
    threaded_server s(opts, [&](http::request_context& c, const ws::options& o) -> task<void> {
        const bool silent = c.query() == "silent";  // request fields read empty after the upgrade
        auto ws = co_await c.upgrade_to_websocket(o);
        while (auto m = co_await ws.recv()) co_await ws.send(*m);
        if (silent) server_side_code = ws.close_code();
    });
    const auto before = ws::cutoffs().dead_peer;
    peer answering(s.srv.port());
    // The silent peer: a handshake on /ws?silent, then nothing, not even a pong.
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const ip_endpoint ep = ip_endpoint::loopback_v4(s.srv.port());
    ASSERT_EQ(::connect(fd, ep.data(), ep.size()), 0);
    const std::string hello =
        "GET /ws?silent HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    ASSERT_EQ(::send(fd, hello.data(), hello.size(), 0), static_cast<ssize_t>(hello.size()));
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 300 && server_side_code == 0; ++i) {
        std::this_thread::sleep_for(10ms);
        if (i % 10 == 0) {
            EXPECT_TRUE(answering.echo("tick")) << "the answering peer was dropped";
        }
    }
    EXPECT_EQ(server_side_code.load(), 1006) << "the silent peer was not taken for dead";
    EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
    EXPECT_EQ(ws::cutoffs().dead_peer, before + 1);
    // What the silent peer received: the handshake, then a ping.
    std::string got(4096, '\0');
    timeval tv{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t n;
    do n = ::recv(fd, got.data(), got.size(), 0);
    while (n < 0 && errno == EINTR);
    ASSERT_GT(n, 0);
    got.resize(static_cast<std::size_t>(n));
    const auto head_end = http::find_head_end(got);
    ASSERT_NE(head_end, std::string::npos);
    ASSERT_GT(got.size(), head_end);
    EXPECT_EQ(static_cast<std::uint8_t>(got[head_end]), 0x89) << "a ping came";
    ::close(fd);
    for (int i = 0; i < 5; ++i) {  // several intervals more, answering as a live client does
        std::this_thread::sleep_for(100ms);
        EXPECT_TRUE(answering.echo("still here"));
    }
}

// A compressed message may inflate to max_inflate_ratio times its size
// (always to 2 MiB): past that it is 1009, after bounded work.
TEST(limits, inflating_past_the_ratio_is_1009_and_within_it_is_fine) {
    const std::string zeros(3 * 1024 * 1024, '\0');
    std::string compressed;
    ASSERT_GT(ws::compress_message(std::as_bytes(std::span(zeros.data(), zeros.size())), 6, compressed), 0u);
    ASSERT_LT(compressed.size() * 128, zeros.size()) << "the test needs a message past the ratio";
    const std::string offer = "Sec-WebSocket-Extensions: permessage-deflate\r\n";
    for (std::size_t ratio : {std::size_t{128}, std::size_t{0}}) {
        ws::options opts;
        opts.enable_compression = true;
        opts.max_inflate_ratio = ratio;
        threaded_server s(opts);
        const auto before = ws::cutoffs().inflate;
        peer p(s.srv.port(), offer);
        p.write(client_frame(fin | 0x40 | binary, compressed));
        if (ratio == 0) {
            auto back = p.frame();
            ASSERT_TRUE(back) << "with no ratio, max_message_size alone bounds it";
            EXPECT_EQ(back->first, binary);
        } else {
            EXPECT_EQ(p.close_code(), 1009);
            EXPECT_EQ(ws::cutoffs().inflate, before + 1);
        }
    }
}

// The bound is for peers that do not read: a large message of our own, in
// fragments or queued whole, never cuts off a peer that reads, and a ping
// read while it drains is answered once there is room.
TEST(limits, a_reading_peer_is_not_cut_off_by_our_own_large_messages) {
    const std::string big(8 * 1024 * 1024, 'f');
    threaded_server s({}, [&](http::request_context& c, const ws::options& o) -> task<void> {
        auto ws = co_await c.upgrade_to_websocket(o);
        co_await ws.recv();
        co_await ws.send_fragmented(big, 64 * 1024, ws::opcode::binary);  // 128 frames in one turn
        co_await ws.recv();
        ws.queue_message(ws::opcode::binary, std::as_bytes(std::span(big.data(), big.size())));
        while (auto m = co_await ws.recv()) co_await ws.send(*m);  // reads the ping while 8 MiB wait
    });
    const auto before = ws::cutoffs().send_queue;
    peer p(s.srv.port());
    auto read_data = [&](std::size_t want, bool& ponged) {
        std::size_t got = 0;
        while (got < want) {
            auto f = p.frame();
            if (!f || f->first == 0x8) return got;
            if (f->first == pong)
                ponged = true;
            else
                got += f->second.size();
        }
        return got;
    };
    bool ponged = false;
    p.write(client_frame(fin | text, "fragments"));
    EXPECT_EQ(read_data(big.size(), ponged), big.size()) << "cut off during the fragments";
    p.write(client_frame(fin | text, "whole"));
    p.write(client_frame(fin | ping, "while you send"));
    EXPECT_EQ(read_data(big.size(), ponged), big.size()) << "cut off during the message";
    p.write(client_frame(fin | text, "again"));
    for (;;) {
        auto f = p.frame();
        ASSERT_TRUE(f);
        if (f->first == pong) {
            EXPECT_EQ(f->second, "while you send");
            ponged = true;
            continue;
        }
        EXPECT_EQ(*f, std::make_pair(text, std::string("again")));
        break;
    }
    EXPECT_TRUE(ponged) << "the ping read while the queue was over the bound was never answered";
    EXPECT_EQ(ws::cutoffs().send_queue, before);
}

// A pong owed for a ping read just before a failure goes out before the close.
TEST(limits, the_pong_for_a_ping_read_before_a_failure_precedes_the_close) {
    threaded_server s({});
    peer p(s.srv.port());
    auto wire = concat({client_frame(fin | ping, "last words"), client_frame(fin | 0x20 | text, "rsv2")});
    p.write(wire);
    auto first = p.frame();
    ASSERT_TRUE(first);
    EXPECT_EQ(*first, std::make_pair(pong, std::string("last words")));
    EXPECT_EQ(p.close_code(), 1002);
}
