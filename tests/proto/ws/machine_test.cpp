// The protocol machine alone: RFC 6455 §5–7 (and RFC 7692's rules for
// RSV1) as a table of byte streams and the events and frames each must
// give. Every case is fed whole, byte by byte and cut at every point, and
// must give the same events each way.
#include <cnetmod/proto/ws/machine.hpp>
#include <cnetmod/proto/ws/permessage_deflate.hpp>

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

using namespace cnetmod;
using namespace cnetmod::ws;

namespace {

using bytes = std::vector<std::byte>;

constexpr std::uint8_t fin = 0x80, rsv1 = 0x40, rsv2 = 0x20, rsv3 = 0x10;
constexpr std::uint8_t cont = 0x0, text = 0x1, binary = 0x2, close_op = 0x8, ping = 0x9, pong = 0xA;

// A frame as a peer sends it: `b0` is FIN|RSV|opcode; masked (a client's)
// unless told otherwise; `length_bytes` forces a longer length encoding.
bytes frame(std::uint8_t b0, std::string_view payload, bool masked = true, int length_bytes = -1) {
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
    const std::uint8_t key[4] = {0x37, 0xFA, 0x21, 0x3D};
    if (masked)
        for (auto k : key) out.push_back(static_cast<std::byte>(k));
    for (std::size_t i = 0; i < n; ++i)
        out.push_back(static_cast<std::byte>(static_cast<std::uint8_t>(payload[i]) ^ (masked ? key[i % 4] : 0)));
    return out;
}

std::string close_body(std::uint16_t code, std::string_view reason = "") {
    std::string s{static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
    return s + std::string(reason);
}

bytes concat(std::initializer_list<bytes> parts) {
    bytes out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

// What a case expects, event by event: "message text:hello", "ping:x",
// "close 1000:bye", "failure 1002".
std::string describe(const event& e) {
    const std::string data(e.text());
    switch (e.kind) {
        case event_kind::message:
            return std::string("message ") + (e.op == opcode::text ? "text:" : "binary:") + data;
        case event_kind::fragment:
            return std::string(e.last ? "last piece " : "piece ") + (e.op == opcode::text ? "text:" : "binary:") + data;
        case event_kind::ping:
            return "ping:" + data;
        case event_kind::pong:
            return "pong:" + data;
        case event_kind::close:
            return "close " + std::to_string(e.code) + ":" + data;
        case event_kind::failure:
            return "failure " + std::to_string(e.code);
        case event_kind::none:
            break;
    }
    return "none";
}

// A send queue in memory.
struct vector_sink {
    bytes queued;
    std::span<std::byte> space(std::size_t n) {
        queued.resize(queued.size() + n);
        return {queued.data() + queued.size() - n, n};
    }
};

// The frames a machine wrote (unmasked here if a client's), described like events: "pong:x", "close 1000:".
std::vector<std::string> server_frames(const bytes& wire) {
    std::vector<std::string> out;
    std::span<const std::byte> rest(wire);
    while (!rest.empty()) {
        const auto h = parse_frame_header(rest);
        if (h.state != header_parse_result::status::complete) {
            out.push_back("garbage");
            break;
        }
        std::string payload(reinterpret_cast<const char*>(rest.data()) + h.size, h.header.payload_length);
        if (h.header.masked)
            for (std::size_t i = 0; i < payload.size(); ++i)
                payload[i] = static_cast<char>(payload[i] ^ h.header.mask[i % 4]);
        rest = rest.subspan(h.size + h.header.payload_length);
        switch (h.header.op) {
            case opcode::pong:
                out.push_back("pong:" + payload);
                break;
            case opcode::close:
                if (payload.size() >= 2)
                    out.push_back("close " +
                                  std::to_string((static_cast<std::uint8_t>(payload[0]) << 8) |
                                                 static_cast<std::uint8_t>(payload[1])) +
                                  ":" + payload.substr(2));
                else
                    out.push_back("close:");
                break;
            default:
                out.push_back("frame " + std::to_string(static_cast<int>(h.header.op)) + ":" + payload);
        }
    }
    return out;
}

struct outcome {
    std::vector<std::string> events;
    std::vector<std::string> written;  // what write_owed wrote at the end
    bool operator==(const outcome&) const = default;
};
[[maybe_unused]] void PrintTo(const outcome& o, std::ostream* os) {
    *os << "events:";
    for (const auto& e : o.events) *os << " [" << e.substr(0, 60) << "]";
    *os << " written:";
    for (const auto& w : o.written) *os << " [" << w.substr(0, 60) << "]";
}

// Feeds `wire` in pieces of the sizes `cuts` gives (each piece a buffer
// of its own, as receive buffers are), collecting events; owed frames are
// written after every piece.
template <class Cuts>
outcome run(machine& m, const bytes& wire, const machine_limits& limits, Cuts cuts) {
    outcome o;
    vector_sink out;
    std::size_t at = 0;
    while (at < wire.size()) {
        const std::size_t n = std::min(cuts(at), wire.size() - at);
        bytes piece(wire.begin() + static_cast<std::ptrdiff_t>(at), wire.begin() + static_cast<std::ptrdiff_t>(at + n));
        at += n;
        std::span<std::byte> in(piece);
        for (;;) {
            const auto r = m.feed(in, limits);
            in = in.subspan(r.consumed);
            if (r.event.kind == event_kind::none) break;
            o.events.push_back(describe(r.event));
        }
        if (!m.reading()) break;
        m.write_owed(out);
    }
    m.write_owed(out);
    o.written = server_frames(out.queued);
    return o;
}

struct rule {
    const char* name;  // the RFC's section and what it asks
    bytes wire;
    std::vector<std::string> events;
    std::vector<std::string> written;
    role side = role::server;
    bool deflate = false;
};

machine_limits small_limits() {
    machine_limits l;
    l.max_message_size = 1000;
    return l;
}

// Events with the pieces of each message joined into the message they make
// (pieces of a message the peer failed before its end are dropped, as that
// message is never delivered).
std::vector<std::string> joined(const std::vector<std::string>& events) {
    std::vector<std::string> out;
    std::string pending;
    for (const auto& e : events) {
        const bool last = e.rfind("last piece ", 0) == 0;
        if (!last && e.rfind("piece ", 0) != 0) {
            out.push_back(e);
            continue;
        }
        const std::string rest = e.substr(last ? 11 : 6);  // "text:..." or "binary:..."
        const std::size_t colon = rest.find(':');
        if (pending.empty()) pending = rest.substr(0, colon + 1);
        EXPECT_EQ(pending.substr(0, colon + 1), rest.substr(0, colon + 1)) << "a piece changed its opcode";
        pending += rest.substr(colon + 1);
        if (last) out.push_back("message " + std::exchange(pending, {}));
    }
    return out;
}

void check_rule(const rule& r) {
    const machine_limits limits = small_limits();
    auto fresh = [&] { return machine(r.side, r.deflate); };
    machine whole = fresh();
    const outcome expected{r.events, r.written};
    EXPECT_EQ(run(whole, r.wire, limits, [](std::size_t) -> std::size_t { return SIZE_MAX; }), expected)
        << r.name << " (whole)";
    machine bytewise = fresh();
    EXPECT_EQ(run(bytewise, r.wire, limits, [](std::size_t) -> std::size_t { return 1; }).events, r.events)
        << r.name << " (bytewise)";
    for (std::size_t cut = 1; cut < r.wire.size(); ++cut) {
        machine split = fresh();
        const auto got =
            run(split, r.wire, limits, [cut](std::size_t at) -> std::size_t { return at == 0 ? cut : SIZE_MAX; });
        EXPECT_EQ(got.events, r.events) << r.name << " (cut at " << cut << ")";
    }
    // Handed out in pieces, the same messages, failures and frames owed.
    machine_limits streaming = limits;
    streaming.fragments = true;
    for (const std::size_t step : {SIZE_MAX, std::size_t{1}, std::size_t{3}}) {
        machine m = fresh();
        auto got = run(m, r.wire, streaming, [step](std::size_t) { return step; });
        got.events = joined(got.events);
        // Cut, pings read apart get a pong each: the frames owed compare whole only.
        if (step == SIZE_MAX)
            EXPECT_EQ(got, expected) << r.name << " (in pieces, whole)";
        else
            EXPECT_EQ(got.events, r.events) << r.name << " (in pieces, step " << step << ")";
    }
}

const std::string bad_utf8 = "ok\xC3\x28";
const std::string euro = "\xE2\x82\xAC";

std::string deflated(std::string_view s) {
    std::string out;
    compress_message(std::as_bytes(std::span(s.data(), s.size())), 6, out);
    return out;
}

std::vector<rule> rules() {
    std::vector<rule> t;
    // §5.1: masking by direction.
    t.push_back({"5.1 a server fails an unmasked frame",
                 frame(fin | text, "hi", false),
                 {"failure 1002"},
                 {"close 1002:protocol error"}});
    t.push_back({"5.1 a client fails a masked frame",
                 frame(fin | text, "hi", true),
                 {"failure 1002"},
                 {"close 1002:protocol error"},
                 role::client});
    t.push_back(
        {"5.1 a client reads unmasked frames", frame(fin | text, "hi", false), {"message text:hi"}, {}, role::client});
    // §5.2: reserved bits, opcodes, length encodings.
    for (std::uint8_t bit : {rsv1, rsv2, rsv3})
        t.push_back({"5.2 a reserved bit without an extension",
                     frame(fin | bit | text, "x"),
                     {"failure 1002"},
                     {"close 1002:protocol error"}});
    for (std::uint8_t op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF})
        t.push_back(
            {"5.2 a reserved opcode", frame(fin | op, "x"), {"failure 1002"}, {"close 1002:invalid frame header"}});
    t.push_back({"5.2 a 16-bit length under 126",
                 frame(fin | binary, "abc", true, 2),
                 {"failure 1002"},
                 {"close 1002:invalid frame header"}});
    t.push_back({"5.2 a 64-bit length under 65536",
                 frame(fin | binary, "abc", true, 8),
                 {"failure 1002"},
                 {"close 1002:invalid frame header"}});
    {
        bytes top{static_cast<std::byte>(fin | binary), std::byte{0xFF}};
        for (int i = 0; i < 8; ++i) top.push_back(std::byte{0x80});
        for (int i = 0; i < 4; ++i) top.push_back(std::byte{0});
        t.push_back(
            {"5.2 a 64-bit length with the top bit set", top, {"failure 1002"}, {"close 1002:invalid frame header"}});
    }
    t.push_back(
        {"5.2 lengths at each encoding's edge",
         concat({frame(fin | binary, std::string(125, 'a')), frame(fin | binary, std::string(126, 'b')),
                 frame(fin | binary, std::string(0, 'c'))}),
         {"message binary:" + std::string(125, 'a'), "message binary:" + std::string(126, 'b'), "message binary:"},
         {}});
    // §5.4: fragmentation.
    t.push_back({"5.4 fragments make one message",
                 concat({frame(text, "he"), frame(cont, ""), frame(cont, "ll"), frame(fin | cont, "o")}),
                 {"message text:hello"},
                 {}});
    t.push_back({"5.4 a continuation outside a message",
                 frame(fin | cont, "x"),
                 {"failure 1002"},
                 {"close 1002:protocol error"}});
    t.push_back({"5.4 a new message inside one",
                 concat({frame(text, "a"), frame(fin | text, "b")}),
                 {"failure 1002"},
                 {"close 1002:protocol error"}});
    t.push_back({"5.4 control frames between fragments",
                 concat({frame(binary, "ab"), frame(fin | ping, "p"), frame(fin | pong, "q"), frame(fin | cont, "cd")}),
                 {"ping:p", "pong:q", "message binary:abcd"},
                 {"pong:p"}});
    t.push_back({"5.4 a control frame may not be fragmented",
                 frame(ping, "x"),
                 {"failure 1002"},
                 {"close 1002:invalid frame header"}});
    // §5.5: control frames.
    t.push_back({"5.5 a control frame over 125 bytes",
                 frame(fin | ping, std::string(126, 'x')),
                 {"failure 1002"},
                 {"close 1002:invalid frame header"}});
    t.push_back({"5.5.2 a ping is answered with its data",
                 frame(fin | ping, "are you there"),
                 {"ping:are you there"},
                 {"pong:are you there"}});
    t.push_back({"5.5.3 an unsolicited pong needs no answer", frame(fin | pong, "x"), {"pong:x"}, {}});
    t.push_back(
        {"5.5.1 an empty close is echoed without a code", frame(fin | close_op, ""), {"close 1005:"}, {"close:"}});
    t.push_back({"5.5.1 a close echoes the peer's code",
                 frame(fin | close_op, close_body(1000, "bye")),
                 {"close 1000:bye"},
                 {"close 1000:"}});
    t.push_back({"5.5.1 a close with a 1-byte body",
                 frame(fin | close_op, "x"),
                 {"failure 1002"},
                 {"close 1002:close frame with a 1-byte body"}});
    for (std::uint16_t code : {0, 999, 1004, 1005, 1006, 1012, 1015, 1016, 2999, 5000, 65535})
        t.push_back({"7.4 a code a peer may not send",
                     frame(fin | close_op, close_body(code)),
                     {"failure 1002"},
                     {"close 1002:invalid close code"}});
    for (std::uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999})
        t.push_back({"7.4 a code a peer may send",
                     frame(fin | close_op, close_body(code)),
                     {"close " + std::to_string(code) + ":"},
                     {"close " + std::to_string(code) + ":"}});
    t.push_back({"5.5.1 a close reason that is not UTF-8",
                 frame(fin | close_op, close_body(1000, bad_utf8)),
                 {"failure 1002"},
                 {"close 1002:close reason is not UTF-8"}});
    t.push_back({"5.5.1 nothing is read after the close",
                 concat({frame(fin | close_op, close_body(1001)), frame(fin | text, "late")}),
                 {"close 1001:"},
                 {"close 1001:"}});
    // §5.6 and §8.1: text is UTF-8, failing fast.
    t.push_back({"8.1 invalid UTF-8 in a text message",
                 frame(fin | text, bad_utf8),
                 {"failure 1007"},
                 {"close 1007:invalid UTF-8"}});
    t.push_back({"8.1 fails at the first bad fragment, before the message ends",
                 concat({frame(text, "ok"), frame(cont, "\xFF"), frame(fin | cont, "never")}),
                 {"failure 1007"},
                 {"close 1007:invalid UTF-8"}});
    t.push_back(
        {"8.1 a character split across fragments",
         concat({frame(text, euro.substr(0, 1)), frame(cont, euro.substr(1, 1)), frame(fin | cont, euro.substr(2))}),
         {"message text:" + euro},
         {}});
    t.push_back({"8.1 a message that ends inside a character",
                 concat({frame(text, "a"), frame(fin | cont, euro.substr(0, 2))}),
                 {"failure 1007"},
                 {"close 1007:truncated UTF-8"}});
    t.push_back({"5.6 binary carries any bytes", frame(fin | binary, bad_utf8), {"message binary:" + bad_utf8}, {}});
    // §10.4: the size limit (1000 bytes here).
    t.push_back({"10.4 a frame over the limit",
                 frame(fin | binary, std::string(1001, 'x')),
                 {"failure 1009"},
                 {"close 1009:message too big"}});
    t.push_back({"10.4 fragments over the limit together",
                 concat({frame(binary, std::string(600, 'x')), frame(fin | cont, std::string(401, 'y'))}),
                 {"failure 1009"},
                 {"close 1009:message too big"}});
    t.push_back({"10.4 a message at the limit",
                 frame(fin | binary, std::string(1000, 'z')),
                 {"message binary:" + std::string(1000, 'z')},
                 {}});
    // §5.5.2 with §5.5.3: pings read together get one pong, the latest's,
    // written before a close the input asks for.
    t.push_back({"5.5.3 pings read together get one pong",
                 concat({frame(fin | ping, "1"), frame(fin | ping, "2"), frame(fin | close_op, close_body(1000))}),
                 {"ping:1", "ping:2", "close 1000:"},
                 {"pong:2", "close 1000:"}});
    t.push_back({"7.1.7 a ping answered before the failure's close",
                 concat({frame(fin | ping, "p"), frame(fin | cont, "x")}),
                 {"ping:p", "failure 1002"},
                 {"pong:p", "close 1002:protocol error"}});
    // RFC 7692: RSV1 marks a compressed message's first frame.
    std::string hello_text;
    for (int i = 0; i < 20; ++i) hello_text += "hello ";
    const std::string hello = deflated(hello_text);
    t.push_back({"7692 §6 a compressed message",
                 frame(fin | rsv1 | text, hello),
                 {"message text:" + hello_text},
                 {},
                 role::server,
                 true});
    t.push_back({"7692 §6 a compressed message in fragments",
                 concat({frame(rsv1 | text, hello.substr(0, 3)), frame(fin | cont, hello.substr(3))}),
                 {"message text:" + hello_text},
                 {},
                 role::server,
                 true});
    t.push_back({"7692 §6 RSV1 on a continuation",
                 concat({frame(text, "a"), frame(fin | rsv1 | cont, "b")}),
                 {"failure 1002"},
                 {"close 1002:protocol error"},
                 role::server,
                 true});
    t.push_back({"7692 §6 RSV1 on a control frame",
                 frame(fin | rsv1 | ping, ""),
                 {"failure 1002"},
                 {"close 1002:protocol error"},
                 role::server,
                 true});
    t.push_back({"7692 §6 compressed data that does not inflate",
                 frame(fin | rsv1 | binary, "\xFF\xFF\xFF"),
                 {"failure 1007"},
                 {"close 1007:invalid compressed data"},
                 role::server,
                 true});
    t.push_back({"7692 §8.1 a message that inflates past the limit",
                 frame(fin | rsv1 | binary, deflated(std::string(5000, 'a'))),
                 {"failure 1009"},
                 {"close 1009:message too big"},
                 role::server,
                 true});
    t.push_back({"7692 §6 compressed text must be UTF-8",
                 frame(fin | rsv1 | text, deflated(std::string(200, 'o') + bad_utf8)),
                 {"failure 1007"},
                 {"close 1007:invalid UTF-8"},
                 role::server,
                 true});
    return t;
}

}  // namespace

