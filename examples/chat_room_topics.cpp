// The seed's chat room on every core: instead of one vector of connections
// behind a mutex, the room is a pub/sub topic (ws::pubsub). Each core keeps
// its own members; a message is encoded once and reaches the other cores in
// one MSG_RING post per core per loop turn. Same text format as the seed:
// "NAME joined", "NAME: message", "NAME left".
#include <cnetmod/engine/engine.hpp>
#include <cnetmod/proto/ws/ws.hpp>

#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>

using namespace cnetmod;

int main(int argc, char** argv) {
    CLI::App app{"WebSocket chat room on every core (ws://localhost:PORT/ws?name=NAME)"};
    std::uint16_t port = 8080;
    std::size_t cores = 2;
    app.add_option("--port", port, "TCP port")->capture_default_str();
    app.add_option("--cores", cores, "cores to serve on (0: all)")->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    net_init guard;
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    runtime_options options;
    options.cores = cores;
    runtime rt(options);
    ws::pubsub room(rt);
    std::atomic<int> guests{0};
    rt.start();
    http::server srv(rt);
    srv.get("/ws", [&](http::request_context& ctx) -> task<void> {
        std::string name = http::query_param(ctx.query(), "name").value_or("");
        if (name.empty()) name = fmt::format("guest{}", ++guests);
        auto ws = co_await ctx.upgrade_to_websocket();
        room.subscribe(ws, "room");
        room.publish("room", fmt::format("{} joined", name));
        while (auto msg = co_await ws.recv()) room.publish("room", fmt::format("{}: {}", name, *msg));
        room.publish("room", fmt::format("{} left", name));  // it left the topic when it closed
    });
    srv.listen(port);
    fmt::print("WebSocket chat room on ws://localhost:{}/ws?name=NAME ({} cores)\n", srv.port(), rt.size());
    rt.wait();
}
