#include <cnetmod/proto/ws/detail/deflate_stream.hpp>
#include <cnetmod/proto/ws/detail/metrics.hpp>
#include <cnetmod/proto/ws/machine.hpp>
#include <cnetmod/proto/ws/mask.hpp>
#include <cnetmod/proto/ws/permessage_deflate.hpp>

#include <sys/random.h>

#include <algorithm>
#include <utility>

namespace cnetmod::ws {
namespace detail {

// What a machine needs only while a message or a control frame is in
// pieces, a pong is owed or a close reason is kept: lent per thread.
struct machine_buffers {
    std::string message;         // a message that did not arrive in one piece, or an inflated one
    std::string reason;          // the close reason received, sent or failed with
    std::size_t charged = 0;     // bytes of `message` counted against the thread's reassembly budget
    std::uint64_t streamed = 0;  // bytes of a message handed out in pieces so far (machine_limits::fragments)
    std::uint8_t control_len = 0;
    std::uint8_t pong_len = 0;
    std::byte control[125];             // a control frame's payload that straddles inputs
    std::byte pong[125];                // the latest ping's payload, while its pong is owed
    std::byte header[max_header_size];  // a frame header that straddles inputs, gathered
    machine_buffers* next = nullptr;    // the pool's link
};

namespace {

// A fast generator for client masking keys (wyrand), one per thread, seeded
// from the OS: unpredictable keys at a few cycles each.
struct mask_generator {
    std::uint64_t state;
    mask_generator() {
        if (::getrandom(&state, sizeof state, 0) != sizeof state)
            state = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(this)) ^ 0x9E3779B97F4A7C15ull;
    }
    std::uint32_t next() noexcept {
        state += 0xA0761D6478BD642Full;
        const __uint128_t m = static_cast<__uint128_t>(state) * (state ^ 0xE7037ED1A0B428DBull);
        return static_cast<std::uint32_t>((m >> 64) ^ m);
    }
};
thread_local mask_generator masks;

// The per-thread pool of machine_buffers: an intrusive list (trivially
// destructible, so a machine destroyed late in a thread's exit still finds
// it), emptied by `reaper` when the thread ends.
constexpr std::size_t pooled_buffers_max = 256;
// A reassembly buffer larger than this is freed rather than pooled: an idle
// pool holds at most pooled_buffers_max small ones.
constexpr std::size_t pooled_capacity_max = 4096;
thread_local machine_buffers* pool_head = nullptr;
thread_local std::size_t pool_size = 0;
thread_local bool pool_open = true;
struct pool_reaper {
    ~pool_reaper() {
        pool_open = false;
        while (pool_head) delete std::exchange(pool_head, pool_head->next);
        pool_size = 0;
    }
};
thread_local pool_reaper reaper;

machine_buffers* lend_buffers() {
    (void)&reaper;  // constructed with the thread's first use
    if (pool_head) {
        --pool_size;
        auto* b = std::exchange(pool_head, pool_head->next);
        b->next = nullptr;
        return b;
    }
    return new machine_buffers;
}

void give_back(machine_buffers* b) noexcept {
    b->message.clear();
    b->reason.clear();
    b->control_len = b->pong_len = 0;
    b->charged = 0;
    b->streamed = 0;
    if (!pool_open || pool_size >= pooled_buffers_max) {
        delete b;
        return;
    }
    if (b->message.capacity() > pooled_capacity_max) std::string().swap(b->message);
    b->next = pool_head;
    pool_head = b;
    ++pool_size;
}

// Bytes of incomplete messages held by this thread's machines.
thread_local std::size_t reassembly_total = 0;

// Per-thread scratch: a compressed message before it is queued; an
// inflated one before it swaps into the lent buffer.
thread_local std::string compress_scratch;
thread_local std::string inflate_scratch;

// A close reason cut to the 123 bytes a close frame has room for (§5.5:
// 125 less the code), at a character boundary: the reason must stay UTF-8
// (§5.5.1), or the peer fails the connection on it.
std::string_view reason_prefix(std::string_view reason) noexcept {
    std::size_t n = 123;
    if (reason.size() <= n) return reason;
    while (n > 0 && (static_cast<unsigned char>(reason[n]) & 0xC0) == 0x80) --n;  // a continuation byte
    return reason.substr(0, n);
}

}  // namespace

std::uint32_t next_mask_key() noexcept {
    return masks.next();
}

cutoff_counters& cutoffs_seen() noexcept {
    static cutoff_counters counters;
    return counters;
}

}  // namespace detail

