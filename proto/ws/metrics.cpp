// Snapshots of every layer's per-core counters, and their Prometheus text.
#include <cnetmod/proto/ws/detail/metrics.hpp>
#include <cnetmod/proto/ws/metrics.hpp>
#include <cnetmod/version.hpp>

#include <charconv>
#include <string_view>

namespace cnetmod::ws {

ws_metrics metrics_of(const io_context& ctx) noexcept {
    using namespace detail;
    const core_counter* c = cnetmod::detail::layer_counters_of(ctx) + detail::first_counter;
    ws_metrics m;
    m.connections_open = c[connections_open].value();
    m.handshakes_ok = c[handshakes_ok].value();
    m.handshakes_not_websocket = c[handshake_not_websocket].value();
    m.handshakes_bad_version = c[handshake_bad_version].value();
    m.handshakes_refused = c[handshake_refused].value();
    m.handshakes_failed = c[handshake_failed].value();
    m.messages_received = c[messages_in].value();
    m.bytes_received = c[bytes_in].value();
    m.compressed_received = c[compressed_in].value();
    m.messages_sent = c[messages_out].value();
    m.bytes_sent = c[bytes_out].value();
    m.compressed_sent = c[compressed_out].value();
    m.pubsub_deliveries = c[pubsub_deliveries].value();
    m.pubsub_drops = c[pubsub_drops].value();
    static_assert(ws_metrics::close_code_slots == detail::close_code_slots);
    for (std::size_t i = 0; i < ws_metrics::close_code_slots; ++i) {
        m.closes_sent[i] = c[closes_sent + i].value();
        m.closes_received[i] = c[closes_received + i].value();
    }
    return m;
}

namespace {

core_metrics read_core(const io_context& ctx, std::size_t core) noexcept {
    return {core, ctx.metrics(), http::metrics_of(ctx), metrics_of(ctx)};
}

// Field-wise sums, one struct at a time.
void add(engine_metrics& to, const engine_metrics& m) noexcept {
    to.loop_turns += m.loop_turns;
    to.completions += m.completions;
    to.sqes += m.sqes;
    to.busy_ns += m.busy_ns;
    to.bytes_received += m.bytes_received;
    to.bytes_sent += m.bytes_sent;
    to.send_queue_bytes += m.send_queue_bytes;
    to.backpressure_events += m.backpressure_events;
}
void add(http::server_metrics& to, const http::server_metrics& m) noexcept {
    to.connections_accepted += m.connections_accepted;
    to.connections_open += m.connections_open;
    to.requests += m.requests;
    to.requests_refused += m.requests_refused;
}
void add(ws_metrics& to, const ws_metrics& m) noexcept {
    to.connections_open += m.connections_open;
    to.handshakes_ok += m.handshakes_ok;
    to.handshakes_not_websocket += m.handshakes_not_websocket;
    to.handshakes_bad_version += m.handshakes_bad_version;
    to.handshakes_refused += m.handshakes_refused;
    to.handshakes_failed += m.handshakes_failed;
    to.messages_received += m.messages_received;
    to.bytes_received += m.bytes_received;
    to.compressed_received += m.compressed_received;
    to.messages_sent += m.messages_sent;
    to.bytes_sent += m.bytes_sent;
    to.compressed_sent += m.compressed_sent;
    to.pubsub_deliveries += m.pubsub_deliveries;
    to.pubsub_drops += m.pubsub_drops;
    for (std::size_t i = 0; i < ws_metrics::close_code_slots; ++i) {
        to.closes_sent[i] += m.closes_sent[i];
        to.closes_received[i] += m.closes_received[i];
    }
}

// The text format, one family at a time: HELP and TYPE, then a sample per core.
class exposition {
public:
    explicit exposition(const metrics_snapshot& s) : s_(s) {}

