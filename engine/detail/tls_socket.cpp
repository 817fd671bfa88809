#include <cnetmod/engine/detail/provided_buffer_ring.hpp>
#include <cnetmod/engine/detail/tls_socket.hpp>

#include <system_error>

#include <cstring>
#include <memory>

namespace cnetmod::detail {

tls_socket::tls_socket(const socket_core& plain, const tls_context& context, std::string_view server_name)
    : socket_core(relocating{}, plain), session_(context, server_name) {
    tls_ = true;
}

void tls_socket::start(socket_core*& core, const tls_context& context, std::string_view server_name,
                       deadline handshake_deadline) {
    socket_core* plain = core;
    if (plain->is_tls()) throw std::logic_error("cnetmod: TLS is already on for this stream");
    // Nothing may name the plain core any more: no operation in flight, no
    // hook queued, nothing received or queued, no reader.
    if (plain->buffered() > 0 || plain->pending_ > 0 || plain->rx_ || plain->tx_ || plain->reader_)
        throw std::logic_error(
            "cnetmod: start_tls on a stream that has already received or sent (TLS starts on a new connection)");
    auto* s = new tls_socket(*plain, context, server_name);
    // The steps that may throw come before the plain core is gone, and leave nothing behind.
    try {
        if (handshake_deadline.is_set())
            s->handshake_timer_ = s->reactor_->arm_wait_timer(handshake_deadline, &tls_socket::on_handshake_timeout, s);
        if (!context.is_server()) {
            s->session_.handshake();  // the ClientHello
            s->tx();
        }
    } catch (...) {
        s->disarm_handshake_timer();
        s->fd_ = -1;  // still the plain core's
        s->slot_ = -1;
        s->destroy();
        throw;
    }
    plain->fd_ = -1;  // the descriptor (and its registered slot) are the TLS socket's now
    plain->slot_ = -1;
    plain->destroy();
    core = s;
    if (s->session_.pending_output() > 0) s->schedule_flush();
    s->ensure_receiving();  // may throw (a full SQ): the stream is the TLS socket's by then
}

void tls_socket::received_records(std::byte* data, std::size_t size, int buffer_id) {
    session_.feed(std::span<const std::byte>(data, size));
    release_chunk(received_chunk{data, size, buffer_id});  // the session copied it: the buffer goes back now
    if (rx_error_ == 0) pump();
}

// Advances the handshake, then moves whatever decrypts into the receive queue.
void tls_socket::pump() {
    if (!session_.handshake_done()) {
        const auto st = session_.handshake();
        if (session_.pending_output() > 0) {
            schedule_flush();
        }
        if (st == tls_session::step::failed) return fail(EPROTO);
        if (st == tls_session::step::want_more) return;
        disarm_handshake_timer();
        if (tx_ && tx_->queue.has_queued()) schedule_flush();  // plaintext held for the handshake
    }
    // Decrypted into per-core scratch, then into a chunk of its exact size.
    constexpr std::size_t scratch_size = 64 * 1024;
    thread_local std::unique_ptr<std::byte[]> scratch(new std::byte[scratch_size]);
    while (std::size_t n = session_.read(std::span<std::byte>(scratch.get(), scratch_size))) {
        auto* copy = new std::byte[n];
        std::memcpy(copy, scratch.get(), n);
        push_chunk(copy, n, -1);
    }
    if (session_.pending_output() > 0) {  // a KeyUpdate's answer, an alert
        schedule_flush();
    }
    if (session_.failed())
        fail(EPROTO);
    else if (session_.closed_by_peer())
        eof_ = true;
}

// The session failed (or its handshake ran out of time): the reader sees a
// receive error naming the reason, and the alert goes out if it can.
void tls_socket::fail(int error) noexcept {
    disarm_handshake_timer();
    fail_receive(error);
    // Nothing more can be sent (but the alert OpenSSL may have queued).
    if (tx_error_ == 0) tx_error_ = static_cast<std::uint16_t>(error);
    drop_queued();
    wake_writers();
}

void tls_socket::on_handshake_timeout(void* p) {
    auto* s = static_cast<tls_socket*>(p);
    s->handshake_timer_ = nullptr;
    s->fail(ETIMEDOUT);
    s->wake_reader();
}

void tls_socket::disarm_handshake_timer() noexcept {
    if (handshake_timer_) reactor_->disarm_wait_timer(std::exchange(handshake_timer_, nullptr));
}

void tls_socket::flush_records() {
    if (send_inflight_ || fd_ < 0 || shut_down_) return;
    if (session_.handshake_done() && tx_ && tx_->queue.has_queued()) encrypt_queued();
    const std::size_t n = session_.pending_output();
    if (n == 0) return;
    session_.take_output(tx().queue.start_batch_of(n));
    submit_send();
}

void tls_socket::encrypt_queued() {
    bool refused = false;
    tx_->queue.take_queued([&](std::span<const std::byte> plain) { refused = !session_.write(plain) || refused; },
                           buffer_releaser());
    if (refused && tx_error_ == 0) {
        // The session failed or was shut down: those bytes cannot go.
        tx_error_ = EPIPE;
        wake_writers();
    }
}

void tls_socket::close_notify() {
    if (session_.failed() || fd_ < 0) return;
    // What is queued goes into records first: nothing is written after close_notify.
    if (session_.handshake_done() && tx_ && tx_->queue.has_queued()) encrypt_queued();
    session_.shutdown();
    flush_records();  // now, so that the records are submitted before the shutdown that follows the drain
}

void tls_socket::throw_if_failed(int error) const {
    if (!session_.failed()) return;
    if (error != 0) throw std::system_error(error, std::system_category(), "cnetmod: TLS: " + session_.error_text());
    throw std::system_error(std::make_error_code(std::errc::protocol_error), "cnetmod: TLS: " + session_.error_text());
}

void tls_socket::went_idle() noexcept {
    // Idle: OpenSSL's record buffers and grown BIO storage go too.
    if (session_.pending_output() == 0) session_.release_buffers();
}

void tls_socket::released() noexcept {
    disarm_handshake_timer();
}

}  // namespace cnetmod::detail
