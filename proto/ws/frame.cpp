#include <cnetmod/proto/ws/frame.hpp>

#include <cstring>

namespace cnetmod::ws {

header_parse_result parse_frame_header(std::span<const std::byte> in) noexcept {
    using st = header_parse_result::status;
    header_parse_result r{st::incomplete, 2};
    if (in.size() < 2) return r;
    const auto b0 = std::to_integer<std::uint8_t>(in[0]);
    const auto b1 = std::to_integer<std::uint8_t>(in[1]);
    frame_header& h = r.header;
    h.fin = (b0 & 0x80) != 0;
    h.rsv1 = (b0 & 0x40) != 0;
    h.rsv2 = (b0 & 0x20) != 0;
    h.rsv3 = (b0 & 0x10) != 0;
    const std::uint8_t op = b0 & 0x0F;
    h.masked = (b1 & 0x80) != 0;
    const std::uint8_t len7 = b1 & 0x7F;
    auto fail = [&](std::uint16_t code) {
        r.state = st::invalid;
        r.close = code;
        return r;
    };
    // RFC 6455 §5.2: opcodes 3–7 and 0xB–0xF are reserved.
    if ((op >= 0x3 && op <= 0x7) || op >= 0xB) return fail(close_code::protocol_error);
    h.op = static_cast<opcode>(op);
    // §5.5: control frames carry at most 125 bytes and are never fragmented.
    if (is_control(h.op) && (!h.fin || len7 > 125)) return fail(close_code::protocol_error);
    const std::size_t length_bytes = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    const std::size_t need = 2 + length_bytes + (h.masked ? 4 : 0);
    if (in.size() < need) {
        r.size = need;
        return r;
    }
    const auto* p = reinterpret_cast<const std::uint8_t*>(in.data()) + 2;
    if (len7 == 126) {
        h.payload_length = (std::uint64_t{p[0]} << 8) | p[1];
        if (h.payload_length < 126) return fail(close_code::protocol_error);  // §5.2: minimal encoding
    } else if (len7 == 127) {
        h.payload_length = 0;
        for (int i = 0; i < 8; ++i) h.payload_length = (h.payload_length << 8) | p[i];
        if (h.payload_length >> 63) return fail(close_code::protocol_error);  // §5.2: most significant bit is 0
        if (h.payload_length <= 0xFFFF) return fail(close_code::protocol_error);
    } else {
        h.payload_length = len7;
    }
    if (h.masked) std::memcpy(h.mask, p + length_bytes, 4);
    r.state = st::complete;
    r.size = need;
    return r;
}

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
