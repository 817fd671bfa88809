// cnetmod's client against real peers' servers: Node's `ws` (Debian node-ws,
// node_server.js) and Python's `websockets` (Debian python3-websockets,
// python_server.py), over ws:// and wss://, with and without
// permessage-deflate (RFC 7692), with context takeover and small windows.
#include "../support/tls_certs.hpp"
#include <cnetmod/engine/engine.hpp>
#include <cnetmod/proto/ws/ws.hpp>

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
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

// ---- Context takeover and small windows (RFC 7692 §7.1) ----------------

// The words of chat lines, one to three UTF-8 bytes per character.
const std::vector<std::string_view>& chat_words() {
    static const std::vector<std::string_view> words = [] {
        std::string_view all =
            "the quick brown fox jumps over a lazy dog hello world chat room message server client deflate window "
            "context again yes no maybe later today thanks soon ok \xC3\xBCn\xC3\xAF"
            "c\xC3\xB6"
            "d\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87";
        std::vector<std::string_view> split;
        while (!all.empty()) {
            const std::size_t end = std::min(all.find(' '), all.size());
            split.push_back(all.substr(0, end));
            all.remove_prefix(std::min(end + 1, all.size()));
        }
        return split;
    }();
    return words;
}

// A ~100-byte JSON chat line: shared keys, changing words, as a chat sends them.
std::string chat_line(std::mt19937_64& rng, std::size_t seq) {
    const auto& words = chat_words();
    std::string text;
    for (std::size_t n = 6 + rng() % 6; n > 0; --n) {
        if (!text.empty()) text += ' ';
        text += words[rng() % words.size()];
    }
    return R"({"type":"chat","room":"lobby","from":"user)" + std::to_string(rng() % 20) + R"(","seq":)" +
           std::to_string(seq) + R"(,"text":")" + text + R"("})";
}

// A JSON document of exactly n bytes (cut on a line: it need not parse).
std::string json_document(std::mt19937_64& rng, std::size_t n) {
    std::string doc = "[";
    for (std::size_t seq = 0; doc.size() < n; ++seq) doc += chat_line(rng, seq) + ",";
    doc.resize(n);
    while (!doc.empty() && (static_cast<unsigned char>(doc.back()) & 0x80)) doc.pop_back();
    doc.append(n - doc.size(), ' ');
    return doc;
}

// "permessage-deflate; b=9; a" -> {"a", "b=9"}: the parameters, sorted
// (each peer names them in its own order); the first element must be the
// extension's name.
std::vector<std::string> deflate_params(std::string_view header) {
    std::vector<std::string> params;
    while (!header.empty()) {
        const std::size_t end = std::min(header.find(';'), header.size());
        std::string_view p = header.substr(0, end);
        while (!p.empty() && p.front() == ' ') p.remove_prefix(1);
        while (!p.empty() && p.back() == ' ') p.remove_suffix(1);
        if (!p.empty()) params.emplace_back(p);
        header.remove_prefix(std::min(end + 1, header.size()));
    }
    if (params.empty() || params.front() != "permessage-deflate") return {"(not permessage-deflate)"};
    params.erase(params.begin());
    std::sort(params.begin(), params.end());
    return params;
}

struct takeover_case {
    const char* name;
    const char* program;                 // node or /usr/bin/python3
    const char* script;                  // the server script
    std::vector<std::string> peer_args;  // the server's windows
    bool context_takeover;               // ws::options on our side
    int window_bits;
    const char* answer;  // the peer's Sec-WebSocket-Extensions answer
    bool tls = false;
};

void PrintTo(const takeover_case& c, std::ostream* os) {
    *os << c.name;
}

// Sends every message at once (text, or binary where `binary` says so) and
// expects them back in order, intact, of the same type.
task<void> expect_echoes(ws::connection& ws, const std::vector<std::string>& messages, bool binary,
                         const std::string& label) {
    for (const auto& m : messages) {
        if (binary)
            co_await ws.send_binary(m);
        else
            co_await ws.send(m);
    }
    for (std::size_t i = 0; i < messages.size(); ++i) {
        auto got = co_await ws.recv();
        EXPECT_TRUE(got) << label << " #" << i << ": no echo (close code " << ws.close_code() << ")";
        if (!got) co_return;
        EXPECT_TRUE(*got == messages[i]) << label << " #" << i << " (" << messages[i].size() << " bytes) came back as "
                                         << got->size() << " other bytes";
        EXPECT_EQ(ws.last_opcode(), binary ? ws::opcode::binary : ws::opcode::text) << label << " #" << i;
    }
}

