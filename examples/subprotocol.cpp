// The seed's subprotocol selection: "chat" or "binary" when the client
// offers it, none otherwise. The selected one is echoed in each reply.
#include <cnetmod/engine/engine.hpp>
#include <cnetmod/proto/ws/ws.hpp>

#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <cstdio>

using namespace cnetmod;

int main(int argc, char** argv) {
    CLI::App app{"WebSocket subprotocol selection (ws://localhost:PORT/ws)"};
    std::uint16_t port = 8080;
    std::string address = "127.0.0.1";
    app.add_option("--port", port, "TCP port")->capture_default_str();
    app.add_option("--address", address, "address to listen on")->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    net_init guard;
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // a line at a time, also into a file or pipe
    io_context ctx;
    http::server srv(ctx);

    srv.get("/ws", [](http::request_context& ctx) -> task<void> {
        auto requested = ctx.header("Sec-WebSocket-Protocol");

        ws::options opts;
        if (requested == "chat") {
            opts.subprotocol = "chat";
        } else if (requested == "binary") {
            opts.subprotocol = "binary";
        }

        auto ws = co_await ctx.upgrade_to_websocket(opts);
        while (auto msg = co_await ws.recv()) {
            co_await ws.send(fmt::format("[{}] {}", ws.subprotocol().empty() ? "none" : ws.subprotocol(), *msg));
        }
    });

    srv.listen(port, address);
    fmt::print("WebSocket subprotocol server on ws://localhost:{}/ws\n", srv.port());
    std::fflush(stdout);
    ctx.run();
}
