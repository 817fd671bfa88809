// cnetmod's client against real peers' servers: Node's `ws` (Debian node-ws,
// node_server.js) and Python's `websockets` (Debian python3-websockets,
// python_server.py), over ws:// and wss://, with and without
// permessage-deflate (RFC 7692).
#include "../support/tls_certs.hpp"
#include <cnetmod/engine/engine.hpp>
#include <cnetmod/proto/ws/ws.hpp>

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ostream>
#include <random>
#include <string>
#include <vector>

using namespace cnetmod;

namespace {

net_init sigpipe_guard;

// A peer's server as a child process (NODE_SERVER_SCRIPT or
// PYTHON_SERVER_SCRIPT with its arguments); it prints its port on its first
// line. Killed and reaped when this object goes.
struct peer_server {
    pid_t pid = -1;
    std::uint16_t port = 0;

    explicit peer_server(std::vector<std::string> argv) {
        int out[2];
        if (::pipe(out) != 0) return;
        pid = ::fork();
        if (pid == 0) {
            ::dup2(out[1], 1);
            ::close(out[0]);
            ::setenv("NODE_PATH", "/usr/share/nodejs", 1);
            std::vector<char*> args;
            for (auto& a : argv) args.push_back(a.data());
            args.push_back(nullptr);
            ::execvp(args[0], args.data());
            std::_Exit(127);
        }
        ::close(out[1]);
        port = read_port(out[0]);
        ::close(out[0]);
    }
    peer_server(const peer_server&) = delete;
    peer_server& operator=(const peer_server&) = delete;
    ~peer_server() {
        if (pid > 0) {
            ::kill(pid, SIGTERM);
            ::waitpid(pid, nullptr, 0);
        }
    }

private:
    // The first line of the child's output, waiting at most 15 s for it.
    static std::uint16_t read_port(int fd) {
        const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(15);
        char buf[16] = {};
        std::size_t n = 0;
        while (n < sizeof buf - 1) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(give_up - std::chrono::steady_clock::now());
            pollfd p{fd, POLLIN, 0};
            if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return 0;
            ssize_t r = ::read(fd, buf + n, 1);
            if (r <= 0 || buf[n] == '\n') break;
            ++n;
        }
        buf[n] = '\0';
        return static_cast<std::uint16_t>(std::atoi(buf));
    }
};

// Made on first use only, so that the ws:// tests do not need openssl.
const testing_support::test_certs& certs() {
    static const testing_support::test_certs made = testing_support::make_test_certs();
    return made;
}

std::string compressible_text(std::size_t n) {
    const std::string line =
        "cnetmod interop: the same line again and again, \xC3\xBCn\xC3\xAF"
        "c\xC3\xB6"
        "d\xC3\xA9 too. ";
    std::string s;
    while (s.size() < n) s += line;
    // Cut on a character boundary: drop trailing continuation bytes and the lead byte.
    s.resize(n);
    while (!s.empty() && (static_cast<unsigned char>(s.back()) & 0x80)) s.pop_back();
    s.append(n - s.size(), '.');
    return s;
}

// n bytes of random characters of one to four UTF-8 bytes each (padded with ASCII).
std::string random_text(std::mt19937_64& rng, std::size_t n) {
    static const char* const alphabet[] = {"a",
                                           "Z",
                                           "0",
                                           "~",
                                           " ",
                                           "\xC3\xA9",
                                           "\xC3\x9F",
                                           "\xD0\x96",
                                           "\xE4\xB8\xAD",
                                           "\xE2\x82\xAC",
                                           "\xF0\x9F\x98\x80"};
    std::string s;
    s.reserve(n);
    for (;;) {
        const std::string_view c = alphabet[rng() % std::size(alphabet)];
        if (s.size() + c.size() > n) break;
        s += c;
    }
    s.append(n - s.size(), 'x');
    return s;
}

std::string random_bytes(std::mt19937_64& rng, std::size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
}

// Sends `message` as text or binary and expects the same back, same type.
task<void> expect_echo(ws::connection& ws, const std::string& message, ws::opcode op, const std::string& label) {
    if (op == ws::opcode::binary)
        co_await ws.send_binary(message);
    else
        co_await ws.send(message);
    auto got = co_await ws.recv();
    EXPECT_TRUE(got) << label << ": no echo (close code " << ws.close_code() << ")";
    if (!got) co_return;
    EXPECT_EQ(got->size(), message.size()) << label;
    EXPECT_TRUE(*got == message) << label << ": contents differ";
    EXPECT_EQ(ws.last_opcode(), op) << label;
}

// The bytes the server has read from its socket so far ("wire?" -> "wire:N").
task<std::size_t> server_wire_bytes(ws::connection& ws) {
    co_await ws.send("wire?");
    auto got = co_await ws.recv();
    EXPECT_TRUE(got && got->starts_with("wire:")) << (got ? *got : "no answer to wire?");
    co_return got && got->starts_with("wire:") ? std::stoull(got->substr(5)) : 0;
}

