/// @file
/// TLS over memory: OpenSSL driven through a BIO over byte queues, with no I/O
/// of its own, so that a stream on io_uring moves the ciphertext and this
/// layer only transforms it.
///
///   auto ctx = tls_context::client({.ca_file = "ca.pem"});   // once, shared by every core
///   tls_session tls(ctx, "example.com");
///   // loop: send tls.take_output(...); feed(what the socket received);
///   //       tls.handshake() until done; then write()/read().
///
/// After every call (handshake, read, write, shutdown) the session may have
/// ciphertext to send: handshake records, encrypted data, a KeyUpdate, an
/// alert after a failure. The driver sends pending_output() before it
/// waits for the peer, and before it closes the socket.
#pragma once

// OpenSSL's handle types, declared as OpenSSL declares them, so that this
// header does not pull OpenSSL's headers into every embedder.
struct ssl_ctx_st;
struct ssl_st;
/// OpenSSL's context handle type, as <openssl/ssl.h> declares it.
typedef struct ssl_ctx_st SSL_CTX;
/// OpenSSL's connection handle type, as <openssl/ssl.h> declares it.
typedef struct ssl_st SSL;

#include <cstddef>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

namespace cnetmod {

/// Thrown while building a tls_context: a certificate, key or CA file that
/// cannot be read or used. The message names the file and OpenSSL's reason.
class tls_error : public std::runtime_error {
public:
    /// Takes a message, as std::runtime_error does.
    using std::runtime_error::runtime_error;
};

/// A TLS server's certificate and key (tls_context::server).
struct tls_server_options {
    std::string cert_file{};  ///< PEM: the certificate, optionally followed by its chain
    std::string key_file{};   ///< PEM: the private key of that certificate
};

/// A TLS client's trust (tls_context::client).
struct tls_client_options {
    bool verify = true;     ///< check the peer's chain (and the name given to tls_session)
    std::string ca_file{};  ///< PEM bundle trusted instead of the system store; empty: system store
};

/// One TLS configuration (a server's certificate, or a client's trust),
/// immutable once made. Copies share one SSL_CTX, which OpenSSL allows every
/// thread to create sessions from, so one context serves all cores.
class tls_context {
public:
    /// TLS 1.2 and 1.3, ALPN "http/1.1". Throws tls_error when the
    /// certificate or key cannot be loaded or do not belong together.
    static tls_context server(const tls_server_options& options);
    /// TLS 1.2 and 1.3, offers ALPN "http/1.1". Throws tls_error when the CA
    /// file (or, with no CA file, the system store) cannot be loaded.
    static tls_context client(const tls_client_options& options);

    /// Whether this is a server's context (tls_context::server).
    bool is_server() const noexcept { return is_server_; }
    /// For settings this class does not cover; change them before the first
    /// session is made, never while sessions are being created.
    SSL_CTX* native() const noexcept { return ctx_.get(); }

private:
    tls_context(SSL_CTX* ctx, bool is_server);

    std::shared_ptr<SSL_CTX> ctx_;
    bool is_server_;
};

/// One connection's TLS state machine. Ciphertext goes in with feed() and
/// comes out with take_output(); plaintext goes in with write() and out with
/// read(). Move-only (a moved-from session may only be assigned to or
/// destroyed); holds one SSL object (which references its SSL_CTX, so
/// the tls_context need not outlive it) and the ciphertext waiting in each
/// direction, in storage of its own that an idle session frees. Not
/// thread-safe: one core drives it.
///
/// OpenSSL's error queue is per thread and shared by every session on it:
/// each call starts from a clear queue and leaves it empty, so a failure on
/// one connection never shows up on another.
class tls_session {
public:
    /// What handshake() reached.
    enum class step {
        done,       ///< the handshake is complete
        want_more,  ///< send pending_output(), then feed() more
        failed      ///< a fatal error; failed() and error_text() tell
    };

    /// Client: `server_name` goes out as SNI (unless it is an IP address,
    /// RFC 6066 §3) and, when the context verifies, the certificate must be
    /// for that name or address; empty checks the chain only. Server: unused.
    /// Throws tls_error for a name OpenSSL refuses (e.g. over 255 bytes),
    /// std::bad_alloc when OpenSSL cannot allocate the session.
    explicit tls_session(const tls_context& context, std::string_view server_name = {});
    /// Takes over `other`'s session; `other` may then only be assigned to or destroyed.
    tls_session(tls_session&& other) noexcept;
    /// Frees the session held and takes over `other`'s.
    tls_session& operator=(tls_session&& other) noexcept;
    /// Frees the SSL object and the queued ciphertext.
    ~tls_session() = default;

