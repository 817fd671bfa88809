// libFuzzer target: the whole protocol through ws::machine (RFC 6455 with
// RFC 7692), on arbitrary byte streams cut into receive buffers, with this
// side sending between the buffers. Every call is checked against what the
// RFC and machine.hpp promise, with references of its own (the scalar UTF-8
// DFA, a model of the close handshake and of the pongs owed) rather than the
// machine's own validators; everything this side writes is read back by a
// second machine in the peer's role, which must see exactly what was sent.
//
// Input layout (tests/fuzz/corpus/ws_machine/ holds seeds in it):
//   [0]    bit 0: client (else server); bit 1: permessage-deflate negotiated;
//          bit 2: this side compresses too (deflate_send); bit 3: no auto_pong;
//          bits 4-5: cuts (0 one buffer, 1 byte by byte, 2 pieces of one
//          size, 3 pieces of random sizes); bits 6-7: what is sent between
//          buffers (0 nothing but write_owed, 1 some, 2 often, 3 at every cut)
//   [1..2] max_message_size - 1, little-endian (1 to 64 KiB)
//   [3]    core_reassembly_budget: 0 the default (64 MiB), else n * 256 bytes
//   [4]    compression_threshold: n * 8 bytes; compression_level 1 + n % 12
//   [5]    seed of the generator that picks the piece sizes and the sends;
//          bit 7 also: messages not at hand whole come in pieces
//          (machine_limits::fragments); with deflate, bit 6 also: context
//          takeover both ways (zlib), with windows of 8 + (bits 0-2) bits
//          for this side's sending and 15 - (bits 3-5) for the peer's
//   [6..]  the stream the peer sent
#include <cnetmod/proto/ws/frame.hpp>
#include <cnetmod/proto/ws/machine.hpp>
#include <cnetmod/proto/ws/utf8.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using namespace cnetmod::ws;