machine::machine(ws::role r, bool deflate, bool deflate_send) noexcept
    : role_(r), deflate_(deflate), deflate_send_(deflate && deflate_send) {}

machine::machine(ws::role r, const deflate_agreement& agreed, bool deflate_send)
    : role_(r), deflate_(true), deflate_send_(deflate_send) {
    const bool server = r == ws::role::server;
    const bool send_takeover = server ? !agreed.server_no_context_takeover : !agreed.client_no_context_takeover;
    const bool receive_takeover = server ? !agreed.client_no_context_takeover : !agreed.server_no_context_takeover;
    const auto send_bits = server ? agreed.server_max_window_bits : agreed.client_max_window_bits;
    // libdeflate does the rest: no window kept either way, and ours 32 KiB.
    if (!send_takeover && !receive_takeover && send_bits >= 15) return;
    zlib_ = new detail::deflate_context(agreed, server);
    send_takeover_ = deflate_send && send_takeover;
}

machine::machine(machine&& other) noexcept
    : lent_(std::exchange(other.lent_, nullptr)),
      zlib_(std::exchange(other.zlib_, nullptr)),
      remaining_(other.remaining_),
      have_(other.have_),
      utf8_(other.utf8_),
      close_code_(other.close_code_),
      role_(other.role_),
      state_(other.state_),
      stage_(other.stage_),
      frame_op_(other.frame_op_),
      message_op_(other.message_op_),
      mask_phase_(other.mask_phase_),
      frame_fin_(other.frame_fin_),
      frame_masked_(other.frame_masked_),
      in_message_(other.in_message_),
      compressed_(other.compressed_),
      deflate_(other.deflate_),
      deflate_send_(other.deflate_send_),
      send_takeover_(other.send_takeover_),
      close_sent_(other.close_sent_),
      close_received_(other.close_received_),
      close_owed_(other.close_owed_),
      pong_owed_(other.pong_owed_),
      failed_(other.failed_),
      streaming_(other.streaming_) {
    std::memcpy(mask_, other.mask_, sizeof mask_);
}

machine& machine::operator=(machine&& other) noexcept {
    if (this != &other) {
        this->~machine();
        new (this) machine(std::move(other));
    }
    return *this;
}

machine::~machine() {
    delete zlib_;
    if (!lent_) return;
    release_charge();
    detail::give_back(std::exchange(lent_, nullptr));
}

detail::machine_buffers& machine::buffers() {
    if (!lent_) lent_ = detail::lend_buffers();
    return *lent_;
}

std::size_t machine::reassembly_bytes() const noexcept {
    return lent_ && in_message_ ? lent_->message.size() : 0;
}

bool machine::take_message(std::span<const std::byte> payload, std::string& out) noexcept {
    if (!lent_ || in_message_ || payload.empty() ||
        payload.data() != reinterpret_cast<const std::byte*>(lent_->message.data()) ||
        payload.size() != lent_->message.size())
        return false;
    release_charge();
    out.swap(lent_->message);
    lent_->message.clear();
    return true;
}

// The size of the message being read so far, gathered or handed out.
std::uint64_t machine::message_bytes() const noexcept {
    return lent_ && in_message_ ? lent_->message.size() + lent_->streamed : 0;
}

std::string_view machine::close_reason() const noexcept {
    return lent_ ? std::string_view(lent_->reason) : std::string_view();
}

