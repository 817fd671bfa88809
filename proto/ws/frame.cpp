#include <cnetmod/proto/ws/frame.hpp>

#include <cstring>

namespace cnetmod::ws {

std::size_t encode_frame_header(std::byte* out, opcode op, std::uint64_t payload_length, bool fin, bool rsv1,
                                const std::uint8_t* mask) noexcept {
    auto* o = reinterpret_cast<std::uint8_t*>(out);
    o[0] = static_cast<std::uint8_t>((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | static_cast<std::uint8_t>(op));
    const std::uint8_t mask_bit = mask ? 0x80 : 0;
    std::size_t n;
    if (payload_length < 126) {
        o[1] = static_cast<std::uint8_t>(mask_bit | payload_length);
        n = 2;
    } else if (payload_length <= 0xFFFF) {
        o[1] = mask_bit | 126;
        o[2] = static_cast<std::uint8_t>(payload_length >> 8);
        o[3] = static_cast<std::uint8_t>(payload_length);
        n = 4;
    } else {
        o[1] = mask_bit | 127;
        for (int i = 0; i < 8; ++i) o[2 + i] = static_cast<std::uint8_t>(payload_length >> (56 - 8 * i));
        n = 10;
    }
    if (mask) {
        std::memcpy(o + n, mask, 4);
        n += 4;
    }
    return n;
}

}  // namespace cnetmod::ws
