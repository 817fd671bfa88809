// The seed's connection limit: at most --max WebSockets at once (2 by
// default); further handshakes wait, FIFO, until one ends.
#include <cnetmod/engine/engine.hpp>
#include <cnetmod/proto/ws/ws.hpp>

#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <cstdio>

using namespace cnetmod;

class rate_limited_ws_server {
    semaphore connection_limit_;

public:
    rate_limited_ws_server(size_t max_connections) : connection_limit_(max_connections) {}

    task<void> handle_client(http::request_context& ctx) {
        auto guard = co_await connection_limit_.scoped_acquire();

        auto ws = co_await ctx.upgrade_to_websocket();

        // Handle connection...
        while (auto msg = co_await ws.recv()) {
            co_await ws.send(*msg);
        }
    }
};

int main(int argc, char** argv) {
    CLI::App app{"WebSocket echo with a connection limit (ws://localhost:PORT/ws)"};
    std::uint16_t port = 8080;
    std::string address = "127.0.0.1";
    std::size_t max_connections = 2;
    app.add_option("--port", port, "TCP port")->capture_default_str();
    app.add_option("--address", address, "address to listen on")->capture_default_str();
    app.add_option("--max", max_connections, "concurrent WebSockets")->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    net_init guard;
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // a line at a time, also into a file or pipe
    io_context ctx;
    rate_limited_ws_server server(max_connections);
    http::server srv(ctx);
    srv.get("/ws", [&server](http::request_context& ctx) -> task<void> { co_await server.handle_client(ctx); });
    srv.listen(port, address);
    fmt::print("WebSocket server (at most {} connections) on ws://localhost:{}/ws\n", max_connections, srv.port());
    std::fflush(stdout);
    ctx.run();
}