// Every size and kind of message, fragments and a ping over one connection;
// then 1 MiB of repetitive text, which must reach the server compressed when
// permessage-deflate was negotiated (and whole when it was not).
task<void> exchange(ws::connection& ws, bool deflate) {
    std::mt19937_64 rng(7692);
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{16 * 1024}, std::size_t{1 << 20}}) {
        const std::string size = std::to_string(n) + " B";
        co_await expect_echo(ws, compressible_text(n), ws::opcode::text, "compressible text " + size);
        co_await expect_echo(ws, compressible_text(n), ws::opcode::binary, "compressible binary " + size);
        co_await expect_echo(ws, random_text(rng, n), ws::opcode::text, "random text " + size);
        co_await expect_echo(ws, random_bytes(rng, n), ws::opcode::binary, "random binary " + size);
    }
    const std::string big = compressible_text(256 * 1024);
    co_await ws.send_fragmented(big, 10000);
    auto got = co_await ws.recv();
    EXPECT_TRUE(got && *got == big) << "fragmented text";
    const std::string blob = random_bytes(rng, 70000);
    co_await ws.send_fragmented(blob, 4096, ws::opcode::binary);
    got = co_await ws.recv();
    EXPECT_TRUE(got && *got == blob && ws.last_opcode() == ws::opcode::binary) << "fragmented binary";
    co_await ws.ping("from cnetmod");
    auto pong = co_await ws.recv_frame();
    EXPECT_TRUE(pong && pong->opcode == ws::opcode::pong && pong->payload == "from cnetmod");

    const std::size_t before = co_await server_wire_bytes(ws);
    co_await expect_echo(ws, compressible_text(1 << 20), ws::opcode::text, "compressible text 1 MiB (counted)");
    const std::size_t wire = co_await server_wire_bytes(ws) - before;
    if (deflate)
        EXPECT_LT(wire, 64u * 1024) << "1 MiB of repetitive text took " << wire << " bytes: not compressed";
    else
        EXPECT_GT(wire, 1u << 20) << "1 MiB took only " << wire << " bytes without compression";
}

struct peer_case {
    const char* name;
    const char* program;  // node or /usr/bin/python3
    const char* script;   // the server script
    bool deflate;         // the server does permessage-deflate
    bool tls;             // wss://
};

// gtest names a failing case by this rather than by the struct's bytes.
void PrintTo(const peer_case& c, std::ostream* os) {
    *os << c.name;
}

std::vector<std::string> server_command(const peer_case& c) {
    std::vector<std::string> argv{c.program, c.script};
    if (c.deflate && std::string_view(c.program) == "node") argv.emplace_back("--deflate");
    if (!c.deflate && std::string_view(c.program) != "node") argv.emplace_back("--no-deflate");
    if (c.tls) {
        argv.insert(argv.end(), {"--cert", certs().cert_file, "--key", certs().key_file});
    }
    return argv;
}

class client_against_peer : public ::testing::TestWithParam<peer_case> {};

}  // namespace

TEST(client_against_node_ws, echo_of_every_size_fragments_pings_and_close_codes) {
    peer_server node({"node", NODE_SERVER_SCRIPT});
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

// Our client offers permessage-deflate (and trusts the test CA for wss://):
// against a peer that does deflate it must be negotiated, against one that
// does not the connection must go on without it; every message must echo.
TEST_P(client_against_peer, compression_offered_every_size_and_kind) {
    const peer_case& c = GetParam();
    peer_server server(server_command(c));
    ASSERT_NE(server.port, 0) << c.script << " did not start (are Debian's node-ws and python3-websockets installed?)";
    io_context ctx;
    const std::string url = std::string(c.tls ? "wss" : "ws") + "://127.0.0.1:" + std::to_string(server.port) + "/";
    ws::options opts;
    opts.enable_compression = true;
    opts.compression_threshold = 0;  // compress whatever deflate makes smaller
    opts.max_message_size = 64u << 20;
    if (c.tls) opts.tls.ca_file = certs().ca_file;
    auto t = [&]() -> task<void> {
        auto ws = co_await ws::connect(ctx, url, opts);
        EXPECT_EQ(ws.compression(), c.deflate) << "permessage-deflate negotiated with " << c.name;
        co_await exchange(ws, c.deflate);
        co_await ws.close(1000, "bye");
        EXPECT_EQ(ws.close_code(), 1000);
    };
    sync_wait(ctx, t());
}

INSTANTIATE_TEST_SUITE_P(
    peers, client_against_peer,
    ::testing::Values(peer_case{"node_ws_deflate", "node", NODE_SERVER_SCRIPT, true, false},
                      peer_case{"node_ws_deflate_wss", "node", NODE_SERVER_SCRIPT, true, true},
                      peer_case{"node_ws_without_deflate", "node", NODE_SERVER_SCRIPT, false, false},
                      peer_case{"python_websockets_deflate", "/usr/bin/python3", PYTHON_SERVER_SCRIPT, true, false},
                      peer_case{"python_websockets_deflate_wss", "/usr/bin/python3", PYTHON_SERVER_SCRIPT, true, true},
                      peer_case{"python_websockets_without_deflate_wss", "/usr/bin/python3", PYTHON_SERVER_SCRIPT,
                                false, true}),
    [](const ::testing::TestParamInfo<peer_case>& info) { return std::string(info.param.name); });
