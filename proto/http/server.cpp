#include <cnetmod/engine/detail/reactor.hpp>
#include <cnetmod/engine/log.hpp>
#include <cnetmod/engine/spawn.hpp>
#include <cnetmod/engine/timer.hpp>
#include <cnetmod/proto/http/detail/counters.hpp>
#include <cnetmod/proto/http/server.hpp>

#include <system_error>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <latch>

namespace cnetmod::http {

// The routes, settings and listeners, shared by the server object and every
// accept loop and session, so that none of them depends on the server
// object's lifetime. Routes are fixed once listen() has been called.
struct server::shared_state {
    struct route_entry {
        std::string path;
        std::vector<std::pair<std::string, handler>> methods;
    };

    server_options options;
    std::optional<tls_context> tls;  // made once from options.tls, shared by every core
    std::vector<route_entry> routes;
    std::vector<tcp_listener*> listeners;  // per slot; each touched only on its own core

    const route_entry* find(std::string_view path) const noexcept {
        for (const auto& r : routes)
            if (r.path == path) return &r;
        return nullptr;
    }
};

namespace {

using state_ptr = std::shared_ptr<server::shared_state>;

std::atomic<std::uint64_t> write_timeouts{0}, refusals{0};

// This layer's per-core counters (engine/metrics.hpp), by index.
enum counter : std::size_t { accepted_n, open_n, requests_n, refused_n, counters_used };
static_assert(counters_used <= detail::layer_counters_end);
core_counter& count(counter c) noexcept {
    return cnetmod::detail::current_layer_counters()[c];
}
// One connection in an HTTP session on this core, for the session's life.
struct open_session {
    open_session() noexcept { count(open_n).add(); }
    ~open_session() { count(open_n).sub(); }
    open_session(const open_session&) = delete;
    open_session& operator=(const open_session&) = delete;
};

std::string error_body(status s, std::string_view reason) {
    std::string body = std::to_string(code(s));
    body += ' ';
    body += reason_phrase(s);
    if (!reason.empty()) {
        body += ": ";
        body += reason;
    }
    body += '\n';
    return body;
}

// Sends an error response and closes the connection.
task<void> refuse(tcp_stream& s, const server_options& options, status st, std::string_view reason) {
    refusals.fetch_add(1, std::memory_order_relaxed);
    count(refused_n).add();
    response resp;
    resp.set_status(st);
    resp.set_header("Server", options.server_name);
    resp.set_header("Content-Type", "text/plain; charset=utf-8");
    resp.set_body(error_body(st, reason));
    std::string out;
    resp.serialize(out, false, false);
    try {
        s.queue(out);
        co_await s.close(timeout(std::chrono::seconds(2)));
    } catch (const std::system_error&) {
    }
}

enum class head_outcome { ok, closed, timed_out, too_large };

// Reads bytes up to the blank line that ends a request head. Bytes after it
// stay in the stream for the body, the next request, or WebSocket frames.
task<head_outcome> read_head(tcp_stream& s, std::string& head, const server_options& options) {
    // Idle wait for the first byte, then the request timeout for the rest.
    deadline d = timeout(options.keep_alive_timeout);
    for (;;) {
        std::span<const std::byte> view;
        try {
            view = co_await s.recv_view(d);
        } catch (const std::system_error& e) {
            if (e.code() == std::errc::timed_out)
                co_return head.empty() ? head_outcome::closed : head_outcome::timed_out;
            co_return head_outcome::closed;
        }
        if (view.empty()) co_return head_outcome::closed;
        if (head.empty()) d = timeout(options.request_timeout);
        const std::size_t before = head.size();
        head.append(reinterpret_cast<const char*>(view.data()), view.size());
        const std::size_t end = find_head_end(head, before);
        if (end != std::string::npos) {
            s.consume(end - before);
            head.resize(end);
            co_return head_outcome::ok;
        }
        s.consume(view.size());
        if (head.size() > options.limits.max_head_bytes) co_return head_outcome::too_large;
    }
}

// Reads the body as framed; nullopt when it arrived whole.
task<std::optional<parse_error>> read_body(tcp_stream& s, request& req, const body_framing& framing,
                                           const server_options& options) {
    const deadline d = timeout(options.request_timeout);
    std::string& body = req.body();
    if (framing.type == body_framing::kind::length) {
        body.reserve(framing.length);
        while (body.size() < framing.length) {
            auto view = co_await s.recv_view(d);
            if (view.empty()) co_return parse_error{status::bad_request, "body cut short"};
            const std::size_t take = std::min(view.size(), framing.length - body.size());
            body.append(reinterpret_cast<const char*>(view.data()), take);
            s.consume(take);
        }
    } else if (framing.type == body_framing::kind::chunked) {
        chunked_decoder decoder(options.limits);
        while (!decoder.done()) {
            auto view = co_await s.recv_view(d);
            if (view.empty()) co_return parse_error{status::bad_request, "chunked body cut short"};
            const std::size_t used =
                decoder.feed(std::string_view(reinterpret_cast<const char*>(view.data()), view.size()), body,
                             options.limits.max_body_bytes);
            s.consume(used);
            if (decoder.error()) co_return *decoder.error();
        }
    }
    co_return std::nullopt;
}

// Reads the next request, head and body, into `req`; false when the
// connection is done (closed by the peer, or refused with an error status).
// A coroutine of its own, so that its state is not kept in the session's
// frame while a WebSocket conversation runs inside the handler.
task<bool> read_request(tcp_stream& s, const server_options& options, request& req) {
    std::string head;
    const head_outcome outcome = co_await read_head(s, head, options);
    if (outcome == head_outcome::closed) co_return false;
    std::optional<parse_error> error;
    if (outcome == head_outcome::timed_out)
        error = parse_error{status::request_timeout, "the request did not arrive in time"};
    else if (outcome == head_outcome::too_large)
        error = parse_error{status::request_header_fields_too_large, "request head over the limit"};
    else
        error = parse_request_head(std::move(head), req, options.limits);
    body_framing framing;
    if (!error) error = body_framing_of(req, options.limits, framing);
    if (!error) {
        if (framing.type != body_framing::kind::none && iequals(req.header("Expect"), "100-continue"))
            s.queue(std::string_view("HTTP/1.1 100 Continue\r\n\r\n"));
        try {
            error = co_await read_body(s, req, framing, options);
        } catch (const std::system_error& e) {
            if (e.code() != std::errc::timed_out) co_return false;
            error = parse_error{status::request_timeout, "body did not arrive in time"};
        }
    }
    if (error) {
        co_await refuse(s, options, error->code, error->reason);
        co_return false;
    }
    co_return true;
}

// Waits until at most `bytes` remain queued. A peer that takes nothing for
// write_timeout is given up on (ETIMEDOUT); one that reads slowly but
// steadily gets another write_timeout after each stretch of progress.
task<void> drain_with_progress(tcp_stream& s, std::size_t bytes, std::chrono::milliseconds write_timeout) {
    std::size_t last = s.queued_bytes();
    while (s.queued_bytes() > bytes) {
        try {
            co_await s.drain_to(bytes, timeout(write_timeout));
        } catch (const std::system_error& e) {
            if (e.code() != std::errc::timed_out) throw;
            if (s.queued_bytes() >= last) {
                write_timeouts.fetch_add(1, std::memory_order_relaxed);
                throw;
            }
        }
        last = s.queued_bytes();
    }
}

// The session is over: what was answered still goes out, then TCP closes
// (a peer that half-closed after its requests gets every answer). With
// nothing left to send, the stream's destructor closes at once.
task<void> end_session(tcp_stream& s, const server_options& options) {
    if (!s.is_open() || s.queued_bytes() == 0) co_return;
    try {
        co_await drain_with_progress(s, 0, options.write_timeout);
    } catch (const std::system_error&) {
        s.abort();
        co_return;
    }
    co_await s.close(timeout(options.write_timeout));
}

// Sends the response; false when the connection is to close. A peer that
// takes nothing of it for write_timeout is cut off.
task<bool> write_response(tcp_stream& s, const response& resp, bool keep_alive, bool is_head,
                          const server_options& options) {
    if (!s.is_open()) co_return false;
    std::string out;
    resp.serialize(out, keep_alive, is_head);
    try {
        s.queue(out);
        if (!keep_alive) {
            co_await end_session(s, options);
            co_return false;
        }
        // Pipelining: the next request is read once this one's answer (and
        // what was before it) has mostly gone, so that a client that never
        // reads cannot make the server queue answers without limit.
        if (s.queued_bytes() > options.max_queued_response_bytes)
            co_await drain_with_progress(s, options.max_queued_response_bytes / 2, options.write_timeout);
    } catch (const std::system_error&) {
        s.abort();
        co_return false;
    }
    co_return true;
}

// RFC 6455 §4.2.2: a handshake of another WebSocket version that was not
// upgraded is answered with the version this server speaks: 426 when the
// handler left the status alone, its own error otherwise.
void name_websocket_version(request_context& rc) {
    if (rc.upgraded() || !rc.is_websocket_version_mismatch()) return;
    response& resp = rc.resp();
    if (code(resp.get_status()) < 300) {
        resp.set_status(status::upgrade_required);
        resp.set_header("Content-Type", "text/plain; charset=utf-8");
        resp.set_body(error_body(status::upgrade_required, "WebSocket version 13 only"));
    }
    resp.set_header("Sec-WebSocket-Version", "13");
}

// Finds the handler for the request, or prepares the 404 or 405 answer.
const server::handler* route_request(const server::shared_state& st, request_context& rc) {
    const request& req = rc.req();
    response& resp = rc.resp();
    const auto* route = st.find(req.path());
    if (!route) {
        resp.set_status(status::not_found);
        resp.set_header("Content-Type", "text/plain; charset=utf-8");
        resp.set_body(error_body(status::not_found, req.path()));
        return nullptr;
    }
    for (const auto& [method, fn] : route->methods)
        if (method == req.method()) return &fn;
    if (req.method() == "HEAD")
        for (const auto& [method, fn] : route->methods)
            if (method == "GET") return &fn;
    std::string allow;
    for (const auto& [method, fn] : route->methods) {
        if (!allow.empty()) allow += ", ";
        allow += method;
    }
    resp.set_status(status::method_not_allowed);
    resp.set_header("Allow", allow);
    resp.set_header("Content-Type", "text/plain; charset=utf-8");
    resp.set_body(error_body(status::method_not_allowed, req.method()));
    return nullptr;
}

// A handler threw: answer 500.
void handler_failed(request_context& rc, const server_options& options, const std::exception& e) {
    const request& req = rc.req();
    log(log_level::warning,
        "handler for " + std::string(req.method()) + " " + std::string(req.path()) + " threw: " + e.what());
    response& resp = rc.resp();
    resp = response{};
    resp.set_status(status::internal_server_error);
    resp.set_header("Server", options.server_name);
    resp.set_body(error_body(status::internal_server_error, ""));
}

struct handler_awaiter;

// One request's call of its handler: the request context the handler
// holds a reference to, and the server state its function lives in. While
// the session awaits the handler, the session owns it; once the handler has
// upgraded the connection, the session ends (its frame would otherwise stay
// alive as long as the WebSocket conversation) and the call adopts the
// handler's frame: the context owns the call (a detached node) until the
// handler ends, and destroys both if it goes first. All of this happens on
// the context's thread: the library never moves a coroutine to another core,
// and a handler that moves itself must be back before it upgrades or ends.
struct handler_call final : request_owner, cnetmod::detail::task_owner, cnetmod::detail::detached_node {
    static void* operator new(std::size_t n) { return cnetmod::detail::allocate_frame(n); }
    static void operator delete(void* p, std::size_t n) noexcept { cnetmod::detail::deallocate_frame(p, n); }