void machine::set_close(std::uint16_t code, std::string_view reason) {
    close_code_ = code;
    if (!reason.empty())
        buffers().reason.assign(detail::reason_prefix(reason));
    else if (lent_)
        lent_->reason.clear();
}

void machine::dropped() noexcept {
    abandon();
    if (!close_code_ || !close_sent_) close_code_ = close_code::abnormal;
}

void machine::abandon() noexcept {
    state_ = state::closed;
    in_message_ = false;
    release_charge();
    if (lent_) {
        lent_->message.clear();
        lent_->streamed = 0;
    }
}

void machine::release_charge() noexcept {
    if (!lent_ || !lent_->charged) return;
    detail::reassembly_total -= std::min(lent_->charged, detail::reassembly_total);
    lent_->charged = 0;
}

// Counts the memory of the reassembly buffer (its capacity: what it really
// holds) against the thread's budget; false when it does not fit.
bool machine::charge(const machine_limits& limits) noexcept {
    const std::size_t held = lent_->message.capacity();
    if (held <= lent_->charged) return true;
    const std::size_t more = held - lent_->charged;
    if (detail::reassembly_total + more > limits.core_reassembly_budget) {
        ++detail::cutoffs_seen().reassembly;
        return false;
    }
    detail::reassembly_total += more;
    lent_->charged += more;
    return true;
}

void machine::trim() noexcept {
    if (!lent_) return;
    if (!in_message_) {
        release_charge();
        lent_->message.clear();
    }
    const bool needed = in_message_ || pong_owed_ || have_ > 0 || !lent_->reason.empty() ||
                        (stage_ == stage::payload && is_control(frame_op_));
    if (!needed) detail::give_back(std::exchange(lent_, nullptr));
}

void machine::keep_pong(std::span<const std::byte> payload) {
    auto& b = buffers();
    if (!payload.empty()) std::memcpy(b.pong, payload.data(), payload.size());
    b.pong_len = static_cast<std::uint8_t>(payload.size());
}

std::span<const std::byte> machine::owed_pong() const noexcept {
    if (!lent_) return {};
    return {lent_->pong, lent_->pong_len};
}

std::size_t machine::close_body(std::byte* body, std::uint16_t code, std::string_view reason) const noexcept {
    if (code == 0 || code == close_code::no_status) return 0;
    body[0] = static_cast<std::byte>(code >> 8);
    body[1] = static_cast<std::byte>(code & 0xFF);
    const std::string_view r = detail::reason_prefix(reason);
    if (!r.empty()) std::memcpy(body + 2, r.data(), r.size());
    return 2 + r.size();
}

std::size_t machine::encode_header(std::byte* out, ws::opcode op, std::size_t n, bool fin, bool rsv1,
                                   std::uint8_t mask[4]) const noexcept {
    if (role_ == ws::role::server) return encode_frame_header(out, op, n, fin, rsv1, nullptr);  // §5.1: never masked
    const std::uint32_t key = detail::next_mask_key();
    std::memcpy(mask, &key, 4);
    return encode_frame_header(out, op, n, fin, rsv1, mask);
}

void machine::compression_tick() noexcept {
    if (zlib_) zlib_->idle_tick();
}

std::size_t machine::compression_memory() const noexcept {
    return zlib_ ? zlib_->memory() : 0;
}

machine::shared_form machine::form_for_shared(std::size_t payload_size) const noexcept {
    if (!deflate_send_) return shared_form::plain;
    if (!zlib_) return shared_form::whole;
    if (!zlib_->send_takeover()) {
        // A stream of its own fits a small window when the message does.
        return zlib_->sync_form_fits(payload_size) ? shared_form::whole : shared_form::own;
    }
    return zlib_->sync_form_fits(payload_size) ? shared_form::sync : shared_form::own;
}

void machine::note_shared_sent(std::span<const std::byte> payload) {
    if (zlib_) zlib_->note_sent_elsewhere(payload);
}

