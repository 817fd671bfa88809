// The seed's broadcast server: every message goes to every connected client.
#include <cnetmod/engine/engine.hpp>
#include <cnetmod/proto/ws/ws.hpp>

#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <vector>

using namespace cnetmod;

class broadcast_server {
    std::vector<ws::connection*> clients_;
    mutex clients_mtx_;

public:
    task<void> handle_client(ws::connection ws) {
        // Add to clients
        {
            auto guard = co_await clients_mtx_.scoped_lock();
            clients_.push_back(&ws);
        }

        // Receive messages
        while (true) {
            auto msg = co_await ws.recv();
            if (!msg) break;

            // Broadcast to all clients
            co_await broadcast(*msg);
        }

        // Remove from clients
        {
            auto guard = co_await clients_mtx_.scoped_lock();
            std::erase(clients_, &ws);
        }
    }

    task<void> broadcast(std::string_view msg) {
        auto guard = co_await clients_mtx_.scoped_lock();

        for (auto* client : clients_) {
            try {
                co_await client->send(msg);
            } catch (...) {
                // Client disconnected
            }
        }
    }
};

int main(int argc, char** argv) {
    CLI::App app{"WebSocket broadcast server (ws://localhost:PORT/ws)"};
    std::uint16_t port = 8080;
    std::string address = "127.0.0.1";
    app.add_option("--port", port, "TCP port")->capture_default_str();
    app.add_option("--address", address, "address to listen on")->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    net_init guard;
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // a line at a time, also into a file or pipe
    io_context ctx;
    broadcast_server server;
    http::server srv(ctx);
    srv.get("/ws", [&server](http::request_context& ctx) -> task<void> {
        if (!ctx.is_websocket_upgrade()) {
            ctx.resp().set_status(http::status::bad_request);
            co_return;
        }
        co_await server.handle_client(co_await ctx.upgrade_to_websocket());
    });
    srv.listen(port, address);
    fmt::print("WebSocket broadcast server on ws://localhost:{}/ws\n", srv.port());
    std::fflush(stdout);
    ctx.run();
}