    using handle = std::coroutine_handle<cnetmod::detail::task_promise<void>>;

    handler_call(state_ptr s, io_context& ctx, std::unique_ptr<exchange> ex, tcp_stream& stream)
        : st(std::move(s)), rc(ctx, std::move(ex), stream) {
        server_tag = st.get();
        request_owner::upgraded = &on_upgraded;
        task_owner::finished = &on_finished;
        rc.set_owner(this);
    }

    static void on_upgraded(request_owner* self) noexcept;
    // The adopted handler ended. An exception after the upgrade has no one
    // to answer, as when the session awaited it: a std::exception ends the
    // conversation quietly, anything else is reported as escaping the
    // session would have been.
    static void on_finished(task_owner* self, std::exception_ptr e) noexcept {
        auto* call = static_cast<handler_call*>(self);
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception&) {
            } catch (...) {
                cnetmod::detail::report_escaped_exception(std::current_exception(), std::source_location::current());
            }
        }
        cnetmod::detail::reactor_of(call->rc.context()).release(*call);
        delete call;
    }
    // The context goes before the adopted handler ends.
    static void on_dropped(cnetmod::detail::detached_node* node) noexcept {
        auto* call = static_cast<handler_call*>(node);
        cnetmod::detail::reactor_of(call->rc.context()).release(*call);
        call->frame.destroy();  // the handler's
        delete call;
    }
    void adopt(handler_awaiter& w) noexcept;

