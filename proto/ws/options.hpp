/// @file
/// Settings of a WebSocket connection; each default is the one documented.
#pragma once

#include <cnetmod/engine/tls.hpp>
#include <cnetmod/proto/ws/permessage_deflate.hpp>

#include <chrono>
#include <cstddef>
#include <string>

/// WebSocket (RFC 6455) with permessage-deflate (RFC 7692): the coroutine API (connection), the callback API
/// (socket, behavior), the client (connect), pub/sub topics (pubsub), and the codecs and protocol machine beneath.
namespace cnetmod::ws {

/// Settings of a WebSocket connection, server or client side; each default is the one documented at its field.
struct options {
    /// permessage-deflate (RFC 7692): negotiated when both sides ask for it.
    bool enable_compression = false;
    /// The compression level, 1 (fastest) to 12 (smallest): libdeflate's for
    /// messages sent without context, zlib's (at most 9) for the others.
    int compression_level = 6;
    /// Context takeover (RFC 7692 §7.1.1): each side's compressor keeps its
    /// window (the last up to 32 KiB sent) from one message to the next,
    /// wherever the peer does not forbid it, so that a message can refer to
    /// earlier ones: ~100-byte JSON chat lines then shrink to about a
    /// quarter (bench/RESULTS.md) where a message compressed alone barely
    /// shrinks. Costs zlib state while a connection is busy, and its
    /// windows' bytes while idle (see compression_memory_budget). false:
    /// no context takeover both ways, no zlib state (libdeflate alone).
    bool compression_context_takeover = true;
    /// The largest LZ77 window, as log2 of its bytes, 8 (256 B) to 15
    /// (32 KiB), this side compresses with and lets the peer compress with
    /// (when its offer lets the server limit it; a client that does not is
    /// asked for no context takeover instead). Smaller windows: less memory
    /// per connection, less compression.
    int compression_window_bits = 15;
    /// zlib's memLevel, 1..9, for compressors that keep a window: the match
    /// finder's memory while busy (at 8 and a 32 KiB window, about 256 KiB
    /// per busy connection; at 1, about 130 KiB), and some speed and ratio.
    int compression_memory_level = 8;
    /// Messages sent without context smaller than this go uncompressed (and
    /// so does any message that compressing would not make smaller): alone,
    /// a 100-byte chat message shrinks by about 4 % for 3-4 µs.
    std::size_t compression_threshold = 1024;
    /// With context takeover for what this side sends, messages from this
    /// size go compressed.
    std::size_t takeover_compression_threshold = 16;
    /// Server, per core: bytes of compression state (zlib streams of busy
    /// connections, the pool of spare ones, and idle connections' windows)
    /// past which new connections are offered no context takeover. The
    /// state of connections already agreed is kept. 64 MiB.
    std::size_t compression_memory_budget = 64 * 1024 * 1024;
    /// Server: the subprotocol to select, only if the client offered it.
    /// Client: the subprotocol(s) to offer ("chat" or "chat, superchat").
    std::string subprotocol;
    /// A message (all its fragments) larger than this fails the connection
    /// with 1009 (message too big). 16 MiB.
    std::size_t max_message_size = 16 * 1024 * 1024;
    /// A compressed message may inflate to at most this many times its
    /// compressed size (and always to 2 MiB), else 1009: a deflate bomb ends
    /// after work bounded by its own size, in one pass. Text and JSON
    /// compress 3-20x; only a message over 2 MiB that is nearly all one
    /// repeated byte goes beyond 128x. 0: only max_message_size bounds it.
    std::size_t max_inflate_ratio = 128;
    /// Bytes of incomplete messages (fragments being reassembled, a large
    /// frame still arriving) that all WebSocket connections of one core may
    /// hold together. A connection that would pass it is closed with 1008,
    /// so that a few peers that start huge messages and stall cannot take
    /// the core's memory. 64 MiB.
    std::size_t core_reassembly_budget = 64 * 1024 * 1024;
    /// A message must be complete this long after its first byte arrived,
    /// else 1008 (a peer that starts a message and stalls). On a callback
    /// route with a `fragment` handler it counts from the last piece handed
    /// out instead. 0: no limit.
    std::chrono::milliseconds message_timeout{60'000};
    /// Liveness: after this long without any byte from the peer a ping is
    /// sent; if nothing at all arrives within pong_timeout after it, the peer
    /// is taken for dead (a lost NAT entry, a pulled cable) and the
    /// connection is reset (close_code() 1006). Browsers and every RFC 6455
    /// library answer pings by themselves. 0: no pings.
    std::chrono::milliseconds ping_interval{30'000};
    /// How long after a liveness ping (ping_interval) the peer has to send anything before it is taken for dead.
    std::chrono::milliseconds pong_timeout{30'000};
    /// When anything is queued while more than this waits unsent already
    /// (messages, pongs, close frames, published messages), the peer is cut
    /// off: what waits is dropped, a close frame 1008 is sent, and the
    /// connection is reset after close_timeout. send() waits at
    /// send_high_water long before this; the bound catches peers that never
    /// read while the library or queue_message keeps queueing. 4 MiB.
    std::size_t max_queued_bytes = 4 * 1024 * 1024;
    /// Client: time allowed for connect and the handshake. (A server's
    /// handshake is bounded by http::server_options::request_timeout.)
    std::chrono::milliseconds handshake_timeout{10'000};
    /// Without any frame from the peer for this long, the connection is
    /// closed with 1001 (going away). 0: no idle limit.
    std::chrono::milliseconds idle_timeout{0};
    /// After sending a close frame, time to wait for the peer's before the
    /// TCP connection is closed regardless.
    std::chrono::milliseconds close_timeout{5'000};
    /// send() completes at once while fewer bytes than this wait in the send
    /// queue; above it, it suspends until the queue drains to half.
    std::size_t send_high_water = 1024 * 1024;
    /// A peer that does not drain the queue below the mark for this long is
    /// cut off: the connection is reset and send() throws. 30 s.
    std::chrono::milliseconds send_timeout{30'000};
    /// Answer pings with pongs automatically (RFC 6455 §5.5.2). The pings are
    /// still returned by recv_frame(). Pings read together get one pong, for
    /// the latest (§5.5.3 allows it), so a ping flood cannot queue pongs.
    bool auto_pong = true;
    /// Client, wss://: how the server's certificate is checked (the system's
    /// trust store by default, or tls.ca_file; tls.verify = false skips the
    /// check, for tests only).
    tls_client_options tls;
};

/// What `o` asks of permessage-deflate's negotiation.
/// The window is clamped to 8..15 bits.
inline deflate_preferences preferences_of(const options& o) noexcept {
    return {o.compression_context_takeover,
            static_cast<std::uint8_t>(o.compression_window_bits < 8    ? 8
                                      : o.compression_window_bits > 15 ? 15
                                                                       : o.compression_window_bits)};
}

}  // namespace cnetmod::ws
