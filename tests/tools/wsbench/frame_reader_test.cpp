// wsbench's frame_reader against the protocol machine it stands in front
// of: for every stream of server frames, fed whole, byte by byte and cut at
// every point, it must give the events a client-role ws::machine gives
// (the fast path only skips UTF-8 validation, so the streams are valid text).
#include "wsbench/frame_reader.hpp"

#include <cnetmod/proto/ws/machine.hpp>
#include <cnetmod/proto/ws/permessage_deflate.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace cnetmod;

namespace {

using bytes = std::vector<std::byte>;

// A server's frame: `b0` is FIN|RSV|opcode; unmasked unless told otherwise;
// `length_bytes` forces a longer length encoding than the payload needs.
bytes frame(std::uint8_t b0, const std::string& payload, bool masked = false, int length_bytes = -1) {
    bytes out{static_cast<std::byte>(b0)};
    const std::uint8_t m = masked ? 0x80 : 0;
    const std::size_t n = payload.size();
    const int lb = length_bytes >= 0 ? length_bytes : n < 126 ? 0 : n <= 0xFFFF ? 2 : 8;
    if (lb == 0) {
        out.push_back(static_cast<std::byte>(m | n));
    } else {
        out.push_back(static_cast<std::byte>(m | (lb == 2 ? 126 : 127)));
        for (int i = lb - 1; i >= 0; --i) out.push_back(static_cast<std::byte>((n >> (8 * i)) & 0xFF));
    }
    if (masked)
        for (int i = 0; i < 4; ++i) out.push_back(std::byte{0});  // a zero key: the payload reads the same
    for (char c : payload) out.push_back(static_cast<std::byte>(c));
    return out;
}

bytes concat(std::initializer_list<bytes> parts) {
    bytes out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

std::string describe(const ws::event& e) {
    const std::string data(e.text());
    switch (e.kind) {
        case ws::event_kind::message:
            return (e.op == ws::opcode::text ? "text:" : "binary:") + data;
        case ws::event_kind::ping:
            return "ping:" + data;
        case ws::event_kind::pong:
            return "pong:" + data;
        case ws::event_kind::close:
            return "close " + std::to_string(e.code) + ":" + data;
        case ws::event_kind::failure:
            return "failure " + std::to_string(e.code);
        case ws::event_kind::fragment:
            return std::string(e.last ? "last piece:" : "piece:") + data;
        case ws::event_kind::none:
            break;
    }
    return "none";
}

// Feeds `stream` in pieces of `piece` bytes (0: whole), as wsbench's loop
// does: each piece until the reader takes no more.
template <class Reader>
std::vector<std::string> read_all(Reader& reader, bytes stream, std::size_t piece) {
    const ws::machine_limits limits;
    std::vector<std::string> events;
    const std::size_t step = piece ? piece : stream.size();
    for (std::size_t at = 0; at < stream.size(); at += step) {
        const std::span<std::byte> input(stream.data() + at, std::min(step, stream.size() - at));
        std::size_t used = 0;
        while (used < input.size()) {
            const ws::feed_result r = reader.feed(input.subspan(used), limits);
            used += r.consumed;
            if (r.event.kind == ws::event_kind::none) break;
            events.push_back(describe(r.event));
        }
        if (used < input.size()) break;  // reads no more
    }
    return events;
}

// The machine as a reader, for comparison.
struct machine_reader {
    ws::machine m{ws::role::client};
    ws::feed_result feed(std::span<std::byte> in, const ws::machine_limits& limits) { return m.feed(in, limits); }
};

void same_as_machine(const bytes& stream, const std::vector<std::string>& expected) {
    const std::size_t pieces[] = {0, 1, 2, 3, 5, 7, 64, 4096};
    for (std::size_t piece : pieces) {
        wsbench::frame_reader reader;
        machine_reader machine;
        const auto got = read_all(reader, stream, piece);
        EXPECT_EQ(got, read_all(machine, stream, piece)) << "pieces of " << piece;
        EXPECT_EQ(got, expected) << "pieces of " << piece;
    }
    // Cut once at every point.
    for (std::size_t cut = 1; cut < stream.size() && stream.size() < 5000; ++cut) {
        const ws::machine_limits limits;
        wsbench::frame_reader reader;
        std::vector<std::string> got;
        bytes copy = stream;
        for (auto input :
             {std::span<std::byte>(copy.data(), cut), std::span<std::byte>(copy.data() + cut, copy.size() - cut)}) {
            std::size_t used = 0;
            while (used < input.size()) {
                const auto r = reader.feed(input.subspan(used), limits);
                used += r.consumed;
                if (r.event.kind == ws::event_kind::none) break;
                got.push_back(describe(r.event));
            }
        }
        EXPECT_EQ(got, expected) << "cut at " << cut;
    }
}

TEST(FrameReader, WholeMessagesOfEveryLengthEncoding) {
    const std::string medium(126, 'm'), large(65535, 'l'), huge(65536, 'h');
    same_as_machine(concat({frame(0x81, "hello"), frame(0x82, ""), frame(0x81, medium), frame(0x82, large),
                            frame(0x81, huge), frame(0x82, "end")}),
                    {"text:hello", "binary:", "text:" + medium, "binary:" + large, "text:" + huge, "binary:end"});
}

TEST(FrameReader, FragmentsAndControlFramesGoThroughTheMachine) {
    same_as_machine(concat({frame(0x01, "frag"), frame(0x89, "p"), frame(0x00, "men"), frame(0x80, "ted"),
                            frame(0x8A, "q"), frame(0x82, "after")}),
                    {"ping:p", "text:fragmented", "pong:q", "binary:after"});
}

TEST(FrameReader, TheServersCloseEndsReading) {
    const std::string body{'\x03', '\xE8', 'b', 'y', 'e'};
    same_as_machine(concat({frame(0x81, "last"), frame(0x88, body), frame(0x81, "never read")}),
                    {"text:last", "close 1000:bye"});
}

TEST(FrameReader, ProtocolErrorsAreTheMachines) {
    // RFC 6455 §5.2: a 16-bit length under 126 is mis-encoded; §5.1: a server never masks.
    same_as_machine(concat({frame(0x81, "ok"), frame(0x81, "short", false, 2), frame(0x81, "x")}),
                    {"text:ok", "failure 1002"});
    same_as_machine(concat({frame(0x82, "ok"), frame(0x82, "masked", true)}), {"binary:ok", "failure 1002"});
    // §5.2: RSV1 without permessage-deflate.
    same_as_machine(frame(0xC1, "compressed?"), {"failure 1002"});
    // §5.4: a continuation outside a message; a new message inside one (after a ping between its fragments).
    same_as_machine(frame(0x80, "stray"), {"failure 1002"});
    same_as_machine(concat({frame(0x01, "begun"), frame(0x89, "p"), frame(0x81, "new")}), {"ping:p", "failure 1002"});
}

TEST(FrameReader, CompressedMessagesAreInflatedByTheMachine) {
    const std::string text(3000, 'z');
    std::string compressed;
    ASSERT_GT(ws::compress_message(std::as_bytes(std::span(text.data(), text.size())), 6, compressed), 0u);
    for (std::size_t piece : {std::size_t{0}, std::size_t{1}, std::size_t{100}}) {
        wsbench::frame_reader reader(/*deflate=*/true);
        const auto events = read_all(reader, concat({frame(0xC1, compressed), frame(0x81, "plain")}), piece);
        EXPECT_EQ(events, (std::vector<std::string>{"text:" + text, "text:plain"})) << "pieces of " << piece;
    }
}

TEST(FrameReader, OwesThePongForAPing) {
    wsbench::frame_reader reader;
    bytes stream = frame(0x89, "are you there");
    const auto events = read_all(reader, stream, 0);
    ASSERT_EQ(events, std::vector<std::string>{"ping:are you there"});
    EXPECT_TRUE(reader.machine().pong_owed());
}

}  // namespace
