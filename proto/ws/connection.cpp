// ws::connection: the seed's coroutine API over the connection core. A read
// is an awaiter in the caller's frame that feeds the protocol machine from
// the stream's buffers until an event answers it; a send is queued at the
// call and awaited only under backpressure.
#include <cnetmod/engine/detail/reactor.hpp>
#include <cnetmod/engine/spawn.hpp>
#include <cnetmod/proto/ws/connection.hpp>
#include <cnetmod/proto/ws/detail/connection_state.hpp>

#include <stdexcept>

namespace cnetmod::ws {

namespace {
// Closes a connection that its owner dropped while open: close frame 1001,
// then the TCP closing, in the background.
task<void> close_in_background(std::unique_ptr<detail::connection_state> s) {
    try {
        if (s->machine_.is_open()) s->queue_close(close_code::going_away, "");
        s->closed_ = true;
        if (s->stream_.is_open()) co_await s->stream_.close(timeout(s->settings().close_timeout));
    } catch (const std::system_error&) {
    }
}

// Ends the TCP connection after the closing handshake: flush, FIN, and wait
// (bounded) for the peer's FIN.
task<void> finish_tcp(detail::connection_state& s) {
    s.closed_ = true;
    if (!s.stream_.is_open()) co_return;
    co_await s.stream_.close(timeout(s.settings().close_timeout));
}

std::span<const std::byte> bytes_of(std::string_view s) noexcept {
    return std::as_bytes(std::span(s.data(), s.size()));
}
}  // namespace

connection::connection() noexcept = default;
connection::connection(tcp_stream stream, role r, const options& opts, std::string subprotocol, bool deflate,
                       bool deflate_send) {
    detail::route_settings* settings = detail::intern_settings(stream.context(), opts, subprotocol);
    try {
        state_ = std::make_unique<detail::connection_state>(std::move(stream), r, *settings, deflate, deflate_send,
                                                            !subprotocol.empty());
    } catch (...) {
        settings->release();
        throw;
    }
    settings->release();  // the state holds its own reference
}
connection::connection(tcp_stream stream, role r, const options& opts, std::string subprotocol,
                       const deflate_agreement& agreed, bool deflate_send) {
    detail::route_settings* settings = detail::intern_settings(stream.context(), opts, subprotocol);
    try {
        state_ = std::make_unique<detail::connection_state>(std::move(stream), r, *settings, agreed, deflate_send,
                                                            !subprotocol.empty());
    } catch (...) {
        settings->release();
        throw;
    }
    settings->release();  // the state holds its own reference
}
connection::connection(connection&&) noexcept = default;
connection& connection::operator=(connection&&) noexcept = default;

connection::~connection() {
    if (!state_ || !state_->stream_.is_open()) return;
    io_context& ctx = state_->context();
    if (cnetmod::detail::reactor_of(ctx).closing() || !ctx.running_in_this_thread())
        return;  // the stream's destructor resets it
    spawn(ctx, close_in_background(std::move(state_)));
}

// ---- reading ----

connection::read_awaiter::read_awaiter(detail::connection_state* s, bool skip_control, deadline close_deadline) noexcept
    : read_waiter(&read_awaiter::on_readable), s_(s), deadline_(close_deadline), skip_control_(skip_control) {}

bool connection::read_awaiter::await_ready() {
    if (!s_) return true;
    s_->reading_ = true;
    if (!deadline_.is_set()) deadline_ = s_->read_deadline();
    if (s_->pending_consume_) {
        s_->stream_.consume(std::exchange(s_->pending_consume_, 0));
    }
    step_ = advance();
    return step_ == step::done;
}

void connection::read_awaiter::await_suspend(std::coroutine_handle<> h) {
    h_ = h;
    continue_read();
}

connection::read_awaiter::step connection::read_awaiter::advance() {
    const step st = pump();
    s_->write_owed();
    return st;
}

// Runs the machine over what is buffered, up to an event that answers this
// read, or until it needs more bytes.
connection::read_awaiter::step connection::read_awaiter::pump() {
    detail::connection_state& s = *s_;
    for (;;) {
        if (s.closed_ || !s.machine_.reading()) return step::done;
        const auto view = s.stream_.writable_view();
        if (view.empty()) {
            if (s.stream_.at_end()) return read_ended(s.stream_.finish_wait_readable());
            return step::wait;
        }
        s.note_activity();
        const bool was_in_message = s.machine_.in_message();
        const feed_result r = s.machine_.feed(view, s.limits());
        if (!was_in_message && s.machine_.in_message()) s.msg_start_ms_ = s.last_rx_ms_;
        switch (r.event.kind) {
            case event_kind::none:
            case event_kind::fragment:  // never: a connection's limits gather messages
                s.stream_.consume(r.consumed);
                continue;
            case event_kind::ping:
            case event_kind::pong:
                if (skip_control_) {
                    s.stream_.consume(r.consumed);
                    continue;
                }
                [[fallthrough]];
            case event_kind::message:
                // The payload may lie in the buffer: consumed at the next read.
                s.pending_consume_ = static_cast<std::uint32_t>(r.consumed);
                event_ = r.event;
                got_ = true;
                return step::done;
            case event_kind::close:
                s.stream_.consume(r.consumed);
                event_ = r.event;
                close_event_ = true;
                return step::finish;
            case event_kind::failure:
                s.stream_.consume(r.consumed);
                return step::finish;
        }
    }
}

// The stream ended while reading: an idle open connection is closed with
// 1001; end of stream or a reset drops it.
connection::read_awaiter::step connection::read_awaiter::read_ended(tcp_stream::read_status st) {
    detail::connection_state& s = *s_;
    if (st == tcp_stream::read_status::timed_out && s.machine_.is_open()) {
        s.queue_close(close_code::going_away, "idle timeout");
        s.machine_.abandon();
        return step::finish;
    }
    s.dropped();
    if (st != tcp_stream::read_status::ended) s.stream_.abort();
    return step::done;
}

void connection::read_awaiter::on_readable(read_waiter* w) {
    auto* a = static_cast<read_awaiter*>(w);
    const auto st = a->s_->stream_.finish_wait_readable();
    a->step_ = st == tcp_stream::read_status::data ? a->advance() : a->read_ended(st);
    a->continue_read();
}

void connection::read_awaiter::continue_read() {
    if (step_ == step::wait)
        s_->stream_.wait_readable(*this, deadline_);
    else if (step_ == step::finish)
        spawn(s_->context(), finish_then_resume(this));
    else
        h_.resume();
}

// The closing handshake's end (flush, FIN, the peer's FIN), then the reader goes on.
task<void> connection::read_awaiter::finish_then_resume(read_awaiter* a) {
    try {
        co_await finish_tcp(*a->s_);
    } catch (const std::system_error&) {
    }
    if (a->close_event_ && !a->skip_control_) a->got_ = true;
    a->h_.resume();  // `a` may be gone after this
}

const event* connection::read_awaiter::finish_read() noexcept {
    if (!s_) return nullptr;
    s_->reading_ = false;
    return got_ ? &event_ : nullptr;
}

namespace {
// A message gathered in the machine's buffer is moved out, not copied.
std::string message_string(detail::connection_state& s, const event& ev) {
    std::string out;
    if (!s.machine_.take_message(ev.payload, out)) out.assign(ev.text());
    return out;
}
}  // namespace

std::optional<std::string> connection::recv_awaiter::await_resume() {
    const event* ev = finish_read();
    if (!ev) return std::nullopt;
    s_->last_opcode_ = ev->op;
    return message_string(*s_, *ev);
}

std::optional<frame> connection::recv_frame_awaiter::await_resume() {
    const event* ev = finish_read();
    if (!ev) return std::nullopt;
    switch (ev->kind) {
        case event_kind::message:
            s_->last_opcode_ = ev->op;
            return frame{ev->op, message_string(*s_, *ev)};
        case event_kind::ping:
            return frame{opcode::ping, std::string(ev->text())};
        case event_kind::pong:
            return frame{opcode::pong, std::string(ev->text())};
        default: {
            // The peer's close frame as it came: its code, then its reason.
            std::string body;
            if (ev->code != close_code::no_status) {
                body += static_cast<char>(ev->code >> 8);
                body += static_cast<char>(ev->code & 0xFF);
                body += s_->machine_.close_reason();
            }
            return frame{opcode::close, std::move(body)};
        }
    }
}

std::optional<message_view> connection::recv_view_awaiter::await_resume() {
    const event* ev = finish_read();
    if (!ev) return std::nullopt;
    s_->last_opcode_ = ev->op;
    return message_view{ev->op, ev->payload};
}

connection::recv_awaiter connection::recv() {
    return recv_awaiter(state_.get());
}

connection::recv_frame_awaiter connection::recv_frame() {
    return recv_frame_awaiter(state_.get());
}

connection::recv_view_awaiter connection::recv_view() {
    return recv_view_awaiter(state_.get());
}

// ---- sending ----

bool connection::send_awaiter::await_ready() const noexcept {
    return s_->stream_.queued_bytes() <= s_->settings().send_high_water;
}

void connection::send_awaiter::await_suspend(std::coroutine_handle<> h) {
    h_ = h;
    spawn(s_->context(), wait_for_room(this));
}

void connection::send_awaiter::await_resume() const {
    if (failed_) throw connection_closed(s_->machine_.close_code() ? s_->machine_.close_code() : close_code::abnormal);
}

// Backpressure: past the high-water mark, wait for the queue to halve; a
// peer that never drains is cut off after send_timeout.
task<void> connection::send_awaiter::wait_for_room(send_awaiter* a) {
    detail::connection_state& s = *a->s_;
    try {
        co_await s.stream_.drain_to(s.settings().send_high_water / 2, timeout(s.settings().send_timeout));
    } catch (const std::system_error&) {
        s.stream_.abort();
        s.dropped();
        a->failed_ = true;
    }
    a->h_.resume();
}

connection::send_awaiter connection::send(std::string_view text) {
    return send_binary_as(opcode::text, bytes_of(text));
}

connection::send_awaiter connection::send_binary(std::span<const std::uint8_t> data) {
    return send_binary_as(opcode::binary, std::as_bytes(data));
}

connection::send_awaiter connection::send_binary(std::span<const std::byte> data) {
    return send_binary_as(opcode::binary, data);
}

connection::send_awaiter connection::send_binary(std::string_view bytes) {
    return send_binary_as(opcode::binary, bytes_of(bytes));
}

connection::send_awaiter connection::send_binary_as(ws::opcode op, std::span<const std::byte> payload) {
    if (!state_) throw connection_closed(close_code::abnormal);
    state_->throw_if_not_open();
    if (is_control(op))
        state_->queue_frame(op, payload);
    else
        state_->queue_data(op, payload);
    return send_awaiter(state_.get());
}

void connection::queue_message(ws::opcode op, std::span<const std::byte> payload) {
    if (!state_) throw connection_closed(close_code::abnormal);
    if (op != opcode::text && op != opcode::binary)
        throw std::invalid_argument("cnetmod: queue_message sends text or binary messages");
    state_->throw_if_not_open();
    state_->queue_data(op, payload);
}

void connection::queue_prepared(const prepared_message& message) {
    if (!state_) throw connection_closed(close_code::abnormal);
    state_->throw_if_not_open();
    state_->queue_prepared(message);
}

connection::send_awaiter connection::send(const prepared_message& message) {
    queue_prepared(message);
    return send_awaiter(state_.get());
}

connection::send_awaiter connection::send_fragmented(std::string_view payload, std::size_t fragment_size,
                                                     ws::opcode op) {
    if (!state_) throw connection_closed(close_code::abnormal);
    if (fragment_size == 0) throw std::invalid_argument("cnetmod: send_fragmented needs a fragment size above 0");
    auto& s = *state_;
    s.throw_if_not_open();
    s.admit();  // once for the message: its own fragments do not count against it
    std::size_t offset = 0;
    do {
        const std::size_t n = std::min(fragment_size, payload.size() - offset);
        const bool fin = offset + n == payload.size();
        s.put_frame(offset == 0 ? op : opcode::continuation, bytes_of(payload.substr(offset, n)), fin);
        offset += n;
    } while (offset < payload.size());
    return send_awaiter(state_.get());
}

connection::send_awaiter connection::ping(std::string_view data) {
    if (data.size() > 125) throw std::invalid_argument("cnetmod: a ping carries at most 125 bytes");
    return send_binary_as(opcode::ping, bytes_of(data));
}

connection::send_awaiter connection::pong(std::string_view data) {
    if (data.size() > 125) throw std::invalid_argument("cnetmod: a pong carries at most 125 bytes");
    return send_binary_as(opcode::pong, bytes_of(data));
}

task<void> connection::close(std::uint16_t code, std::string_view reason) {
    if (!is_valid_close_code(code))
        throw std::invalid_argument("cnetmod: close code " + std::to_string(code) + " may not be sent");
    if (reason.size() > 123) throw std::invalid_argument("cnetmod: a close reason is at most 123 bytes");
    if (!state_) co_return;
    auto& s = *state_;
    if (!s.open()) co_return;
    s.queue_close(code, reason);
    if (s.reading_) co_return;  // the reader sees the peer's answer and ends TCP
    // Read (and drop) until the peer's close frame, within close_timeout.
    const deadline d = timeout(s.settings().close_timeout);
    while (!s.closed_) {
        if (!co_await recv_frame_awaiter(&s, d)) break;
    }
    if (s.stream_.is_open()) co_await finish_tcp(s);
}

// ---- state ----

bool connection::is_open() const noexcept {
    return state_ && state_->open();
}
std::uint16_t connection::close_code() const noexcept {
    return state_ ? state_->machine_.close_code() : 0;
}
std::string_view connection::close_reason() const noexcept {
    return state_ ? state_->machine_.close_reason() : "";
}
ws::opcode connection::last_opcode() const noexcept {
    return state_ ? state_->last_opcode_ : opcode::text;
}
std::string_view connection::subprotocol() const noexcept {
    return state_ ? state_->subprotocol() : "";
}
io_context& connection::context() const noexcept {
    return state_->context();
}
bool connection::compression() const noexcept {
    return state_ && state_->machine_.deflate();
}
std::size_t connection::buffered_amount() const noexcept {
    return state_ ? state_->stream_.queued_bytes() : 0;
}

}  // namespace cnetmod::ws
