// permessage-deflate (RFC 7692) end to end on loopback: negotiation as the
// server answers it, compressed frames both ways, fragmented compressed
// messages, the RSV1 rules, the decompression bomb, and a message prepared
// once for many connections.
#include "ws_test_support.hpp"
#include <cnetmod/proto/ws/detail/deflate_stream.hpp>
#include <cnetmod/proto/ws/permessage_deflate.hpp>

#include <gtest/gtest.h>
#include <zlib.h>

#include <random>
#include <thread>

using namespace cnetmod;
using namespace cnetmod::ws_testing;

namespace {

net_init sigpipe_guard;

constexpr std::uint8_t fin = 0x80, rsv1 = 0x40;
constexpr std::uint8_t text = 0x1, binary = 0x2, cont = 0x0, close_op = 0x8, ping = 0x9;
const std::string deflate_offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";

ws::options compressed_options(std::size_t max_message = 16 * 1024 * 1024) {
    ws::options o;
    o.enable_compression = true;
    o.max_message_size = max_message;
    return o;
}

std::string compress(std::string_view payload) {
    std::string out;
    EXPECT_GT(ws::compress_message(std::as_bytes(std::span(payload.data(), payload.size())), 6, out), 0u);
    return out;
}

std::string inflate(std::string_view compressed) {
    std::string out;
    EXPECT_EQ(ws::decompress_message(std::as_bytes(std::span(compressed.data(), compressed.size())), 64 << 20, out),
              ws::inflate_status::ok);
    return out;
}

std::string chat_json(std::size_t size) {
    std::string s;
    for (int i = 0; s.size() < size; ++i)
        s += R"({"type":"chat","name":"user)" + std::to_string(i % 17) + R"(","text":"message number )" +
             std::to_string(i) + R"("},)";
    s.resize(size);
    return s;
}

std::string random_bytes(std::size_t size, unsigned seed) {
    std::mt19937 gen(seed);
    std::string s(size, '\0');
    for (auto& c : s) c = static_cast<char>(gen());
    return s;
}

struct compression : ::testing::Test {
    echo_fixture f{compressed_options(1024 * 1024)};

    raw_outcome run(std::vector<std::byte> wire, std::string headers = deflate_offer) {
        auto t = [&]() -> task<raw_outcome> {
            co_return co_await raw_exchange(f.ctx, f.srv.port(), std::move(wire), std::chrono::seconds(5), headers);
        };
        return sync_wait(f.ctx, t());
    }
};

// A client that connects with `client_opts`, sends each payload, and returns what came back.
std::vector<std::string> echo_through(io_context& ctx, const std::string& url, const ws::options& client_opts,
                                      const std::vector<std::pair<ws::opcode, std::string>>& messages,
                                      bool* negotiated) {
    auto t = [&]() -> task<std::vector<std::string>> {
        auto c = co_await ws::connect(ctx, url, client_opts);
        *negotiated = c.compression();
        std::vector<std::string> got;
        for (const auto& [op, payload] : messages) {
            if (op == ws::opcode::binary)
                co_await c.send_binary(payload);
            else
                co_await c.send(payload);
            auto m = co_await c.recv();
            if (!m) break;
            EXPECT_EQ(c.last_opcode(), op);
            got.push_back(std::move(*m));
        }
        co_await c.close();
        co_return got;
    };
    return sync_wait(ctx, t());
}

}  // namespace

// ---- negotiation ----

TEST_F(compression, server_keeps_context_where_the_offer_allows_it) {
    const auto r = run(client_frame(fin | close_op, close_payload(1000)));
    EXPECT_NE(r.head.find("Sec-WebSocket-Extensions: permessage-deflate\r\n"), std::string::npos) << r.head;
}

TEST(compression_negotiation, a_server_without_takeover_answers_no_context_takeover_both_ways) {
    ws::options o = compressed_options();
    o.compression_context_takeover = false;
    echo_fixture f{o};
    auto t = [&]() -> task<raw_outcome> {
        co_return co_await raw_exchange(f.ctx, f.srv.port(), client_frame(fin | close_op, close_payload(1000)),
                                        std::chrono::seconds(5), deflate_offer);
    };
    const auto r = sync_wait(f.ctx, t());
    EXPECT_NE(r.head.find("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
                          "client_no_context_takeover\r\n"),
              std::string::npos)
        << r.head;
}

