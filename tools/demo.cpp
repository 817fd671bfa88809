// cnetmod-demo: the chat room of the seed grown into a multi-core server
// with a browser page.
//
//   GET  /                  the chat page (tools/demo/index.html, built in)
//   WS   /chat?name=NAME    the chat room: "NAME joined", "NAME: message", "NAME left"
//   WS   /ws                echo
//   WS   /broadcast         every message sent here goes to every /broadcast connection
//   GET  /metrics           every core's counters in Prometheus's text format (ws::metrics_route)
//
// Every core serves connections; the chat room and the fan-out are pub/sub
// topics over all cores (ws::pubsub), and with --broker redis://... over
// every demo that names the same Redis. Ctrl-C (or SIGTERM) shuts down
// gracefully: no more connections, close 1001 to every WebSocket after
// what is queued for it, a bounded wait for the peers, then exit.
#include "demo_page.hpp"
#include <cnetmod/engine/engine.hpp>
#include <cnetmod/proto/ws/ws.hpp>

#include <fmt/core.h>
#include <pthread.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>

using namespace cnetmod;

namespace {

// A display name from the query: printable, at most 32 bytes of it.
std::string clean_name(std::string raw) {
    std::string name;
    for (char c : raw) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) continue;
        name += c;
    }
    if (name.size() > 32) name.resize(32);
    if (!ws::is_valid_utf8(name)) return {};
    return name;
}

struct demo {
    ws::options ws_opts;
    std::unique_ptr<ws::pubsub> topics;
    bool quiet = false;

    task<void> page(http::request_context& ctx) {
        ctx.resp().set_header("Content-Type", "text/html; charset=utf-8");
        ctx.resp().set_header("Cache-Control", "no-store");
        ctx.resp().set_body(std::string(demo_page));
        co_return;
    }

    // The WebSocket routes are callback routes (srv.ws): settings and
    // handlers once per route, a connection's name stored inline, no
    // coroutine per connection.
    struct member {
        std::string name;
    };

    ws::behavior<member> chat() {
        return {
            .options = ws_opts,
            .upgrade =
                [](http::request_context& ctx, member& m) {
                    m.name = clean_name(http::query_param(ctx.query(), "name").value_or(""));
                    if (!m.name.empty()) return true;
                    ctx.resp().set_status(http::status::bad_request);
                    ctx.resp().set_body("400 Bad Request: /chat?name=NAME (a printable name, at most 32 bytes)\n");
                    return false;
                },
            .open =
                [this](ws::socket<member>& s) {
                    topics->subscribe(s, "chat");
                    topics->publish("chat", fmt::format("{} joined", s.user_data()->name));
                },
            .message =
                [this](ws::socket<member>& s, std::string_view msg, ws::opcode op) {
                    if (op != ws::opcode::text) return;  // the room speaks text
                    topics->publish("chat", fmt::format("{}: {}", s.user_data()->name, msg));
                },
            .close = [this](ws::socket<member>& s, std::uint16_t,
                            std::string_view) { topics->publish("chat", fmt::format("{} left", s.user_data()->name)); },
        };
    }

    ws::behavior<> echo() {
        return {.options = ws_opts,
                .message = [](ws::socket<>& s, std::string_view msg, ws::opcode op) { s.send(msg, op); }};
    }