// Long enough for our sweeps (every 10 ms with pong_timeout 40 ms) to give
// an unused zlib stream back to the pool, keeping only its window's bytes,
// from which the next message's stream starts again.
task<void> pause(ws::connection& ws) {
    co_await async_sleep(ws.context(), std::chrono::milliseconds(50));
}

// 300 chat lines, 50 at a time; with context takeover for what we send
// they reach the peer at a fraction of their size (our deflater refers to
// earlier lines), without it they go plain (under compression_threshold).
task<void> chat_lines(ws::connection& ws, std::mt19937_64& rng, bool takeover) {
    std::vector<std::string> lines;
    std::size_t payload = 0;
    for (std::size_t seq = 0; seq < 300; ++seq) {
        lines.push_back(chat_line(rng, seq));
        payload += lines.back().size();
    }
    const std::size_t before = co_await server_wire_bytes(ws);
    for (std::size_t i = 0; i < lines.size(); i += 50) {
        const std::vector<std::string> batch(lines.begin() + i, lines.begin() + i + 50);
        co_await expect_echoes(ws, batch, false, "chat line " + std::to_string(i) + "..");
        co_await pause(ws);
    }
    // The "wire?" query itself (a few bytes) is counted too.
    const std::size_t wire = co_await server_wire_bytes(ws) - before;
    if (takeover)
        EXPECT_LT(wire, payload * 6 / 10)
            << "300 chat lines (" << payload << " bytes) took " << wire << " bytes on the wire with context takeover";
    else
        EXPECT_GT(wire, payload) << "300 chat lines (" << payload << " bytes) took only " << wire
                                 << " bytes without context takeover";
    co_await expect_echoes(ws, std::vector<std::string>(lines.begin(), lines.begin() + 100), true, "binary chat line");
}

// Documents of 1-64 KiB between chat lines, incompressible ones among them
// (they go plain, and the window must then forget them), and 1 MiB messages.
task<void> documents(ws::connection& ws, std::mt19937_64& rng) {
    for (std::size_t kib = 1; kib <= 64; kib *= 2) {
        const std::string size = std::to_string(kib) + " KiB";
        co_await expect_echo(ws, json_document(rng, kib * 1024), ws::opcode::text, "JSON document " + size);
        co_await expect_echo(ws, chat_line(rng, kib), ws::opcode::text, "chat line after a document");
        co_await expect_echo(ws, random_bytes(rng, kib * 1024), ws::opcode::binary, "random binary " + size);
        co_await expect_echo(ws, chat_line(rng, kib + 1), ws::opcode::text, "chat line after random bytes");
        co_await expect_echo(ws, json_document(rng, kib * 1024 + 7), ws::opcode::binary, "binary document " + size);
        co_await expect_echo(ws, random_text(rng, kib * 300), ws::opcode::text, "random text " + size);
        co_await pause(ws);
    }
    co_await expect_echo(ws, json_document(rng, 1 << 20), ws::opcode::text, "1 MiB JSON document");
    co_await expect_echo(ws, chat_line(rng, 1), ws::opcode::text, "chat line after 1 MiB");
    co_await expect_echo(ws, random_bytes(rng, 1 << 20), ws::opcode::binary, "1 MiB random binary");
    co_await expect_echo(ws, json_document(rng, 1 << 20), ws::opcode::binary, "1 MiB binary document");
    co_await expect_echo(ws, compressible_text(1 << 20), ws::opcode::text, "1 MiB compressible text");
}