TEST_F(compression, every_window_offered_is_accepted_on_either_header_line) {
    auto r = run(client_frame(fin | close_op, close_payload(1000)),
                 "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n");
    EXPECT_NE(r.head.find("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n"),
              std::string::npos)
        << r.head;
    EXPECT_EQ(r.close_code(), 1000);
    r = run(client_frame(fin | close_op, close_payload(1000)),
            "Sec-WebSocket-Extensions: permessage-deflate; bogus_param\r\nSec-WebSocket-Extensions: "
            "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8\r\n");
    EXPECT_NE(r.head.find("permessage-deflate; server_max_window_bits=8; client_max_window_bits=8\r\n"),
              std::string::npos)
        << "offers on a second header line count too: " << r.head;
}

TEST(compression_negotiation, both_sides_must_enable_it) {
    for (bool server_on : {false, true}) {
        for (bool client_on : {false, true}) {
            ws::options so;
            so.enable_compression = server_on;
            echo_fixture f{so};
            ws::options co;
            co.enable_compression = client_on;
            bool negotiated = true;
            const auto got = echo_through(f.ctx, f.url(), co, {{ws::opcode::text, chat_json(1000)}}, &negotiated);
            EXPECT_EQ(negotiated, server_on && client_on) << server_on << client_on;
            ASSERT_EQ(got.size(), 1u);
            EXPECT_EQ(got[0], chat_json(1000));
        }
    }
}

// ---- messages ----

TEST(compression_messages, client_and_server_exchange_every_size_and_kind) {
    echo_fixture f{compressed_options()};
    std::vector<std::pair<ws::opcode, std::string>> messages = {
        {ws::opcode::text, ""},
        {ws::opcode::binary, "x"},
        {ws::opcode::text, chat_json(16 * 1024)},
        {ws::opcode::binary, random_bytes(16 * 1024, 1)},
        {ws::opcode::text, std::string(1024 * 1024, 'z')},
        {ws::opcode::binary, random_bytes(1024 * 1024, 2)},
        {ws::opcode::text, "héllo wörld ✓ " + chat_json(300)},
    };
    bool negotiated = false;
    const auto got = echo_through(f.ctx, f.url(), compressed_options(), messages, &negotiated);
    EXPECT_TRUE(negotiated);
    ASSERT_EQ(got.size(), messages.size());
    for (std::size_t i = 0; i < messages.size(); ++i) EXPECT_EQ(got[i], messages[i].second) << i;
}

TEST_F(compression, compressed_frames_go_both_ways_and_small_ones_stay_plain) {
    const std::string big = chat_json(4000);
    const auto r = run(concat({client_frame(fin | rsv1 | text, compress(big)), client_frame(fin | text, "tiny"),
                               client_frame(fin | close_op, close_payload(1000))}));
    ASSERT_GE(r.frames.size(), 3u);
    EXPECT_TRUE(r.rsv1[0]) << "a compressible message comes back compressed";
    EXPECT_LT(r.frames[0].second.size(), big.size() / 4);
    EXPECT_EQ(inflate(r.frames[0].second), big);
    EXPECT_FALSE(r.rsv1[1]) << "under compression_threshold a message goes plain";
    EXPECT_EQ(r.frames[1].second, "tiny");
    EXPECT_EQ(r.close_code(), 1000);
}

TEST_F(compression, incompressible_messages_go_plain) {
    const std::string noise = random_bytes(2000, 3);
    const auto r = run(concat({client_frame(fin | binary, noise), client_frame(fin | close_op, close_payload(1000))}));
    ASSERT_GE(r.frames.size(), 2u);
    EXPECT_FALSE(r.rsv1[0]);
    EXPECT_EQ(r.frames[0].second, noise);
}

TEST_F(compression, a_fragmented_compressed_message_is_reassembled_then_inflated) {
    const std::string msg = chat_json(9000);
    const std::string z = compress(msg);
    const std::size_t third = z.size() / 3;
    const auto r =
        run(concat({client_frame(rsv1 | text, z.substr(0, third)), client_frame(fin | ping, "p"),
                    client_frame(cont, z.substr(third, third)), client_frame(fin | cont, z.substr(2 * third)),
                    client_frame(fin | close_op, close_payload(1000))}));
    ASSERT_GE(r.frames.size(), 3u);
    EXPECT_EQ(r.frames[0].first, 0xA) << "the ping between fragments is answered";
    EXPECT_EQ(inflate(r.frames[1].second), msg);
    EXPECT_EQ(r.close_code(), 1000);
}

