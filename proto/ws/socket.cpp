// The callback API over the connection core: a callback connection is the
// core, the waiter that reads for it and the embedder's data, in one block
// from the per-core slabs. It owns itself: it frees itself once its close
// handler has run and TCP has ended.
#include <cnetmod/engine/detail/reactor.hpp>
#include <cnetmod/engine/log.hpp>
#include <cnetmod/engine/spawn.hpp>
#include <cnetmod/proto/http/server.hpp>
#include <cnetmod/proto/ws/detail/connection_state.hpp>
#include <cnetmod/proto/ws/detail/metrics.hpp>
#include <cnetmod/proto/ws/detail/server_handshake.hpp>
#include <cnetmod/proto/ws/socket.hpp>

#include <cstdio>
#include <stdexcept>

namespace cnetmod::ws::detail {
namespace {

constexpr std::size_t align_up(std::size_t n, std::size_t a) noexcept {
    return (n + a - 1) / a * a;
}

}  // namespace

class socket_state final : public connection_state, public read_waiter {
public:
    socket_state(tcp_stream stream, route_base& route, bool has_subprotocol)
        : connection_state(std::move(stream), role::server, route, false, true, has_subprotocol),
          read_waiter(&socket_state::on_readable) {
        callback_ = true;
    }
    socket_state(tcp_stream stream, route_base& route, const deflate_agreement& agreed, bool has_subprotocol)
        : connection_state(std::move(stream), role::server, route, agreed, true, has_subprotocol),
          read_waiter(&socket_state::on_readable) {
        callback_ = true;
    }
    ~socket_state() {
        if (route().destroy_user) route().destroy_user(user());
    }

    // The block: the state, then the user data at its alignment.
    static std::size_t user_offset(const route_base& r) noexcept {
        return align_up(sizeof(socket_state), r.user_align);
    }
    static std::size_t block_size(const route_base& r) noexcept {
        return r.user_size ? user_offset(r) + r.user_size : sizeof(socket_state);
    }
    static void* user_at(void* block, const route_base& r) noexcept {
        return static_cast<std::byte*>(block) + user_offset(r);
    }

    route_base& route() const noexcept { return static_cast<route_base&>(*settings_); }
    void* user() noexcept { return user_at(this, route()); }

    // The connection is open: the open handler, then what came with the
    // handshake, then waiting.
    void start() {
        if (route().open) {
            dispatching_ = true;
            run_handler([&] { route().open(route(), this); });
            dispatching_ = false;
        }
        read_all();
    }

    // Runs the machine over everything buffered, handing each event to the
    // route's handlers, then waits for more (or ends).
    void read_all() {
        dispatching_ = true;
        bool noted = false;
        while (!closed_ && machine_.reading()) {
            const auto view = stream_.writable_view();
            if (view.empty()) {
                if (stream_.at_end()) ended(stream_.finish_wait_readable());
                break;
            }
            if (!noted) {  // one clock reading per batch: the turn's time is the same for all
                note_activity();
                noted = true;
            }
            // Every event in this receive buffer, then the buffer is consumed
            // at once (the payloads handed out lie in it until then).
            std::size_t used = 0;
            do {
                const bool was_in_message = machine_.in_message();
                const feed_result r = machine_.feed(view.subspan(used), limits());
                if (!was_in_message && machine_.in_message()) msg_start_ms_ = last_rx_ms_;
                used += r.consumed;
                if (r.event.kind == event_kind::none) {
                    if (r.consumed == 0) break;  // the machine reads no more
                    continue;
                }
                dispatch(r.event);
            } while (used < view.size() && !closed_ && machine_.reading());
            if (!stream_.is_open()) break;
            stream_.consume(used);
            if (used == 0) break;
        }
        write_owed();
        dispatching_ = false;
        after_dispatch();
    }