    state_ptr st;
    request_context rc;
    // The session's awaiter while the session is suspended on the handler
    // (not while it runs the handler inline).
    handler_awaiter* waiter = nullptr;
};

// Awaits a handler's task for the session, like `co_await task`, except
// that a handler that has upgraded the connection is adopted by its call
// (handler_call): await_resume then says so, and the session ends.
struct handler_awaiter {
    std::unique_ptr<handler_call>& call;
    task<void>& t;
    std::coroutine_handle<> session;
    bool adopted = false;

    bool await_ready() const noexcept { return !t.valid(); }
    bool await_suspend(std::coroutine_handle<> session) noexcept {
        using run_state = cnetmod::detail::task_promise_base::run_state;
        handler_call& c = *call;
        this->session = session;
        auto& p = t.handle().promise();
        p.continuation_ = session;
        p.state_ = run_state::inline_running;
        t.handle().resume();  // an upgrade in here is seen below, once it suspends
        if (p.state_ == run_state::inline_finished) return false;
        p.state_ = run_state::idle;  // suspended: it resumes the session when done
        if (c.rc.upgraded()) {
            c.adopt(*this);
            return false;
        }
        c.waiter = this;
        return true;
    }
    // True when the handler was adopted; otherwise its result (or exception).
    bool await_resume() {
        if (adopted) return true;
        if (call) call->waiter = nullptr;
        if (t.valid()) t.handle().promise().take();
        return false;
    }
};