TEST_F(compression, the_rfc_7692_examples_decode) {
    // §7.2.3.1 "Hello" in one frame, §7.2.3.2 split in two fragments, and
    // §7.2.3.4 with a BFINAL block; the §7.2.3.3 no-compression block.
    const std::string hello("\xf2\x48\xcd\xc9\xc9\x07\x00", 7);
    const std::string bfinal("\xf3\x48\xcd\xc9\xc9\x07\x00\x00", 8);
    const std::string stored("\x00\x05\x00\xfa\xff\x48\x65\x6c\x6c\x6f\x00", 11);
    const auto r =
        run(concat({client_frame(fin | rsv1 | text, hello), client_frame(rsv1 | text, hello.substr(0, 3)),
                    client_frame(fin | cont, hello.substr(3)), client_frame(fin | rsv1 | text, bfinal),
                    client_frame(fin | rsv1 | text, stored), client_frame(fin | close_op, close_payload(1000))}));
    ASSERT_GE(r.frames.size(), 5u);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(r.frames[i], std::make_pair(text, std::string("Hello"))) << i;
    EXPECT_EQ(r.close_code(), 1000);
}

// ---- RSV1 rules ----

TEST_F(compression, rsv1_on_a_control_frame_is_1002) {
    EXPECT_EQ(run(client_frame(fin | rsv1 | ping, "")).close_code(), 1002);
}

TEST_F(compression, rsv1_on_a_continuation_is_1002) {
    const std::string z = compress(chat_json(500));
    EXPECT_EQ(run(concat({client_frame(rsv1 | text, z.substr(0, 10)), client_frame(fin | rsv1 | cont, z.substr(10))}))
                  .close_code(),
              1002);
    EXPECT_EQ(run(concat({client_frame(text, "plain "), client_frame(fin | rsv1 | cont, "more")})).close_code(), 1002);
}

TEST_F(compression, rsv1_without_negotiation_is_1002) {
    EXPECT_EQ(run(client_frame(fin | rsv1 | text, compress(chat_json(500))), "").close_code(), 1002);
}

TEST_F(compression, undecodable_data_and_invalid_utf8_inside_are_1007) {
    EXPECT_EQ(run(client_frame(fin | rsv1 | text, std::string("\xff\xff\xff\xff garbage", 12))).close_code(), 1007);
    EXPECT_EQ(run(client_frame(fin | rsv1 | text, compress(std::string(300, 'a') + "\xc3\x28"))).close_code(), 1007);
}

// ---- limits ----

TEST_F(compression, a_decompression_bomb_is_1009_and_other_connections_carry_on) {
    // 16 MiB of zeros compress to about 16 KiB; the limit here is 1 MiB.
    const std::string bomb = compress(std::string(16 * 1024 * 1024, '\0'));
    ASSERT_LT(bomb.size(), 64u * 1024);
    auto t = [&]() -> task<std::pair<raw_outcome, std::string>> {
        ws::options co;
        co.enable_compression = true;
        auto bystander = co_await ws::connect(f.ctx, f.url(), co);
        auto r = co_await raw_exchange(f.ctx, f.srv.port(), client_frame(fin | rsv1 | binary, bomb),
                                       std::chrono::seconds(5), deflate_offer);
        co_await bystander.send(chat_json(2000));
        auto back = co_await bystander.recv();
        co_await bystander.close();
        co_return std::make_pair(std::move(r), back.value_or("<closed>"));
    };
    auto [r, back] = sync_wait(f.ctx, t());
    EXPECT_EQ(r.close_code(), 1009);
    EXPECT_TRUE(r.tcp_closed);
    EXPECT_EQ(back, chat_json(2000));
}

TEST_F(compression, a_message_inflating_to_exactly_the_limit_is_accepted) {
    const std::string exact(1024 * 1024, 'e');
    const auto r = run(concat(
        {client_frame(fin | rsv1 | text, compress(exact)), client_frame(fin | rsv1 | text, compress(exact + "!"))}));
    ASSERT_GE(r.frames.size(), 2u);
    EXPECT_EQ(inflate(r.frames[0].second), exact);
    EXPECT_EQ(r.close_code(), 1009) << "one byte more is too big";
}

// ---- compress once, send many ----

