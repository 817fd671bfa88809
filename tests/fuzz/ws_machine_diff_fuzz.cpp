// libFuzzer target, differential: one byte stream through three ws::machines
// of the same role and options, one fed the stream in one buffer, one byte
// by byte, one in pieces of random sizes (each piece a buffer of its own, as
// receive buffers are). Where the stream is cut must not matter: the three
// must give the same events (kind, opcode, code, payload bytes), owe the same
// frames at the end (write_owed once, after the last byte, so that the pongs
// of pings read together compare equal) and end in the same state. The
// events must also be those of a reference reader of the RFC written here
// without the machine (it shares only the header parser, fuzzed on its own
// by ws_frame_fuzz, and the inflater).
//
// Input layout (the seeds in tests/fuzz/corpus/ws_machine/ fit it too: their
// first bytes only choose differently):
//   [0]    bit 0: client (else server); bit 1: permessage-deflate
//          negotiated; bit 3: no auto_pong
//   [1..2] max_message_size - 1, little-endian (1 to 64 KiB)
//   [3]    ignored (ws_machine_fuzz's reassembly budget)
//   [4]    bit 0: messages not at hand whole come in pieces
//          (machine_limits::fragments); their pieces are joined into the
//          message they make before comparing (where the stream is cut
//          decides where the pieces end, not what they make)
//   [5]    seed of the generator that picks the random piece sizes
//   [6..]  the stream the peer sent
#include <cnetmod/proto/ws/frame.hpp>
#include <cnetmod/proto/ws/machine.hpp>
#include <cnetmod/proto/ws/permessage_deflate.hpp>
#include <cnetmod/proto/ws/utf8.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

using namespace cnetmod::ws;