    void dispatch(const event& ev) {
        route_base& r = route();
        switch (ev.kind) {
            case event_kind::none:
                return;
            case event_kind::message:
                if (r.message)
                    run_handler([&] { r.message(r, this, ev.text(), ev.op); });
                else if (r.fragment)  // a route that streams everything: a whole message is its only piece
                    run_handler([&] { r.fragment(r, this, ev.text(), ev.op, true); });
                return;
            case event_kind::fragment:        // the route has a fragment handler (route's limits.fragments)
                msg_start_ms_ = last_rx_ms_;  // progress: message_timeout counts from the last piece
                run_handler([&] { r.fragment(r, this, ev.text(), ev.op, ev.last); });
                return;
            case event_kind::ping:
                if (r.ping) run_handler([&] { r.ping(r, this, ev.text()); });
                return;
            case event_kind::pong:
                if (r.pong) run_handler([&] { r.pong(r, this, ev.text()); });
                return;
            case event_kind::close:
            case event_kind::failure:
                // The machine reads no more; the close frame owed goes with write_owed.
                return;
        }
    }

    // A handler that throws ends its connection (1011), not the core.
    template <class F>
    void run_handler(F&& f) noexcept {
        try {
            f();
        } catch (const std::exception& e) {
            log(log_level::warning, std::string("WebSocket handler threw: ") + e.what());
            fail_internal();
        } catch (...) {
            fail_internal();
        }
    }
    void fail_internal() noexcept {
        try {
            queue_close(close_code::internal_error, "handler failed");
        } catch (...) {
        }
        machine_.abandon();
        closed_ = true;
    }

    // After the handlers of a pass: go on reading, or end.
    void after_dispatch() {
        if (reset_requested_) {
            reset_requested_ = false;
            dropped();
            stream_.abort();
        }
        if (!closed_ && machine_.reading() && stream_.is_open()) {
            stream_.wait_readable(*this, read_deadline());
            return;
        }
        finish();
    }

    // The conversation is over: the close handler, then TCP's end (flush,
    // FIN, the peer's FIN, bounded by close_timeout), then the block is freed.
    void finish() {
        report_close();
        if (stream_.is_open() && !finishing_) {
            finishing_ = true;
            closed_ = true;
            try {
                spawn(context(), finish_tcp(this));
                return;
            } catch (...) {
                stream_.abort();
            }
        }
        if (!finishing_) destroy();
    }
    struct finish_guard {
        socket_state* s;
        ~finish_guard() {
            s->finishing_ = false;
            s->destroy();
        }
    };
    // (A guard frees the block also when the coroutine is destroyed unrun, as a context tears down.)
    static task<void> finish_tcp(socket_state* s) {
        finish_guard guard{s};
        try {
            co_await s->stream_.close(timeout(s->settings().close_timeout));
        } catch (const std::system_error&) {
        }
    }

    void report_close() noexcept {
        if (close_reported_) return;
        close_reported_ = true;
        if (!route().close) return;
        std::uint16_t code = machine_.close_code();
        if (!code || !machine_.close_received()) {
            // Closed without the peer's close frame: what this side sent (a
            // failure, end()), or 1006 when TCP ended without a handshake.
            if (!machine_.close_sent() || !code) code = close_code::abnormal;
        }
        dispatching_ = true;
        run_handler([&] { route().close(route(), this, code, machine_.close_reason()); });
        dispatching_ = false;
    }

    // The wait ended without bytes: an idle timeout closes with 1001; end of
    // stream or an error drops the connection.
    void ended(tcp_stream::read_status st) {
        if (st == tcp_stream::read_status::timed_out && machine_.is_open()) {
            queue_close(close_code::going_away, "idle timeout");
            machine_.abandon();
            closed_ = true;
            return;
        }
        dropped();
        if (st != tcp_stream::read_status::ended) stream_.abort();
    }