TEST(machine, every_rule_of_the_table) {
    for (const rule& r : rules()) check_rule(r);
}

TEST(machine, an_idle_machine_is_small_and_lends_nothing) {
    // 32 bytes of protocol state and a pointer to zlib state, which only a
    // connection with context takeover or a small window has.
    EXPECT_LE(sizeof(machine), 40u);
    machine m(role::server);
    const machine_limits limits;
    bytes wire = concat({frame(text, "frag"), frame(fin | cont, "mented"), frame(fin | ping, "p")});
    std::span<std::byte> in(wire);
    vector_sink out;
    std::vector<std::string> seen;
    while (!in.empty()) {
        const auto r = m.feed(in, limits);
        in = in.subspan(r.consumed);
        if (r.event.kind != event_kind::none) seen.push_back(describe(r.event));
    }
    EXPECT_EQ(seen, (std::vector<std::string>{"message text:fragmented", "ping:p"}));
    EXPECT_TRUE(m.pong_owed());
    m.write_owed(out);
    m.trim();
    EXPECT_EQ(m.reassembly_bytes(), 0u);
    EXPECT_FALSE(m.owes_output());
}

TEST(machine, this_side_closing_first_reads_until_the_peer_answers) {
    machine m(role::server);
    const machine_limits limits;
    vector_sink out;
    m.send_close(out, 1000, "done");
    EXPECT_FALSE(m.is_open());
    EXPECT_TRUE(m.reading());
    EXPECT_EQ(server_frames(out.queued), (std::vector<std::string>{"close 1000:done"}));
    // A message still arrives; a ping gets no pong once our close is out (§5.5.1).
    bytes wire = concat({frame(fin | text, "late"), frame(fin | ping, "p"), frame(fin | close_op, close_body(1000))});
    const auto got = run(m, wire, limits, [](std::size_t) -> std::size_t { return SIZE_MAX; });
    EXPECT_EQ(got.events, (std::vector<std::string>{"message text:late", "ping:p", "close 1000:"}));
    EXPECT_TRUE(got.written.empty()) << "no pong and no second close";
    EXPECT_TRUE(m.closed());
    EXPECT_EQ(m.close_code(), 1000);
}

