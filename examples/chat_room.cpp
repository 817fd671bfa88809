// The seed's chat room: join with ?name=NAME; everyone sees "NAME joined",
// "NAME: message" and "NAME left".
#include <cnetmod/engine/engine.hpp>
#include <cnetmod/proto/ws/ws.hpp>

#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <vector>

using namespace cnetmod;

class chat_room {
    struct client {
        ws::connection* conn;
        std::string username;
    };

    std::vector<client> clients_;
    mutex mtx_;

public:
    task<void> join(ws::connection& ws, std::string username) {
        {
            auto guard = co_await mtx_.scoped_lock();
            clients_.push_back({&ws, username});
        }

        co_await broadcast(fmt::format("{} joined", username));

        while (auto msg = co_await ws.recv()) {
            co_await broadcast(fmt::format("{}: {}", username, *msg));
        }

        {
            auto guard = co_await mtx_.scoped_lock();
            std::erase_if(clients_, [&](const client& c) { return c.conn == &ws; });
        }

        co_await broadcast(fmt::format("{} left", username));
    }

private:
    task<void> broadcast(std::string_view msg) {
        auto guard = co_await mtx_.scoped_lock();

        for (auto& client : clients_) {
            try {
                co_await client.conn->send(msg);
            } catch (...) {
            }
        }
    }
};

namespace {
// The value of `key` in a query string ("name=ann&x=1"), or "".
std::string query_value(std::string_view query, std::string_view key) {
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        if (pair.starts_with(key) && pair.size() > key.size() && pair[key.size()] == '=')
            return std::string(pair.substr(key.size() + 1));
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
    return {};
}
}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"WebSocket chat room (ws://localhost:PORT/ws?name=NAME)"};
    std::uint16_t port = 8080;
    std::string address = "127.0.0.1";
    app.add_option("--port", port, "TCP port")->capture_default_str();
    app.add_option("--address", address, "address to listen on")->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    net_init guard;
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // a line at a time, also into a file or pipe
    io_context ctx;
    chat_room room;
    int guests = 0;
    http::server srv(ctx);
    srv.get("/ws", [&](http::request_context& ctx) -> task<void> {
        std::string name = query_value(ctx.query(), "name");
        if (name.empty()) name = fmt::format("guest{}", ++guests);
        auto ws = co_await ctx.upgrade_to_websocket();
        co_await room.join(ws, std::move(name));
    });
    srv.listen(port, address);
    fmt::print("WebSocket chat room on ws://localhost:{}/ws?name=NAME\n", srv.port());
    std::fflush(stdout);
    ctx.run();
}
