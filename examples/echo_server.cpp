// The seed's basic echo server: every message comes back to its sender.
#include <cnetmod/engine/engine.hpp>
#include <cnetmod/proto/ws/ws.hpp>

#include <fmt/core.h>
#include <pthread.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <thread>

using namespace cnetmod;

// Beyond the seed (--stats-file): SIGTERM and SIGINT stop the loop instead of
// killing the process, so that its counters can be written. The signals are
// blocked in every thread and taken by sigwait() on a thread of their own,
// which calls io_context::stop() (safe from any thread); nothing runs in a
// signal handler.
class stop_on_signal {
public:
    explicit stop_on_signal(io_context& ctx) {
        sigemptyset(&signals_);
        sigaddset(&signals_, SIGTERM);
        sigaddset(&signals_, SIGINT);
        // Blocked before any other thread starts, so that every thread inherits the mask.
        pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
        waiter_ = std::thread([this, &ctx] {
            int signal = 0;
            sigwait(&signals_, &signal);
            ctx.stop();
        });
    }
    ~stop_on_signal() {
        // The loop may have ended without a signal: wake the waiter with one of its own.
        pthread_kill(waiter_.native_handle(), SIGTERM);
        waiter_.join();
    }
    stop_on_signal(const stop_on_signal&) = delete;
    stop_on_signal& operator=(const stop_on_signal&) = delete;

private:
    sigset_t signals_{};
    std::thread waiter_;
};

// One JSON line of the loop's counters, for SQEs per message in benchmarks.
void write_stats(const io_context& ctx, const std::string& path) {
    std::ofstream out(path);
    out << fmt::format("{{\"sqes\":{},\"enters\":{},\"completions\":{}}}\n", ctx.sqes_prepared(), ctx.enter_calls(),
                       ctx.completions());
    if (!out) fmt::print(stderr, "echo_server: cannot write --stats-file {}\n", path);
}