TEST(machine, a_client_masks_what_it_sends_and_a_server_reads_it) {
    machine client(role::client), server(role::server);
    const machine_limits limits;
    vector_sink out;
    const std::string text_payload = "masked " + euro;
    client.send_message(out, opcode::text, std::as_bytes(std::span(text_payload.data(), text_payload.size())), limits);
    client.send_frame(out, opcode::ping, {});
    const auto h = parse_frame_header(out.queued);
    ASSERT_EQ(h.state, header_parse_result::status::complete);
    EXPECT_TRUE(h.header.masked);
    const auto got = run(server, out.queued, limits, [](std::size_t) -> std::size_t { return 3; });
    EXPECT_EQ(got.events, (std::vector<std::string>{"message text:" + text_payload, "ping:"}));
}

TEST(machine, deflate_both_ways_between_two_machines) {
    machine client(role::client, true), server(role::server, true);
    machine_limits limits;
    limits.compression_threshold = 16;
    vector_sink out;
    const std::string big(4000, 'w');
    server.send_message(out, opcode::binary, std::as_bytes(std::span(big.data(), big.size())), limits);
    EXPECT_LT(out.queued.size(), 200u) << "compressed";
    std::span<std::byte> in(out.queued);
    const auto r = client.feed(in, limits);
    ASSERT_EQ(r.event.kind, event_kind::message);
    EXPECT_EQ(r.event.text(), big);
}

