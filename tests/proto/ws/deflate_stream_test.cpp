// permessage-deflate through zlib (detail::deflate_context): context
// takeover and every window size, checked against zlib's own raw inflater
// at the agreed window (which fails on any distance past it), the idle
// release of a connection's streams, and the shared sync-flushed form of a
// prepared message interleaved with a connection's own messages.
#include <cnetmod/proto/ws/detail/deflate_stream.hpp>
#include <cnetmod/proto/ws/permessage_deflate.hpp>

#include <gtest/gtest.h>
#include <zlib.h>

#include <random>
#include <string>
#include <vector>

using namespace cnetmod::ws;
using cnetmod::ws::detail::deflate_context;

namespace {

std::span<const std::byte> as_bytes(std::string_view s) {
    return std::as_bytes(std::span(s.data(), s.size()));
}

// One ~100-byte JSON chat line, varied as a chat is.
std::string chat_line(unsigned i) {
    static constexpr const char* names[] = {"alice", "bob", "carol", "dave", "erin"};
    static constexpr const char* words[] = {"hello there",  "lunch at noon?",      "ship it", "see the logs", "ok",
                                            "brb, meeting", "who broke the build", "+1"};
    return R"({"type":"chat","room":"general","name":")" + std::string(names[i % 5]) + R"(","text":")" +
           words[(i * 7) % 8] + R"(","ts":)" + std::to_string(1700000000 + i * 13) + "}";
}

std::string json_document(std::size_t size, unsigned seed) {
    std::mt19937 rng(seed);
    std::string s = "{\"items\":[";
    while (s.size() < size)
        s += R"({"id":)" + std::to_string(rng() % 100000) + R"(,"name":"item-)" + std::to_string(rng() % 1000) +
             R"(","price":)" + std::to_string(rng() % 10000) + R"(,"tags":["a","b"]},)";
    s.resize(size);
    return s;
}

std::string random_bytes(std::size_t size, unsigned seed) {
    std::mt19937 rng(seed);
    std::string s(size, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
}

// zlib's raw inflater at exactly `bits` (8 included): the peer as RFC 7692
// describes it, one stream for all messages when the sender keeps its window.
// It gives out one byte per call, so that every back-reference is read from
// its window and one past the window fails ("invalid distance too far back"):
// with a larger output buffer zlib also lets references reach into the
// buffer itself.
class reference_inflater {
public:
    explicit reference_inflater(int bits) {
        z_.zalloc = Z_NULL;
        z_.zfree = Z_NULL;
        EXPECT_EQ(inflateInit2(&z_, -bits), Z_OK);
    }
    ~reference_inflater() { inflateEnd(&z_); }
    // §7.2.2: the payload and 00 00 ff ff; false on any error (a distance past the window among them).
    bool inflate(const std::string& payload, std::string& out) {
        std::string in = payload + std::string("\x00\x00\xff\xff", 4);
        z_.next_in = reinterpret_cast<Bytef*>(in.data());
        z_.avail_in = static_cast<uInt>(in.size());
        out.clear();
        char buf[1];
        for (;;) {
            z_.next_out = reinterpret_cast<Bytef*>(buf);
            z_.avail_out = sizeof buf;
            const int rc = ::inflate(&z_, Z_SYNC_FLUSH);
            out.append(buf, sizeof buf - z_.avail_out);
            if (rc != Z_OK && rc != Z_BUF_ERROR) {
                error_ = z_.msg ? z_.msg : "zlib error";
                return false;
            }
            if (z_.avail_in == 0 && z_.avail_out != 0) return true;
        }
    }
    const std::string& error() const { return error_; }

private:
    z_stream z_{};
    std::string error_;
};

deflate_agreement takeover(std::uint8_t bits) {
    return {false, false, bits, bits};
}

// Messages of a realistic mix: chat lines, documents, a large one, repeats.
std::vector<std::string> mixed_messages() {
    std::vector<std::string> m;
    for (unsigned i = 0; i < 60; ++i) m.push_back(chat_line(i));
    for (unsigned i = 0; i < 6; ++i) m.push_back(json_document(1024 + 600 * i, i));
    m.push_back(json_document(200 * 1024, 99));
    m.push_back(random_bytes(3000, 5));
    m.push_back(std::string(70000, 'x'));
    for (unsigned i = 60; i < 90; ++i) m.push_back(chat_line(i));
    return m;
}

}  // namespace

