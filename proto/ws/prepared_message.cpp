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
    if (!opts.enable_compression || payload.size() < opts.compression_threshold) return;
    std::string compressed;
    if (compress_message(payload, opts.compression_level, compressed) == 0) return;  // it would not shrink
    compressed_ =
        encode_frame(op, std::as_bytes(std::span(compressed.data(), compressed.size())), true, compressed_header_);
}

}  // namespace cnetmod::ws
