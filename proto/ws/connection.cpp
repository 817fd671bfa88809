#include <cnetmod/engine/spawn.hpp>
#include <cnetmod/proto/ws/connection.hpp>
#include <cnetmod/proto/ws/mask.hpp>
#include <cnetmod/proto/ws/utf8.hpp>

#include <sys/random.h>

#include <cstring>
#include <stdexcept>

namespace cnetmod::ws {
namespace detail {
namespace {

// A fast generator for client masking keys (wyrand), one per thread, seeded
// from the OS. RFC 6455 §5.3 asks for unpredictable keys; a per-thread
// stream from a random seed gives that at a few cycles per key.
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

}  // namespace

class connection_state {
public:
    connection_state(tcp_stream stream, role r, options opts, std::string subprotocol)
        : ctx_(stream.context()),
          stream_(std::move(stream)),
          role_(r),
          opts_(std::move(opts)),
          subprotocol_(std::move(subprotocol)) {}

    enum class phase { open, closing, closed };

    struct event {
        bool control = false;
        ws::opcode op = ws::opcode::text;
        std::span<const std::byte> payload;
    };

    io_context& ctx_;
    tcp_stream stream_;
    role role_;
    options opts_;
    std::string subprotocol_;

    phase phase_ = phase::open;
    std::uint16_t close_code_ = 0;
    std::string close_reason_;
    bool close_sent_ = false;
    bool reading_ = false;
    ws::opcode last_opcode_ = ws::opcode::text;

    // rd_*: the message being received.
    std::string rd_message_;  // payload of a message that did not arrive in one piece
    ws::opcode rd_op_ = ws::opcode::text;
    bool rd_in_message_ = false;  // between a first frame and its final fragment
    utf8_validator rd_utf8_;
    std::size_t rd_pending_consume_ = 0;  // a zero-copy view handed out, consumed at the next read
    std::string rd_control_;              // the payload of the last control frame

    deadline read_deadline() const { return opts_.idle_timeout.count() > 0 ? timeout(opts_.idle_timeout) : deadline{}; }

    // ---- sending ----

    void queue_frame(ws::opcode op, std::span<const std::byte> payload, bool fin = true) {
        std::byte header[max_header_size];
        std::uint8_t mask[4];
        const bool masked = role_ == role::client;  // §5.1: a client masks every frame, a server none
        if (masked) {
            const std::uint32_t key = masks.next();
            std::memcpy(mask, &key, 4);
        }
        const std::size_t n = encode_frame_header(header, op, payload.size(), fin, false, masked ? mask : nullptr);
        auto space = stream_.queue_space(n + payload.size());
        std::memcpy(space.data(), header, n);
        if (!payload.empty()) {
            std::memcpy(space.data() + n, payload.data(), payload.size());
            if (masked) apply_mask(space.data() + n, payload.size(), mask, 0);
        }
    }

    void throw_if_not_open() const {
        if (phase_ != phase::open || !stream_.is_open())
            throw connection_closed(close_code_ ? close_code_ : close_code::abnormal);
    }

    // Backpressure: past the high-water mark, wait for the queue to halve;
    // a peer that never drains is cut off after send_timeout.
    task<void> wait_for_room() {
        if (stream_.queued_bytes() <= opts_.send_high_water) co_return;
        try {
            co_await stream_.drain_to(opts_.send_high_water / 2, timeout(opts_.send_timeout));
        } catch (const std::system_error&) {
            stream_.abort();
            phase_ = phase::closed;
            if (!close_code_) close_code_ = close_code::abnormal;
            throw connection_closed(close_code_);
        }
    }

    task<void> send_message(ws::opcode op, std::span<const std::byte> payload) {
        throw_if_not_open();
        queue_frame(op, payload);
        co_await wait_for_room();
    }

