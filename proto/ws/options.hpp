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
    // A compressed message may inflate to at most this many times its
    // compressed size (and always to 2 MiB), else 1009: a deflate bomb ends
    // after work bounded by its own size, in one pass. Text and JSON
    // compress 3-20x; only a message over 2 MiB that is nearly all one
    // repeated byte goes beyond 128x. 0: only max_message_size bounds it.
    std::size_t max_inflate_ratio = 128;
    // Bytes of incomplete messages (fragments being reassembled, a large
    // frame still arriving) that all WebSocket connections of one core may
    // hold together. A connection that would pass it is closed with 1008,
    // so that a few peers that start huge messages and stall cannot take
    // the core's memory. 64 MiB.
    std::size_t core_reassembly_budget = 64 * 1024 * 1024;
    // A message must be complete this long after its first byte arrived,
    // else 1008 (a peer that starts a message and stalls). On a callback
    // route with a `fragment` handler it counts from the last piece handed
    // out instead. 0: no limit.
    std::chrono::milliseconds message_timeout{60'000};
    // Liveness: after this long without any byte from the peer a ping is
    // sent; if nothing at all arrives within pong_timeout after it, the peer
    // is taken for dead (a lost NAT entry, a pulled cable) and the
    // connection is reset (close_code() 1006). Browsers and every RFC 6455
    // library answer pings by themselves. 0: no pings.
    std::chrono::milliseconds ping_interval{30'000};
    std::chrono::milliseconds pong_timeout{30'000};
    // When anything is queued while more than this waits unsent already
    // (messages, pongs, close frames, published messages), the peer is cut
    // off: what waits is dropped, a close frame 1008 is sent, and the
    // connection is reset after close_timeout. send() waits at
    // send_high_water long before this; the bound catches peers that never
    // read while the library or queue_message keeps queueing. 4 MiB.
    std::size_t max_queued_bytes = 4 * 1024 * 1024;
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
    // still returned by recv_frame(). Pings read together get one pong, for
    // the latest (§5.5.3 allows it), so a ping flood cannot queue pongs.
    bool auto_pong = true;
    // Client, wss://: how the server's certificate is checked (the system's
    // trust store by default, or tls.ca_file; tls.verify = false skips the
    // check, for tests only).
    tls_client_options tls;
};

}  // namespace cnetmod::ws
