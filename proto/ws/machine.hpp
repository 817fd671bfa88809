/// @file
/// ws::machine: the WebSocket protocol (RFC 6455, with RFC 7692's
/// permessage-deflate) as a state machine over bytes, with no I/O: bytes go
/// in, events come out (a message with its opcode, or a piece of one, a
/// ping, a pong, the peer's close, a failure with the RFC's close code), and frames go out into a
/// send queue the caller names. Fragmentation, interleaved control frames,
/// the close handshake, UTF-8 (fail-fast across fragments), the RSV and
/// deflate rules and the size limits live here and nowhere else; both of the
/// library's APIs (ws::connection's coroutines, the callback routes of
/// ws::socket) drive a machine, and so do the fuzzers.
///
///   ws::machine m(ws::role::server, /*deflate=*/false);
///   for (;;) {                                   // over the bytes received
///       auto r = m.feed(bytes, limits);          // unmasks in place
///       bytes = bytes.subspan(r.consumed);
///       if (r.event.kind == ws::event_kind::none) break;   // needs more bytes
///       handle(r.event);                         // its payload: valid until the next feed
///   }
///   m.write_owed(queue);                         // pongs and close replies the input asked for
///
/// An idle machine is 40 bytes; what a message in pieces needs (its
/// reassembly buffer, a control frame's payload that straddles reads, a
/// pong owed) is lent from a per-thread pool while it is needed.
#pragma once

#include <cnetmod/proto/ws/frame.hpp>
#include <cnetmod/proto/ws/permessage_deflate.hpp>
#include <cnetmod/proto/ws/utf8.hpp>

#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