std::span<const std::byte> machine::compress(std::span<const std::byte> payload, const machine_limits& limits) {
    detail::compress_scratch.clear();
    if (zlib_ && zlib_->sends_with_zlib()) {
        const std::size_t n = zlib_->compress(payload, limits.compression_level, limits.compression_memory_level,
                                              detail::compress_scratch, limits.compression_memory_budget);
        if (n == 0) return {};
        if (n >= payload.size()) {
            // It did not shrink: it goes plain, and with takeover our window,
            // which took it, forgets everything instead (the peer's lacks it).
            zlib_->forget_history();
            return {};
        }
        return std::as_bytes(std::span(detail::compress_scratch.data(), detail::compress_scratch.size()));
    }
    if (compress_message(payload, limits.compression_level, detail::compress_scratch) == 0) return {};
    return std::as_bytes(std::span(detail::compress_scratch.data(), detail::compress_scratch.size()));
}

// ---- reading ----

feed_result machine::feed(std::span<std::byte> in, const machine_limits& limits) {
    feed_result r;
    if (lent_) trim();  // the last event's payload is done with: what only it needed goes back
    while (state_ != state::closed && r.consumed < in.size()) {
        const auto rest = in.subspan(r.consumed);
        if (stage_ == stage::header ? read_header(rest, r, limits) : read_payload(rest, r, limits)) return r;
    }
    return r;
}

// Checks what the header alone cannot: masking direction, reserved bits,
// the fragmentation sequence and the size limit. 0 when the frame may come.
std::uint16_t machine::check(const frame_header& h, const machine_limits& limits) const noexcept {
    // §5.1: a server fails on an unmasked frame, a client on a masked one.
    if (h.masked != (role_ == ws::role::server)) return close_code::protocol_error;
    // §5.2: RSV bits without a negotiated extension. permessage-deflate
    // gives RSV1 a meaning on the first frame of a data message only (RFC
    // 7692 §6): on a control frame or a continuation it is an error.
    if (h.rsv2 || h.rsv3) return close_code::protocol_error;
    if (h.rsv1 && (!deflate_ || is_control(h.op) || h.op == ws::opcode::continuation))
        return close_code::protocol_error;
    if (is_control(h.op)) return 0;
    // §5.4: a continuation only inside a message, a new message only outside one.
    if ((h.op == ws::opcode::continuation) != in_message_) return close_code::protocol_error;
    const std::uint64_t so_far = message_bytes();
    if (h.payload_length > limits.max_message_size || so_far + h.payload_length > limits.max_message_size)
        return close_code::message_too_big;
    return 0;
}