TEST(machine, the_reassembly_budget_is_per_thread_and_given_back) {
    machine_limits limits;
    limits.core_reassembly_budget = 5000;  // counted by capacity: a's 2000, then 4000 once it grows
    machine a(role::server), b(role::server);
    bytes first = frame(binary, std::string(2000, 'a'));
    std::span<std::byte> in(first);
    const auto started = a.feed(in, limits);
    EXPECT_EQ(started.event.kind, event_kind::none) << started.event.code << " " << started.event.text();
    bytes second = frame(binary, std::string(3500, 'b'));
    std::span<std::byte> in2(second);
    const auto r = b.feed(in2, limits);
    EXPECT_EQ(r.event.kind, event_kind::failure);
    EXPECT_EQ(r.event.code, 1008);
    bytes end = frame(fin | cont, "!");
    std::span<std::byte> in3(end);
    const auto done = a.feed(in3, limits);
    ASSERT_EQ(done.event.kind, event_kind::message) << done.event.code << " " << done.event.text();
    EXPECT_EQ(done.event.payload.size(), 2001u);
    machine c(role::server);
    std::span<std::byte> in4(second = frame(binary, std::string(3500, 'c')));
    in3 = {};
    EXPECT_EQ(a.feed(in3, limits).event.kind, event_kind::none);  // a's message is done with: its charge goes back
    EXPECT_EQ(c.feed(in4, limits).event.kind, event_kind::none) << "the budget came back";
}