namespace {

constexpr std::size_t layout_size = 6;

struct recorded_event {
    event_kind kind;
    opcode op;
    std::uint16_t code;
    std::string payload;  // copied: an event's payload is valid only until the next feed
    bool operator==(const recorded_event&) const = default;
};

// A frame written, unmasked (a client's masks are random).
struct written_frame {
    opcode op;
    bool fin, rsv1;
    std::string payload;
    bool operator==(const written_frame&) const = default;
};

struct outcome {
    std::vector<recorded_event> events;
    std::vector<written_frame> owed;
    std::size_t consumed = 0;
    bool closed, close_received, close_sent, in_message;
    std::uint16_t close_code;
    std::string close_reason;
    std::size_t reassembly_bytes;
};

struct vector_sink {
    std::vector<std::byte> queued;
    std::span<std::byte> space(std::size_t n) {
        queued.resize(queued.size() + n);
        return {queued.data() + queued.size() - n, n};
    }
};

std::vector<written_frame> frames_of(const std::vector<std::byte>& wire, role side) {
    std::vector<written_frame> out;
    std::span<const std::byte> rest(wire);
    while (!rest.empty()) {
        const auto h = parse_frame_header(rest);
        if (h.state != header_parse_result::status::complete || h.size + h.header.payload_length > rest.size() ||
            h.header.masked != (side == role::client))
            std::abort();
        std::string payload(reinterpret_cast<const char*>(rest.data()) + h.size, h.header.payload_length);
        if (h.header.masked)
            for (std::size_t i = 0; i < payload.size(); ++i)
                payload[i] = static_cast<char>(payload[i] ^ h.header.mask[i % 4]);
        out.push_back({h.header.op, h.header.fin, h.header.rsv1, std::move(payload)});
        rest = rest.subspan(h.size + static_cast<std::size_t>(h.header.payload_length));
    }
    return out;
}

// Feeds `stream` in pieces of the sizes `next_piece` gives.
template <class Pieces>
outcome run(role side, bool deflate, const machine_limits& limits, std::span<const std::uint8_t> stream,
            Pieces next_piece) {
    outcome o;
    machine m(side, deflate);
    std::string pieces;  // the pieces of a message so far, joined
    bool in_pieces = false;
    opcode piece_op = opcode::text;
    std::size_t at = 0;
    while (at < stream.size() && m.reading()) {
        const std::size_t n = std::min(next_piece(), stream.size() - at);
        std::vector<std::byte> buffer(n);
        std::memcpy(buffer.data(), stream.data() + at, n);
        at += n;
        std::span<std::byte> in(buffer);
        for (;;) {
            const auto r = m.feed(in, limits);
            if (r.consumed > in.size()) std::abort();
            o.consumed += r.consumed;
            in = in.subspan(r.consumed);
            if (r.event.kind == event_kind::none) break;
            if (r.event.kind == event_kind::fragment) {
                if (!limits.fragments || (in_pieces && r.event.op != piece_op)) std::abort();
                if (!in_pieces) piece_op = r.event.op;
                pieces += r.event.text();
                in_pieces = !r.event.last;
                if (r.event.last) o.events.push_back({event_kind::message, piece_op, 0, std::exchange(pieces, {})});
                continue;
            }
            if (r.event.kind == event_kind::message && in_pieces) std::abort();
            o.events.push_back({r.event.kind, r.event.kind == event_kind::message ? r.event.op : opcode::text,
                                r.event.code, std::string(r.event.text())});
        }
    }
    vector_sink out;
    m.write_owed(out);
    o.owed = frames_of(out.queued, side);
    o.closed = m.closed();
    o.close_received = m.close_received();
    o.close_sent = m.close_sent();
    o.in_message = m.in_message();
    o.close_code = m.close_code();
    o.close_reason = std::string(m.close_reason());
    o.reassembly_bytes = m.reassembly_bytes();
    return o;
}

// The events RFC 6455 (and RFC 7692) ask for from the whole stream, read
// frame by frame with no machine: the reference the three runs must match
// too (a failure's reason excepted, which is the machine's own words).
std::vector<recorded_event> reference(role side, bool deflate, const machine_limits& limits,
                                      std::span<const std::uint8_t> stream) {
    std::vector<recorded_event> events;
    auto fail = [&](std::uint16_t code) {
        events.push_back({event_kind::failure, opcode::text, code, {}});
        return events;
    };
    auto utf8_state = [](std::uint8_t state, std::string_view s) {
        return detail::utf8_scalar(state, reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
    };
    std::span<const std::byte> rest = std::as_bytes(stream);
    bool in_message = false, compressed = false;
    opcode message_op = opcode::text;
    std::string message;
    std::uint8_t utf8 = utf8_validator::accept;  // over the uncompressed text message so far
    for (;;) {
        const auto parsed = parse_frame_header(rest);
        if (parsed.state == header_parse_result::status::incomplete) return events;
        if (parsed.state == header_parse_result::status::invalid) return fail(parsed.close);
        const frame_header& h = parsed.header;
        const bool control = is_control(h.op);
        if (h.masked != (side == role::server)) return fail(close_code::protocol_error);  // §5.1
        if (h.rsv2 || h.rsv3 || (h.rsv1 && (!deflate || control || h.op == opcode::continuation)))
            return fail(close_code::protocol_error);  // §5.2, RFC 7692 §6
        if (!control) {
            if ((h.op == opcode::continuation) != in_message) return fail(close_code::protocol_error);  // §5.4
            const std::size_t so_far = in_message ? message.size() : 0;
            if (h.payload_length > limits.max_message_size || so_far + h.payload_length > limits.max_message_size)
                return fail(close_code::message_too_big);
            if (!in_message) {
                message.clear();
                message_op = h.op;
                compressed = h.rsv1;
                utf8 = utf8_validator::accept;
                in_message = true;
            }
        }
        rest = rest.subspan(parsed.size);
        const std::size_t have = static_cast<std::size_t>(std::min<std::uint64_t>(h.payload_length, rest.size()));
        std::string payload(reinterpret_cast<const char*>(rest.data()), have);
        for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(payload[i] ^ h.mask[i % 4]);
        rest = rest.subspan(have);
        if (!control && message_op == opcode::text && !compressed) {
            utf8 = utf8_state(utf8, payload);
            if (utf8 == utf8_validator::reject) return fail(close_code::invalid_payload);  // §8.1: fail fast
        }
        if (have < h.payload_length) return events;  // the stream ends inside the frame
        if (control) {
            if (h.op == opcode::ping || h.op == opcode::pong) {
                events.push_back(
                    {h.op == opcode::ping ? event_kind::ping : event_kind::pong, opcode::text, 0, payload});
                continue;
            }
            if (payload.empty()) {
                events.push_back({event_kind::close, opcode::text, close_code::no_status, {}});
                return events;
            }
            if (payload.size() == 1) return fail(close_code::protocol_error);  // §5.5.1
            const auto code = static_cast<std::uint16_t>(static_cast<std::uint8_t>(payload[0]) << 8 |
                                                         static_cast<std::uint8_t>(payload[1]));
            if (!is_valid_close_code(code) ||
                utf8_state(utf8_validator::accept, std::string_view(payload).substr(2)) != utf8_validator::accept)
                return fail(close_code::protocol_error);  // §7.4.1, §5.5.1
            events.push_back({event_kind::close, opcode::text, code, payload.substr(2)});
            return events;
        }
        message += payload;
        if (!h.fin) continue;
        in_message = false;
        if (compressed) {
            std::string inflated;
            const auto st = decompress_message(std::as_bytes(std::span(message.data(), message.size())),
                                               limits.max_message_size, inflated);
            if (st == inflate_status::too_big) return fail(close_code::message_too_big);  // RFC 7692 §8.1
            if (st != inflate_status::ok) return fail(close_code::invalid_payload);
            message = std::move(inflated);
            if (message_op == opcode::text) utf8 = utf8_state(utf8_validator::accept, message);
        }
        if (message_op == opcode::text && utf8 != utf8_validator::accept) return fail(close_code::invalid_payload);
        events.push_back({event_kind::message, message_op, 0, message});
    }
}

void require_same(const outcome& a, const outcome& b, const char* how) {
    const bool failed = !a.events.empty() && a.events.back().kind == event_kind::failure;
    const char* what = nullptr;
    if (a.events.size() != b.events.size())
        what = "the number of events";
    else if (a.events != b.events)
        what = "an event";
    else if (a.owed != b.owed)
        what = "the frames owed";
    // A failure may come before the rest of its frame is read (UTF-8 fails fast, §8.1).
    else if (!failed && a.consumed != b.consumed)
        what = "the bytes consumed";
    else if (a.closed != b.closed || a.close_received != b.close_received || a.close_sent != b.close_sent ||
             a.in_message != b.in_message || a.close_code != b.close_code || a.close_reason != b.close_reason ||
             a.reassembly_bytes != b.reassembly_bytes)
        what = "the state at the end";
    if (!what) return;
    std::fprintf(stderr, "ws_machine_diff_fuzz: %s differs fed whole and %s\n", what, how);
    for (const outcome* o : {&a, &b}) {
        std::fprintf(stderr, "  %zu events, consumed %zu, close %u:", o->events.size(), o->consumed, o->close_code);
        for (const auto& e : o->events)
            std::fprintf(stderr, " [%d op %d code %u len %zu]", static_cast<int>(e.kind), static_cast<int>(e.op),
                         e.code, e.payload.size());
        std::fprintf(stderr, "\n");
    }
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < layout_size) return 0;
    const role side = (data[0] & 1) ? role::client : role::server;
    const bool deflate = (data[0] & 2) != 0;
    machine_limits limits;
    limits.auto_pong = (data[0] & 8) == 0;
    limits.max_message_size = 1 + (data[1] | (std::size_t{data[2]} << 8));
    limits.fragments = (data[4] & 1) != 0;
    // The default reassembly budget (64 MiB) is never reached here: a frame
    // lying whole in a buffer is read without being copied, so a small
    // budget would rightly tell the cuts apart.
    const std::span<const std::uint8_t> stream(data + layout_size, size - layout_size);
    std::uint64_t state = data[5];
    const std::size_t largest = 1 + data[5] % 97;
    auto random_piece = [&] {
        state = state * 6364136223846793005ull + 1442695040888963407ull;  // an LCG: enough to cut with
        return 1 + static_cast<std::size_t>(state >> 33) % largest;
    };

    const outcome whole = run(side, deflate, limits, stream, [] { return SIZE_MAX; });
    auto expected = reference(side, deflate, limits, stream);
    if (!whole.events.empty() && whole.events.back().kind == event_kind::failure && !expected.empty())
        expected.back().payload = whole.events.back().payload;  // the machine's words for it
    if (whole.events != expected) {
        std::fprintf(stderr, "ws_machine_diff_fuzz: the events differ from the reference's (%zu, %zu)\n",
                     whole.events.size(), expected.size());
        for (const auto* list : {&whole.events, static_cast<const std::vector<recorded_event>*>(&expected)}) {
            for (const auto& e : *list)
                std::fprintf(stderr, " [%d op %d code %u len %zu]", static_cast<int>(e.kind), static_cast<int>(e.op),
                             e.code, e.payload.size());
            std::fprintf(stderr, "\n");
        }
        std::abort();
    }
    require_same(whole, run(side, deflate, limits, stream, [] { return std::size_t{1}; }), "byte by byte");
    require_same(whole, run(side, deflate, limits, stream, random_piece), "in random pieces");
    return 0;
}