    /// Hands ciphertext received from the peer to the session; all of it is
    /// kept (copied) until handshake() or read() consume it.
    void feed(std::span<const std::byte> ciphertext);

    /// Advances the handshake with what was fed: done (also on later calls),
    /// want_more (send pending_output(), then feed more), or failed.
    step handshake();
    /// Whether the handshake is complete.
    bool handshake_done() const noexcept { return handshake_done_; }

    /// Decrypts into `out` what the fed records hold; returns the bytes
    /// produced, 0 when no whole record is available yet, the peer closed
    /// (closed_by_peer) or the session failed (failed). Completes the
    /// handshake first if needed. Post-handshake messages (TLS 1.3 session
    /// tickets, KeyUpdate) are handled here; the answer a KeyUpdate asks for
    /// goes out with the next write (RFC 8446 §4.6.3 allows that).
    std::size_t read(std::span<std::byte> out);

    /// Encrypts all of `plaintext` into pending output (records of at most
    /// 16 KiB). Returns false, consuming nothing, before handshake_done(),
    /// after shutdown(), or when the session failed.
    bool write(std::span<const std::byte> plaintext);

    /// Ciphertext waiting to be sent.
    std::size_t pending_output() const noexcept;
    /// Moves up to out.size() bytes of pending output into `out`; returns how many.
    std::size_t take_output(std::span<std::byte> out);

    /// Queues a close_notify alert (RFC 8446 §6.1); write() is refused after it.
    void shutdown();
    /// Frees what an idle connection need not hold: OpenSSL's empty record
    /// buffers and the storage of drained input and output. Call when the
    /// connection goes idle (nothing to send, waiting for the peer); the next
    /// record reallocates. Without it a session keeps up to 256 KiB of input
    /// and of output storage after large transfers.
    void release_buffers() noexcept;
    /// Bytes of storage held for ciphertext in and out (OpenSSL's own record
    /// buffers aside); 0 once release_buffers() ran with nothing pending.
    std::size_t buffer_capacity() const noexcept { return input_.capacity + output_.capacity; }

    /// The peer sent close_notify: no more data will come.
    bool closed_by_peer() const noexcept { return closed_by_peer_; }
    /// A fatal error (bad record, failed verification, peer's alert); the
    /// session is unusable except for sending its pending output (the alert).
    bool failed() const noexcept { return failed_; }
    /// Why it failed, in OpenSSL's words, e.g. "certificate verify failed:
    /// unable to get local issuer certificate"; empty when it did not.
    std::string error_text() const;

    /// After the handshake: the ALPN protocol agreed ("http/1.1") or empty.
    std::string_view alpn() const noexcept;
    /// The protocol version, e.g. "TLSv1.3".
    std::string_view version() const noexcept;

    /// The OpenSSL connection, for what this class does not cover.
    SSL* native() const noexcept { return ssl_.get(); }

private:
    struct ssl_free {
        void operator()(SSL* ssl) const noexcept;
    };
    // Ciphertext in one direction, first in first out. Its storage is freed
    // when drained on request, so an idle session holds none (a memory BIO
    // keeps its largest size until freed, and replacing it costs four
    // allocations).
    struct byte_queue {
        std::unique_ptr<std::byte[]> data;
        std::size_t begin = 0;     // first byte not yet taken
        std::size_t end = 0;       // one past the last byte put
        std::size_t capacity = 0;  // of `data`

        std::size_t size() const noexcept { return end - begin; }
        bool put(const std::byte* bytes, std::size_t n) noexcept;  // false: no memory
        std::size_t take(std::byte* out, std::size_t n) noexcept;
        // Frees the storage when empty and holding more than `kept` bytes.
        void trim(std::size_t kept) noexcept;
    };
    friend struct ciphertext_bio;

    void set_server_name(const std::string& name);
    bool has_input() const noexcept;
    void record_failure() noexcept;
    void attach_bio() noexcept;

    std::unique_ptr<SSL, ssl_free> ssl_;  // owns its one BIO, which reads input_ and appends to output_
    byte_queue input_;                    // fed, not yet read by OpenSSL
    byte_queue output_;                   // written by OpenSSL, not yet taken
    unsigned long error_ = 0;             // OpenSSL's first error code of the failure (0: none given)
    bool failed_ = false;
    bool handshake_done_ = false;
    bool closed_by_peer_ = false;
};

}  // namespace cnetmod
