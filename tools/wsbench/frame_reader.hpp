// wsbench's reading side of one connection: bytes in, events out, as
// ws::machine's feed() has them, so that a loop over received buffers reads
// the same with either.
//
// The frame wsbench gets hundreds of thousands of times a second — a whole
// unfragmented text or binary message, unmasked, uncompressed, up to 64 KiB,
// lying whole in the input — is read here in a few instructions. Anything
// else (a frame cut across inputs, fragments, control frames, compressed
// messages, the close handshake, a frame that breaks the protocol) goes to
// the ws::machine inside, which keeps the input until that frame is done.
// Text taken on the fast path is not validated as UTF-8: wsbench compares
// every message byte for byte with the valid text it sent, so an invalid
// one counts as a mismatch instead of failing the connection with 1007.
#pragma once

#include <cnetmod/proto/ws/frame.hpp>
#include <cnetmod/proto/ws/machine.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

namespace wsbench {

class frame_reader {
public:
    // `deflate`: permessage-deflate was agreed, so compressed messages may
    // arrive; `deflate_send`: wsbench sends compressed ones too.
    explicit frame_reader(bool deflate = false, bool deflate_send = false) noexcept
        : machine_(cnetmod::ws::role::client, deflate, deflate_send) {}

    // Reads frames from `in` up to the next event, as ws::machine::feed
    // does: `consumed` bytes of `in` are done with; the event's payload is
    // valid until the next feed and while the bytes of `in` are.
    cnetmod::ws::feed_result feed(std::span<std::byte> in, const cnetmod::ws::machine_limits& limits) {
        if (!machine_holds_ && in.size() >= 2) {
            const auto b0 = std::to_integer<std::uint8_t>(in[0]);
            const auto b1 = std::to_integer<std::uint8_t>(in[1]);
            // FIN, no RSV bit, text (1) or binary (2); unmasked (RFC 6455 §5.1: a server never masks).
            if ((b0 == 0x81 || b0 == 0x82) && b1 < 0x80) {
                std::size_t header = 2;
                std::size_t length = b1;
                if (length == 126 && in.size() >= 4) {
                    header = 4;
                    length =
                        (std::size_t{std::to_integer<std::uint8_t>(in[2])} << 8) | std::to_integer<std::uint8_t>(in[3]);
                }
                // §5.2: a 16-bit length below 126 is mis-encoded (the machine fails it).
                if (header == 2 ? length < 126 : length >= 126) {
                    if (in.size() - header >= length) {
                        cnetmod::ws::feed_result r;
                        r.consumed = header + length;
                        r.event.kind = cnetmod::ws::event_kind::message;
                        r.event.op = b0 == 0x81 ? cnetmod::ws::opcode::text : cnetmod::ws::opcode::binary;
                        r.event.payload = in.subspan(header, length);
                        return r;
                    }
                }
            }
        }
        cnetmod::ws::feed_result r = machine_.feed(in, limits);
        // The machine keeps the input while a frame or a message is in pieces
        // and after the peer's close or a failure (it then reads no more); it
        // hands it back at the end of a message or of a control frame outside one.
        using cnetmod::ws::event_kind;
        const auto kind = r.event.kind;
        machine_holds_ = (kind != event_kind::message && kind != event_kind::ping && kind != event_kind::pong) ||
                         machine_.in_message();
        return r;
    }

    // The machine: what the input owes the peer (write_owed), the close
    // handshake (send_close, close_code), compressed sending.
    cnetmod::ws::machine& machine() noexcept { return machine_; }
    const cnetmod::ws::machine& machine() const noexcept { return machine_; }

private:
    cnetmod::ws::machine machine_;
    bool machine_holds_ = false;  // the machine is inside a frame or a message: the input is its own
};

}  // namespace wsbench