namespace cnetmod::ws {

/// Which side of a connection an endpoint is.
enum class role : std::uint8_t {
    server,  ///< receives masked frames, sends unmasked ones
    client   ///< masks every frame it sends (RFC 6455 §5.3)
};

/// What the machine consults while reading and sending; one per route (or
/// per set of options), shared by its connections.
struct machine_limits {
    /// A message (all its fragments, inflated) larger than this: 1009.
    std::size_t max_message_size = 16 * 1024 * 1024;
    /// A compressed message inflates to at most this many times its size
    /// (and always to 2 MiB), else 1009; 0: max_message_size alone.
    std::uint32_t max_inflate_ratio = 128;
    /// Bytes of incomplete messages all machines of one thread may hold
    /// together; the one that would pass it fails with 1008.
    std::size_t core_reassembly_budget = 64 * 1024 * 1024;
    /// Messages from this size go compressed when deflate was negotiated
    /// for sending and compressing makes them smaller.
    std::uint32_t compression_threshold = 1024;
    /// With context takeover for what this side sends, messages from this
    /// size go compressed (kept windows make small ones shrink).
    std::uint32_t takeover_compression_threshold = 16;
    std::int8_t compression_level = 6;         ///< libdeflate's 1..12; zlib's is the same, at most 9
    std::int8_t compression_memory_level = 8;  ///< zlib's memLevel, 1..9, for windows kept
    /// Bytes of compression state all machines of one thread may hold: past
    /// it a machine without a compressor attached sends plain, and one
    /// inflating gives its inflater back at once (0: no limit).
    std::size_t compression_memory_budget = 64 * 1024 * 1024;
    /// Answer pings with pongs (RFC 6455 §5.5.2); pings read in one pass get
    /// one pong, for the latest (§5.5.3).
    bool auto_pong = true;
    /// Hand out a message that is not at hand whole (sent in several frames,
    /// or one frame larger than what was received so far) piece by piece as
    /// its bytes arrive (event_kind::fragment), instead of gathering it: no
    /// reassembly buffer, however large the message. A message whole in the
    /// input still comes as event_kind::message, and a compressed one is
    /// always gathered (it inflates whole). Read when a message starts.
    bool fragments = false;
};

/// What a machine's feed() found.
enum class event_kind : std::uint8_t {
    none,      ///< no event: the machine needs more bytes (or reads no more)
    message,   ///< a whole text or binary message
    fragment,  ///< a piece of one (machine_limits::fragments): `last` ends the message
    ping,      ///< a ping (its data in payload)
    pong,      ///< a pong (its data in payload)
    close,     ///< the peer's close frame (code, reason); the reply is owed unless this side closed first
    failure,   ///< the peer broke the protocol: code is the close code owed to it, payload the reason
};

/// One event read by a machine: its kind, and what it carries.
struct event {
    event_kind kind = event_kind::none;  ///< what happened
    ws::opcode op = ws::opcode::text;    ///< message: text or binary
    std::uint16_t code = 0;              ///< close: the peer's code (1005: none); failure: the code to close with
    /// fragment: this piece ends its message (text: the pieces so far are
    /// valid UTF-8 up to a character the next piece may finish; with the
    /// last, the whole message is valid). A message's pieces may be empty
    /// only when last.
    bool last = true;
    /// message, ping, pong: the data; close, failure: the reason. Points
    /// into the bytes fed (unmasked in place) or into the machine's lent
    /// buffer: valid until the next feed(), and while the bytes fed are.
    std::span<const std::byte> payload;
    /// The payload as characters.
    std::string_view text() const noexcept { return {reinterpret_cast<const char*>(payload.data()), payload.size()}; }
};

/// What one feed() did: the input consumed and the event found.
struct feed_result {
    std::size_t consumed = 0;  ///< bytes of the input the machine is done with (the event's payload may lie in them)
    ws::event event;           ///< the event; kind none when more bytes are needed
};

namespace detail {
struct machine_buffers;
class deflate_context;
// Peers cut off by a bound (rare events: relaxed atomics, process-wide; ws::cutoffs() reads them).
struct cutoff_counters {
    std::atomic<std::uint64_t> send_queue{0}, reassembly{0}, message_timeout{0}, dead_peer{0}, inflate{0};
};
cutoff_counters& cutoffs_seen() noexcept;
// A client's masking key (RFC 6455 §5.3: unpredictable): a per-thread
// generator seeded from the OS.
std::uint32_t next_mask_key() noexcept;
}  // namespace detail

/// A frame destination: `space(n)` returns room for n bytes at the end of
/// the caller's send queue (tcp_stream::queue_space, a vector in a test).
template <class Sink>
concept frame_sink = requires(Sink& s, std::size_t n) {
    { s.space(n) } -> std::same_as<std::span<std::byte>>;
};

/// The WebSocket protocol (RFC 6455, with RFC 7692's permessage-deflate) as a state machine over bytes, with no I/O:
/// bytes go in through feed(), events come out, frames go into a sink the caller names. Move-only; one thread drives
/// it.
class machine {
public:
    /// `deflate`: permessage-deflate was negotiated, so compressed messages
    /// may arrive; `deflate_send`: this side compresses too (only where the
    /// peer resets its inflater per message: each message goes as a
    /// DEFLATE stream of its own).
    /// This form: no context takeover and 32 KiB windows both ways.
    explicit machine(ws::role r = ws::role::server, bool deflate = false, bool deflate_send = true) noexcept;
    /// permessage-deflate as the handshake agreed it (context takeover and
    /// windows each way): a machine that keeps a window, or has one smaller
    /// than 32 KiB, holds zlib state (lent while busy, see compression_tick).
    machine(ws::role r, const deflate_agreement& agreed, bool deflate_send = true);
    /// Takes over `other`'s state and buffers; `other` holds no buffer afterwards and is only to be destroyed or
    /// assigned to.
    machine(machine&& other) noexcept;
    /// Frees what this machine holds and takes over `other`'s state.
    machine& operator=(machine&& other) noexcept;
    machine(const machine&) = delete;
    machine& operator=(const machine&) = delete;
    /// Gives back lent buffers and compression state, and the reassembly budget charged.
    ~machine();

    // ---- reading ----