TEST(compression_prepared, one_message_reaches_compressed_and_plain_connections) {
    io_context ctx;
    http::server srv(ctx);
    ws::options so = compressed_options();
    std::vector<ws::connection*> conns;
    int ready = 0;
    srv.get("/ws", [&](http::request_context& c) -> task<void> {
        auto conn = co_await c.upgrade_to_websocket(so);
        conns.push_back(&conn);
        ++ready;
        while (co_await conn.recv()) {
        }  // until the client closes
        std::erase(conns, &conn);
    });
    srv.listen(0, "127.0.0.1");
    const std::string msg = chat_json(3000);
    auto t = [&]() -> task<void> {
        const std::string url = "ws://127.0.0.1:" + std::to_string(srv.port()) + "/ws";
        ws::options on;
        on.enable_compression = true;
        ws::options off;
        auto a = co_await ws::connect(ctx, url, on);
        auto b = co_await ws::connect(ctx, url, off);
        while (ready < 2) co_await async_sleep(ctx, std::chrono::milliseconds(1));
        const ws::prepared_message m(ws::opcode::text, msg, so);
        EXPECT_TRUE(m.has_compressed());
        EXPECT_LT(m.compressed_frame().size(), m.plain_frame().size() / 4);
        for (auto* c : conns) c->queue_prepared(m);
        EXPECT_GE(m.plain_frame().use_count(), 2) << "queued by reference, not copied";
        auto ra = co_await a.recv();
        auto rb = co_await b.recv();
        EXPECT_TRUE(a.compression());
        EXPECT_FALSE(b.compression());
        EXPECT_EQ(ra.value_or(""), msg);
        EXPECT_EQ(rb.value_or(""), msg);
        co_await a.close();
        co_await b.close();
    };
    sync_wait(ctx, t());
}

// ---- context takeover and small windows, on the wire ----

namespace {

// A raw DEFLATE stream kept across messages, as a takeover peer keeps it:
// zlib at exactly `bits` (raw inflate takes 8; raw deflate 9 and up).
struct peer_stream {
    z_stream d{}, i{};
    explicit peer_stream(int bits) {
        EXPECT_EQ(deflateInit2(&d, 6, Z_DEFLATED, -std::max(bits, 9), 8, Z_DEFAULT_STRATEGY), Z_OK);
        EXPECT_EQ(inflateInit2(&i, -bits), Z_OK);
    }
    ~peer_stream() {
        deflateEnd(&d);
        inflateEnd(&i);
    }
    // §7.2.1: sync flush, 00 00 ff ff removed.
    std::string compress(const std::string& in) {
        std::string out(in.size() + 64, '\0');
        d.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
        d.avail_in = static_cast<uInt>(in.size());
        d.next_out = reinterpret_cast<Bytef*>(out.data());
        d.avail_out = static_cast<uInt>(out.size());
        EXPECT_EQ(deflate(&d, Z_SYNC_FLUSH), Z_OK);
        out.resize(out.size() - d.avail_out - 4);
        return out;
    }
    // §7.2.2; an error (a distance past `bits` among them) is "<error: ...>".
    // One byte out per call: every back-reference is then read from the
    // window, and one past it fails (with more room zlib lets references
    // reach into the output buffer itself).
    std::string inflate(const std::string& payload) {
        std::string in = payload + std::string("\x00\x00\xff\xff", 4), out;
        i.next_in = reinterpret_cast<Bytef*>(in.data());
        i.avail_in = static_cast<uInt>(in.size());
        char buf[1];
        for (;;) {
            i.next_out = reinterpret_cast<Bytef*>(buf);
            i.avail_out = sizeof buf;
            const int rc = ::inflate(&i, Z_SYNC_FLUSH);
            out.append(buf, sizeof buf - i.avail_out);
            if (rc != Z_OK && rc != Z_BUF_ERROR) return std::string("<error: ") + (i.msg ? i.msg : "?") + ">";
            if (i.avail_in == 0 && i.avail_out != 0) return out;
        }
    }
};

std::string chat_line(unsigned i) {
    return R"({"type":"chat","room":"general","name":"user)" + std::to_string(i % 7) + R"(","text":"message number )" +
           std::to_string(i) + R"(","ts":)" + std::to_string(1700000000 + i) + "}";
}

}  // namespace