    static void on_readable(read_waiter* w) {
        auto* s = static_cast<socket_state*>(w);
        const auto st = s->stream_.finish_wait_readable();
        if (st == tcp_stream::read_status::data) return s->read_all();
        s->ended(st);
        s->after_dispatch();
    }

    // Frees the block (or, while a drain watch or TCP's end still runs, lets
    // that free it).
    void destroy() noexcept {
        if (draining_ || finishing_) {
            free_pending_ = true;
            return;
        }
        route_base& r = route();
        r.retain();  // the block's size is read from the route after the state is gone
        const std::size_t size = block_size(r);
        void* block = this;
        this->~socket_state();
        cnetmod::detail::deallocate_frame(block, size);
        r.release();
    }

    // ---- sending ----

    send_status send(ws::opcode op, std::span<const std::byte> payload, bool whole_message) {
        if (!open() || over_queue_bound()) return send_status::dropped;
        try {
            stream_sink sink{stream_};
            if (whole_message)
                machine_.send_message(sink, op, payload, limits());
            else
                machine_.send_frame(sink, op, payload);
        } catch (const std::system_error&) {
            return send_status::dropped;
        }
        return after_send();
    }
    send_status after_send() {
        if (stream_.queued_bytes() <= settings_->send_high_water) return send_status::sent;
        watch_drain();
        return send_status::backpressure;
    }

    // Over send_high_water: the drain handler runs once the queue halves; a
    // peer that takes nothing for send_timeout is cut off.
    void watch_drain() {
        if (draining_) return;
        draining_ = true;
        try {
            spawn(context(), drain_watch(this));
        } catch (...) {
            draining_ = false;
        }
    }
    struct drain_guard {
        socket_state* s;
        ~drain_guard() {
            s->draining_ = false;
            if (s->free_pending_) s->destroy();
        }
    };
    static task<void> drain_watch(socket_state* s) {
        drain_guard guard{s};
        bool drained = true;
        try {
            co_await s->stream_.drain_to(s->settings().send_high_water / 2, timeout(s->settings().send_timeout));
        } catch (const std::system_error&) {
            drained = false;
        }
        if (s->free_pending_) co_return;
        if (!drained) {
            s->dropped();
            s->stream_.abort();  // the waiting reader ends it
            co_return;
        }
        if (s->open() && s->route().drain) {
            s->dispatching_ = true;
            s->run_handler([&] { s->route().drain(s->route(), s); });
            s->dispatching_ = false;
            if (s->closed_ || s->reset_requested_) {
                s->draining_ = false;
                if (!s->stream_.is_open() || s->reset_requested_) {
                    // the reader's wait ends with the reset
                    s->reset_requested_ = false;
                    s->dropped();
                    s->stream_.abort();
                }
            }
        }
    }