// Reads a frame header (gathering it when it straddles inputs) and starts
// its payload; a frame that lies whole in the input is finished here, its
// payload handed out where it is. True when an event is set.
bool machine::read_header(std::span<std::byte> in, feed_result& r, const machine_limits& limits) {
    // The common case first, in few instructions: outside a message, a
    // final text or binary frame without RSV bits, masked as the role asks
    // (§5.1), with a 7-bit length, lying whole in the input. Anything else
    // takes the general path below, which checks every rule.
    if (have_ == 0 && !in_message_ && in.size() >= 2) {
        const auto b0 = std::to_integer<std::uint8_t>(in[0]);
        const auto b1 = std::to_integer<std::uint8_t>(in[1]);
        const bool server = role_ == ws::role::server;
        const std::size_t header = server ? 6 : 2;
        const std::size_t len = b1 & 0x7F;
        if ((b0 == 0x81 || b0 == 0x82) && (b1 & 0x80) == (server ? 0x80 : 0) && len < 126 &&
            in.size() >= header + len && len <= limits.max_message_size) {
            const auto payload = in.subspan(header, len);
            if (server) {
                std::uint8_t key[4];
                std::memcpy(key, in.data() + 2, 4);
                apply_mask(payload.data(), len, key, 0);
            }
            r.consumed += header + len;
            message_op_ = static_cast<ws::opcode>(b0 & 0x0F);
            compressed_ = false;
            if (message_op_ == ws::opcode::text) {
                utf8_.reset();
                return message_done(r, payload, limits, false);
            }
            return deliver(r, payload);
        }
    }
    using st = header_parse_result::status;
    const std::size_t n = std::min<std::size_t>(in.size(), max_header_size - have_);
    frame_header h;
    std::size_t size = 0;
    std::uint16_t code = 0;
    st parsed;
    if (have_ == 0) {
        parsed = parse_frame_header_into(in.first(n), h, size, code);
    } else {
        std::byte* gathered = lent_->header;
        std::memcpy(gathered + have_, in.data(), n);
        parsed = parse_frame_header_into(std::span<const std::byte>(gathered, have_ + n), h, size, code);
    }
    if (parsed == st::invalid) return fail(r, code, "invalid frame header");
    if (parsed == st::incomplete) {  // all of `in` is header bytes (a header is at most 14)
        if (have_ == 0) std::memcpy(buffers().header, in.data(), n);
        have_ = static_cast<std::uint8_t>(have_ + n);
        r.consumed += n;
        return false;
    }
    const std::size_t header_bytes = size - have_;
    r.consumed += header_bytes;
    have_ = 0;
    if (const std::uint16_t bad = check(h, limits))
        return fail(r, bad, bad == close_code::message_too_big ? "message too big" : "protocol error");
    frame_op_ = h.op;
    frame_fin_ = h.fin;
    frame_masked_ = h.masked;
    std::memcpy(mask_, h.mask, 4);
    mask_phase_ = 0;
    remaining_ = h.payload_length;
    const auto body = in.subspan(header_bytes);
    const bool whole = remaining_ <= body.size();
    if (is_control(h.op)) {
        if (!whole) {
            buffers().control_len = 0;
            stage_ = stage::payload;
            return false;
        }
        // A control frame whole in the input: handed out where it is.
        const auto len = static_cast<std::size_t>(remaining_);
        if (frame_masked_) apply_mask(body.data(), len, mask_, 0);
        remaining_ = 0;
        r.consumed += len;
        return control_done(r, body.first(len), limits);
    }
    if (h.op != ws::opcode::continuation) {
        message_op_ = h.op;
        compressed_ = h.rsv1;
        streaming_ = limits.fragments && !h.rsv1;
        utf8_.reset();
        in_message_ = true;
        // A whole message in one frame that lies whole in the input is
        // handed out where it is: no copy.
        if (h.fin && whole) {
            const auto len = static_cast<std::size_t>(remaining_);
            if (frame_masked_) apply_mask(body.data(), len, mask_, 0);
            remaining_ = 0;
            r.consumed += len;
            in_message_ = false;
            return message_done(r, body.first(len), limits, false);
        }
    }
    if (streaming_) return stream_piece(body, r);
    if (remaining_ == 0) return frame_done(r, limits);
    stage_ = stage::payload;
    return false;
}

// The bytes of a streamed message's frame at hand in `in` (what is there of
// its payload): unmasked in place, validated, handed out as a piece.
bool machine::stream_piece(std::span<std::byte> in, feed_result& r) {
    const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, in.size()));
    const auto bytes = in.first(take);
    if (frame_masked_) apply_mask(bytes.data(), take, mask_, mask_phase_);
    mask_phase_ = static_cast<std::uint8_t>((mask_phase_ + take) & 3);
    r.consumed += take;
    remaining_ -= take;
    stage_ = remaining_ > 0 ? stage::payload : stage::header;
    const bool last = frame_fin_ && remaining_ == 0;
    if (take == 0 && !last) return false;  // nothing to hand out yet
    if (message_op_ == ws::opcode::text) {
        if (!utf8_.feed(bytes)) return fail(r, close_code::invalid_payload, "invalid UTF-8");
        if (last && !utf8_.complete()) return fail(r, close_code::invalid_payload, "truncated UTF-8");
    }
    if (last) {
        // A streamed message counts once, as a whole (streamed pieces are never compressed).
        detail::count_message(detail::messages_in, (lent_ ? lent_->streamed : 0) + take, false);
        in_message_ = false;
        if (lent_) lent_->streamed = 0;
    } else {
        buffers().streamed += take;
    }
    r.event.kind = event_kind::fragment;
    r.event.op = message_op_;
    r.event.payload = bytes;
    r.event.last = last;
    return true;
}