int main(int argc, char** argv) {
    CLI::App app{"WebSocket echo server (ws://localhost:PORT/ws)"};
    std::uint16_t port = 8080;
    std::string address = "127.0.0.1";
    bool quiet = false;
    std::size_t cores = 1;
    unsigned wait_batch = 0;
    unsigned wait_batch_us = 50;
    app.add_option("--port", port, "TCP port")->capture_default_str();
    app.add_option("--cores", cores, "serve on this many cores (a runtime, one loop per core)")->capture_default_str();
    app.add_option("--address", address, "address to listen on")->capture_default_str();
    app.add_flag("--quiet", quiet, "do not print each message (for benchmarks)");
    app.add_option("--wait-batch", wait_batch,
                   "beyond the seed: when idle, wake for this many completions or after --wait-batch-us")
        ->capture_default_str();
    app.add_option("--wait-batch-us", wait_batch_us, "the most latency --wait-batch may add")->capture_default_str();
    ws::options opts;
    std::size_t compression_budget_kib = opts.compression_memory_budget / 1024;
    std::string cert, key;
    app.add_flag("--deflate", opts.enable_compression,
                 "beyond the seed: accept permessage-deflate (RFC 7692) when the client offers it");
    app.add_option("--deflate-level", opts.compression_level, "compression level, 1..12 (zlib's at most 9)")
        ->capture_default_str();
    app.add_option("--deflate-threshold", opts.compression_threshold,
                   "without context takeover, messages under this many bytes go plain")
        ->capture_default_str();
    bool no_takeover = false;
    app.add_flag("--no-context-takeover", no_takeover,
                 "ask for no context takeover both ways (no window kept between messages)");
    app.add_option("--window-bits", opts.compression_window_bits, "largest LZ77 window, log2 bytes, 8..15")
        ->check(CLI::Range(8, 15))
        ->capture_default_str();
    app.add_option("--memory-level", opts.compression_memory_level, "zlib memLevel for windows kept, 1..9")
        ->check(CLI::Range(1, 9))
        ->capture_default_str();
    app.add_option("--takeover-threshold", opts.takeover_compression_threshold,
                   "with context takeover, messages under this many bytes go plain")
        ->capture_default_str();
    app.add_option("--compression-budget-kib", compression_budget_kib,
                   "per core: KiB of compression state past which new connections get no context takeover")
        ->capture_default_str();
    // Beyond the seed: the liveness and stall bounds (ws::options; README "Limits and timeouts").
    unsigned ping_interval_ms = static_cast<unsigned>(opts.ping_interval.count());
    unsigned pong_timeout_ms = static_cast<unsigned>(opts.pong_timeout.count());
    unsigned message_timeout_ms = static_cast<unsigned>(opts.message_timeout.count());
    app.add_option("--ping-interval-ms", ping_interval_ms, "ping a peer silent this long (0: never)")
        ->capture_default_str();
    app.add_option("--pong-timeout-ms", pong_timeout_ms, "reset a peer silent this long after a ping")
        ->capture_default_str();
    app.add_option("--message-timeout-ms", message_timeout_ms,
                   "close (1008) a message not complete this long after it began")
        ->capture_default_str();
    auto* cert_opt = app.add_option("--cert", cert, "TLS certificate (PEM): serve wss:// instead of ws://");
    auto* key_opt = app.add_option("--key", key, "TLS private key (PEM) of --cert");
    cert_opt->needs(key_opt);
    key_opt->needs(cert_opt);
    std::string api = "coroutine";
    app.add_option("--api", api,
                   "beyond the seed: 'coroutine' (the seed's handler, co_await recv/send) or 'callback' (a route "
                   "with handlers, srv.ws())")
        ->check(CLI::IsMember({"coroutine", "callback"}))
        ->capture_default_str();
    std::string stats_file;
    app.add_option("--stats-file", stats_file,
                   "beyond the seed: on SIGTERM or SIGINT stop, and write the loop's SQE, io_uring_enter and "
                   "completion counts to this file as one JSON line (one core only)");
    CLI11_PARSE(app, argc, argv);
    opts.compression_context_takeover = !no_takeover;
    opts.compression_memory_budget = compression_budget_kib * 1024;
    opts.ping_interval = std::chrono::milliseconds(ping_interval_ms);
    opts.pong_timeout = std::chrono::milliseconds(pong_timeout_ms);
    opts.message_timeout = std::chrono::milliseconds(message_timeout_ms);
    try {
        http::server_options server_opts;
        if (!cert.empty()) server_opts.tls = tls_server_options{cert, key};
        const char* scheme = cert.empty() ? "ws" : "wss";
        io_context_options loop;
        loop.wait_batch = wait_batch;
        loop.wait_batch_timeout = std::chrono::microseconds(wait_batch_us);

        net_init guard;
        std::setvbuf(stdout, nullptr, _IOLBF, 0);  // a line at a time, also into a file or pipe

        auto echo = [quiet, &opts](http::request_context& ctx) -> task<void> {
            // Check if WebSocket upgrade request
            if (!ctx.is_websocket_upgrade()) {
                ctx.resp().set_status(http::status::bad_request);
                co_return;
            }

            // Upgrade to WebSocket
            auto ws = co_await ctx.upgrade_to_websocket(opts);
            if (!quiet) fmt::print("WebSocket client connected\n");

            // Echo loop
            while (true) {
                auto msg = co_await ws.recv();
                if (!msg) break;  // Connection closed

                if (!quiet) fmt::print("Received: {}\n", *msg);
                // Binary comes back as binary (the seed's echo knows only text).
                if (ws.last_opcode() == ws::opcode::binary)
                    co_await ws.send_binary(*msg);
                else
                    co_await ws.send(*msg);
            }

            if (!quiet) fmt::print("WebSocket client disconnected\n");
        };

        // Beyond the seed: the same echo as a callback route — settings and
        // handlers once for the route, no coroutine per connection.
        ws::behavior<> callback_echo{
            .options = opts,
            .open =
                [quiet](ws::socket<>&) {
                    if (!quiet) fmt::print("WebSocket client connected\n");
                },
            .message =
                [quiet](ws::socket<>& s, std::string_view msg, ws::opcode op) {
                    if (!quiet) fmt::print("Received: {}\n", msg);
                    s.send(msg, op);
                },
            .close =
                [quiet](ws::socket<>&, std::uint16_t, std::string_view) {
                    if (!quiet) fmt::print("WebSocket client disconnected\n");
                },
        };
        auto serve = [&](http::server& srv) {
            if (api == "callback")
                srv.ws("/ws", callback_echo);
            else
                srv.get("/ws", echo);
        };

        if (cores > 1 && !stats_file.empty()) {
            fmt::print(stderr, "echo_server: --stats-file counts one loop; leave out --cores\n");
            return 2;
        }
        if (cores > 1) {
            // Beyond the seed: the same handler on every core of a runtime.
            runtime_options options;
            options.cores = cores;
            options.context = loop;
            runtime rt(options);
            rt.start();
            http::server srv(rt, server_opts);
            serve(srv);
            srv.listen(port, address);
            fmt::print("WebSocket server on {}://localhost:{}/ws ({} cores)\n", scheme, srv.port(), rt.size());
            std::fflush(stdout);
            rt.wait();
            return 0;
        }

        io_context ctx(loop);
        std::optional<stop_on_signal> signals;
        if (!stats_file.empty()) signals.emplace(ctx);
        http::server srv(ctx, server_opts);
        serve(srv);
        srv.listen(port, address);
        fmt::print("WebSocket server on {}://localhost:{}/ws\n", scheme, srv.port());
        std::fflush(stdout);
        ctx.run();
        if (!stats_file.empty()) write_stats(ctx, stats_file);
    } catch (const std::exception& e) {
        // A certificate or key that cannot be used, a port that is taken.
        fmt::print(stderr, "echo_server: {}\n", e.what());
        return 1;
    }
}