    bool draining_ : 1 = false;         // a drain watch runs
    bool finishing_ : 1 = false;        // TCP's end runs
    bool free_pending_ : 1 = false;     // freed when those end
    bool reset_requested_ : 1 = false;  // close() from inside a handler
};

void* user_data_of(connection_state* s) noexcept {
    return static_cast<socket_state*>(s)->user();
}

void destroy_callback_state(connection_state* s) noexcept {
    static_cast<socket_state*>(s)->destroy();
}

namespace {

socket_state& of(connection_state* s) noexcept {
    return *static_cast<socket_state*>(s);
}

// The route's GET handler: the upgrade handler (which sees every request
// to the route, so that it can answer its own errors), the handshake's
// checks, the 101, and the connection on its own; the HTTP session then ends.
task<void> upgrade_route(http::request_context& rc, route_base& route) {
    const std::size_t size = socket_state::block_size(route);
    void* block = cnetmod::detail::allocate_frame(size);
    void* user = socket_state::user_at(block, route);
    bool user_made = false;
    try {
        if (route.construct_user) {
            route.construct_user(user);
            user_made = true;
        }
        if (route.upgrade && !route.upgrade(route, rc, user)) {
            count(handshake_refused);
            if (rc.resp().get_status() == http::status::ok) rc.resp().set_status(http::status::forbidden);
            throw http::request_rejected("cnetmod: the route's upgrade handler refused the WebSocket handshake");
        }
        require_handshake(rc);
    } catch (...) {
        if (user_made) route.destroy_user(user);
        cnetmod::detail::deallocate_frame(block, size);
        throw;
    }
    socket_state* s = nullptr;
    bool answered = false;  // the 101 is queued
    try {
        const handshake_answer answer = answer_handshake(rc, route.options);
        answered = true;
        register_upgraded_with_http();
        s = answer.deflate
                ? ::new (block)
                      socket_state(std::move(rc.stream()), route, answer.agreement, !answer.subprotocol.empty())
                : ::new (block) socket_state(std::move(rc.stream()), route, !answer.subprotocol.empty());
    } catch (...) {
        if (answered) handed_over(rc, false);
        if (user_made) route.destroy_user(user);
        cnetmod::detail::deallocate_frame(block, size);
        throw;
    }
    handed_over(rc);
    s->register_as(rc.server_tag());
    s->start();
    co_return;
}

}  // namespace

void serve_route(http::server& srv, std::string path, route_base* route) {
    std::shared_ptr<route_base> held(route, [](route_base* r) { r->release(); });
    srv.get(std::move(path), [held](http::request_context& rc) { return upgrade_route(rc, *held); });
}

}  // namespace cnetmod::ws::detail

namespace cnetmod::ws {

using detail::of;

send_status socket_base::send(std::string_view payload, ws::opcode op) {
    return send(std::as_bytes(std::span(payload.data(), payload.size())), op);
}

send_status socket_base::send(std::span<const std::byte> payload, ws::opcode op) {
    if (op != opcode::text && op != opcode::binary)
        throw std::invalid_argument("cnetmod: socket::send sends text or binary messages (ping() for pings)");
    return of(s_).send(op, payload, true);
}

send_status socket_base::send(const prepared_message& message) {
    auto& s = of(s_);
    if (!s.open() || s.over_queue_bound()) return send_status::dropped;
    try {
        s.queue_prepared(message);
    } catch (const std::exception&) {
        return send_status::dropped;
    }
    return s.after_send();
}

send_status socket_base::ping(std::string_view data) {
    if (data.size() > 125) throw std::invalid_argument("cnetmod: a ping carries at most 125 bytes");
    return of(s_).send(opcode::ping, std::as_bytes(std::span(data.data(), data.size())), false);
}

void socket_base::end(std::uint16_t code, std::string_view reason) {
    if (!is_valid_close_code(code))
        throw std::invalid_argument("cnetmod: close code " + std::to_string(code) + " may not be sent");
    if (reason.size() > 123) throw std::invalid_argument("cnetmod: a close reason is at most 123 bytes");
    auto& s = of(s_);
    s.close_within(code, reason, s.settings().close_timeout);
}

void socket_base::close() noexcept {
    auto& s = of(s_);
    if (s.closed_ && !s.stream_.is_open()) return;
    if (s.dispatching_) {
        s.reset_requested_ = true;  // after the handler returns
        s.closed_ = true;
        return;
    }
    s.dropped();
    s.stream_.abort();  // the waiting reader ends it: the close handler runs, the block is freed
}

bool socket_base::is_open() const noexcept {
    return of(s_).open();
}
std::size_t socket_base::buffered_amount() const noexcept {
    return of(s_).stream_.queued_bytes();
}
std::string_view socket_base::subprotocol() const noexcept {
    return of(s_).subprotocol();
}
bool socket_base::compression() const noexcept {
    return of(s_).machine_.deflate();
}
io_context& socket_base::context() const noexcept {
    return of(s_).context();
}
ip_endpoint socket_base::remote_endpoint() const {
    return of(s_).stream_.remote_endpoint();
}

}  // namespace cnetmod::ws