// Payload bytes of a frame that did not lie whole in one input: unmasked in
// place, validated as they come (UTF-8 fails fast, §8.1), gathered.
bool machine::read_payload(std::span<std::byte> in, feed_result& r, const machine_limits& limits) {
    if (streaming_ && !is_control(frame_op_)) return stream_piece(in, r);
    const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, in.size()));
    const auto bytes = in.first(take);
    if (frame_masked_) apply_mask(bytes.data(), take, mask_, mask_phase_);
    mask_phase_ = static_cast<std::uint8_t>((mask_phase_ + take) & 3);
    r.consumed += take;
    remaining_ -= take;
    if (is_control(frame_op_)) {
        auto& b = buffers();
        std::memcpy(b.control + b.control_len, bytes.data(), take);  // at most 125 in all (§5.5)
        b.control_len = static_cast<std::uint8_t>(b.control_len + take);
    } else {
        if (message_op_ == ws::opcode::text && !compressed_ && !utf8_.feed(bytes))
            return fail(r, close_code::invalid_payload, "invalid UTF-8");
        auto& b = buffers();
        b.message.append(reinterpret_cast<const char*>(bytes.data()), take);
        if (!charge(limits))
            return fail(r, close_code::policy_violation, "server busy: too many large messages at once");
    }
    if (remaining_ > 0) return false;
    stage_ = stage::header;
    return frame_done(r, limits);
}

// A frame gathered in pieces is complete: a control frame is an event, a
// data frame ends its message when it is the final fragment.
bool machine::frame_done(feed_result& r, const machine_limits& limits) {
    if (is_control(frame_op_)) {
        auto& b = buffers();
        const std::span<const std::byte> payload(b.control, b.control_len);
        b.control_len = 0;
        return control_done(r, payload, limits);
    }
    if (!frame_fin_) return false;
    in_message_ = false;
    auto& b = buffers();
    return message_done(r, std::as_bytes(std::span(b.message.data(), b.message.size())), limits, true);
}

// A whole message: inflated when compressed, text validated, handed out.
// `fed`: its bytes went through the UTF-8 validator as they were gathered.
bool machine::message_done(feed_result& r, std::span<const std::byte> payload, const machine_limits& limits, bool fed) {
    if (compressed_) return inflate(r, payload, limits);
    if (message_op_ == ws::opcode::text) {
        if (!fed && !utf8_.feed(payload)) return fail(r, close_code::invalid_payload, "invalid UTF-8");
        if (!utf8_.complete()) return fail(r, close_code::invalid_payload, "truncated UTF-8");
    }
    return deliver(r, payload);
}

void machine::count_sent(std::size_t payload, bool compressed) noexcept {
    detail::count_message(detail::messages_out, payload, compressed);
}

void machine::count_close_sent(std::uint16_t code) noexcept {
    detail::count_close_sent(code);
}

bool machine::deliver(feed_result& r, std::span<const std::byte> payload) noexcept {
    detail::count_message(detail::messages_in, payload.size(), compressed_);
    r.event.kind = event_kind::message;
    r.event.op = message_op_;
    r.event.payload = payload;
    return true;
}

