/// @file
/// http::server: HTTP/1.1 with keep-alive and pipelining, routes by exact
/// path and method, on one io_context or on every core of a runtime.
///
///   http::server srv(ctx);
///   srv.get("/", [](http::request_context& ctx) -> task<void> { ctx.resp().set_body("hi"); co_return; });
///   srv.listen(8080);
///
/// A known path asked with another method gets 405 (with Allow), an unknown
/// path 404, a malformed request 400, a head over the limit 431, a body over
/// the limit 413; HEAD is served by the GET handler without the body.
#pragma once

#include <cnetmod/engine/io_context.hpp>
#include <cnetmod/engine/runtime.hpp>
#include <cnetmod/engine/task.hpp>
#include <cnetmod/engine/tcp_listener.hpp>
#include <cnetmod/engine/tls.hpp>
#include <cnetmod/proto/http/request_context.hpp>
#include <cnetmod/proto/http/request_parser.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cnetmod::http {

/// Limits, timeouts, listening and TLS of an http::server; the defaults suit a public server.
struct server_options {
    /// Bounds on a request's head and body.
    parser_limits limits{};
    /// Time allowed for a request's head and body to arrive once it has
    /// begun (408 after it); also bounds a WebSocket handshake.
    std::chrono::milliseconds request_timeout{10'000};
    /// Time an idle keep-alive connection waits for its next request.
    std::chrono::milliseconds keep_alive_timeout{60'000};
    /// A peer that takes none of its response for this long (its send queue
    /// does not go down) is cut off: a client that pipelines requests and
    /// never reads holds memory only this long, while a slow but steady
    /// reader of a large response gets another stretch after each progress.
    std::chrono::milliseconds write_timeout{30'000};
    /// Pipelined requests are read only while fewer response bytes than this
    /// wait to be sent: a client that never reads stops being served, rather
    /// than growing its queue (one response may pass it).
    std::size_t max_queued_response_bytes = 64 * 1024;
    /// The Server header field of every response.
    std::string server_name = "cnetmod";
    /// How each core's listener listens (reuse_port is the server's, see share_port).
    listen_options listen{};
    /// Let other servers and processes listen on the same port (SO_REUSEPORT,
    /// the kernel splitting connections between them). Off: listen() throws
    /// "Address already in use" when anything listens there already. (The
    /// server sets listen.reuse_port itself: on for its own cores, and with
    /// share_port.)
    bool share_port = false;
    /// HTTPS and wss:// on the same port: every connection speaks TLS with
    /// this certificate and key (PEM files). The server's constructor throws
    /// tls_error naming the file when either cannot be used.
    std::optional<tls_server_options> tls;
    /// Time allowed for a TLS handshake to complete.
    std::chrono::milliseconds tls_handshake_timeout{10'000};
};

/// Peers this process's HTTP servers cut off or refused, over all cores
/// (relaxed counters, for embedders and tests).
struct cutoff_counts {
    std::uint64_t write_timeout = 0;  ///< a response not taken within write_timeout: reset
    std::uint64_t refused = 0;        ///< a request refused with 4xx/5xx by the parser or a timeout, then closed
};
/// The counts so far, summed over every core; safe from any thread.
cutoff_counts cutoffs() noexcept;

/// HTTP's figures for one core (see engine/metrics.hpp): counts since the
/// core's io_context was made, and one gauge.
struct server_metrics {
    std::uint64_t connections_accepted = 0;  ///< Connections accepted by a server's listener on this core.
    std::uint64_t connections_open = 0;      ///< Gauge: connections in an HTTP session (not yet upgraded) now.
    std::uint64_t requests = 0;              ///< Requests read whole (upgrade requests included).
    std::uint64_t requests_refused = 0;      ///< Requests answered 4xx/5xx by the parser or a timeout, then closed.
};
/// The HTTP figures of `ctx`'s core; safe from any thread while `ctx` lives.
server_metrics metrics_of(const io_context& ctx) noexcept;

/// An HTTP/1.1 server with keep-alive and pipelining, routing by exact path and method, on one io_context or on every
/// core of a runtime. Register routes before listen().
class server {
public:
    /// A route's handler: a coroutine over the request_context. An exception that escapes it is logged and answered
    /// 500; request_rejected sends resp() as the handler prepared it. Either way the connection then closes.
    using handler = std::function<task<void>(request_context&)>;

    /// A server on `ctx` alone. Throws tls_error when options.tls names a certificate or key that cannot be used.
    explicit server(io_context& ctx, server_options options = {});
    /// On every core of `rt`: one listener per core (SO_REUSEPORT); each
    /// request is handled on the core that accepted its connection. Register
    /// routes before listen(); handlers may run on several cores at once.
    /// Throws like the other constructor.
    explicit server(runtime& rt, server_options options = {});
    /// Stops accepting (stop()); connections already open carry on.
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    /// Routes `method` requests for exactly `path` to `h`; returns the server, for chaining.
    server& route(std::string_view method, std::string path, handler h);
    /// route("GET", ...): also serves HEAD, without the body.
    server& get(std::string path, handler h) { return route("GET", std::move(path), std::move(h)); }
    /// route("POST", ...).
    server& post(std::string path, handler h) { return route("POST", std::move(path), std::move(h)); }
    /// route("PUT", ...).
    server& put(std::string path, handler h) { return route("PUT", std::move(path), std::move(h)); }
    /// route("DELETE", ...).
    server& del(std::string path, handler h) { return route("DELETE", std::move(path), std::move(h)); }
    /// route("PATCH", ...).
    server& patch(std::string path, handler h) { return route("PATCH", std::move(path), std::move(h)); }
    /// route("OPTIONS", ...).
    server& options(std::string path, handler h) { return route("OPTIONS", std::move(path), std::move(h)); }

    /// A WebSocket route with callback handlers, given once for the route
    /// (ws::behavior<UserData>: options and open/message/drain/ping/pong/close
    /// handlers, and an upgrade handler that may refuse before the 101); each
    /// connection stores a UserData inline. The WebSocket layer implements
    /// it: include <cnetmod/proto/ws/ws.hpp>.
    ///   srv.ws<user>("/chat", {.message = [](ws::socket<user>& s, std::string_view m, ws::opcode op) { s.send(m, op);
    ///   }});
    template <class UserData = void, class Protocol = websocket_protocol>
    server& ws(std::string path, typename upgrade_protocol<Protocol>::template behavior<UserData> behavior) {
        upgrade_protocol<Protocol>::template serve<UserData>(*this, std::move(path), std::move(behavior));
        return *this;
    }

    /// Listens on `address`:`port` (port 0: any free port). Throws
    /// std::system_error naming the address when it cannot.
    void listen(std::uint16_t port, std::string_view address = "0.0.0.0");
    /// The port listened on (the one picked, after listen(0)).
    std::uint16_t port() const noexcept { return port_; }
    /// Stops accepting; connections already open carry on.
    void stop();

    /// Graceful shutdown: stops accepting on every core, then sends close
    /// 1001 ("server shutting down") to every WebSocket connection this
    /// server upgraded, behind whatever is already queued for it (nothing
    /// queued is lost), waits up to `grace` for each peer's close frame
    /// (closing TCP after it), and resets the connections that remain.
    /// Completes once all of them are gone (at most `grace` plus a second).
    /// Await it on a core of the server (its io_context, or any core of its
    /// runtime); then stop the io_context or the runtime.
    task<void> shutdown(std::chrono::milliseconds grace = std::chrono::seconds(5));
    /// The same from a thread that is none of the server's cores (main, a
    /// signal-waiting thread); blocks until done.
    void shutdown_and_wait(std::chrono::milliseconds grace = std::chrono::seconds(5));

    /// The options the server was made with.
    const server_options& settings() const noexcept;

    /// Internal: the state sessions share (routes, settings, listeners).
    struct shared_state;

private:
    io_context* ctx_ = nullptr;
    runtime* rt_ = nullptr;
    std::uint16_t port_ = 0;
    std::shared_ptr<shared_state> state_;
};

}  // namespace cnetmod::http
