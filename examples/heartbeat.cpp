// The seed's heartbeat: an echo server that pings each client every
// --interval seconds (30 by default) until the connection closes.
#include <cnetmod/engine/engine.hpp>
#include <cnetmod/proto/ws/ws.hpp>

#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <cstdio>

using namespace cnetmod;
using namespace std::chrono_literals;

namespace {

std::chrono::milliseconds interval = 30s;

// The seed's loop. The sleep also ends when `stop` is requested, so the
// handler can end the loop before its connection goes away.
task<void> heartbeat_loop(ws::connection& ws, io_context& ctx, std::stop_token stop, semaphore& finished) {
    while (ws.is_open()) {
        try {
            co_await async_sleep(ctx, interval, stop);
        } catch (const std::system_error&) {
            break;  // stopped: the connection is ending
        }

        try {
            co_await ws.ping();
            fmt::print("Ping sent\n");
            std::fflush(stdout);
        } catch (...) {
            fmt::print("Heartbeat failed, connection lost\n");
            break;
        }
    }
    finished.release();
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"WebSocket echo server with heartbeat pings (ws://localhost:PORT/ws)"};
    std::uint16_t port = 8080;
    std::string address = "127.0.0.1";
    double seconds = 30;
    app.add_option("--port", port, "TCP port")->capture_default_str();
    app.add_option("--address", address, "address to listen on")->capture_default_str();
    app.add_option("--interval", seconds, "seconds between pings")->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    interval = std::chrono::milliseconds(static_cast<long>(seconds * 1000));

    net_init guard;
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // a line at a time, also into a file or pipe
    io_context ctx;
    http::server srv(ctx);

    srv.get("/ws", [&ctx](http::request_context& rc) -> task<void> {
        auto ws = co_await rc.upgrade_to_websocket();

        // Usage, as in the seed; the stop source and semaphore let the
        // handler wait for the loop before `ws` goes out of scope.
        std::stop_source stop;
        semaphore finished(0);
        spawn(ctx, heartbeat_loop(ws, ctx, stop.get_token(), finished));

        while (auto msg = co_await ws.recv()) {
            if (*msg == "pong?") continue;
            co_await ws.send(*msg);
        }
        stop.request_stop();
        auto done = co_await finished.scoped_acquire();
    });

    srv.listen(port, address);
    fmt::print("WebSocket heartbeat server on ws://localhost:{}/ws (ping every {} s)\n", srv.port(), seconds);
    std::fflush(stdout);
    ctx.run();
}