TEST_F(compression, a_takeover_stream_both_ways_shrinks_chat_lines_and_decodes_as_one_stream) {
    peer_stream peer(15);
    std::vector<std::byte> wire;
    std::size_t plain = 0, sent = 0;
    for (unsigned n = 0; n < 100; ++n) {
        const std::string line = chat_line(n);
        const std::string z = peer.compress(line);
        plain += line.size();
        sent += z.size();
        const auto f = client_frame(fin | rsv1 | text, z);
        wire.insert(wire.end(), f.begin(), f.end());
    }
    EXPECT_LT(static_cast<double>(sent) / plain, 0.4) << "our client-side stream keeps its window too";
    const auto cf = client_frame(fin | close_op, close_payload(1000));
    wire.insert(wire.end(), cf.begin(), cf.end());
    const auto r = run(std::move(wire));
    ASSERT_GE(r.frames.size(), 101u);
    std::size_t echoed = 0;
    for (unsigned n = 0; n < 100; ++n) {
        ASSERT_TRUE(r.rsv1[n]) << "a 100-byte line goes compressed with takeover: " << n;
        EXPECT_EQ(peer.inflate(r.frames[n].second), chat_line(n)) << n;
        echoed += r.frames[n].second.size();
    }
    EXPECT_LT(static_cast<double>(echoed) / plain, 0.35) << echoed << " bytes for " << plain;
    EXPECT_EQ(r.close_code(), 1000);
}

TEST(compression_windows, the_server_honours_every_window_it_agreed) {
    echo_fixture f{compressed_options()};
    for (int bits = 8; bits <= 15; ++bits) {
        const std::string offer =
            "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=" + std::to_string(bits) +
            "; client_max_window_bits=" + std::to_string(bits) + "\r\n";
        peer_stream peer(bits);
        std::vector<std::string> sent;
        std::vector<std::byte> wire;
        for (unsigned n = 0; n < 12; ++n) {
            // Documents longer than the window, with a random token repeated
            // far apart: a compressor that ignored the window would refer back
            // past it, which the inflater finds.
            std::string token = random_bytes(200, n);
            for (auto& c : token) c = static_cast<char>('a' + static_cast<unsigned char>(c) % 26);
            std::string doc = token + chat_json(300u << (n / 2)) + token;
            const auto fr = client_frame(fin | rsv1 | text, peer.compress(doc));
            wire.insert(wire.end(), fr.begin(), fr.end());
            sent.push_back(std::move(doc));
        }
        const auto cf = client_frame(fin | close_op, close_payload(1000));
        wire.insert(wire.end(), cf.begin(), cf.end());
        auto t = [&]() -> task<raw_outcome> {
            co_return co_await raw_exchange(f.ctx, f.srv.port(), std::move(wire), std::chrono::seconds(5), offer);
        };
        const auto r = sync_wait(f.ctx, t());
        ASSERT_NE(r.head.find("server_max_window_bits=" + std::to_string(bits)), std::string::npos) << r.head;
        ASSERT_GE(r.frames.size(), sent.size() + 1) << bits;
        for (std::size_t n = 0; n < sent.size(); ++n) {
            EXPECT_TRUE(r.rsv1[n]) << bits;
            EXPECT_EQ(peer.inflate(r.frames[n].second), sent[n]) << "window " << bits << ", message " << n;
        }
        EXPECT_EQ(r.close_code(), 1000) << bits;
    }
}

TEST(compression_windows, client_and_server_round_trip_in_every_mode) {
    // Our client against our server: takeover on or off on each side, and
    // windows from 8 to 15, messages from 0 B to 1 MiB, whole and fragmented.
    const std::vector<std::pair<ws::opcode, std::string>> messages = {
        {ws::opcode::text, ""},
        {ws::opcode::binary, "x"},
        {ws::opcode::text, chat_line(1)},
        {ws::opcode::text, chat_line(2)},
        {ws::opcode::text, chat_json(16 * 1024)},
        {ws::opcode::binary, random_bytes(16 * 1024, 1)},
        {ws::opcode::text, std::string(1024 * 1024, 'z')},
        {ws::opcode::binary, random_bytes(1024 * 1024, 2)},
        {ws::opcode::text, chat_line(3)},
    };
    for (bool server_takeover : {true, false})
        for (bool client_takeover : {true, false})
            for (int bits : {8, 9, 11, 15}) {
                ws::options so = compressed_options();
                so.compression_context_takeover = server_takeover;
                so.compression_window_bits = bits;
                echo_fixture f{so};
                ws::options co = compressed_options();
                co.compression_context_takeover = client_takeover;
                co.compression_window_bits = 23 - bits;
                auto t = [&]() -> task<void> {
                    auto c = co_await ws::connect(f.ctx, f.url(), co);
                    EXPECT_TRUE(c.compression());
                    for (int fragmented = 0; fragmented < 2; ++fragmented) {
                        for (const auto& [op, payload] : messages) {
                            if (fragmented)
                                co_await c.send_fragmented(payload, 4000, op);
                            else if (op == ws::opcode::binary)
                                co_await c.send_binary(payload);
                            else
                                co_await c.send(payload);
                            auto m = co_await c.recv();
                            EXPECT_TRUE(m) << server_takeover << client_takeover << bits;
                            if (!m) co_return;
                            EXPECT_EQ(*m, payload)
                                << server_takeover << client_takeover << bits << " size " << payload.size();
                        }
                    }
                    co_await c.close();
                };
                sync_wait(f.ctx, t());
            }
}