// Prepared messages (compressed once for many connections: for a takeover
// peer, from an empty window and sync-flushed; our window then takes their
// bytes too) between messages our own deflater compresses. A line sent
// again after a prepared message refers back across it: if our window had
// not taken the prepared bytes, the peer would inflate other bytes.
task<void> prepared_between_direct(ws::connection& ws, std::mt19937_64& rng, const ws::options& opts) {
    for (std::size_t i = 0; i < 40; ++i) {
        const std::string direct = chat_line(rng, i);
        const std::string shared = chat_line(rng, 1000 + i);
        const ws::prepared_message prepared(ws::opcode::text, shared, opts);
        co_await ws.send(direct);
        co_await ws.send(prepared);
        co_await ws.send(direct);
        std::string big, blob;
        if (i % 10 == 9) {
            // One larger than a 512-byte window (with such a window our own
            // deflater sends it), and one that shrinks nowhere (sent plain).
            big = json_document(rng, 4096 + i);
            blob = random_bytes(rng, 600);
            const ws::prepared_message prepared_big(ws::opcode::text, big, opts);
            const ws::prepared_message prepared_blob(ws::opcode::binary, blob, opts);
            co_await ws.send(prepared_big);
            co_await ws.send(prepared_blob);
            co_await ws.send(direct);
        }
        std::vector<std::string> expected{direct, shared, direct};
        if (!big.empty()) expected.insert(expected.end(), {big, blob, direct});
        for (std::size_t k = 0; k < expected.size(); ++k) {
            auto got = co_await ws.recv();
            EXPECT_TRUE(got && *got == expected[k])
                << "round " << i << ", message " << k << " (" << expected[k].size() << " bytes): "
                << (got ? "came back as " + std::to_string(got->size()) + " other bytes"
                        : "no echo (close code " + std::to_string(ws.close_code()) + ")");
            if (!got) co_return;
        }
        if (i % 8 == 7) co_await pause(ws);
    }
}

std::vector<std::string> takeover_command(const takeover_case& c) {
    std::vector<std::string> argv{c.program, c.script};
    if (std::string_view(c.program) == "node") argv.emplace_back("--deflate");
    argv.insert(argv.end(), c.peer_args.begin(), c.peer_args.end());
    if (c.tls) argv.insert(argv.end(), {"--cert", certs().cert_file, "--key", certs().key_file});
    return argv;
}

class client_takeover_against_peer : public ::testing::TestWithParam<takeover_case> {};

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

// Our client with and without context takeover, with 32 KiB and 512-byte
// windows, against peers that keep their windows and limit them: the peer's
// answer must be the agreement expected, and chat lines (compressed with
// context: far smaller on the wire), documents, 1 MiB messages and prepared
// messages between direct ones must echo intact.
TEST_P(client_takeover_against_peer, agreed_windows_chat_documents_and_prepared_messages) {
    const takeover_case& c = GetParam();
    peer_server server(takeover_command(c));
    ASSERT_NE(server.port, 0) << c.script << " did not start (are Debian's node-ws and python3-websockets installed?)";
    io_context ctx;
    const std::string url = std::string(c.tls ? "wss" : "ws") + "://127.0.0.1:" + std::to_string(server.port) + "/";
    ws::options opts;
    opts.enable_compression = true;
    opts.compression_context_takeover = c.context_takeover;
    opts.compression_window_bits = c.window_bits;
    opts.max_message_size = 64u << 20;
    // Sweeps every 10 ms (no ping before 30 s of silence): see pause().
    opts.pong_timeout = std::chrono::milliseconds(40);
    if (c.tls) opts.tls.ca_file = certs().ca_file;
    auto t = [&]() -> task<void> {
        auto ws = co_await ws::connect(ctx, url, opts);
        EXPECT_TRUE(ws.compression()) << "permessage-deflate negotiated with " << c.name;
        co_await ws.send("ext?");
        auto answer = co_await ws.recv();
        EXPECT_TRUE(answer && answer->starts_with("ext:")) << (answer ? *answer : "no answer to ext?");
        if (answer && answer->starts_with("ext:")) {
            EXPECT_EQ(deflate_params(answer->substr(4)), deflate_params(std::string("permessage-deflate; ") + c.answer))
                << c.name << " answered '" << answer->substr(4) << "'";
        }
        std::mt19937_64 rng(7692);
        co_await chat_lines(ws, rng, c.context_takeover);
        co_await documents(ws, rng);
        co_await prepared_between_direct(ws, rng, opts);
        co_await chat_lines(ws, rng, c.context_takeover);
        co_await ws.close(1000, "bye");
        EXPECT_EQ(ws.close_code(), 1000);
    };
    sync_wait(ctx, t());
}