    void queue_close(std::uint16_t code, std::string_view reason) {
        std::byte body[125];
        std::size_t n = 0;
        if (code != close_code::no_status && code != 0) {
            body[0] = static_cast<std::byte>(code >> 8);
            body[1] = static_cast<std::byte>(code & 0xFF);
            const std::size_t r = std::min<std::size_t>(reason.size(), 123);
            if (r) std::memcpy(body + 2, reason.data(), r);
            n = 2 + r;
        }
        if (stream_.is_open()) {
            try {
                queue_frame(ws::opcode::close, std::span<const std::byte>(body, n));
            } catch (const std::system_error&) {
            }
        }
        close_sent_ = true;
    }

    // Ends the TCP connection after the closing handshake: flush, FIN, and
    // wait (bounded) for the peer's FIN.
    task<void> finish_tcp() {
        phase_ = phase::closed;
        if (!stream_.is_open()) co_return;
        co_await stream_.close(timeout(opts_.close_timeout));
    }

    // Fails the connection (RFC 6455 §7.1.7) with `code`.
    task<void> fail(std::uint16_t code, std::string_view reason) {
        if (!close_sent_) queue_close(code, reason);
        close_code_ = code;
        close_reason_ = reason;
        co_await finish_tcp();
    }

    // The TCP connection ended without a closing handshake.
    void dropped() {
        phase_ = phase::closed;
        if (!close_code_ || !close_sent_) close_code_ = close_code::abnormal;
    }

    // ---- receiving ----

    // Waiting for bytes without a coroutine frame of its own: the outcome
    // comes back as a value, so the caller decides how the connection ends.
    enum class read_status { data, ended, idle, failed };
    class bytes_awaiter {
    public:
        explicit bytes_awaiter(tcp_stream::receive_awaiter inner) noexcept : inner_(inner) {}
        bool await_ready() const noexcept { return inner_.await_ready(); }
        void await_suspend(std::coroutine_handle<> h) { inner_.await_suspend(h); }
        read_status await_resume() noexcept {
            try {
                return inner_.await_resume().empty() ? read_status::ended : read_status::data;
            } catch (const std::system_error& e) {
                return e.code() == std::errc::timed_out ? read_status::idle : read_status::failed;
            }
        }

    private:
        tcp_stream::receive_awaiter inner_;
    };

    bytes_awaiter await_bytes(deadline d) noexcept { return bytes_awaiter(stream_.recv_view(d)); }

    // The connection ended while reading: an idle open connection is closed
    // with 1001; end of stream or a reset drops it.
    task<void> read_ended(read_status st) {
        if (st == read_status::idle && phase_ == phase::open) {
            co_await fail(close_code::going_away, "idle timeout");
            co_return;
        }
        dropped();
        if (st != read_status::ended) stream_.abort();
    }

    // Reads a payload into `out`, unmasking in place and validating UTF-8 as
    // it goes. False when the connection ended or was failed.
    task<bool> read_payload(const frame_header& h, std::string& out, utf8_validator* text, deadline d) {
        std::uint64_t remaining = h.payload_length;
        std::size_t phase = 0;
        while (remaining > 0) {
            if (const auto st = co_await await_bytes(d); st != read_status::data) {
                co_await read_ended(st);
                co_return false;
            }
            auto view = stream_.writable_view();
            const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, view.size()));
            if (h.masked) apply_mask(view.data(), take, h.mask, phase);
            phase = (phase + take) & 3;
            if (text && !text->feed(view.first(take))) {
                stream_.consume(take);
                co_await fail(close_code::invalid_payload, "invalid UTF-8");  // §8.1: fail fast
                co_return false;
            }
            out.append(reinterpret_cast<const char*>(view.data()), take);
            stream_.consume(take);
            remaining -= take;
        }
        co_return true;
    }