    ws::behavior<> fan_out() {
        return {.options = ws_opts,
                .open = [this](ws::socket<>& s) { topics->subscribe(s, "broadcast"); },
                .message = [this](ws::socket<>&, std::string_view msg,
                                  ws::opcode op) { topics->publish("broadcast", msg, op); }};
    }
};

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"cnetmod-demo: a chat room in the browser, echo and fan-out endpoints, on every core"};
    std::uint16_t port = 8080;
    std::string address = "127.0.0.1";
    std::size_t cores = 0;
    std::string cert, key;
    double grace = 5;
    demo d;
    d.ws_opts.enable_compression = true;
    app.add_option("--port", port, "TCP port")->capture_default_str();
    app.add_option("--address", address, "address to listen on")->capture_default_str();
    app.add_option("--cores", cores, "cores to serve on (0: every core this process may use)")->capture_default_str();
    auto* cert_opt = app.add_option("--cert", cert, "TLS certificate (PEM): serve https:// and wss://");
    auto* key_opt = app.add_option("--key", key, "TLS private key (PEM) of --cert");
    cert_opt->needs(key_opt);
    key_opt->needs(cert_opt);
    app.add_option("--grace", grace, "seconds a shutdown waits for WebSocket peers to answer 1001")
        ->capture_default_str();
    unsigned wait_batch = 0, wait_batch_us = 200;
    app.add_option("--wait-batch", wait_batch,
                   "when idle, wake for this many completions or after --wait-batch-us: fan-out batches more "
                   "messages per send at the cost of that much latency")
        ->capture_default_str();
    app.add_option("--wait-batch-us", wait_batch_us, "the most latency --wait-batch may add")->capture_default_str();
    unsigned batch_us = 0;
    app.add_option("--batch-us", batch_us,
                   "fan-out: keep publishes this many microseconds and send them together (fewer sends per "
                   "delivery, up to this much more latency; 0: at once)")
        ->capture_default_str();
    std::string broker;
    app.add_option("--broker", broker,
                   "share the chat room and /broadcast with other demos through a Redis broker "
                   "(redis://[user:password@]host:port or rediss://...)");
    app.add_flag("--quiet", d.quiet, "print only errors");
    CLI11_PARSE(app, argc, argv);

    // SIGINT and SIGTERM are taken by this thread alone (sigwait), so they
    // are blocked before the cores' threads start and inherit the mask.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    try {
        net_init guard;
        runtime_options ro;
        ro.cores = cores;
        ro.context.wait_batch = wait_batch;
        ro.context.wait_batch_timeout = std::chrono::microseconds(wait_batch_us);
        runtime rt(ro);
        ws::pubsub_options po;
        po.message_options = d.ws_opts;
        po.batch_interval = std::chrono::microseconds(batch_us);
        po.broker.url = broker;
        d.topics = std::make_unique<ws::pubsub>(rt, po);
        http::server_options so;
        if (!cert.empty()) so.tls = tls_server_options{cert, key};
        rt.start();
        http::server srv(rt, so);
        srv.get("/", [&d](http::request_context& c) { return d.page(c); });
        srv.ws<demo::member>("/chat", d.chat());
        srv.ws("/ws", d.echo());
        srv.ws("/broadcast", d.fan_out());
        srv.get("/metrics", ws::metrics_route(rt, d.topics.get()));
        srv.listen(port, address);
        const bool tls = !cert.empty();
        const std::string host = address == "0.0.0.0" || address == "127.0.0.1" ? "localhost" : address;
        fmt::print(
            "cnetmod demo: chat at {}://{}:{}/  (echo {}://{}:{}/ws, fan-out {}://{}:{}/broadcast, {} core{}{})\n",
            tls ? "https" : "http", host, srv.port(), tls ? "wss" : "ws", host, srv.port(), tls ? "wss" : "ws", host,
            srv.port(), rt.size(), rt.size() == 1 ? "" : "s",
            broker.empty() ? "" : ", topics shared through the broker");
        std::fflush(stdout);

        int sig = 0;
        sigwait(&signals, &sig);
        if (!d.quiet) fmt::print("cnetmod demo: {}, shutting down\n", sig == SIGINT ? "interrupted" : "terminated");
        srv.shutdown_and_wait(std::chrono::milliseconds(static_cast<long>(grace * 1000)));
        rt.stop();
        rt.wait();
        if (!d.quiet) fmt::print("cnetmod demo: stopped\n");
    } catch (const std::exception& e) {
        fmt::print(stderr, "cnetmod-demo: {}\n", e.what());
        return 1;
    }
}