TEST(compression_budget, past_the_budget_no_new_compressor_is_made_and_new_connections_keep_no_context) {
    // A thread of its own: the budget counts this thread's compression state alone.
    std::thread([] {
        ws::options so = compressed_options();
        so.compression_memory_budget = 1;  // whatever a connection keeps is past it
        echo_fixture f{so};
        peer_stream peer(15);
        std::vector<std::byte> wire;
        for (unsigned n = 0; n < 20; ++n) {
            const auto fr = client_frame(fin | rsv1 | text, peer.compress(chat_line(n)));
            wire.insert(wire.end(), fr.begin(), fr.end());
        }
        const auto cf = client_frame(fin | close_op, close_payload(1000));
        wire.insert(wire.end(), cf.begin(), cf.end());
        auto t = [&](std::vector<std::byte> w) -> task<raw_outcome> {
            co_return co_await raw_exchange(f.ctx, f.srv.port(), std::move(w), std::chrono::seconds(5), deflate_offer);
        };
        // Nothing held yet: the first connection keeps context, but its
        // windows alone pass the budget, so no compressor is made for it:
        // its messages are read (the inflater given back after each) and
        // echoed plain, which leaves its window as it is.
        const auto first = sync_wait(f.ctx, t(wire));
        EXPECT_NE(first.head.find("Sec-WebSocket-Extensions: permessage-deflate\r\n"), std::string::npos) << first.head;
        ASSERT_GE(first.frames.size(), 21u);
        for (unsigned n = 0; n < 20; ++n) {
            EXPECT_FALSE(first.rsv1[n]) << n;
            EXPECT_EQ(first.frames[n].second, chat_line(n));
        }
        EXPECT_EQ(first.close_code(), 1000);
        // The pooled inflater is held now: the next connection is offered none.
        EXPECT_GT(ws::detail::compression_memory_in_use(), 0u);
        const auto second = sync_wait(f.ctx, t(client_frame(fin | close_op, close_payload(1000))));
        EXPECT_NE(second.head.find("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
                  std::string::npos)
            << second.head;
    }).join();
}

TEST_F(compression, a_fragmented_message_of_a_takeover_stream_is_reassembled_then_inflated) {
    peer_stream peer(15);
    std::vector<std::byte> wire;
    const auto add = [&](const std::vector<std::byte>& f) { wire.insert(wire.end(), f.begin(), f.end()); };
    add(client_frame(fin | rsv1 | text, peer.compress(chat_line(1))));
    // A message that refers back to the one before, in three frames with a ping between.
    const std::string msg = chat_line(1) + chat_json(9000) + chat_line(2);
    const std::string z = peer.compress(msg);
    const std::size_t third = z.size() / 3;
    add(client_frame(rsv1 | text, z.substr(0, third)));
    add(client_frame(fin | ping, "p"));
    add(client_frame(cont, z.substr(third, third)));
    add(client_frame(fin | cont, z.substr(2 * third)));
    add(client_frame(fin | rsv1 | binary, peer.compress(chat_line(3))));
    add(client_frame(fin | close_op, close_payload(1000)));
    const auto r = run(std::move(wire));
    ASSERT_GE(r.frames.size(), 5u);
    EXPECT_EQ(peer.inflate(r.frames[0].second), chat_line(1));
    EXPECT_EQ(r.frames[1].first, 0xA) << "the ping between fragments is answered";
    EXPECT_EQ(peer.inflate(r.frames[2].second), msg);
    EXPECT_EQ(r.frames[3].first, binary);
    EXPECT_EQ(peer.inflate(r.frames[3].second), chat_line(3));
    EXPECT_EQ(r.close_code(), 1000);
}