// A compressed message (RFC 7692 §7.2.2) inflates into the thread's scratch
// buffer, which then swaps places with the lent buffer. Over the size limit
// it fails with 1009 (a bomb stops there: §8.1 leaves the limit to us),
// undecodable with 1007; text is then validated whole. How far it may
// inflate: max_message_size, and max_inflate_ratio times its size (always
// 2 MiB), so that the work a bomb causes is bounded by its own size.
bool machine::inflate(feed_result& r, std::span<const std::byte> compressed, const machine_limits& limits) {
    constexpr std::size_t always = 2 * 1024 * 1024;
    const std::size_t ratio = limits.max_inflate_ratio;
    std::size_t limit = limits.max_message_size;
    if (ratio != 0 && compressed.size() <= limits.max_message_size / ratio)
        limit = std::min(limits.max_message_size, std::max(always, compressed.size() * ratio));
    detail::inflate_scratch.clear();
    const inflate_status st =
        zlib_ && zlib_->receives_with_zlib()
            ? zlib_->inflate(compressed, limit, detail::inflate_scratch, limits.compression_memory_budget)
            : decompress_message(compressed, limit, detail::inflate_scratch);
    auto& b = buffers();
    b.message.swap(detail::inflate_scratch);
    release_charge();
    if (st == inflate_status::too_big) {
        ++detail::cutoffs_seen().inflate;
        return fail(r, close_code::message_too_big, "message too big");
    }
    if (st != inflate_status::ok) return fail(r, close_code::invalid_payload, "invalid compressed data");
    const auto payload = std::as_bytes(std::span(b.message.data(), b.message.size()));
    if (message_op_ == ws::opcode::text && !is_valid_utf8(payload))
        return fail(r, close_code::invalid_payload, "invalid UTF-8");
    return deliver(r, payload);
}

// A whole control frame (§5.5).
bool machine::control_done(feed_result& r, std::span<const std::byte> payload, const machine_limits& limits) {
    r.event.payload = payload;
    switch (frame_op_) {
        case ws::opcode::ping:
            r.event.kind = event_kind::ping;
            // §5.5.2: a pong with the same data, owed until the caller
            // writes what is owed, so that pings read together get one
            // pong, for the latest (§5.5.3).
            if (limits.auto_pong && state_ == state::open) {
                keep_pong(payload);
                pong_owed_ = true;
            }
            return true;
        case ws::opcode::pong:
            r.event.kind = event_kind::pong;
            return true;
        default:
            return close_done(r, payload);
    }
}

// The peer's close frame (§5.5.1, §7.1.5): validated, its code kept, the
// echo owed unless this side closed first; nothing more is read.
bool machine::close_done(feed_result& r, std::span<const std::byte> payload) {
    if (payload.size() == 1) return fail(r, close_code::protocol_error, "close frame with a 1-byte body");
    std::uint16_t code = close_code::no_status;
    std::string_view reason;
    if (payload.size() >= 2) {
        code = static_cast<std::uint16_t>((std::to_integer<unsigned>(payload[0]) << 8) |
                                          std::to_integer<unsigned>(payload[1]));
        reason = std::string_view(reinterpret_cast<const char*>(payload.data()) + 2, payload.size() - 2);
        if (!is_valid_close_code(code)) return fail(r, close_code::protocol_error, "invalid close code");
        if (!is_valid_utf8(reason)) return fail(r, close_code::protocol_error, "close reason is not UTF-8");
    }
    detail::count_close_received(code);
    close_received_ = true;
    close_owed_ = !close_sent_;
    state_ = state::closed;
    set_close(code, reason);
    r.event.kind = event_kind::close;
    r.event.code = code;
    r.event.payload = std::as_bytes(std::span(close_reason().data(), close_reason().size()));
    return true;
}

// Fails the connection (§7.1.7): the close frame with `code` is owed, the
// incomplete message is dropped, nothing more is read. `reason` is a string
// literal: the event's payload points at it, not at the reason kept, which a
// send_close() or set_close() before the next feed replaces.
bool machine::fail(feed_result& r, std::uint16_t code, const char* reason) {
    in_message_ = false;
    release_charge();
    if (lent_) {
        lent_->message.clear();
        lent_->streamed = 0;
    }
    state_ = state::closed;
    failed_ = true;
    close_owed_ = !close_sent_;
    set_close(code, reason);
    r.event.kind = event_kind::failure;
    r.event.code = code;
    r.event.payload = std::as_bytes(std::span(reason, std::strlen(reason)));
    return true;
}

}  // namespace cnetmod::ws