// The handler upgraded while the session was suspended on it: adopt it,
// and let the session end in a later turn (the upgrade is still using the
// stream in the session's frame).
void handler_call::on_upgraded(request_owner* self) noexcept {
    auto* call = static_cast<handler_call*>(self);
    handler_awaiter* w = call->waiter;
    if (!w) return;  // running inline: the session's awaiter adopts it when it suspends
    const auto session = w->session;
    call->adopt(*w);
    cnetmod::detail::reactor_of(call->rc.context()).schedule(session);
}

void handler_call::adopt(handler_awaiter& w) noexcept {
    frame = w.t.release();  // the session's references go: the call owns the handler now
    (void)w.call.release();
    w.adopted = true;
    waiter = nullptr;
    cnetmod::detail::detach_task(handle::from_address(frame.address()), this);
    drop = &on_dropped;
    cnetmod::detail::reactor_of(rc.context()).adopt(*this);
}

// One connection's requests, in turn. It is its own detached root (no
// spawn wrapper frame), and ends once a handler has upgraded the
// connection: the handler goes on alone (see handler_call).
cnetmod::detail::detached_task session(state_ptr st, io_context& ctx, tcp_stream s) {
    const open_session counted;
    for (;;) {
        // Until a request's first bytes arrive only this frame waits: the
        // request's storage and the coroutines that read it are made then
        // (a connection idle between requests, or many accepted at once
        // and not yet sent their requests, hold nothing else).
        bool arrived = false;
        try {
            arrived = !(co_await s.recv_view(timeout(st->options.keep_alive_timeout))).empty();
        } catch (const std::system_error&) {  // timed out or failed: as read_head's closed
        }
        if (!arrived) break;
        auto ex = std::make_unique<exchange>();
        if (!co_await read_request(s, st->options, ex->req)) break;
        count(requests_n).add();
        ex->resp.set_header("Server", st->options.server_name);
        const bool is_head = ex->req.method() == "HEAD";
        bool keep_alive = ex->req.keep_alive();
        auto call = std::make_unique<handler_call>(st, ctx, std::move(ex), s);
        request_context& rc = call->rc;
        if (const server::handler* h = route_request(*st, rc)) {
            try {
                task<void> t = (*h)(rc);
                // Adopted: the handler goes on alone with the WebSocket connection.
                if (co_await handler_awaiter{call, t, {}}) co_return;
            } catch (const request_rejected&) {
                keep_alive = false;  // answered as the handler prepared it
            } catch (const std::exception& e) {
                if (rc.upgraded()) co_return;  // the WebSocket conversation ended badly: nothing to answer
                handler_failed(rc, st->options, e);
                keep_alive = false;
            }
            if (rc.upgraded()) co_return;  // the stream belongs to the WebSocket connection
        }
        name_websocket_version(rc);
        if (!co_await write_response(s, rc.resp(), keep_alive, is_head, st->options)) co_return;
    }
    co_await end_session(s, st->options);
}