    /// Reads frames from `in` up to the next event; masked payloads are
    /// unmasked in place. After a close or a failure it reads no more
    /// (consumed 0, no event).
    feed_result feed(std::span<std::byte> in, const machine_limits& limits);
    /// Whether the machine still reads: false after a close, a failure, dropped() or abandon().
    bool reading() const noexcept { return state_ < state::closed; }
    /// Between a message's first frame and its last.
    bool in_message() const noexcept { return in_message_; }
    /// Bytes of the incomplete message held (counted against the reassembly budget).
    std::size_t reassembly_bytes() const noexcept;
    /// `payload` is the message event just read, gathered in the machine's
    /// own buffer (it came in several frames or reads, or was inflated):
    /// moves that buffer into `out` instead of copying it (swaps: the machine
    /// keeps whatever storage `out` had, none when `out` is a fresh string as
    /// recv() passes it) and returns true. False, with nothing moved, when the
    /// payload lies in the input.
    bool take_message(std::span<const std::byte> payload, std::string& out) noexcept;

    // ---- sending ----

    /// A data message, compressed when that is negotiated, the message
    /// reaches the threshold and compressing makes it smaller.
    template <frame_sink Sink>
    void send_message(Sink& out, ws::opcode op, std::span<const std::byte> payload, const machine_limits& limits);
    /// One frame as given (a control frame, or a fragment of a message the
    /// caller splits); `rsv1` marks a compressed message's first frame.
    template <frame_sink Sink>
    void send_frame(Sink& out, ws::opcode op, std::span<const std::byte> payload, bool fin = true, bool rsv1 = false);
    /// This side's close frame (RFC 6455 §5.5.1): `code` 0 sends none. After
    /// it nothing else is sent; the machine still reads until the peer's close.
    template <frame_sink Sink>
    void send_close(Sink& out, std::uint16_t code, std::string_view reason);
    /// What the input asked for: the owed pong (for the latest ping), then
    /// the close frame owed (the echo of the peer's close, or the failure's code).
    template <frame_sink Sink>
    void write_owed(Sink& out);
    /// Whether write_owed() has anything to write (a pong or a close frame).
    bool owes_output() const noexcept { return pong_owed_ || close_owed_; }
    /// Whether a close frame is owed (the echo of the peer's, or the failure's).
    bool owes_close() const noexcept { return close_owed_; }
    /// Whether a pong is owed.
    bool pong_owed() const noexcept { return pong_owed_; }
    /// Drops the owed pong (the caller could not queue it and gives up).
    void forget_pong() noexcept { pong_owed_ = false; }

    // ---- state ----

    /// Which side this machine is.
    ws::role role() const noexcept { return role_; }
    /// Whether permessage-deflate was negotiated (compressed messages may arrive).
    bool deflate() const noexcept { return deflate_; }
    /// Whether this side compresses what it sends.
    bool deflate_send() const noexcept { return deflate_send_; }
    /// This side's compressor keeps its window across messages.
    bool send_takeover() const noexcept { return send_takeover_; }

    // ---- compression state (context takeover, small windows) ----