    // Checks what the header alone cannot: masking direction, reserved bits,
    // the fragmentation sequence and the size limit.
    std::optional<std::uint16_t> check(const frame_header& h) const {
        // §5.1: a server closes on an unmasked frame, a client on a masked one.
        if (h.masked != (role_ == role::server)) return close_code::protocol_error;
        // §5.2: RSV bits without a negotiated extension.
        if (h.rsv1 || h.rsv2 || h.rsv3) return close_code::protocol_error;
        if (!is_control(h.op)) {
            // §5.4: continuation only inside a message, a new message only outside one.
            if (h.op == ws::opcode::continuation && !rd_in_message_) return close_code::protocol_error;
            if (h.op != ws::opcode::continuation && rd_in_message_) return close_code::protocol_error;
            const std::uint64_t so_far = rd_in_message_ ? rd_message_.size() : 0;
            if (h.payload_length > opts_.max_message_size || so_far + h.payload_length > opts_.max_message_size)
                return close_code::message_too_big;
        }
        return std::nullopt;
    }

    // The next message or control frame. False once the connection is closed.
    task<bool> next_event(event& out, deadline d) {
        if (rd_pending_consume_) {
            stream_.consume(rd_pending_consume_);
            rd_pending_consume_ = 0;
        }
        if (!rd_in_message_) rd_message_.clear();
        for (;;) {
            if (phase_ == phase::closed) co_return false;
            // The frame header, gathered across buffers when it straddles them.
            std::optional<frame_header> h;
            std::byte header_bytes[max_header_size];
            std::size_t have = 0;
            while (!h) {
                if (const auto st = co_await await_bytes(d); st != read_status::data) {
                    co_await read_ended(st);
                    co_return false;
                }
                auto view = stream_.writable_view();
                const std::size_t n = std::min(view.size(), max_header_size - have);
                std::memcpy(header_bytes + have, view.data(), n);
                const auto r = parse_frame_header(std::span<const std::byte>(header_bytes, have + n));
                if (r.state == header_parse_result::status::invalid) {
                    co_await fail(r.close, "invalid frame header");
                    co_return false;
                }
                if (r.state == header_parse_result::status::complete) {
                    stream_.consume(r.size - have);
                    h = r.header;
                } else {
                    stream_.consume(n);
                    have += n;
                }
            }
            if (auto code = check(*h)) {
                co_await fail(*code, *code == close_code::message_too_big ? "message too big" : "protocol error");
                co_return false;
            }
            if (is_control(h->op)) {
                rd_control_.clear();
                if (!co_await read_payload(*h, rd_control_, nullptr, d)) co_return false;
                out.control = true;
                out.op = h->op;
                out.payload = std::as_bytes(std::span(rd_control_.data(), rd_control_.size()));
                if (h->op == ws::opcode::close) {
                    co_await on_close_frame();
                    co_return true;
                }
                if (h->op == ws::opcode::ping && opts_.auto_pong && phase_ == phase::open)
                    queue_frame(ws::opcode::pong, out.payload);  // §5.5.2: same application data
                co_return true;
            }
            const bool first = h->op != ws::opcode::continuation;
            if (first) {
                rd_op_ = h->op;
                rd_utf8_.reset();
            }
            utf8_validator* text = rd_op_ == ws::opcode::text ? &rd_utf8_ : nullptr;
            // A whole message in one frame that lies entirely in the current
            // buffer is handed out where it is: no copy.
            if (first && h->fin && h->payload_length > 0) {
                auto view = stream_.writable_view();
                if (view.size() >= h->payload_length) {
                    const auto n = static_cast<std::size_t>(h->payload_length);
                    if (h->masked) apply_mask(view.data(), n, h->mask, 0);
                    if (text && (!text->feed(view.first(n)) || !text->complete())) {
                        stream_.consume(n);
                        co_await fail(close_code::invalid_payload, "invalid UTF-8");
                        co_return false;
                    }
                    out.control = false;
                    out.op = rd_op_;
                    out.payload = view.first(n);
                    rd_pending_consume_ = n;
                    co_return true;
                }
            }
            rd_in_message_ = true;
            if (!co_await read_payload(*h, rd_message_, text, d)) co_return false;
            if (!h->fin) continue;
            rd_in_message_ = false;
            if (text && !text->complete()) {
                co_await fail(close_code::invalid_payload, "truncated UTF-8");
                co_return false;
            }
            out.control = false;
            out.op = rd_op_;
            out.payload = std::as_bytes(std::span(rd_message_.data(), rd_message_.size()));
            co_return true;
        }
    }