// Found by tests/fuzz/ws_machine_fuzz.cpp: a reason longer than a close
// frame holds was cut at byte 123, inside a character, and the peer failed
// the connection on the close frame (§5.5.1: the reason is UTF-8).
TEST(machine, a_long_close_reason_is_cut_at_a_character_boundary) {
    machine server(role::server), client(role::client);
    const machine_limits limits;
    vector_sink out;
    std::string reason;
    for (int i = 0; i < 50; ++i) reason += "\xC3\xA9";  // 100 2-byte characters: byte 123 is inside one
    server.send_close(out, 1001, reason);
    EXPECT_EQ(server.close_reason(), reason.substr(0, 122));
    const auto got = run(client, out.queued, limits, [](std::size_t) -> std::size_t { return SIZE_MAX; });
    EXPECT_EQ(got.events, (std::vector<std::string>{"close 1001:" + reason.substr(0, 122)}));
}

// Found by tests/fuzz/ws_machine_fuzz.cpp: a failure event's payload was the
// reason the machine keeps, which a send_close() before the next feed
// replaced; it is the failure's own reason until then.
TEST(machine, a_failure_event_keeps_its_reason_while_the_caller_closes) {
    machine m(role::server);
    const machine_limits limits;
    bytes wire = frame(fin | 0x3, "x");
    std::span<std::byte> in(wire);
    const auto r = m.feed(in, limits);
    ASSERT_EQ(r.event.kind, event_kind::failure);
    vector_sink out;
    m.send_close(out, 1000, "going");
    EXPECT_EQ(r.event.text(), "invalid frame header");
    EXPECT_EQ(m.close_reason(), "going");
}