    /// Called once per housekeeping tick: a direction whose zlib stream was
    /// not used since the last call gives it back to the thread's pool and
    /// keeps only its window's bytes. Nothing without zlib state.
    void compression_tick() noexcept;
    /// Bytes of compression state this machine holds now.
    std::size_t compression_memory() const noexcept;
    /// How a message compressed once for many peers (ws::prepared_message)
    /// may reach this one: `plain` (uncompressed), `whole` (the libdeflate
    /// form: a stream of its own ending in a final block), `sync` (the form
    /// compressed from an empty window and ending in a sync flush, for a
    /// peer that keeps one inflater; then note_shared_sent), or `own` (only
    /// compressing it here fits: send_message).
    enum class shared_form : std::uint8_t {
        plain,  ///< uncompressed
        whole,  ///< the libdeflate form: a stream of its own ending in a final block
        sync,   ///< compressed from an empty window, ending in a sync flush; then note_shared_sent
        own     ///< only compressing it here fits: send_message
    };
    /// The form in which a prepared message of `payload_size` bytes may reach this peer.
    shared_form form_for_shared(std::size_t payload_size) const noexcept;
    /// The peer inflated `payload` from a shared sync form: our window takes
    /// it too, so that both sides' windows hold the same bytes.
    void note_shared_sent(std::span<const std::byte> payload);
    /// Neither side has sent or received a close, nor failed.
    bool is_open() const noexcept { return state_ == state::open; }
    /// Whether this side's close frame went out.
    bool close_sent() const noexcept { return close_sent_; }
    /// Whether the peer's close frame came in.
    bool close_received() const noexcept { return close_received_; }
    /// Both close frames have crossed, or the peer failed: TCP may end.
    bool closed() const noexcept { return state_ == state::closed; }
    /// The close code received (or sent, when this side failed or closed
    /// first and the peer's did not come); 1005 when the peer's close had
    /// none, 0 while open.
    std::uint16_t close_code() const noexcept { return close_code_; }
    /// The reason that goes with close_code(); empty when none.
    std::string_view close_reason() const noexcept;
    /// The connection ended without a closing handshake: 1006 unless this
    /// side's close went out and recorded a code. Nothing more is read.
    void dropped() noexcept;
    /// Nothing more is read, and an incomplete message is dropped (the
    /// caller cuts the peer off); the close code is the caller's.
    void abandon() noexcept;
    /// Records a close code and reason decided outside (a timeout, a
    /// cut-off); the close frame is the caller's (send_close).
    void set_close(std::uint16_t code, std::string_view reason);
    /// Frees lent buffers a finished message no longer needs (a reassembly
    /// buffer above a small size, a control payload no pong is owed for).
    void trim() noexcept;

private:
    enum class state : std::uint8_t { open, closing, closed };
    enum class stage : std::uint8_t { header, payload };

    // The frame being read.
    bool read_header(std::span<std::byte> in, feed_result& r, const machine_limits& limits);
    bool read_payload(std::span<std::byte> in, feed_result& r, const machine_limits& limits);
    bool stream_piece(std::span<std::byte> in, feed_result& r);
    std::uint64_t message_bytes() const noexcept;
    bool frame_done(feed_result& r, const machine_limits& limits);
    bool message_done(feed_result& r, std::span<const std::byte> payload, const machine_limits& limits, bool fed);
    bool deliver(feed_result& r, std::span<const std::byte> payload) noexcept;
    bool control_done(feed_result& r, std::span<const std::byte> payload, const machine_limits& limits);
    bool close_done(feed_result& r, std::span<const std::byte> payload);
    bool inflate(feed_result& r, std::span<const std::byte> compressed, const machine_limits& limits);
    bool fail(feed_result& r, std::uint16_t code, const char* reason);
    std::uint16_t check(const frame_header& h, const machine_limits& limits) const noexcept;
    bool charge(const machine_limits& limits) noexcept;
    void release_charge() noexcept;
    detail::machine_buffers& buffers();
    void keep_pong(std::span<const std::byte> payload);
    std::span<const std::byte> owed_pong() const noexcept;
    std::size_t close_body(std::byte* body, std::uint16_t code, std::string_view reason) const noexcept;
    std::size_t encode_header(std::byte* out, ws::opcode op, std::size_t n, bool fin, bool rsv1,
                              std::uint8_t mask[4]) const noexcept;
    std::span<const std::byte> compress(std::span<const std::byte> payload, const machine_limits& limits);
    // Per-core metrics (ws::snapshot): a data message sent, a close frame sent.
    static void count_sent(std::size_t payload, bool compressed) noexcept;
    static void count_close_sent(std::uint16_t code) noexcept;
    std::uint32_t send_threshold(const machine_limits& limits) const noexcept {
        return send_takeover_ ? limits.takeover_compression_threshold : limits.compression_threshold;
    }