    // The peer's close frame (§5.5.1, §7.1.5): validate, answer, end TCP.
    task<void> on_close_frame() {
        std::uint16_t code = close_code::no_status;
        std::string_view reason;
        if (rd_control_.size() == 1) {
            co_await fail(close_code::protocol_error, "close frame with a 1-byte body");
            co_return;
        }
        if (rd_control_.size() >= 2) {
            code = static_cast<std::uint16_t>((static_cast<std::uint8_t>(rd_control_[0]) << 8) |
                                              static_cast<std::uint8_t>(rd_control_[1]));
            reason = std::string_view(rd_control_).substr(2);
            if (!is_valid_close_code(code)) {
                co_await fail(close_code::protocol_error, "invalid close code");
                co_return;
            }
            if (!is_valid_utf8(reason)) {
                co_await fail(close_code::protocol_error, "close reason is not UTF-8");
                co_return;
            }
        }
        const bool we_started = close_sent_;
        close_code_ = code;
        close_reason_ = std::string(reason);
        if (!we_started) queue_close(code, {});  // echo the peer's code
        co_await finish_tcp();
    }
};

}  // namespace detail

connection::connection() noexcept = default;
connection::connection(tcp_stream stream, role r, options opts, std::string subprotocol)
    : state_(
          std::make_unique<detail::connection_state>(std::move(stream), r, std::move(opts), std::move(subprotocol))) {}
connection::connection(connection&&) noexcept = default;
connection& connection::operator=(connection&&) noexcept = default;

namespace {
// Closes a connection that its owner dropped while open: close frame 1001,
// then the TCP closing, in the background.
task<void> close_in_background(std::unique_ptr<detail::connection_state> s) {
    try {
        if (s->phase_ == detail::connection_state::phase::open) s->queue_close(close_code::going_away, "");
        co_await s->finish_tcp();
    } catch (const std::system_error&) {
    }
}
}  // namespace

connection::~connection() {
    if (!state_ || !state_->stream_.is_open()) return;
    io_context& ctx = state_->ctx_;
    if (ctx.closing() || !ctx.running_in_this_thread()) return;  // the stream's destructor resets it
    spawn(ctx, close_in_background(std::move(state_)));
}

task<std::optional<std::string>> connection::recv() {
    if (!state_) co_return std::nullopt;
    auto& s = *state_;
    s.reading_ = true;
    detail::connection_state::event ev;
    for (;;) {
        if (!co_await s.next_event(ev, s.read_deadline())) break;
        if (ev.control) continue;
        s.reading_ = false;
        s.last_opcode_ = ev.op;
        co_return std::string(reinterpret_cast<const char*>(ev.payload.data()), ev.payload.size());
    }
    s.reading_ = false;
    co_return std::nullopt;
}

task<std::optional<frame>> connection::recv_frame() {
    if (!state_) co_return std::nullopt;
    auto& s = *state_;
    if (s.phase_ == detail::connection_state::phase::closed) co_return std::nullopt;
    s.reading_ = true;
    detail::connection_state::event ev;
    const bool got = co_await s.next_event(ev, s.read_deadline());
    s.reading_ = false;
    if (!got) co_return std::nullopt;
    co_return frame{ev.op, std::string(reinterpret_cast<const char*>(ev.payload.data()), ev.payload.size())};
}

task<std::optional<message_view>> connection::recv_view() {
    if (!state_) co_return std::nullopt;
    auto& s = *state_;
    s.reading_ = true;
    detail::connection_state::event ev;
    for (;;) {
        if (!co_await s.next_event(ev, s.read_deadline())) break;
        if (ev.control) continue;
        s.reading_ = false;
        co_return message_view{ev.op, ev.payload};
    }
    s.reading_ = false;
    co_return std::nullopt;
}

task<void> connection::send(std::string_view text) {
    if (!state_) throw connection_closed(close_code::abnormal);
    co_await state_->send_message(opcode::text, std::as_bytes(std::span(text.data(), text.size())));
}