    template <class Get>
    void family(std::string_view name, std::string_view type, std::string_view help, Get get) {
        head(name, type, help);
        for (const core_metrics& c : s_.cores) sample(name, c.core, {}, get(c));
    }
    // Seconds from nanoseconds, as a decimal with nine places.
    template <class Get>
    void seconds(std::string_view name, std::string_view help, Get get_ns) {
        head(name, "counter", help);
        for (const core_metrics& c : s_.cores) {
            const std::uint64_t ns = get_ns(c);
            begin(name, c.core, {});
            number(ns / 1'000'000'000u);
            out_ += '.';
            const std::string frac = std::to_string(ns % 1'000'000'000u);
            out_.append(9 - frac.size(), '0');
            out_ += frac;
            out_ += '\n';
        }
    }
    // A family with a second label: `labels[i]` names value i of get(core).
    template <class Labels, class Get>
    void labelled(std::string_view name, std::string_view help, std::string_view label, const Labels& labels, Get get,
                  bool skip_zero) {
        head(name, "counter", help);
        for (const core_metrics& c : s_.cores) {
            const auto values = get(c);
            for (std::size_t i = 0; i < values.size(); ++i) {
                if (skip_zero && values[i] == 0) continue;
                std::string extra(label);
                extra += "=\"";
                extra += labels(i);
                extra += '"';
                sample(name, c.core, extra, values[i]);
            }
        }
    }
    void head(std::string_view name, std::string_view type, std::string_view help) {
        out_ += "# HELP ";
        out_ += name;
        out_ += ' ';
        out_ += help;
        out_ += "\n# TYPE ";
        out_ += name;
        out_ += ' ';
        out_ += type;
        out_ += '\n';
    }
    void plain(std::string_view name, std::string_view labels, std::uint64_t value) {
        out_ += name;
        if (!labels.empty()) {
            out_ += '{';
            out_ += labels;
            out_ += '}';
        }
        out_ += ' ';
        number(value);
        out_ += '\n';
    }
    std::string take() { return std::move(out_); }

private:
    void begin(std::string_view name, std::size_t core, std::string_view extra) {
        out_ += name;
        out_ += "{core=\"";
        number(core);
        out_ += '"';
        if (!extra.empty()) {
            out_ += ',';
            out_ += extra;
        }
        out_ += "} ";
    }
    void sample(std::string_view name, std::size_t core, std::string_view extra, std::uint64_t value) {
        begin(name, core, extra);
        number(value);
        out_ += '\n';
    }
    void number(std::uint64_t v) {
        char buf[24];
        const auto end = std::to_chars(buf, buf + sizeof buf, v).ptr;
        out_.append(buf, end);
    }

    const metrics_snapshot& s_;
    std::string out_;
};

std::string_view state_name(broker_state s) noexcept {
    switch (s) {
        case broker_state::none:
            return "none";
        case broker_state::connecting:
            return "connecting";
        case broker_state::connected:
            return "connected";
        case broker_state::failed:
            return "failed";
    }
    return "none";
}

}  // namespace

core_metrics metrics_snapshot::total() const noexcept {
    core_metrics sum;
    for (const core_metrics& c : cores) {
        add(sum.engine, c.engine);
        add(sum.http, c.http);
        add(sum.ws, c.ws);
    }
    return sum;
}

metrics_snapshot snapshot(runtime& rt, const pubsub* ps) {
    metrics_snapshot s;
    s.cores.reserve(rt.size());
    for (std::size_t i = 0; i < rt.size(); ++i) s.cores.push_back(read_core(rt.core(i), i));
    if (ps) s.broker = ps->broker();
    return s;
}

metrics_snapshot snapshot(const io_context& ctx, const pubsub* ps) {
    metrics_snapshot s;
    s.cores.push_back(read_core(ctx, 0));
    if (ps) s.broker = ps->broker();
    return s;
}

std::string to_prometheus(const metrics_snapshot& s) {
    exposition e(s);
    e.head("cnetmod_info", "gauge", "The library's version (the value is 1).");
    e.plain("cnetmod_info", std::string("version=\"") + CNETMOD_VERSION + '"', 1);

    e.family("cnetmod_loop_turns_total", "counter", "Loop turns, one io_uring_enter each.",
             [](const core_metrics& c) { return c.engine.loop_turns; });
    e.family("cnetmod_completions_total", "counter", "Completions (CQEs) handled.",
             [](const core_metrics& c) { return c.engine.completions; });
    e.family("cnetmod_sqes_total", "counter", "Submissions (SQEs) prepared.",
             [](const core_metrics& c) { return c.engine.sqes; });
    e.seconds("cnetmod_busy_seconds_total", "CPU time (user and kernel) the core's thread used running the loop.",
              [](const core_metrics& c) { return c.engine.busy_ns; });
    e.family("cnetmod_socket_received_bytes_total", "counter", "Bytes sockets received (TLS: encrypted).",
             [](const core_metrics& c) { return c.engine.bytes_received; });
    e.family("cnetmod_socket_sent_bytes_total", "counter", "Bytes the kernel took from send queues.",
             [](const core_metrics& c) { return c.engine.bytes_sent; });
    e.family("cnetmod_send_queue_bytes", "gauge", "Bytes queued to send that the kernel has not taken yet.",
             [](const core_metrics& c) { return c.engine.send_queue_bytes; });
    e.family("cnetmod_backpressure_events_total", "counter", "Times a writer waited for a send queue to drain.",
             [](const core_metrics& c) { return c.engine.backpressure_events; });

    e.family("cnetmod_http_connections_accepted_total", "counter", "Connections accepted.",
             [](const core_metrics& c) { return c.http.connections_accepted; });
    e.family("cnetmod_http_connections_open", "gauge", "Connections in an HTTP session (not upgraded) now.",
             [](const core_metrics& c) { return c.http.connections_open; });
    e.family("cnetmod_http_requests_total", "counter", "Requests read whole.",
             [](const core_metrics& c) { return c.http.requests; });
    e.family("cnetmod_http_requests_refused_total", "counter",
             "Requests answered 4xx/5xx by the parser or a timeout, then closed.",
             [](const core_metrics& c) { return c.http.requests_refused; });

    e.family("cnetmod_ws_connections_open", "gauge", "WebSocket connections open now.",
             [](const core_metrics& c) { return c.ws.connections_open; });
    static constexpr std::string_view results[] = {"ok", "not_websocket", "bad_version", "refused", "failed"};
    e.labelled(
        "cnetmod_ws_handshakes_total", "WebSocket handshakes, by result.", "result",
        [](std::size_t i) { return results[i]; },
        [](const core_metrics& c) {
            return std::array<std::uint64_t, 5>{c.ws.handshakes_ok, c.ws.handshakes_not_websocket,
                                                c.ws.handshakes_bad_version, c.ws.handshakes_refused,
                                                c.ws.handshakes_failed};
        },
        false);
    e.family("cnetmod_ws_messages_received_total", "counter", "Data messages received.",
             [](const core_metrics& c) { return c.ws.messages_received; });
    e.family("cnetmod_ws_message_bytes_received_total", "counter", "Payload bytes of data messages received.",
             [](const core_metrics& c) { return c.ws.bytes_received; });
    e.family("cnetmod_ws_compressed_messages_received_total", "counter", "Data messages received compressed.",
             [](const core_metrics& c) { return c.ws.compressed_received; });
    e.family("cnetmod_ws_messages_sent_total", "counter", "Data messages queued to send.",
             [](const core_metrics& c) { return c.ws.messages_sent; });
    e.family("cnetmod_ws_message_bytes_sent_total", "counter", "Payload bytes of data messages queued to send.",
             [](const core_metrics& c) { return c.ws.bytes_sent; });
    e.family("cnetmod_ws_compressed_messages_sent_total", "counter", "Data messages sent compressed.",
             [](const core_metrics& c) { return c.ws.compressed_sent; });
    const auto code_label = [](std::size_t slot) {
        const std::uint16_t code = ws_metrics::close_code_of_slot(slot);
        return code ? std::to_string(code) : std::string("other");
    };
    e.labelled(
        "cnetmod_ws_closes_sent_total", "Close frames sent, by code.", "code", code_label,
        [](const core_metrics& c) { return c.ws.closes_sent; }, true);
    e.labelled(
        "cnetmod_ws_closes_received_total", "Close frames received, by code.", "code", code_label,
        [](const core_metrics& c) { return c.ws.closes_received; }, true);
    e.family("cnetmod_pubsub_deliveries_total", "counter", "Published messages queued to a subscriber.",
             [](const core_metrics& c) { return c.ws.pubsub_deliveries; });
    e.family("cnetmod_pubsub_drops_total", "counter", "Deliveries skipped, or subscribers closed, for being slow.",
             [](const core_metrics& c) { return c.ws.pubsub_drops; });

    if (s.broker) {
        const broker_status& b = *s.broker;
        e.head("cnetmod_broker_state", "gauge", "The broker bridge's state (1 for the current one).");
        for (broker_state st :
             {broker_state::none, broker_state::connecting, broker_state::connected, broker_state::failed})
            e.plain("cnetmod_broker_state", std::string("state=\"") + std::string(state_name(st)) + '"',
                    b.state == st ? 1 : 0);
        e.head("cnetmod_broker_published_total", "counter", "Publishes written to the broker.");
        e.plain("cnetmod_broker_published_total", {}, b.published);
        e.head("cnetmod_broker_received_total", "counter", "Messages from other servers delivered here.");
        e.plain("cnetmod_broker_received_total", {}, b.received);
        e.head("cnetmod_broker_dropped_total", "counter", "Publishes not written to the broker.");
        e.plain("cnetmod_broker_dropped_total", {}, b.dropped);
        e.head("cnetmod_broker_connects_total", "counter", "Successful connections to the broker.");
        e.plain("cnetmod_broker_connects_total", {}, b.connects);
        e.head("cnetmod_broker_subscribed_topics", "gauge", "Topics whose subscription the broker confirmed.");
        e.plain("cnetmod_broker_subscribed_topics", {}, b.subscribed_topics);
    }
    return e.take();
}

namespace {
http::server::handler serve(std::function<metrics_snapshot()> read) {
    return [read = std::move(read)](http::request_context& rc) -> task<void> {
        rc.resp().set_header("Content-Type", prometheus_content_type);
        rc.resp().set_body(to_prometheus(read()));
        co_return;
    };
}
}  // namespace

http::server::handler metrics_route(runtime& rt, const pubsub* ps) {
    return serve([&rt, ps] { return snapshot(rt, ps); });
}

http::server::handler metrics_route(io_context& ctx, const pubsub* ps) {
    return serve([&ctx, ps] { return snapshot(ctx, ps); });
}

}  // namespace cnetmod::ws
