// TLS as a layer over the socket core: a tls_socket is a socket core that
// carries records. What the socket receives is fed to the session and the
// decrypted bytes become the receive queue; what is queued for sending is
// plaintext, encrypted at the end-of-turn flush into one send of records.
// Readers and writers see plaintext only. A plain socket holds none of this:
// start_tls replaces an idle plain core by a tls_socket (before anything is
// received or sent, so no operation names the plain one).
#pragma once

#include <cnetmod/engine/detail/socket_core.hpp>
#include <cnetmod/engine/tls.hpp>

namespace cnetmod::detail {

class tls_socket : public socket_core {
public:
    // Replaces `core` (a plain socket on which nothing was received, queued
    // or waited for) by a TLS socket on the same descriptor; the plain core
    // is freed. Throws std::logic_error for a socket already in use. A client
    // sends its hello at once.
    static void start(socket_core*& core, const tls_context& context, std::string_view server_name,
                      deadline handshake_deadline);

    const tls_session& session() const noexcept { return session_; }
    std::size_t pending_output() const noexcept { return session_.pending_output(); }

    // Ciphertext the socket delivered.
    void received_records(std::byte* data, std::size_t size, int buffer_id);
    // The end-of-turn flush: queued plaintext (once the handshake is done)
    // becomes records, and the session's output goes out as one send.
    void flush_records();
    // Queues close_notify ahead of a graceful close.
    void close_notify();
    // Throws the session's failure, if it failed (`error`: the receive
    // error to report, 0 for a send).
    void throw_if_failed(int error) const;
    // The send queue went back to the pool: OpenSSL's buffers go too.
    void went_idle() noexcept;
    // The handle is gone.
    void released() noexcept;

private:
    tls_socket(const socket_core& plain, const tls_context& context, std::string_view server_name);

    void pump();
    void fail(int error) noexcept;
    void encrypt_queued();
    void disarm_handshake_timer() noexcept;
    static void on_handshake_timeout(void* p);

    tls_session session_;
    wait_timer* handshake_timer_ = nullptr;
};

}  // namespace cnetmod::detail