    detail::machine_buffers* lent_ = nullptr;
    detail::deflate_context* zlib_ = nullptr;  // context takeover or small windows: see compression_tick  //
                                               // reassembly, control payloads, reason: while needed
    std::uint64_t remaining_ = 0;              // payload bytes of the current frame still to come
    std::uint8_t mask_[4] = {0, 0, 0, 0};
    std::uint8_t have_ = 0;  // bytes of a header that straddles inputs, gathered in the lent buffer
    utf8_validator utf8_;
    std::uint16_t close_code_ = 0;
    ws::role role_;
    state state_ = state::open;
    stage stage_ = stage::header;
    ws::opcode frame_op_ = ws::opcode::text;
    ws::opcode message_op_ = ws::opcode::text;
    std::uint8_t mask_phase_ = 0;
    bool frame_fin_ : 1 = true;
    bool frame_masked_ : 1 = false;
    bool in_message_ : 1 = false;
    bool compressed_ : 1 = false;  // the message's first frame had RSV1
    bool deflate_ : 1 = false;
    bool deflate_send_ : 1 = false;
    bool send_takeover_ : 1 = false;
    bool close_sent_ : 1 = false;
    bool close_received_ : 1 = false;
    bool close_owed_ : 1 = false;  // the close frame the input asked for is still to go
    bool pong_owed_ : 1 = false;
    bool failed_ : 1 = false;     // the peer broke the protocol: the close owed carries our code and reason
    bool streaming_ : 1 = false;  // the message is handed out in pieces (machine_limits::fragments)
};

// ---- sending, inline: the caller's sink type is known here ----

template <frame_sink Sink>
void machine::send_frame(Sink& out, ws::opcode op, std::span<const std::byte> payload, bool fin, bool rsv1) {
    std::byte header[max_header_size];
    std::uint8_t mask[4];
    const std::size_t n = encode_header(header, op, payload.size(), fin, rsv1, mask);
    const std::span<std::byte> room = out.space(n + payload.size());
    std::memcpy(room.data(), header, n);
    if (payload.empty()) return;
    std::memcpy(room.data() + n, payload.data(), payload.size());
    if (role_ == ws::role::client) apply_mask(room.data() + n, payload.size(), mask, 0);  // §5.3
}

template <frame_sink Sink>
void machine::send_message(Sink& out, ws::opcode op, std::span<const std::byte> payload, const machine_limits& limits) {
    if (deflate_send_ && payload.size() >= send_threshold(limits)) {
        const auto compressed = compress(payload, limits);
        if (!compressed.empty()) {
            send_frame(out, op, compressed, true, true);  // RFC 7692 §6: RSV1
            return count_sent(payload.size(), true);
        }
    }
    send_frame(out, op, payload);
    count_sent(payload.size(), false);
}

template <frame_sink Sink>
void machine::send_close(Sink& out, std::uint16_t code, std::string_view reason) {
    if (close_sent_) return;
    std::byte body[125];
    send_frame(out, ws::opcode::close, std::span<const std::byte>(body, close_body(body, code, reason)));
    count_close_sent(code ? code : close_code::no_status);
    close_sent_ = true;
    close_owed_ = false;
    if (close_received_)
        state_ = state::closed;
    else if (state_ == state::open)
        state_ = state::closing;
    if (!close_received_) set_close(code ? code : close_code::no_status, reason);
}

template <frame_sink Sink>
void machine::write_owed(Sink& out) {
    if (pong_owed_) {
        pong_owed_ = false;
        if (!close_sent_) send_frame(out, ws::opcode::pong, owed_pong());
    }
    if (close_owed_) {
        close_owed_ = false;
        if (close_sent_) return;
        std::byte body[125];
        // The failure's code and reason, or the echo of the peer's code (§5.5.1).
        const std::size_t n = failed_ ? close_body(body, close_code_, close_reason())
                                      : close_body(body, close_code_ == close_code::no_status ? 0 : close_code_, {});
        send_frame(out, ws::opcode::close, std::span<const std::byte>(body, n));
        count_close_sent(close_code_);
        close_sent_ = true;
    }
}

}  // namespace cnetmod::ws
