// The seed's message-types example: every kind of frame, reported as it
// arrives. Pings are answered twice here — once automatically, once by
// the handler as the seed writes it — which RFC 6455 allows (§5.5.3).
#include <cnetmod/engine/engine.hpp>
#include <cnetmod/proto/ws/ws.hpp>

#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <cstdio>

using namespace cnetmod;

int main(int argc, char** argv) {
    CLI::App app{"WebSocket message types (ws://localhost:PORT/ws)"};
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
        auto ws = co_await ctx.upgrade_to_websocket();

        while (true) {
            auto frame = co_await ws.recv_frame();
            if (!frame) break;

            switch (frame->opcode) {
                case ws::opcode::text:
                    fmt::print("Text: {}\n", frame->payload);
                    break;

                case ws::opcode::binary:
                    fmt::print("Binary: {} bytes\n", frame->payload.size());
                    break;

                case ws::opcode::ping:
                    co_await ws.pong(frame->payload);
                    break;

                case ws::opcode::pong:
                    fmt::print("Pong received\n");
                    break;

                case ws::opcode::close:
                    fmt::print("Close frame received\n");
                    std::fflush(stdout);
                    co_return;

                case ws::opcode::continuation:
                    break;  // never returned: fragments arrive as whole messages
            }
            std::fflush(stdout);
        }
    });

    srv.listen(port, address);
    fmt::print("WebSocket server on ws://localhost:{}/ws\n", srv.port());
    std::fflush(stdout);
    ctx.run();
}
