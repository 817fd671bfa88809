#include <cnetmod/engine/tls.hpp>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <system_error>

#include <algorithm>
#include <cstring>
#include <limits>
#include <new>
#include <utility>

namespace cnetmod {

namespace {

// The one protocol offered and accepted, in ALPN wire format (RFC 7301 §3.1).
constexpr unsigned char alpn_http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

// Storage kept by a drained queue after each call: a connection that once
// moved a large message keeps at most this much until it goes idle (then
// release_buffers() frees it); below it, reuse saves regrowth (each step
// copies) on the next large write.
constexpr std::size_t max_kept_capacity = 256 * 1024;
// A queue's first storage: a handshake flight or a few records.
constexpr std::size_t min_capacity = 4 * 1024;

// SSL_get_error consults this thread's error queue, which every connection
// on the thread shares: an entry left there by anyone would turn the next
// WANT_READ into a failure. Peeking first is cheaper than ERR_clear_error,
// which walks all its slots (10% of a small record's cost in OpenSSL 3.0).
void clear_stale_errors() noexcept {
    if (ERR_peek_error() != 0) ERR_clear_error();
}

std::string reason_text(unsigned long code) {
    // OpenSSL 3 keeps errno for failed system calls (fopen) and has no text for it.
    if (ERR_SYSTEM_ERROR(code)) return std::system_category().message(ERR_GET_REASON(code));
    const char* reason = ERR_reason_error_string(code);
    if (reason != nullptr) return reason;
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof buffer);
    return buffer;
}

// OpenSSL's reason for the oldest error on this thread's queue (the cause;
// later entries are the callers reporting it), leaving the queue empty.
std::string take_error_queue() {
    const unsigned long code = ERR_peek_error();
    ERR_clear_error();
    return code != 0 ? reason_text(code) : "no reason given by OpenSSL";
}

[[noreturn]] void throw_file_error(const char* what, const std::string& file) {
    if (file.empty()) {
        ERR_clear_error();
        throw tls_error(std::string("cnetmod: no ") + what + " file given");
    }
    throw tls_error(std::string("cnetmod: cannot load the TLS ") + what + " (PEM) from '" + file +
                    "': " + take_error_queue());
}

// Settings both sides share: TLS 1.2 or later; no compression (CRIME) and
// no renegotiation (it only adds attack surface to an HTTP/1.1 server);
// record buffers freed while a connection is idle.
SSL_CTX* new_ssl_ctx(const SSL_METHOD* method) {
    ERR_clear_error();
    SSL_CTX* ctx = SSL_CTX_new(method);
    if (ctx == nullptr) throw tls_error("cnetmod: cannot create an SSL_CTX: " + take_error_queue());
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    // An encrypted key must fail to load, not prompt on the terminal.
    SSL_CTX_set_default_passwd_cb(ctx, [](char*, int, int, void*) { return 0; });
    return ctx;
}

// RFC 7301 §3.2: a client offering protocols without http/1.1 gets the
// no_application_protocol alert; a client offering none is not asked.
int select_alpn(SSL*, const unsigned char** out, unsigned char* out_size, const unsigned char* offered,
                unsigned offered_size, void*) {
    unsigned char* chosen = nullptr;
    if (SSL_select_next_proto(&chosen, out_size, alpn_http11, sizeof alpn_http11, offered, offered_size) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

bool is_ip_address(const std::string& name) {
    unsigned char address[16];
    return ::inet_pton(AF_INET, name.c_str(), address) == 1 || ::inet_pton(AF_INET6, name.c_str(), address) == 1;
}

}  // namespace

// ---- tls_context ----

// If the control block cannot be allocated, shared_ptr frees `ctx` and throws.
tls_context::tls_context(SSL_CTX* ctx, bool is_server) : ctx_(ctx, SSL_CTX_free), is_server_(is_server) {}

tls_context tls_context::server(const tls_server_options& options) {
    tls_context context(new_ssl_ctx(TLS_server_method()), true);
    SSL_CTX* ctx = context.native();
    if (options.cert_file.empty() || SSL_CTX_use_certificate_chain_file(ctx, options.cert_file.c_str()) != 1)
        throw_file_error("certificate", options.cert_file);
    // Also checks the key against the certificate ("key values mismatch").
    if (options.key_file.empty() || SSL_CTX_use_PrivateKey_file(ctx, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
        throw_file_error("private key", options.key_file);
    if (SSL_CTX_check_private_key(ctx) != 1)
        throw tls_error("cnetmod: the private key '" + options.key_file + "' does not belong to the certificate '" +
                        options.cert_file + "': " + take_error_queue());
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, nullptr);
    // Resumption uses stateless TLS 1.3 tickets; a shared session cache
    // would be a lock taken by every core on every handshake.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    return context;
}

tls_context tls_context::client(const tls_client_options& options) {
    tls_context context(new_ssl_ctx(TLS_client_method()), false);
    SSL_CTX* ctx = context.native();
    // Unlike most of OpenSSL, SSL_CTX_set_alpn_protos returns 0 on success.
    if (SSL_CTX_set_alpn_protos(ctx, alpn_http11, sizeof alpn_http11) != 0)
        throw tls_error("cnetmod: cannot set the ALPN protocols: " + take_error_queue());
    if (!options.verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
        return context;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    if (!options.ca_file.empty()) {
        if (SSL_CTX_load_verify_locations(ctx, options.ca_file.c_str(), nullptr) != 1)
            throw_file_error("CA certificates", options.ca_file);
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        throw tls_error("cnetmod: cannot load the system's trusted certificates: " + take_error_queue());
    }
    return context;
}

// ---- the BIO between OpenSSL and a session's queues ----

// One BIO is both the SSL's rbio and its wbio: reads take from the session's
// input_, writes append to its output_. Two memory BIOs cost 0.5 KB of
// objects and locks, and keep their storage after being drained; this one
// holds nothing but a pointer to its session (set again when the session moves).
struct ciphertext_bio {
    static BIO_METHOD* method() noexcept {
        static BIO_METHOD* const made = make();  // once per process, shared by every core
        return made;
    }

private:
    static tls_session& session_of(BIO* bio) noexcept { return *static_cast<tls_session*>(BIO_get_data(bio)); }

    static BIO_METHOD* make() noexcept {
        BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "cnetmod ciphertext");
        if (m == nullptr) return nullptr;
        BIO_meth_set_write_ex(m, write);
        BIO_meth_set_read_ex(m, read);
        BIO_meth_set_ctrl(m, ctrl);
        BIO_meth_set_create(m, [](BIO* bio) {
            BIO_set_init(bio, 1);
            return 1;
        });
        return m;
    }

    static int write(BIO* bio, const char* bytes, std::size_t n, std::size_t* written) noexcept {
        BIO_clear_retry_flags(bio);
        if (!session_of(bio).output_.put(reinterpret_cast<const std::byte*>(bytes), n)) return 0;
        *written = n;
        return 1;
    }

    // Nothing fed: a retryable read, which SSL_get_error reports as WANT_READ.
    static int read(BIO* bio, char* out, std::size_t n, std::size_t* read) noexcept {
        BIO_clear_retry_flags(bio);
        const std::size_t taken = session_of(bio).input_.take(reinterpret_cast<std::byte*>(out), n);
        if (taken == 0) {
            BIO_set_retry_read(bio);
            return 0;
        }
        *read = taken;
        return 1;
    }

    static long ctrl(BIO* bio, int command, long, void*) noexcept {
        switch (command) {
            case BIO_CTRL_PENDING:
                return static_cast<long>(session_of(bio).input_.size());
            case BIO_CTRL_WPENDING:
                return static_cast<long>(session_of(bio).output_.size());
            case BIO_CTRL_FLUSH:
                return 1;  // the output waits for take_output()
            default:
                return 0;
        }
    }
};

// ---- tls_session ----

bool tls_session::byte_queue::put(const std::byte* bytes, std::size_t n) noexcept {
    if (n > capacity - end) {
        const std::size_t held = size();
        if (n > std::numeric_limits<std::size_t>::max() / 4 - held) return false;
        if (held + n <= capacity) {
            std::memmove(data.get(), data.get() + begin, held);  // room enough once compacted
        } else {
            const std::size_t grown = std::max({min_capacity, 2 * capacity, held + n});
            std::unique_ptr<std::byte[]> larger(new (std::nothrow) std::byte[grown]);
            if (!larger) return false;
            if (held > 0) std::memcpy(larger.get(), data.get() + begin, held);
            data = std::move(larger);
            capacity = grown;
        }
        begin = 0;
        end = held;
    }
    std::memcpy(data.get() + end, bytes, n);
    end += n;
    return true;
}

std::size_t tls_session::byte_queue::take(std::byte* out, std::size_t n) noexcept {
    const std::size_t taken = std::min(n, size());
    if (taken > 0) std::memcpy(out, data.get() + begin, taken);
    begin += taken;
    if (begin == end) begin = end = 0;
    return taken;
}

void tls_session::byte_queue::trim(std::size_t kept) noexcept {
    if (size() != 0 || capacity <= kept) return;
    data.reset();
    capacity = begin = end = 0;
}

void tls_session::ssl_free::operator()(SSL* ssl) const noexcept {
    SSL_free(ssl);
}

tls_session::tls_session(const tls_context& context, std::string_view server_name) {
    ERR_clear_error();
    ssl_.reset(SSL_new(context.native()));
    BIO_METHOD* method = ciphertext_bio::method();
    BIO* bio = ssl_ && method != nullptr ? BIO_new(method) : nullptr;
    if (bio == nullptr) {
        ERR_clear_error();
        throw std::bad_alloc();
    }
    SSL_set_bio(ssl_.get(), bio, bio);  // one reference serves both; the SSL owns it from here
    attach_bio();
    if (context.is_server()) {
        SSL_set_accept_state(ssl_.get());
    } else {
        SSL_set_connect_state(ssl_.get());
        set_server_name(std::string(server_name));
    }
}

tls_session::tls_session(tls_session&& other) noexcept
    : ssl_(std::move(other.ssl_)),
      input_(std::exchange(other.input_, {})),
      output_(std::exchange(other.output_, {})),
      error_(other.error_),
      failed_(other.failed_),
      handshake_done_(other.handshake_done_),
      closed_by_peer_(other.closed_by_peer_) {
    attach_bio();
}

tls_session& tls_session::operator=(tls_session&& other) noexcept {
    if (this == &other) return *this;
    ssl_ = std::move(other.ssl_);
    input_ = std::exchange(other.input_, {});
    output_ = std::exchange(other.output_, {});
    error_ = other.error_;
    failed_ = other.failed_;
    handshake_done_ = other.handshake_done_;
    closed_by_peer_ = other.closed_by_peer_;
    attach_bio();
    return *this;
}

// The BIO reaches the queues through this pointer: set at creation and after every move.
void tls_session::attach_bio() noexcept {
    if (ssl_) BIO_set_data(SSL_get_rbio(ssl_.get()), this);
}

void tls_session::set_server_name(const std::string& name) {
    if (name.empty()) return;
    SSL* ssl = ssl_.get();
    const bool verify = (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) != 0;
    bool ok = true;
    if (is_ip_address(name)) {
        // RFC 6066 §3: SNI carries host names only. OpenSSL 3.0's
        // SSL_set1_host takes names only, so addresses go through the param.
        ok = !verify || X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) == 1;
    } else {
        ok = SSL_set_tlsext_host_name(ssl, name.c_str()) == 1;
        if (ok && verify) {
            SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            ok = SSL_set1_host(ssl, name.c_str()) == 1;
        }
    }
    if (!ok) throw tls_error("cnetmod: invalid TLS server name '" + name + "': " + take_error_queue());
}

void tls_session::feed(std::span<const std::byte> ciphertext) {
    if (!input_.put(ciphertext.data(), ciphertext.size())) throw std::bad_alloc();
}

tls_session::step tls_session::handshake() {
    if (handshake_done_) return step::done;
    if (failed_) return step::failed;
    clear_stale_errors();
    const int result = SSL_do_handshake(ssl_.get());
    if (result == 1) {
        handshake_done_ = true;
        input_.trim(max_kept_capacity);
        return step::done;
    }
    // The BIO takes every write (or fails for lack of memory): WANT_READ is the only wait.
    const int error = SSL_get_error(ssl_.get(), result);
    if (error == SSL_ERROR_WANT_READ) return step::want_more;
    record_failure();
    return step::failed;
}

std::size_t tls_session::read(std::span<std::byte> out) {
    std::size_t produced = 0;
    while (produced < out.size() && !failed_ && !closed_by_peer_ && has_input()) {
        std::size_t n = 0;
        clear_stale_errors();
        // One record per call at most; SSL_MODE_AUTO_RETRY (the default)
        // passes over session tickets and KeyUpdates without returning.
        const int result = SSL_read_ex(ssl_.get(), out.data() + produced, out.size() - produced, &n);
        if (result == 1) {
            produced += n;
            continue;
        }
        const int error = SSL_get_error(ssl_.get(), result);
        if (error == SSL_ERROR_WANT_READ) break;
        if (error == SSL_ERROR_ZERO_RETURN)
            closed_by_peer_ = true;  // close_notify (RFC 8446 §6.1)
        else
            record_failure();
    }
    if (!handshake_done_ && SSL_is_init_finished(ssl_.get())) handshake_done_ = true;
    // SSL_MODE_RELEASE_BUFFERS misses one case: a read that processes
    // post-handshake messages (session tickets) and then data keeps its
    // 17 KiB record buffer. Nothing is buffered here, which is also the
    // condition under which OpenSSL < 3.0.14 frees safely (CVE-2024-4741).
    if (!has_input()) SSL_free_buffers(ssl_.get());
    input_.trim(max_kept_capacity);
    return produced;
}

// Whether SSL_read could make progress. With nothing buffered it would only
// allocate its 17 KiB record buffer to answer WANT_READ.
bool tls_session::has_input() const noexcept {
    return SSL_has_pending(ssl_.get()) == 1 || input_.size() > 0;
}

bool tls_session::write(std::span<const std::byte> plaintext) {
    if (failed_ || !handshake_done_ || (SSL_get_shutdown(ssl_.get()) & SSL_SENT_SHUTDOWN) != 0) return false;
    if (plaintext.empty()) return true;
    std::size_t written = 0;
    clear_stale_errors();
    // Without SSL_MODE_ENABLE_PARTIAL_WRITE, success means all was written.
    if (SSL_write_ex(ssl_.get(), plaintext.data(), plaintext.size(), &written) == 1) return true;
    record_failure();
    return false;
}

std::size_t tls_session::pending_output() const noexcept {
    return output_.size();
}

std::size_t tls_session::take_output(std::span<std::byte> out) {
    const std::size_t taken = output_.take(out.data(), out.size());
    output_.trim(max_kept_capacity);
    return taken;
}

void tls_session::shutdown() {
    // OpenSSL refuses (SHUTDOWN_WHILE_IN_INIT) before the handshake ends, and
    // must not be asked after a fatal error: there, closing the socket is all.
    if (failed_ || !handshake_done_) return;
    clear_stale_errors();
    SSL_shutdown(ssl_.get());
    clear_stale_errors();
}

std::string tls_session::error_text() const {
    if (!failed_) return {};
    if (error_ == 0) return "TLS failed without a reason from OpenSSL";
    std::string text = reason_text(error_);
    if (ERR_GET_LIB(error_) != ERR_LIB_SSL) return text;
    switch (ERR_GET_REASON(error_)) {
        case SSL_R_CERTIFICATE_VERIFY_FAILED:
            return text + ": " + X509_verify_cert_error_string(SSL_get_verify_result(ssl_.get()));
        case SSL_R_HTTP_REQUEST:
            return text + " (plain HTTP sent to a TLS port)";
        default:
            return text;
    }
}

std::string_view tls_session::alpn() const noexcept {
    const unsigned char* protocol = nullptr;
    unsigned size = 0;
    SSL_get0_alpn_selected(ssl_.get(), &protocol, &size);
    return protocol != nullptr ? std::string_view(reinterpret_cast<const char*>(protocol), size) : std::string_view();
}

std::string_view tls_session::version() const noexcept {
    return SSL_get_version(ssl_.get());
}

// Keeps the oldest error (the cause; later ones are its consequences) and
// empties the thread's queue for the next connection.
void tls_session::record_failure() noexcept {
    failed_ = true;
    error_ = ERR_peek_error();
    ERR_clear_error();
}

void tls_session::release_buffers() noexcept {
    if (!has_input()) SSL_free_buffers(ssl_.get());
    input_.trim(0);
    output_.trim(0);
}

}  // namespace cnetmod