task<void> accept_loop(state_ptr st, io_context& ctx, tcp_listener listener, std::size_t slot) {
    st->listeners[slot] = &listener;
    for (;;) {
        tcp_stream s;
        try {
            s = co_await listener.accept();
        } catch (const std::system_error&) {
            break;  // closed by stop()
        }
        count(accepted_n).add();
        if (st->tls) {
            try {
                s.start_tls(*st->tls, {}, timeout(st->options.tls_handshake_timeout));
            } catch (const std::exception&) {
                continue;  // no memory for the session: this connection only is dropped
            }
        }
        start_detached(ctx, session(st, ctx, std::move(s)));
    }
    st->listeners[slot] = nullptr;
}

// One core's part of a graceful shutdown: the connections upgraded from
// this server (WebSocket's, which are sent 1001) are given `grace` to close,
// then waited for (reset ones end at once).
task<void> shutdown_core(state_ptr st, io_context& ctx, std::chrono::milliseconds grace) {
    const auto give_up = std::chrono::steady_clock::now() + grace + std::chrono::seconds(1);
    for (;;) {
        // Again each time: a request read before the listener closed may
        // still upgrade; it is sent 1001 at once.
        std::size_t remaining = 0;
        for (auto* c = detail::first_upgraded_connections(); c; c = c->next) {
            c->close(st.get(), grace);
            remaining += c->count(st.get());
        }
        if (remaining == 0 || std::chrono::steady_clock::now() >= give_up) break;
        co_await async_sleep(ctx, std::chrono::milliseconds(5));
    }
}

// Waits for every core of a runtime to finish its part, then resumes the
// caller on its own core.
struct all_cores_shut {
    all_cores_shut(runtime& r, state_ptr s, std::chrono::milliseconds g) : rt(r), st(std::move(s)), grace(g) {}
    runtime& rt;
    state_ptr st;
    std::chrono::milliseconds grace;
    std::atomic<std::size_t> left{0};
    std::coroutine_handle<> waiter;
    int origin = -1;

    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) {
        waiter = h;
        origin = runtime::current() == &rt ? runtime::current_core() : -1;
        left = rt.size();
        for (std::size_t i = 0; i < rt.size(); ++i)
            rt.submit_to(i, [this] { spawn(*io_context::current(), run_core(this)); });
    }
    void await_resume() const noexcept {}

    static task<void> run_core(all_cores_shut* self) {
        co_await shutdown_core(self->st, *io_context::current(), self->grace);
        if (self->left.fetch_sub(1) != 1) co_return;
        if (runtime::current_core() == self->origin)
            cnetmod::detail::reactor_of(*io_context::current()).schedule(self->waiter);
        else
            self->rt.submit_to(static_cast<std::size_t>(self->origin), [h = self->waiter] { h.resume(); });
    }
};

void listen_on(const state_ptr& st, io_context& ctx, int fd, std::size_t slot) {
    spawn(ctx, accept_loop(st, ctx, tcp_listener::adopt(ctx, fd, st->options.listen), slot));
}

}  // namespace

server_metrics metrics_of(const io_context& ctx) noexcept {
    const core_counter* c = cnetmod::detail::layer_counters_of(ctx);
    return {c[accepted_n].value(), c[open_n].value(), c[requests_n].value(), c[refused_n].value()};
}

cutoff_counts cutoffs() noexcept {
    return {write_timeouts.load(std::memory_order_relaxed), refusals.load(std::memory_order_relaxed)};
}