namespace {

constexpr std::size_t layout_size = 6;

// Aborts with a message naming the broken promise (libFuzzer then saves the input).
#define REQUIRE(cond)                                                                 \
    do {                                                                              \
        if (!(cond)) {                                                                \
            std::fprintf(stderr, "ws_machine_fuzz: %s (line %d)\n", #cond, __LINE__); \
            std::abort();                                                             \
        }                                                                             \
    } while (0)

// splitmix64: the pieces and the sends follow from one input byte, so that
// the stream itself stays contiguous for the mutator.
struct generator {
    std::uint64_t state;
    std::uint64_t next() noexcept {
        std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    std::size_t below(std::size_t n) noexcept { return n ? static_cast<std::size_t>(next() % n) : 0; }
    bool one_in(std::size_t n) noexcept { return below(n) == 0; }
};

bool utf8_ok(std::span<const std::byte> s) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(s.data());
    return detail::utf8_scalar(utf8_validator::accept, p, s.size()) == utf8_validator::accept;
}

std::string as_string(std::span<const std::byte> s) {
    return {reinterpret_cast<const char*>(s.data()), s.size()};
}

// A send queue in memory.
struct vector_sink {
    std::vector<std::byte> queued;
    std::span<std::byte> space(std::size_t n) {
        queued.resize(queued.size() + n);
        return {queued.data() + queued.size() - n, n};
    }
};

// What the peer must read from this side's frames, in order.
struct expected_event {
    event_kind kind;
    opcode op = opcode::text;
    std::uint16_t code = 0;
    std::string payload;
};

// The longest prefix of valid UTF-8 `s` of at most `n` bytes that ends on a
// character boundary: what a close reason may be cut to (RFC 6455 §5.5.1).
std::string_view utf8_prefix(std::string_view s, std::size_t n) {
    if (s.size() <= n) return s;
    while (n > 0 && (static_cast<std::uint8_t>(s[n]) & 0xC0) == 0x80) --n;
    return s.substr(0, n);
}

// Text of `n` bytes or a little more, mixing 1- to 4-byte characters.
std::string make_text(generator& g, std::size_t n) {
    static constexpr std::string_view chars[] = {"a", "Z", " ", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80"};
    std::string s;
    while (s.size() < n) s += chars[g.below(std::size(chars))];
    return s;
}

std::string make_binary(generator& g, std::size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(g.next());
    return s;
}

std::span<const std::byte> bytes_of(std::string_view s) {
    return std::as_bytes(std::span(s.data(), s.size()));
}

// One run: the machine under test, the model of what it owes and holds,
// and what its writes must look like to the peer.
class harness {
public:
    // `agreed`: permessage-deflate as negotiated with context takeover or
    // small windows (null: deflate alone says, without either).
    harness(role r, bool deflate, bool deflate_send, const machine_limits& limits, bool small_budget,
            const deflate_agreement* agreed)
        : m_(agreed ? machine(r, *agreed, deflate_send) : machine(r, deflate, deflate_send)),
          limits_(limits),
          small_budget_(small_budget),
          role_(r),
          deflate_(deflate),
          agreed_(agreed) {
        peer_limits_.max_message_size = 1 << 20;
    }

    // Feeds one receive buffer until the machine wants more (or reads no more).
    void feed_buffer(std::vector<std::byte>& buffer, generator& g, bool sends) {
        std::span<std::byte> in(buffer);
        for (;;) {
            const bool was_reading = m_.reading();
            const auto r = m_.feed(in, limits_);
            REQUIRE(r.consumed <= in.size());
            if (!was_reading) REQUIRE(r.consumed == 0 && r.event.kind == event_kind::none);
            in = in.subspan(r.consumed);
            if (r.event.kind == event_kind::none) {
                // "Needs more bytes": everything given was taken, unless it reads no more.
                if (m_.reading()) REQUIRE(in.empty());
                break;
            }
            on_event(r.event);
            // The payload stays valid until the next feed, whatever is sent meanwhile.
            const std::string copy = as_string(r.event.payload);
            if (sends && g.one_in(4)) act(g, true);
            REQUIRE(as_string(r.event.payload) == copy);
            check_state();
        }
        check_state();
    }

    // Something this side may do between two receive buffers, or while it
    // holds an event (then not what ends the event's payload: feed, trim).
    void act(generator& g, bool holding_event = false) {
        switch (g.below(holding_event ? 10 : 12)) {
            case 0:
            case 1:
            case 2:
                write_owed();
                break;
            case 3:
            case 4:
                if (!close_sent_) send_message(g);
                break;
            case 5:
                if (!close_sent_) send_control(g);
                break;
            case 6:
                if (!close_sent_) send_fragments(g);
                break;
            case 7:
                if (g.one_in(3)) send_close(g);
                break;
            case 8:
                m_.forget_pong();
                pong_owed_ = false;
                break;
            case 9: {  // the machine moves (as a connection's state may)
                machine moved(std::move(m_));
                m_ = std::move(moved);
                break;
            }
            case 10:
                m_.trim();
                break;
            default: {
                std::span<std::byte> none;
                const auto r = m_.feed(none, limits_);
                REQUIRE(r.consumed == 0 && r.event.kind == event_kind::none);
            }
        }
        check_state();
    }

    // The end: what is owed goes out, the peer reads everything sent, and
    // the connection may drop.
    void finish(generator& g) {
        write_owed();
        check_state();
        check_peer();
        if (m_.reading() && g.one_in(2)) {
            m_.dropped();
            if (!code_ || !close_sent_) code_ = close_code::abnormal;
            ended_ = true;
            REQUIRE(m_.closed() && !m_.reading());
            REQUIRE(m_.close_code() == code_);
        }
    }

private:
    // A piece of a message (machine_limits::fragments): the pieces so far
    // stay within the size limit and, for text, a prefix of valid UTF-8;
    // the last one ends the message, which is then all valid.
    void on_piece(const event& e) {
        REQUIRE(limits_.fragments);
        REQUIRE(e.op == opcode::text || e.op == opcode::binary);
        if (!in_pieces_) piece_op_ = e.op;
        REQUIRE(e.op == piece_op_);
        in_pieces_ = !e.last;
        pieces_ += as_string(e.payload);
        REQUIRE(pieces_.size() <= limits_.max_message_size);
        REQUIRE(e.last || !e.payload.empty());
        REQUIRE(m_.in_message() == !e.last);
        REQUIRE(m_.reassembly_bytes() == 0);  // nothing gathered
        if (e.op == opcode::text) {
            const auto* p = reinterpret_cast<const std::uint8_t*>(pieces_.data());
            const std::uint8_t st = detail::utf8_scalar(utf8_validator::accept, p, pieces_.size());
            REQUIRE(st != utf8_validator::reject);
            if (e.last) REQUIRE(st == utf8_validator::accept);
        }
        if (e.last) pieces_.clear();
    }

    void on_event(const event& e) {
        REQUIRE(!ended_);  // nothing after a close or a failure
        switch (e.kind) {
            case event_kind::message:
                REQUIRE(!in_pieces_);
                REQUIRE(e.op == opcode::text || e.op == opcode::binary);
                REQUIRE(e.payload.size() <= limits_.max_message_size);
                if (e.op == opcode::text) REQUIRE(utf8_ok(e.payload));
                REQUIRE(!m_.in_message());
                break;
            case event_kind::ping:
                REQUIRE(e.payload.size() <= 125);
                // §5.5.2: a pong with the latest ping's data is owed while open.
                if (limits_.auto_pong && !close_sent_) {
                    pong_owed_ = true;
                    pong_ = as_string(e.payload);
                }
                break;
            case event_kind::pong:
                REQUIRE(e.payload.size() <= 125);
                break;
            case event_kind::close:
                REQUIRE(is_valid_close_code(e.code) || e.code == close_code::no_status);
                REQUIRE(e.payload.size() <= 123 && utf8_ok(e.payload));
                if (e.code == close_code::no_status) REQUIRE(e.payload.empty());
                REQUIRE(m_.close_reason() == as_string(e.payload));
                ended_ = true;
                close_received_ = true;
                close_owed_ = !close_sent_;
                code_ = e.code;
                failed_ = false;
                break;
            case event_kind::failure:
                // What machine.cpp fails with: 1002 (framing, masking, RSV,
                // sequence, close frame), 1007 (UTF-8, bad DEFLATE data),
                // 1009 (size, inflated size) and 1008 (the reassembly budget only).
                REQUIRE(e.code == close_code::protocol_error || e.code == close_code::invalid_payload ||
                        e.code == close_code::message_too_big ||
                        (e.code == close_code::policy_violation && small_budget_));
                REQUIRE(!e.payload.empty() && e.payload.size() <= 123 && utf8_ok(e.payload));
                REQUIRE(m_.close_reason() == as_string(e.payload));
                ended_ = true;
                failed_ = true;
                close_owed_ = !close_sent_;
                code_ = e.code;
                reason_ = as_string(e.payload);
                break;
            case event_kind::fragment:
                on_piece(e);
                break;
            case event_kind::none:
                REQUIRE(false);
        }
    }

    void check_state() const {
        REQUIRE(m_.closed() == ended_);
        REQUIRE(m_.reading() == !ended_);
        REQUIRE(m_.is_open() == (!ended_ && !close_sent_));
        REQUIRE(m_.close_sent() == close_sent_);
        REQUIRE(m_.close_received() == close_received_);
        REQUIRE(m_.owes_close() == close_owed_);
        REQUIRE(m_.pong_owed() == pong_owed_);
        REQUIRE(m_.owes_output() == (close_owed_ || pong_owed_));
        REQUIRE(m_.close_code() == code_);
        REQUIRE(m_.reassembly_bytes() <= limits_.max_message_size);
        if (ended_ && !close_received_) REQUIRE(!m_.in_message());
    }

    // Frames this side wrote in [from, end): each parses back, masked by a
    // client only (§5.1, §5.3), RSV1 only on a compressed data frame.
    void check_written(std::size_t from, std::vector<std::pair<opcode, bool>> shape) {
        std::span<const std::byte> rest = std::span<const std::byte>(wire_.queued).subspan(from);
        for (const auto& [op, fin] : shape) {
            const auto h = parse_frame_header(rest);
            REQUIRE(h.state == header_parse_result::status::complete);
            REQUIRE(h.header.masked == (role_ == role::client));
            REQUIRE(h.header.op == op && h.header.fin == fin);
            REQUIRE(!h.header.rsv2 && !h.header.rsv3);
            if (h.header.rsv1) REQUIRE(m_.deflate_send() && !is_control(op) && op != opcode::continuation);
            REQUIRE(h.size + h.header.payload_length <= rest.size());
            rest = rest.subspan(h.size + static_cast<std::size_t>(h.header.payload_length));
        }
        REQUIRE(rest.empty());
    }

public:
    void write_owed() {
        const std::size_t from = wire_.queued.size();
        m_.write_owed(wire_);
        std::vector<std::pair<opcode, bool>> shape;
        if (pong_owed_ && !close_sent_) {
            shape.push_back({opcode::pong, true});
            expect_.push_back({event_kind::pong, opcode::text, 0, pong_});
        }
        pong_owed_ = false;
        if (close_owed_ && !close_sent_) {
            shape.push_back({opcode::close, true});
            // The failure's code and reason, or the echo of the peer's code (§5.5.1).
            if (failed_)
                expect_.push_back({event_kind::close, opcode::text, code_, reason_});
            else
                expect_.push_back({event_kind::close, opcode::text, code_, {}});
            close_sent_ = true;
        }
        close_owed_ = false;
        check_written(from, std::move(shape));
        check_state();
    }

private:
    void send_message(generator& g) {
        const bool text = g.one_in(2);
        const std::size_t n = g.one_in(4) ? g.below(4096) : g.below(200);
        const std::string payload = text ? make_text(g, n) : make_binary(g, n);
        const std::size_t from = wire_.queued.size();
        m_.send_message(wire_, text ? opcode::text : opcode::binary, bytes_of(payload), limits_);
        check_written(from, {{text ? opcode::text : opcode::binary, true}});
        expect_.push_back({event_kind::message, text ? opcode::text : opcode::binary, 0, payload});
    }

    void send_control(generator& g) {
        const bool ping = g.one_in(2);
        const std::string payload = make_binary(g, g.below(126));
        const std::size_t from = wire_.queued.size();
        m_.send_frame(wire_, ping ? opcode::ping : opcode::pong, bytes_of(payload));
        check_written(from, {{ping ? opcode::ping : opcode::pong, true}});
        expect_.push_back({ping ? event_kind::ping : event_kind::pong, opcode::text, 0, payload});
    }

    // A message the caller splits into frames, a ping among them (§5.4);
    // text may be cut inside a character.
    void send_fragments(generator& g) {
        const bool text = g.one_in(2);
        const std::string payload = text ? make_text(g, g.below(300)) : make_binary(g, g.below(300));
        const std::size_t frames = 1 + g.below(4);
        const std::size_t from = wire_.queued.size();
        std::vector<std::pair<opcode, bool>> shape;
        std::size_t at = 0;
        for (std::size_t i = 0; i < frames; ++i) {
            const bool last = i + 1 == frames;
            const std::size_t n = last ? payload.size() - at : g.below(payload.size() - at + 1);
            const opcode op = i == 0 ? (text ? opcode::text : opcode::binary) : opcode::continuation;
            m_.send_frame(wire_, op, bytes_of(std::string_view(payload).substr(at, n)), last);
            shape.push_back({op, last});
            at += n;
            if (!last && g.one_in(3)) {
                m_.send_frame(wire_, opcode::ping, bytes_of("between"));
                shape.push_back({opcode::ping, true});
                expect_.push_back({event_kind::ping, opcode::text, 0, "between"});
            }
        }
        check_written(from, std::move(shape));
        expect_.push_back({event_kind::message, text ? opcode::text : opcode::binary, 0, payload});
    }

    void send_close(generator& g) {
        static constexpr std::uint16_t codes[] = {0, 1000, 1001, 1003, 1008, 1011, 3000, 4999};
        static constexpr std::string_view chars[] = {"x", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80"};
        const std::uint16_t code = codes[g.below(std::size(codes))];
        std::string reason;
        const std::string_view c = chars[g.below(std::size(chars))];
        for (std::size_t i = g.below(80); i > 0; --i) reason += c;
        const std::size_t from = wire_.queued.size();
        m_.send_close(wire_, code, reason);
        if (close_sent_) {
            REQUIRE(wire_.queued.size() == from);  // one close frame at most
            return;
        }
        check_written(from, {{opcode::close, true}});
        if (code)
            expect_.push_back({event_kind::close, opcode::text, code, std::string(utf8_prefix(reason, 123))});
        else
            expect_.push_back({event_kind::close, opcode::text, close_code::no_status, {}});
        close_sent_ = true;
        close_owed_ = false;
        if (!close_received_) {
            code_ = code ? code : close_code::no_status;
            failed_ = false;
        }
    }

    // The peer reads all this side wrote, in one buffer: exactly the events
    // expected, no failure, and nothing after the close.
    void check_peer() {
        const role other = role_ == role::server ? role::client : role::server;
        machine peer = agreed_ ? machine(other, *agreed_) : machine(other, deflate_);
        std::span<std::byte> in(wire_.queued);
        std::size_t i = 0;
        for (;;) {
            const auto r = peer.feed(in, peer_limits_);
            in = in.subspan(r.consumed);
            if (r.event.kind == event_kind::none) break;
            REQUIRE(i < expect_.size());
            const expected_event& x = expect_[i++];
            if (r.event.kind != x.kind) {
                std::fprintf(stderr, "peer read event %d (code %u: %.*s), expected %d\n",
                             static_cast<int>(r.event.kind), r.event.code, static_cast<int>(r.event.text().size()),
                             r.event.text().data(), static_cast<int>(x.kind));
            }
            REQUIRE(r.event.kind == x.kind);
            REQUIRE(as_string(r.event.payload) == x.payload);
            if (x.kind == event_kind::message) REQUIRE(r.event.op == x.op);
            if (x.kind == event_kind::close) REQUIRE(r.event.code == x.code);
        }
        REQUIRE(i == expect_.size());
        REQUIRE(in.empty());
    }

    machine m_;
    machine_limits limits_;
    machine_limits peer_limits_;
    bool small_budget_;
    role role_;
    bool deflate_;
    const deflate_agreement* agreed_;
    vector_sink wire_;                    // everything this side wrote
    std::vector<expected_event> expect_;  // what the peer must read from it
    // The model: what the machine must report.
    bool ended_ = false;  // a close or a failure was read
    bool close_sent_ = false, close_received_ = false, close_owed_ = false, pong_owed_ = false, failed_ = false;
    std::uint16_t code_ = 0;
    std::string pong_, reason_;
    bool in_pieces_ = false;  // between a message's first piece and its last
    opcode piece_op_ = opcode::text;
    std::string pieces_;  // the message's pieces so far
};

void run(harness& h, generator& g, std::span<const std::uint8_t> stream, unsigned cut_mode, unsigned send_rate) {
    const std::size_t fixed = 1 + g.below(64);
    std::size_t at = 0;
    while (at < stream.size()) {
        std::size_t n = cut_mode == 0 ? stream.size() : cut_mode == 1 ? 1 : cut_mode == 2 ? fixed : 1 + g.below(200);
        n = std::min(n, stream.size() - at);
        // Each piece in a buffer of its own, freed after it is read, as receive buffers are.
        std::vector<std::byte> buffer(n);
        std::memcpy(buffer.data(), stream.data() + at, n);
        at += n;
        h.feed_buffer(buffer, g, send_rate != 0);
        if (send_rate == 0) {
            h.write_owed();  // as a connection does after each read
            continue;
        }
        const std::size_t acts = send_rate == 3 ? 1 + g.below(2) : g.one_in(4 - send_rate);
        for (std::size_t i = 0; i < acts; ++i) h.act(g);
    }
    h.finish(g);
}

// Every machine of the input is gone, so no byte may stay counted against
// the thread's reassembly budget: a fresh machine may still hold a message
// in pieces under a budget of 8 KiB (it charges the capacity of its lent
// buffer, at most 4 KiB when pooled). A leak shows once it adds up past 4 KiB.
void check_budget_given_back() {
    machine_limits limits;
    limits.core_reassembly_budget = 8192;
    machine probe(role::client);
    std::byte first_fragment[] = {std::byte{0x02}, std::byte{0x01}, std::byte{'x'}};  // binary, not FIN, 1 byte
    const auto r = probe.feed(first_fragment, limits);
    REQUIRE(r.event.kind == event_kind::none && probe.reassembly_bytes() == 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < layout_size) return 0;
    const std::uint8_t flags = data[0];
    const role side = (flags & 1) ? role::client : role::server;
    const bool deflate = (flags & 2) != 0;
    const bool deflate_send = (flags & 4) != 0;
    const unsigned cut_mode = (flags >> 4) & 3;
    const unsigned send_rate = (flags >> 6) & 3;
    machine_limits limits;
    limits.auto_pong = (flags & 8) == 0;
    limits.max_message_size = 1 + (data[1] | (std::size_t{data[2]} << 8));
    const bool small_budget = data[3] != 0;
    if (small_budget) limits.core_reassembly_budget = std::size_t{data[3]} * 256;
    limits.compression_threshold = std::uint32_t{data[4]} * 8;
    limits.compression_level = static_cast<std::int8_t>(1 + data[4] % 12);
    limits.max_inflate_ratio = data[4] % 3 == 0 ? 0 : 128;
    limits.fragments = (data[5] & 0x80) != 0;
    generator g{data[5]};
    const std::span<const std::uint8_t> stream(data + layout_size, size - layout_size);

    deflate_agreement agreed;
    const bool takeover = deflate && (data[5] & 0x40) != 0;
    if (takeover) {
        const auto ours = static_cast<std::uint8_t>(8 + (data[5] & 7)),
                   theirs = static_cast<std::uint8_t>(15 - ((data[5] >> 3) & 7));
        agreed.server_max_window_bits = side == role::server ? ours : theirs;
        agreed.client_max_window_bits = side == role::server ? theirs : ours;
    }
    {
        harness h(side, deflate, deflate_send, limits, small_budget, takeover ? &agreed : nullptr);
        run(h, g, stream, cut_mode, send_rate);
    }
    check_budget_given_back();
    return 0;
}