TEST(deflate_stream, takeover_at_every_window_decodes_with_zlibs_inflater_at_that_window) {
    for (std::uint8_t bits = 8; bits <= 15; ++bits) {
        deflate_context sender(takeover(bits), true);
        reference_inflater peer(bits);
        std::size_t i = 0;
        for (const auto& msg : mixed_messages()) {
            std::string wire;
            sender.compress(as_bytes(msg), 6, 8, wire);
            std::string got;
            ASSERT_TRUE(peer.inflate(wire, got)) << "window " << int(bits) << ", message " << i << ": " << peer.error();
            ASSERT_EQ(got, msg) << "window " << int(bits) << ", message " << i;
            if (i % 17 == 16) sender.idle_tick(), sender.idle_tick();  // released and taken again mid-stream
            ++i;
        }
    }
}

TEST(deflate_stream, a_chat_stream_shrinks_to_a_third_with_takeover) {
    deflate_context sender(takeover(15), true);
    reference_inflater peer(15);
    std::size_t plain = 0, wire_bytes = 0;
    for (unsigned i = 0; i < 1000; ++i) {
        const std::string line = chat_line(i);
        std::string wire, got;
        sender.compress(as_bytes(line), 6, 8, wire);
        ASSERT_TRUE(peer.inflate(wire, got));
        ASSERT_EQ(got, line);
        plain += line.size();
        wire_bytes += wire.size();
    }
    EXPECT_LE(static_cast<double>(wire_bytes) / plain, 0.35) << wire_bytes << " of " << plain;
    // Each alone, as libdeflate sends it without takeover, barely shrinks.
    std::size_t alone = 0;
    for (unsigned i = 0; i < 1000; ++i) {
        std::string out;
        const auto line = chat_line(i);
        const std::size_t n = compress_message(as_bytes(line), 6, out);
        alone += n ? n : line.size();
    }
    EXPECT_GT(static_cast<double>(alone) / plain, 0.7);
}

TEST(deflate_stream, both_directions_round_trip_0_bytes_to_1_mib_in_every_mode) {
    const std::vector<std::string> messages = {"",
                                               "x",
                                               chat_line(1),
                                               chat_line(2),
                                               json_document(4096, 1),
                                               random_bytes(65536, 2),
                                               json_document(1024 * 1024, 3),
                                               std::string(1024 * 1024, 'z'),
                                               chat_line(3)};
    for (bool server_nct : {false, true})
        for (bool client_nct : {false, true})
            for (std::uint8_t bits : {8, 9, 12, 15}) {
                const deflate_agreement a{server_nct, client_nct, bits, static_cast<std::uint8_t>(23 - bits)};
                deflate_context server(a, true), client(a, false);
                for (int round = 0; round < 2; ++round) {
                    for (const auto& msg : messages) {
                        for (auto [from, to] : {std::pair{&server, &client}, std::pair{&client, &server}}) {
                            std::string wire, got;
                            // 0: sent plain (an empty message, or libdeflate's that would not shrink).
                            const std::size_t n = from->sends_with_zlib() ? from->compress(as_bytes(msg), 6, 8, wire)
                                                                          : compress_message(as_bytes(msg), 6, wire);
                            if (n == 0) continue;
                            const auto st = to->receives_with_zlib() ? to->inflate(as_bytes(wire), 2 << 20, got)
                                                                     : decompress_message(as_bytes(wire), 2 << 20, got);
                            ASSERT_EQ(st, inflate_status::ok)
                                << int(bits) << server_nct << client_nct << " round " << round << " size " << msg.size()
                                << (from == &server ? " to client" : " to server");
                            ASSERT_EQ(got, msg) << int(bits) << server_nct << client_nct;
                        }
                    }
                    server.idle_tick(), server.idle_tick(), client.idle_tick(), client.idle_tick();
                }
            }
}

TEST(deflate_stream, the_shared_sync_form_interleaves_with_a_connections_own_messages) {
    // A prepared message's takeover form goes to the peer while our window
    // takes its bytes (note_sent_elsewhere), with the stream attached and
    // released: the peer's one inflater decodes everything in order.
    for (std::uint8_t bits : {9, 12, 15}) {
        deflate_context sender(takeover(bits), true);
        reference_inflater peer(bits);
        for (unsigned i = 0; i < 200; ++i) {
            const std::string msg = i % 3 == 0 ? chat_line(i) : json_document(200 + i * 7, i);
            std::string wire, got;
            if (i % 2 == 0 && sender.sync_form_fits(msg.size())) {
                ASSERT_GT(detail::compress_message_sync(as_bytes(msg), 6, wire), 0u);
                sender.note_sent_elsewhere(as_bytes(msg));
            } else {
                sender.compress(as_bytes(msg), 6, 8, wire);
            }
            ASSERT_TRUE(peer.inflate(wire, got)) << int(bits) << " #" << i << ": " << peer.error();
            ASSERT_EQ(got, msg) << int(bits) << " #" << i;
            if (i % 11 == 10) sender.idle_tick(), sender.idle_tick();
        }
    }
    // The sync form refers to nothing before it, and ends in no final block.
    std::string form;
    detail::compress_message_sync(as_bytes(chat_line(7)), 6, form);
    reference_inflater fresh(15);
    std::string got;
    ASSERT_TRUE(fresh.inflate(form, got));
    EXPECT_EQ(got, chat_line(7));
    ASSERT_TRUE(fresh.inflate(form, got)) << "a second one continues the same stream";
    EXPECT_EQ(got, chat_line(7));
}