task<void> connection::send_binary(std::span<const std::uint8_t> data) {
    if (!state_) throw connection_closed(close_code::abnormal);
    co_await state_->send_message(opcode::binary, std::as_bytes(data));
}

task<void> connection::send_binary(std::span<const std::byte> data) {
    if (!state_) throw connection_closed(close_code::abnormal);
    co_await state_->send_message(opcode::binary, data);
}

task<void> connection::send_binary(std::string_view bytes) {
    if (!state_) throw connection_closed(close_code::abnormal);
    co_await state_->send_message(opcode::binary, std::as_bytes(std::span(bytes.data(), bytes.size())));
}

task<void> connection::send_fragmented(std::string_view payload, std::size_t fragment_size, ws::opcode op) {
    if (!state_) throw connection_closed(close_code::abnormal);
    if (fragment_size == 0) throw std::invalid_argument("cnetmod: send_fragmented needs a fragment size above 0");
    auto& s = *state_;
    s.throw_if_not_open();
    std::size_t offset = 0;
    do {
        const std::size_t n = std::min(fragment_size, payload.size() - offset);
        const bool fin = offset + n == payload.size();
        s.queue_frame(offset == 0 ? op : opcode::continuation, std::as_bytes(std::span(payload.data() + offset, n)),
                      fin);
        offset += n;
    } while (offset < payload.size());
    co_await s.wait_for_room();
}

task<void> connection::ping(std::string_view data) {
    if (!state_) throw connection_closed(close_code::abnormal);
    if (data.size() > 125) throw std::invalid_argument("cnetmod: a ping carries at most 125 bytes");
    co_await state_->send_message(opcode::ping, std::as_bytes(std::span(data.data(), data.size())));
}

task<void> connection::pong(std::string_view data) {
    if (!state_) throw connection_closed(close_code::abnormal);
    if (data.size() > 125) throw std::invalid_argument("cnetmod: a pong carries at most 125 bytes");
    co_await state_->send_message(opcode::pong, std::as_bytes(std::span(data.data(), data.size())));
}

task<void> connection::close(std::uint16_t code, std::string_view reason) {
    if (!is_valid_close_code(code))
        throw std::invalid_argument("cnetmod: close code " + std::to_string(code) + " may not be sent");
    if (reason.size() > 123) throw std::invalid_argument("cnetmod: a close reason is at most 123 bytes");
    if (!state_) co_return;
    auto& s = *state_;
    if (s.phase_ != detail::connection_state::phase::open) co_return;
    s.queue_close(code, reason);
    s.phase_ = detail::connection_state::phase::closing;
    s.close_code_ = code;
    s.close_reason_ = std::string(reason);
    if (s.reading_) co_return;  // the reader sees the peer's answer and ends TCP
    // Read (and drop) until the peer's close frame, within close_timeout.
    const deadline d = timeout(s.opts_.close_timeout);
    detail::connection_state::event ev;
    while (s.phase_ != detail::connection_state::phase::closed) {
        if (!co_await s.next_event(ev, d)) break;
    }
    if (s.stream_.is_open()) co_await s.finish_tcp();
}

bool connection::is_open() const noexcept {
    return state_ && state_->phase_ == detail::connection_state::phase::open && state_->stream_.is_open();
}
std::uint16_t connection::close_code() const noexcept {
    return state_ ? state_->close_code_ : 0;
}
std::string_view connection::close_reason() const noexcept {
    return state_ ? std::string_view(state_->close_reason_) : "";
}
ws::opcode connection::last_opcode() const noexcept {
    return state_ ? state_->last_opcode_ : opcode::text;
}
std::string_view connection::subprotocol() const noexcept {
    return state_ ? std::string_view(state_->subprotocol_) : "";
}
io_context& connection::context() const noexcept {
    return state_->ctx_;
}
std::size_t connection::buffered_amount() const noexcept {
    return state_ ? state_->stream_.queued_bytes() : 0;
}

}  // namespace cnetmod::ws