// machine_limits::fragments: what is not at hand whole is handed out piece
// by piece as it arrives, with nothing gathered.
namespace {
machine_limits streaming_limits() {
    machine_limits l = small_limits();
    l.fragments = true;
    return l;
}
}  // namespace

TEST(machine_fragments, frames_of_a_message_come_as_pieces_with_control_frames_between) {
    machine m(role::server);
    const bytes wire = concat({frame(text, "frag"), frame(fin | ping, "p"), frame(cont, ""),
                               frame(fin | cont, "mented"), frame(fin | binary, "whole")});
    const auto got = run(m, wire, streaming_limits(), [](std::size_t) -> std::size_t { return SIZE_MAX; });
    EXPECT_EQ(got.events, (std::vector<std::string>{"piece text:frag", "ping:p", "last piece text:mented",
                                                    "message binary:whole"}));
    EXPECT_EQ(got.written, (std::vector<std::string>{"pong:p"}));
}

TEST(machine_fragments, a_large_frame_comes_as_it_arrives_without_a_reassembly_buffer) {
    machine m(role::server);
    machine_limits limits = streaming_limits();
    limits.max_message_size = 1 << 20;
    std::string payload(100'000, 'x');
    for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>('a' + i % 26);
    bytes wire = frame(fin | binary, payload);
    std::string got;
    std::size_t pieces = 0;
    for (std::size_t at = 0; at < wire.size();) {
        const std::size_t n = std::min<std::size_t>(4096, wire.size() - at);
        bytes buffer(wire.begin() + static_cast<std::ptrdiff_t>(at),
                     wire.begin() + static_cast<std::ptrdiff_t>(at + n));
        at += n;
        std::span<std::byte> in(buffer);
        for (;;) {
            const auto r = m.feed(in, limits);
            in = in.subspan(r.consumed);
            if (r.event.kind == event_kind::none) break;
            ASSERT_EQ(r.event.kind, event_kind::fragment);
            EXPECT_EQ(r.event.op, opcode::binary);
            EXPECT_EQ(r.event.last, at == wire.size() && in.empty());
            got += r.event.text();
            ++pieces;
        }
        EXPECT_TRUE(in.empty());
        EXPECT_EQ(m.reassembly_bytes(), 0u);  // nothing gathered
        EXPECT_EQ(m.in_message(), at < wire.size());
    }
    EXPECT_EQ(got, payload);
    EXPECT_EQ(pieces, (wire.size() + 4095) / 4096);
}

TEST(machine_fragments, text_pieces_may_split_a_character_and_fail_at_the_first_bad_byte) {
    machine m(role::server);
    // The euro sign split between two frames: valid.
    const bytes ok = concat({frame(text, "a\xE2"), frame(fin | cont,
                                                         "\x82\xAC"
                                                         "b")});
    auto got = run(m, ok, streaming_limits(), [](std::size_t) -> std::size_t { return SIZE_MAX; });
    EXPECT_EQ(got.events, (std::vector<std::string>{"piece text:a\xE2",
                                                    "last piece text:\x82\xAC"
                                                    "b"}));
    // A bad byte in the second frame fails with 1007 before the frame ends (§8.1).
    machine bad(role::server);
    bytes wire = concat({frame(text, "fine"), frame(fin | cont, "ok\xC3\x28" + std::string(500, 'z'))});
    wire.resize(wire.size() - 400);  // the rest of the frame never comes
    got = run(bad, wire, streaming_limits(), [](std::size_t) -> std::size_t { return SIZE_MAX; });
    EXPECT_EQ(got.events, (std::vector<std::string>{"piece text:fine", "failure 1007"}));
    // A message that ends inside a character fails at its last piece.
    machine cut(role::server);
    got = run(cut, concat({frame(text, "x"), frame(fin | cont, "\xE2\x82")}), streaming_limits(),
              [](std::size_t) -> std::size_t { return SIZE_MAX; });
    EXPECT_EQ(got.events, (std::vector<std::string>{"piece text:x", "failure 1007"}));
}

TEST(machine_fragments, the_size_limit_counts_every_piece_handed_out) {
    machine m(role::server);
    const machine_limits limits = streaming_limits();  // 1000 bytes
    const bytes wire =
        concat({frame(binary, std::string(600, 'a')), frame(cont, std::string(400, 'b')), frame(fin | cont, "c")});
    const auto got = run(m, wire, limits, [](std::size_t) -> std::size_t { return SIZE_MAX; });
    EXPECT_EQ(got.events, (std::vector<std::string>{"piece binary:" + std::string(600, 'a'),
                                                    "piece binary:" + std::string(400, 'b'), "failure 1009"}));
    EXPECT_EQ(got.written, (std::vector<std::string>{"close 1009:message too big"}));
}

TEST(machine_fragments, a_compressed_message_is_gathered_and_comes_whole) {
    machine m(role::server, true);
    const std::string plain(900, 'q');
    const std::string z = deflated(plain);
    const bytes wire = concat({frame(rsv1 | text, z.substr(0, 5)), frame(fin | cont, z.substr(5))});
    const auto got = run(m, wire, streaming_limits(), [](std::size_t) -> std::size_t { return 1; });
    EXPECT_EQ(got.events, (std::vector<std::string>{"message text:" + plain}));
}

// recv() hands over a gathered message's buffer instead of copying it.
TEST(machine, a_gathered_message_is_moved_out_and_one_in_the_input_is_not) {
    machine m(role::server);
    const machine_limits limits;
    bytes wire = concat({frame(text, "gath"), frame(fin | cont, "ered"), frame(fin | binary, "in place")});
    std::span<std::byte> in(wire);
    auto r = m.feed(in, limits);
    ASSERT_EQ(r.event.kind, event_kind::message);
    const void* where = r.event.payload.data();
    std::string out = "old storage, long enough not to be inline";
    ASSERT_TRUE(m.take_message(r.event.payload, out));
    EXPECT_EQ(out, "gathered");
    EXPECT_EQ(static_cast<const void*>(out.data()), where) << "moved, not copied";
    EXPECT_EQ(m.reassembly_bytes(), 0u);
    in = in.subspan(r.consumed);
    r = m.feed(in, limits);
    ASSERT_EQ(r.event.kind, event_kind::message);
    std::string other;
    EXPECT_FALSE(m.take_message(r.event.payload, other)) << "a payload in the input stays there";
    EXPECT_EQ(r.event.text(), "in place");
    EXPECT_TRUE(other.empty());
    // The machine goes on gathering with the storage it was given back.
    bytes more = concat({frame(binary, "ag"), frame(fin | cont, "ain")});
    std::span<std::byte> rest(more);
    r = m.feed(rest, limits);
    ASSERT_EQ(r.event.kind, event_kind::message);
    EXPECT_EQ(r.event.text(), "again");
}
