// Helpers for the WebSocket tests: an in-process echo server and a raw
// client that sends hand-made frames and reads the server's answer.
#pragma once

#include <cnetmod/engine/engine.hpp>
#include <cnetmod/proto/http/request_parser.hpp>
#include <cnetmod/proto/ws/ws.hpp>

#include <cstring>
#include <string>
#include <vector>

namespace cnetmod::ws_testing {

// Echoes every message (binary as binary) until the connection closes.
inline task<void> echo(http::request_context& ctx, const ws::options& opts) {
    auto ws = co_await ctx.upgrade_to_websocket(opts);
    while (auto msg = co_await ws.recv()) {
        if (ws.last_opcode() == ws::opcode::binary)
            co_await ws.send_binary(*msg);
        else
            co_await ws.send(*msg);
    }
}

struct echo_fixture {
    io_context ctx;
    ws::options opts;
    http::server srv{ctx};
    explicit echo_fixture(ws::options o = {}) : opts(std::move(o)) {
        srv.get("/ws", [this](http::request_context& c) -> task<void> { co_await echo(c, opts); });
        srv.listen(0, "127.0.0.1");
    }
    std::string url() const { return "ws://127.0.0.1:" + std::to_string(srv.port()) + "/ws"; }
};

// A frame as a client sends it: masked.
inline std::vector<std::byte> client_frame(std::uint8_t first_byte, std::string_view payload, bool mask = true,
                                           int forced_length_code = -1) {
    std::vector<std::byte> out;
    out.push_back(static_cast<std::byte>(first_byte));
    const std::uint8_t mask_bit = mask ? 0x80 : 0;
    const std::size_t n = payload.size();
    if (forced_length_code == 126 || (forced_length_code < 0 && n >= 126 && n <= 0xFFFF)) {
        out.push_back(static_cast<std::byte>(mask_bit | 126));
        out.push_back(static_cast<std::byte>(n >> 8));
        out.push_back(static_cast<std::byte>(n));
    } else if (forced_length_code == 127 || (forced_length_code < 0 && n > 0xFFFF)) {
        out.push_back(static_cast<std::byte>(mask_bit | 127));
        for (int i = 7; i >= 0; --i) out.push_back(static_cast<std::byte>(std::uint64_t{n} >> (8 * i)));
    } else {
        out.push_back(static_cast<std::byte>(mask_bit | n));
    }
    const std::uint8_t key[4] = {0x37, 0xFA, 0x21, 0x3D};
    if (mask)
        for (auto k : key) out.push_back(static_cast<std::byte>(k));
    for (std::size_t i = 0; i < n; ++i)
        out.push_back(static_cast<std::byte>(static_cast<std::uint8_t>(payload[i]) ^ (mask ? key[i % 4] : 0)));
    return out;
}

inline std::string close_payload(std::uint16_t code, std::string_view reason = "") {
    std::string p;
    p += static_cast<char>(code >> 8);
    p += static_cast<char>(code & 0xFF);
    p += reason;
    return p;
}

// What the server sent back after some raw frames.
struct raw_outcome {
    std::vector<std::pair<std::uint8_t, std::string>> frames;  // opcode, payload (server frames are unmasked)
    std::vector<bool> rsv1;                                    // per frame: RSV1 (permessage-deflate's compressed bit)
    std::string head;                                          // the handshake answer's head
    bool tcp_closed = false;
    std::uint16_t close_code() const {
        for (const auto& [op, payload] : frames)
            if (op == 0x8)
                return payload.size() >= 2 ? static_cast<std::uint16_t>((static_cast<std::uint8_t>(payload[0]) << 8) |
                                                                        static_cast<std::uint8_t>(payload[1]))
                                           : 1005;
        return 0;
    }
};

// Handshakes raw, sends `wire`, and collects the server's frames until it
// closes the TCP connection (or the deadline).
// `extra_headers` ("Name: value\r\n" lines) go into the handshake request.
inline task<raw_outcome> raw_exchange(io_context& ctx, std::uint16_t port, std::vector<std::byte> wire,
                                      std::chrono::milliseconds limit = std::chrono::seconds(5),
                                      std::string extra_headers = {}) {
    auto s = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(port));
    s.queue(
        std::string_view("GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"));
    s.queue(extra_headers);
    s.queue(std::string_view("\r\n"));
    s.queue(std::span<const std::byte>(wire));
    std::string in;
    raw_outcome out;
    const deadline d = timeout(limit);
    try {
        for (;;) {
            auto v = co_await s.recv_view(d);
            if (v.empty()) {
                out.tcp_closed = true;
                break;
            }
            in.append(reinterpret_cast<const char*>(v.data()), v.size());
            s.consume(v.size());
        }
    } catch (const std::system_error&) {
    }
    const auto head_end = http::find_head_end(in);
    if (head_end == std::string::npos || !in.starts_with("HTTP/1.1 101")) co_return out;
    out.head = in.substr(0, head_end);
    std::string_view rest = std::string_view(in).substr(head_end);
    while (rest.size() >= 2) {
        const auto r = ws::parse_frame_header(std::as_bytes(std::span(rest.data(), rest.size())));
        if (r.state != ws::header_parse_result::status::complete || rest.size() < r.size + r.header.payload_length)
            break;
        out.frames.emplace_back(static_cast<std::uint8_t>(r.header.op),
                                std::string(rest.substr(r.size, static_cast<std::size_t>(r.header.payload_length))));
        out.rsv1.push_back(r.header.rsv1);
        rest.remove_prefix(r.size + static_cast<std::size_t>(r.header.payload_length));
    }
    co_return out;
}

// Message `i` of a numbered series, `size` bytes: "i:" then letters that
// depend on both, so a message out of place or cut short is caught.
inline std::string numbered(int i, std::size_t size) {
    std::string s = std::to_string(i) + ":";
    while (s.size() < size) s += static_cast<char>('a' + (s.size() + i) % 26);
    return s;
}

inline std::vector<std::byte> concat(std::initializer_list<std::vector<std::byte>> parts) {
    std::vector<std::byte> out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

}  // namespace cnetmod::ws_testing
