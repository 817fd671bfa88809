// wsbench's reading side of one connection: bytes in, events out, as
// ws::machine's feed() has them, so that a loop over received buffers reads
// the same with either.
//
// The frame wsbench gets hundreds of thousands of times a second — a whole
// unfragmented text or binary message, unmasked, uncompressed, under 64 KiB
// — is read here in a few instructions: in place when it lies whole in the
// input, else gathered in a buffer the reader keeps (no allocation once it
// has grown to the frame size). Anything else (fragments, control frames,
// compressed messages, the close handshake, a frame that breaks the
// protocol, a header cut across inputs) goes to the ws::machine inside,
// which keeps the input until that frame is done. Text read here is not
// validated as UTF-8: wsbench compares every message byte for byte with the
// valid text it sent, so an invalid one counts as a mismatch instead of
// failing the connection with 1007.
#pragma once

#include <cnetmod/proto/ws/frame.hpp>
#include <cnetmod/proto/ws/machine.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace wsbench {

class frame_reader {
public:
    // `deflate`: permessage-deflate was agreed, so compressed messages may
    // arrive; `deflate_send`: wsbench sends compressed ones too.
    explicit frame_reader(bool deflate = false, bool deflate_send = false) noexcept
        : machine_(cnetmod::ws::role::client, deflate, deflate_send) {}
    // permessage-deflate as the handshake agreed it (takeover, windows).
    frame_reader(const cnetmod::ws::deflate_agreement& agreed, bool deflate_send)
        : machine_(cnetmod::ws::role::client, agreed, deflate_send) {}

    // Reads frames from `in` up to the next event, as ws::machine::feed
    // does: `consumed` bytes of `in` are done with; the event's payload is
    // valid until the next feed and while the bytes of `in` are.
    cnetmod::ws::feed_result feed(std::span<std::byte> in, const cnetmod::ws::machine_limits& limits) {
        if (frame_size_ != 0) return gather(in);
        std::size_t header = 0, length = 0;
        if (!machine_holds_ && data_frame(in, header, length)) {
            if (in.size() - header < length) return start_gathering(in, header + length);
            return message(in.first(header + length), header);
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
    // The header of a frame read here, whole at the start of `in`: FIN, no
    // RSV bit, text (1) or binary (2), unmasked (RFC 6455 §5.1: a server
    // never masks), a 7- or 16-bit length (§5.2: a 16-bit one below 126 is
    // mis-encoded, and the machine fails it).
    static bool data_frame(std::span<const std::byte> in, std::size_t& header, std::size_t& length) noexcept {
        if (in.size() < 2) return false;
        const auto b0 = std::to_integer<std::uint8_t>(in[0]);
        const auto b1 = std::to_integer<std::uint8_t>(in[1]);
        if ((b0 != 0x81 && b0 != 0x82) || b1 >= 0x80 || b1 == 127) return false;
        if (b1 < 126) {
            header = 2;
            length = b1;
            return true;
        }
        if (in.size() < 4) return false;
        header = 4;
        length = (std::size_t{std::to_integer<std::uint8_t>(in[2])} << 8) | std::to_integer<std::uint8_t>(in[3]);
        return length >= 126;
    }

    // The message of a whole frame (`frame` holds exactly it).
    static cnetmod::ws::feed_result message(std::span<const std::byte> frame, std::size_t header) noexcept {
        cnetmod::ws::feed_result r;
        r.consumed = frame.size();
        r.event.kind = cnetmod::ws::event_kind::message;
        r.event.op = frame[0] == std::byte{0x81} ? cnetmod::ws::opcode::text : cnetmod::ws::opcode::binary;
        r.event.payload = frame.subspan(header);
        return r;
    }

    // A frame read here that the input holds only the start of: kept, all of it.
    cnetmod::ws::feed_result start_gathering(std::span<const std::byte> in, std::size_t frame_size) {
        partial_.reserve(frame_size);
        partial_.assign(in.begin(), in.end());
        frame_size_ = frame_size;
        cnetmod::ws::feed_result r;
        r.consumed = in.size();
        return r;
    }

    cnetmod::ws::feed_result gather(std::span<const std::byte> in) {
        const std::size_t take = std::min(in.size(), frame_size_ - partial_.size());
        partial_.insert(partial_.end(), in.begin(), in.begin() + static_cast<std::ptrdiff_t>(take));
        cnetmod::ws::feed_result r;
        if (partial_.size() == frame_size_) {
            frame_size_ = 0;
            r = message(partial_, partial_[1] == std::byte{126} ? 4 : 2);
        }
        r.consumed = take;
        return r;
    }

    cnetmod::ws::machine machine_;
    std::vector<std::byte> partial_;  // a frame read here that came in pieces, gathered
    std::size_t frame_size_ = 0;      // while gathering: the whole frame's bytes
    bool machine_holds_ = false;      // the machine is inside a frame or a message: the input is its own
};

}  // namespace wsbench
