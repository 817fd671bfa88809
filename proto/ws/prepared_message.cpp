#include <cnetmod/proto/ws/detail/deflate_stream.hpp>
#include <cnetmod/proto/ws/permessage_deflate.hpp>
#include <cnetmod/proto/ws/prepared_message.hpp>

#include <cstring>
#include <stdexcept>
#include <string>

namespace cnetmod::ws {
namespace {

// A server frame (unmasked) of `payload` in a new shared buffer.
shared_buffer encode_frame(ws::opcode op, std::span<const std::byte> payload, bool rsv1, std::size_t& header_size) {
    std::byte header[max_header_size];
    header_size = encode_frame_header(header, op, payload.size(), true, rsv1, nullptr);
    shared_buffer frame = shared_buffer::allocate(header_size + payload.size());
    std::memcpy(frame.mutable_bytes().data(), header, header_size);
    if (!payload.empty()) std::memcpy(frame.mutable_bytes().data() + header_size, payload.data(), payload.size());
    return frame;
}

}  // namespace

prepared_message::prepared_message(ws::opcode op, std::span<const std::byte> payload, const options& opts) : op_(op) {
    if (op != ws::opcode::text && op != ws::opcode::binary)
        throw std::invalid_argument("cnetmod: a prepared message is a text or binary message");
    plain_ = encode_frame(op, payload, false, plain_header_);
    if (!opts.enable_compression) return;
    std::string compressed;
    if (payload.size() >= opts.compression_threshold && compress_message(payload, opts.compression_level, compressed))
        compressed_ =
            encode_frame(op, std::as_bytes(std::span(compressed.data(), compressed.size())), true, compressed_header_);
    if (!opts.compression_context_takeover || payload.size() < opts.takeover_compression_threshold) return;
    compressed.clear();
    // Only when it shrinks: a takeover peer then gets it plain, which its window does not take.
    if (detail::compress_message_sync(payload, opts.compression_level, compressed) < payload.size())
        takeover_ =
            encode_frame(op, std::as_bytes(std::span(compressed.data(), compressed.size())), true, takeover_header_);
}

}  // namespace cnetmod::ws