// The answers: Node's ws echoes the offer's parameters and sets its own
// windows; Python's websockets asks for 12-bit windows by default and
// answers a bare client_max_window_bits with its own value. Our offers:
// takeover "client_max_window_bits"; takeover and 9 bits
// "client_max_window_bits=9; server_max_window_bits=9"; without takeover
// "client_no_context_takeover; server_no_context_takeover" (and the windows).
INSTANTIATE_TEST_SUITE_P(
    peers, client_takeover_against_peer,
    ::testing::Values(takeover_case{"node_ws_takeover", "node", NODE_SERVER_SCRIPT, {}, true, 15, ""},
                      takeover_case{"node_ws_takeover_wss", "node", NODE_SERVER_SCRIPT, {}, true, 15, "", true},
                      takeover_case{"node_ws_takeover_our_window_9",
                                    "node",
                                    NODE_SERVER_SCRIPT,
                                    {},
                                    true,
                                    9,
                                    "client_max_window_bits=9; server_max_window_bits=9"},
                      takeover_case{"node_ws_server_window_10",
                                    "node",
                                    NODE_SERVER_SCRIPT,
                                    {"--server-max-window-bits", "10"},
                                    true,
                                    15,
                                    "server_max_window_bits=10"},
                      takeover_case{"node_ws_windows_9",
                                    "node",
                                    NODE_SERVER_SCRIPT,
                                    {"--server-max-window-bits", "9", "--client-max-window-bits", "9"},
                                    true,
                                    15,
                                    "server_max_window_bits=9; client_max_window_bits=9"},
                      takeover_case{"node_ws_windows_9_our_window_9",
                                    "node",
                                    NODE_SERVER_SCRIPT,
                                    {"--server-max-window-bits", "9", "--client-max-window-bits", "9"},
                                    true,
                                    9,
                                    "server_max_window_bits=9; client_max_window_bits=9"},
                      takeover_case{"node_ws_our_no_takeover",
                                    "node",
                                    NODE_SERVER_SCRIPT,
                                    {},
                                    false,
                                    15,
                                    "client_no_context_takeover; server_no_context_takeover"},
                      takeover_case{"node_ws_our_no_takeover_window_9",
                                    "node",
                                    NODE_SERVER_SCRIPT,
                                    {},
                                    false,
                                    9,
                                    "client_no_context_takeover; server_no_context_takeover; client_max_window_bits=9; "
                                    "server_max_window_bits=9"},
                      takeover_case{"python_websockets_takeover_windows_12",
                                    "/usr/bin/python3",
                                    PYTHON_SERVER_SCRIPT,
                                    {},
                                    true,
                                    15,
                                    "server_max_window_bits=12; client_max_window_bits=12"},
                      takeover_case{"python_websockets_takeover_full_windows",
                                    "/usr/bin/python3",
                                    PYTHON_SERVER_SCRIPT,
                                    {"--server-max-window-bits", "none", "--client-max-window-bits", "none"},
                                    true,
                                    15,
                                    ""},
                      takeover_case{"python_websockets_takeover_our_window_9",
                                    "/usr/bin/python3",
                                    PYTHON_SERVER_SCRIPT,
                                    {},
                                    true,
                                    9,
                                    "server_max_window_bits=9; client_max_window_bits=9"},
                      takeover_case{"python_websockets_windows_10",
                                    "/usr/bin/python3",
                                    PYTHON_SERVER_SCRIPT,
                                    {"--server-max-window-bits", "10", "--client-max-window-bits", "10"},
                                    true,
                                    15,
                                    "server_max_window_bits=10; client_max_window_bits=10"},
                      takeover_case{
                          "python_websockets_our_no_takeover",
                          "/usr/bin/python3",
                          PYTHON_SERVER_SCRIPT,
                          {},
                          false,
                          15,
                          "server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12"}),
    [](const ::testing::TestParamInfo<takeover_case>& info) { return std::string(info.param.name); });