TEST(deflate_stream, a_message_that_does_not_shrink_goes_plain_and_the_window_is_forgotten) {
    deflate_context sender(takeover(15), true);
    reference_inflater peer(15);
    std::string wire, got;
    sender.compress(as_bytes(chat_line(1)), 6, 8, wire);
    ASSERT_TRUE(peer.inflate(wire, got));
    // Noise: sent plain, so the peer's window lacks it; ours forgets all.
    wire.clear();
    const std::string noise = random_bytes(500, 9);
    EXPECT_GE(sender.compress(as_bytes(noise), 6, 8, wire), noise.size());
    sender.forget_history();
    for (unsigned i = 2; i < 20; ++i) {
        wire.clear();
        sender.compress(as_bytes(chat_line(i)), 6, 8, wire);
        ASSERT_TRUE(peer.inflate(wire, got)) << peer.error();
        ASSERT_EQ(got, chat_line(i));
    }
}

TEST(deflate_stream, idle_connections_keep_only_their_windows) {
    const std::size_t before = detail::compression_memory_in_use();
    std::vector<std::unique_ptr<deflate_context>> conns;
    for (std::uint8_t bits : {9, 12, 15}) {
        for (int i = 0; i < 20; ++i) {
            auto server = std::make_unique<deflate_context>(takeover(bits), true);
            deflate_context client(takeover(bits), false);
            for (unsigned m = 0; m < 50; ++m) {
                std::string wire, got;
                const auto doc = json_document(2000, m);
                client.compress(as_bytes(doc), 6, 8, wire);
                ASSERT_EQ(server->inflate(as_bytes(wire), 1 << 20, got), inflate_status::ok);
                wire.clear();
                server->compress(as_bytes(doc), 6, 8, wire);
            }
            EXPECT_GT(server->memory(), 100u * 1024) << "busy: zlib streams attached";
            server->idle_tick();  // used since the last tick: kept
            EXPECT_GT(server->memory(), 100u * 1024);
            server->idle_tick();  // idle for a tick: released
            const std::size_t window = std::size_t{1} << bits;
            EXPECT_LE(server->memory(), window + std::min<std::size_t>(window, 16 * 1024)) << int(bits);
            EXPECT_GT(server->memory(), 0u) << "the windows are kept";
            conns.push_back(std::move(server));
        }
    }
    // Taken again, they go on where they were.
    for (auto& c : conns) {
        std::string wire, got;
        c->compress(as_bytes(chat_line(5)), 6, 8, wire);
        EXPECT_FALSE(wire.empty());
    }
    conns.clear();
    // What is left in use is this thread's pool of spare streams (at most 16).
    EXPECT_LE(detail::compression_memory_in_use(), before + 16 * 300 * 1024);
}

TEST(deflate_stream, a_bomb_through_a_kept_window_ends_too_big) {
    // 16 MiB of zeros in a stream that keeps its window, then a limit of 1 MiB.
    z_stream z{};
    ASSERT_EQ(deflateInit2(&z, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    std::string zeros(16 << 20, '\0'), bomb(1 << 20, '\0');
    z.next_in = reinterpret_cast<Bytef*>(zeros.data());
    z.avail_in = static_cast<uInt>(zeros.size());
    z.next_out = reinterpret_cast<Bytef*>(bomb.data());
    z.avail_out = static_cast<uInt>(bomb.size());
    ASSERT_EQ(deflate(&z, Z_SYNC_FLUSH), Z_OK);
    bomb.resize(bomb.size() - z.avail_out - 4);
    deflateEnd(&z);
    deflate_context receiver(takeover(15), true);
    std::string out = "kept";
    EXPECT_EQ(receiver.inflate(as_bytes(bomb), 1 << 20, out), inflate_status::too_big);
    EXPECT_EQ(out, "kept");
    EXPECT_EQ(receiver.inflate(as_bytes(std::string("\xff\xff\xff\xff", 4)), 1 << 20, out), inflate_status::bad_data);
}
