// Settings of a WebSocket connection; each default is the one documented.
#pragma once

#include <cnetmod/engine/tls.hpp>

#include <chrono>
#include <cstddef>
#include <string>

namespace cnetmod::ws {

struct options {
    // permessage-deflate (RFC 7692): negotiated when both sides ask for it.
    // libdeflate compresses each message whole, without a window carried
    // from one message to the next (no_context_takeover both ways), so a
    // connection holds no zlib state: memory per connection stays small.
    bool enable_compression = false;
    // libdeflate's level, 1 (fastest) to 12 (smallest).
    int compression_level = 6;
    // Messages smaller than this go uncompressed (and so does any message
    // that compressing would not make smaller). Without a window carried
    // between messages, a 100-byte chat message shrinks by about 4 % for
    // 3-4 µs of libdeflate's time (bench/RESULTS.md): not worth it.
    std::size_t compression_threshold = 1024;
    // Server: the subprotocol to select, only if the client offered it.
    // Client: the subprotocol(s) to offer ("chat" or "chat, superchat").
    std::string subprotocol;
    // A message (all its fragments) larger than this fails the connection
    // with 1009 (message too big). 16 MiB.
    std::size_t max_message_size = 16 * 1024 * 1024;
    // Client: time allowed for connect and the handshake. (A server's
    // handshake is bounded by http::server_options::request_timeout.)
    std::chrono::milliseconds handshake_timeout{10'000};
    // Without any frame from the peer for this long, the connection is
    // closed with 1001 (going away). 0: no idle limit.
    std::chrono::milliseconds idle_timeout{0};
    // After sending a close frame, time to wait for the peer's before the
    // TCP connection is closed regardless.
    std::chrono::milliseconds close_timeout{5'000};
    // send() completes at once while fewer bytes than this wait in the send
    // queue; above it, it suspends until the queue drains to half.
    std::size_t send_high_water = 1024 * 1024;
    // A peer that does not drain the queue below the mark for this long is
    // cut off: the connection is reset and send() throws. 30 s.
    std::chrono::milliseconds send_timeout{30'000};
    // Answer pings with pongs automatically (RFC 6455 §5.5.2). The pings are
    // still returned by recv_frame().
    bool auto_pong = true;
    // Client, wss://: how the server's certificate is checked (the system's
    // trust store by default, or tls.ca_file; tls.verify = false skips the
    // check, for tests only).
    tls_client_options tls;
};

}  // namespace cnetmod::ws
