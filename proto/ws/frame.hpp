/// @file
/// The WebSocket frame header codec (RFC 6455 §5.2): pure functions over
/// bytes, no I/O. parse_frame_header checks what the header alone can tell —
/// reserved opcodes, control-frame rules, length encodings — and names the
/// close code for a violation; rules that depend on the connection (masking
/// direction, negotiated extensions, fragmentation state) are the
/// connection's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

namespace cnetmod::ws {

/// A frame's opcode (RFC 6455 §5.2).
enum class opcode : std::uint8_t {
    continuation = 0x0,  ///< a further fragment of a message
    text = 0x1,          ///< a text message (UTF-8)
    binary = 0x2,        ///< a binary message
    close = 0x8,         ///< the close handshake
    ping = 0x9,          ///< a ping, answered by a pong
    pong = 0xA,          ///< a pong
};

/// Whether `op` is a control frame's (close, ping, pong).
constexpr bool is_control(opcode op) noexcept {
    return (static_cast<std::uint8_t>(op) & 0x8) != 0;
}

/// Close codes (RFC 6455 §7.4.1).
namespace close_code {
inline constexpr std::uint16_t normal = 1000;  ///< the purpose was fulfilled
inline constexpr std::uint16_t going_away =
    1001;  ///< the endpoint goes away: a server shutting down, a page navigated away
inline constexpr std::uint16_t protocol_error = 1002;    ///< the peer broke the protocol
inline constexpr std::uint16_t unsupported_data = 1003;  ///< a kind of data the endpoint cannot accept
inline constexpr std::uint16_t no_status = 1005;         ///< never sent: "the peer sent no code"
inline constexpr std::uint16_t abnormal = 1006;          ///< never sent: "the connection dropped without a close"
inline constexpr std::uint16_t invalid_payload =
    1007;  ///< data inconsistent with the message type (text that is not UTF-8)
inline constexpr std::uint16_t policy_violation =
    1008;  ///< a message (or a peer's behaviour) that violates the endpoint's policy
inline constexpr std::uint16_t message_too_big = 1009;      ///< a message too big to process
inline constexpr std::uint16_t mandatory_extension = 1010;  ///< the client needed an extension the server did not agree
inline constexpr std::uint16_t internal_error = 1011;       ///< the server met an unexpected condition
}  // namespace close_code

/// Codes a peer may send in a close frame: 1000–1003, 1007–1011, 3000–4999.
constexpr bool is_valid_close_code(std::uint16_t code) noexcept {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) || (code >= 3000 && code <= 4999);
}

/// A frame header, decoded (RFC 6455 §5.2).
struct frame_header {
    bool fin = true;  ///< the final fragment of its message
    /// The reserved bits; RSV1 marks a compressed message (RFC 7692).
    ///@{
    bool rsv1 = false, rsv2 = false, rsv3 = false;
    ///@}
    opcode op = opcode::text;             ///< the opcode
    bool masked = false;                  ///< whether the payload is masked (every client-to-server frame)
    std::uint8_t mask[4] = {0, 0, 0, 0};  ///< the masking key, when masked
    std::uint64_t payload_length = 0;     ///< the payload's bytes
};

/// What parse_frame_header() found.
struct header_parse_result {
    /// How far parsing got.
    enum class status {
        complete,             ///< a whole, valid header: `header` holds it
        incomplete,           ///< more bytes are needed
        invalid               ///< the header breaks a rule: `close` names the code
    } state;                  ///< how far this parse got
    std::size_t size = 0;     ///< complete: header bytes; incomplete: bytes needed in all
    frame_header header{};    ///< complete: the header
    std::uint16_t close = 0;  ///< invalid: the close code to fail with
};

/// Parses a frame header from the start of `in` into `h`: complete (with
/// `size` the header's bytes), incomplete (`size` the bytes needed in all) or
/// invalid (`close` the code to fail with). Inline and writing in place: it
/// runs once per frame on the receive path.
inline header_parse_result::status parse_frame_header_into(std::span<const std::byte> in, frame_header& h,
                                                           std::size_t& size, std::uint16_t& close) noexcept {
    using st = header_parse_result::status;
    size = 2;
    if (in.size() < 2) return st::incomplete;
    const auto b0 = std::to_integer<std::uint8_t>(in[0]);
    const auto b1 = std::to_integer<std::uint8_t>(in[1]);
    const std::uint8_t op = b0 & 0x0F;
    const std::uint8_t len7 = b1 & 0x7F;
    const bool fin = (b0 & 0x80) != 0;
    // RFC 6455 §5.2: opcodes 3–7 and 0xB–0xF are reserved.
    // §5.5: control frames carry at most 125 bytes and are never fragmented.
    if ((op >= 0x3 && op <= 0x7) || op >= 0xB || ((op & 0x8) && (!fin || len7 > 125))) {
        close = close_code::protocol_error;
        return st::invalid;
    }
    const bool masked = (b1 & 0x80) != 0;
    const std::size_t length_bytes = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    const std::size_t need = 2 + length_bytes + (masked ? 4 : 0);
    size = need;
    if (in.size() < need) return st::incomplete;
    const auto* p = reinterpret_cast<const std::uint8_t*>(in.data()) + 2;
    std::uint64_t length = len7;
    if (len7 == 126) {
        length = (std::uint64_t{p[0]} << 8) | p[1];
        if (length < 126) {  // §5.2: minimal encoding
            close = close_code::protocol_error;
            return st::invalid;
        }
    } else if (len7 == 127) {
        length = 0;
        for (int i = 0; i < 8; ++i) length = (length << 8) | p[i];
        if ((length >> 63) || length <= 0xFFFF) {  // §5.2: top bit 0, minimal encoding
            close = close_code::protocol_error;
            return st::invalid;
        }
    }
    h.fin = fin;
    h.rsv1 = (b0 & 0x40) != 0;
    h.rsv2 = (b0 & 0x20) != 0;
    h.rsv3 = (b0 & 0x10) != 0;
    h.op = static_cast<opcode>(op);
    h.masked = masked;
    h.payload_length = length;
    if (masked) std::memcpy(h.mask, p + length_bytes, 4);
    return st::complete;
}

/// The same, returning the header in a result.
inline header_parse_result parse_frame_header(std::span<const std::byte> in) noexcept {
    header_parse_result r{header_parse_result::status::incomplete, 2};
    r.state = parse_frame_header_into(in, r.header, r.size, r.close);
    return r;
}

/// Largest encoded header: 2 + 8 (64-bit length) + 4 (mask).
inline constexpr std::size_t max_header_size = 14;

/// Writes a header to `out` (max_header_size bytes of room) and returns its size.
/// `fin` and `rsv1` set those bits; a `mask` (4 bytes) sets the mask bit and is written after the length.
std::size_t encode_frame_header(std::byte* out, opcode op, std::uint64_t payload_length, bool fin = true,
                                bool rsv1 = false, const std::uint8_t* mask = nullptr) noexcept;

}  // namespace cnetmod::ws