server::server(io_context& ctx, server_options options) : ctx_(&ctx), state_(std::make_shared<shared_state>()) {
    state_->options = std::move(options);
    if (state_->options.tls) state_->tls = tls_context::server(*state_->options.tls);
}

server::server(runtime& rt, server_options options) : rt_(&rt), state_(std::make_shared<shared_state>()) {
    state_->options = std::move(options);
    if (state_->options.tls) state_->tls = tls_context::server(*state_->options.tls);
}

server::~server() {
    stop();
}

const server_options& server::settings() const noexcept {
    return state_->options;
}

server& server::route(std::string_view method, std::string path, handler h) {
    for (auto& r : state_->routes) {
        if (r.path == path) {
            r.methods.emplace_back(std::string(method), std::move(h));
            return *this;
        }
    }
    state_->routes.push_back(shared_state::route_entry{std::move(path), {}});
    state_->routes.back().methods.emplace_back(std::string(method), std::move(h));
    return *this;
}

void server::listen(std::uint16_t port, std::string_view address) {
    ip_endpoint endpoint(address, port);
    const std::size_t cores = rt_ ? rt_->size() : 1;
    listen_options lo = state_->options.listen;
    // The cores of one server share their port through SO_REUSEPORT; another
    // server or process joins them only when the embedder asks (share_port).
    lo.reuse_port = cores > 1 || state_->options.share_port;
    if (lo.reuse_port && !state_->options.share_port && port != 0)
        tcp_listener::ensure_port_free(endpoint);  // throws "Address already in use" when taken
    std::vector<int> fds;
    try {
        for (std::size_t i = 0; i < cores; ++i) {
            fds.push_back(tcp_listener::open_socket(endpoint, lo));
            if (i == 0) {
                port_ = ip_endpoint::local_of(fds[0]).port();
                endpoint = ip_endpoint(address, port_);  // the other cores join the same port
            }
        }
    } catch (...) {
        for (int fd : fds) ::close(fd);
        throw;
    }
    const std::size_t base = state_->listeners.size();
    state_->listeners.resize(base + cores, nullptr);
    if (ctx_) {
        listen_on(state_, *ctx_, fds[0], base);
    } else {
        for (std::size_t i = 0; i < cores; ++i)
            rt_->submit_to(
                i, [st = state_, i, fd = fds[i], slot = base + i] { listen_on(st, *io_context::current(), fd, slot); });
    }
}

void server::stop() {
    auto close_slot = [](state_ptr st, std::size_t slot) {
        if (tcp_listener* l = st->listeners[slot]) l->close();
    };
    for (std::size_t slot = 0; slot < state_->listeners.size(); ++slot) {
        if (ctx_) {
            if (ctx_->running_in_this_thread())
                close_slot(state_, slot);
            else
                ctx_->post([close_slot, st = state_, slot] { close_slot(st, slot); });
        } else {
            rt_->submit_to(slot % rt_->size(), [close_slot, st = state_, slot] { close_slot(st, slot); });
        }
    }
}

task<void> server::shutdown(std::chrono::milliseconds grace) {
    if (rt_ && runtime::current() != rt_)
        throw std::logic_error(
            "cnetmod: server::shutdown is awaited on a core of the server's runtime "
            "(from elsewhere: shutdown_and_wait)");
    stop();
    if (ctx_) {
        co_await shutdown_core(state_, *ctx_, grace);
        co_return;
    }
    co_await all_cores_shut(*rt_, state_, grace);
}

void server::shutdown_and_wait(std::chrono::milliseconds grace) {
    if ((ctx_ && ctx_->running_in_this_thread()) || (rt_ && runtime::current() == rt_))
        throw std::logic_error(
            "cnetmod: shutdown_and_wait on one of the server's cores would wait forever: "
            "co_await shutdown() there");
    stop();
    const std::size_t cores = ctx_ ? 1 : rt_->size();
    std::latch done(static_cast<std::ptrdiff_t>(cores));
    auto part = [st = state_, grace, &done]() {
        spawn(*io_context::current(), co_invoke([st, grace, &done]() -> task<void> {
            co_await shutdown_core(st, *io_context::current(), grace);
            done.count_down();
        }));
    };
    if (ctx_)
        ctx_->post(part);
    else
        for (std::size_t i = 0; i < cores; ++i) rt_->submit_to(i, part);
    done.wait();
}

}  // namespace cnetmod::http
