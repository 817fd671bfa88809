/// @file
/// A WebSocket message encoded once for many connections (a broadcast): the
/// server frame is built in a shared, refcounted buffer, and so is its
/// permessage-deflate form when compressing makes it smaller, so that each
/// connection's send queue references the same bytes instead of copying
/// them. Buffers are reference-counted atomically: a prepared message may be
/// queued on connections of every core.
///
///   ws::prepared_message m(ws::opcode::text, payload, opts);   // compressed once
///   for (auto* c : subscribers) c->queue_prepared(m);          // no copy, no compression
#pragma once

#include <cnetmod/engine/shared_buffer.hpp>
#include <cnetmod/proto/ws/frame.hpp>
#include <cnetmod/proto/ws/options.hpp>

#include <cstddef>
#include <span>
#include <string_view>

namespace cnetmod::ws {

/// A WebSocket message encoded once for many connections (a broadcast): its frames, plain and compressed, in shared
/// buffers that each connection's send queue references. Copies share the buffers; may be queued on connections of
/// every core.
class prepared_message {
public:
    /// An empty message, holding no frame.
    prepared_message() = default;
    /// Encodes `payload` as one unmasked (server) frame of opcode `op` (text
    /// or binary). With opts.enable_compression, and a payload at or above
    /// opts.compression_threshold, it is also compressed once at
    /// opts.compression_level (libdeflate: for peers without context
    /// takeover); with opts.compression_context_takeover too, and a payload
    /// at or above opts.takeover_compression_threshold, once more for peers
    /// that keep their window (zlib, ending in a sync flush). A form that
    /// would not be smaller is left out.
    prepared_message(ws::opcode op, std::span<const std::byte> payload, const options& opts);
    /// The same with `payload` as characters.
    prepared_message(ws::opcode op, std::string_view payload, const options& opts)
        : prepared_message(op, std::as_bytes(std::span(payload.data(), payload.size())), opts) {}

    /// The message's opcode (text or binary).
    ws::opcode op() const noexcept { return op_; }
    /// The whole frame, header and payload, as a server sends it.
    const shared_buffer& plain_frame() const noexcept { return plain_; }
    /// The payload, uncompressed (the plain frame's bytes after its header).
    std::span<const std::byte> plain_payload() const noexcept { return plain_.bytes().subspan(plain_header_); }
    /// The form for peers that keep one inflater across messages (context
    /// takeover), when there is one: compressed from an empty window with a
    /// 32 KiB window and ending in a sync flush, not a final block, so that
    /// it continues any such peer's stream (detail::compress_message_sync).
    bool has_takeover_form() const noexcept { return !takeover_.empty(); }
    /// The whole frame of that form (RSV1 set), when there is one.
    const shared_buffer& takeover_frame() const noexcept { return takeover_; }
    /// That form's payload (the frame's bytes after its header).
    std::span<const std::byte> takeover_payload() const noexcept { return takeover_.bytes().subspan(takeover_header_); }
    /// The compressed frame (RSV1 set), when there is one.
    bool has_compressed() const noexcept { return !compressed_.empty(); }
    /// The whole compressed frame: a DEFLATE stream of its own, for peers without context takeover.
    const shared_buffer& compressed_frame() const noexcept { return compressed_; }
    /// The compressed frame's payload (its bytes after the header).
    std::span<const std::byte> compressed_payload() const noexcept {
        return compressed_.bytes().subspan(compressed_header_);
    }

private:
    ws::opcode op_ = ws::opcode::text;
    shared_buffer plain_;
    shared_buffer compressed_;
    shared_buffer takeover_;
    std::size_t plain_header_ = 0;
    std::size_t compressed_header_ = 0;
    std::size_t takeover_header_ = 0;
};

}  // namespace cnetmod::ws
