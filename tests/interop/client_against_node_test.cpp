// cnetmod's client against a Node `ws` server (Debian node-ws).
#include <cnetmod/engine/engine.hpp>
#include <cnetmod/proto/ws/ws.hpp>

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

using namespace cnetmod;

namespace {

net_init sigpipe_guard;

// Runs node_server.js and reads the port it prints.
struct node_server {
    pid_t pid = -1;
    std::uint16_t port = 0;
    node_server() {
        int out[2];
        if (::pipe(out) != 0) return;
        pid = ::fork();
        if (pid == 0) {
            ::dup2(out[1], 1);
            ::close(out[0]);
            ::setenv("NODE_PATH", "/usr/share/nodejs", 1);
            ::execlp("node", "node", NODE_SERVER_SCRIPT, nullptr);
            std::_Exit(127);
        }
        ::close(out[1]);
        char buf[16] = {};
        std::size_t n = 0;
        while (n < sizeof buf - 1) {
            ssize_t r = ::read(out[0], buf + n, 1);
            if (r <= 0 || buf[n] == '\n') break;
            ++n;
        }
        ::close(out[0]);
        port = static_cast<std::uint16_t>(std::atoi(buf));
    }
    ~node_server() {
        if (pid > 0) {
            ::kill(pid, SIGTERM);
            ::waitpid(pid, nullptr, 0);
        }
    }
};

}  // namespace

TEST(client_against_node_ws, echo_of_every_size_fragments_pings_and_close_codes) {
    node_server node;
    ASSERT_NE(node.port, 0) << "node_server.js did not start (is Debian's node-ws installed?)";
    io_context ctx;
    const std::string url = "ws://127.0.0.1:" + std::to_string(node.port) + "/";
    auto t = [&]() -> task<void> {
        auto ws = co_await ws::connect(ctx, url);
        for (std::size_t n : {0u, 125u, 126u, 65535u, 65536u, 1u << 20}) {
            std::string text(n, 'k');
            co_await ws.send(text);
            auto got = co_await ws.recv();
            EXPECT_TRUE(got && *got == text) << n;
            EXPECT_EQ(ws.last_opcode(), ws::opcode::text);
            std::string bin(n, '\xAB');
            co_await ws.send_binary(bin);
            got = co_await ws.recv();
            EXPECT_TRUE(got && *got == bin) << n;
            EXPECT_EQ(ws.last_opcode(), ws::opcode::binary);
        }
        co_await ws.send_fragmented("in three pieces", 5);
        EXPECT_EQ(co_await ws.recv(), std::optional<std::string>("in three pieces"));
        co_await ws.ping("from cnetmod");
        auto pong = co_await ws.recv_frame();
        EXPECT_TRUE(pong && pong->opcode == ws::opcode::pong && pong->payload == "from cnetmod");
        co_await ws.close(1000, "bye");
        EXPECT_EQ(ws.close_code(), 1000);

        // The server closes with each code; the client sees it and answers.
        for (std::uint16_t code : {1000, 1001, 1003, 1008, 1011, 3000, 4999}) {
            auto w = co_await ws::connect(ctx, url);
            co_await w.send("close:" + std::to_string(code));
            auto end = co_await w.recv();
            EXPECT_FALSE(end);
            EXPECT_EQ(w.close_code(), code);
            EXPECT_EQ(w.close_reason(), "server says bye");
        }
    };
    sync_wait(ctx, t());
}
