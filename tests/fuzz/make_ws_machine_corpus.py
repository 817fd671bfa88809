#!/usr/bin/env python3
"""Writes the seed corpus of ws_machine_fuzz and ws_machine_diff_fuzz into
tests/fuzz/corpus/ws_machine/: the byte streams of tests/proto/ws/machine_test.cpp
and conformance_test.cpp, each after the six bytes that choose the role, the
options, the cuts and the sends (the layout is described at the top of
ws_machine_fuzz.cpp). Usage: make_ws_machine_corpus.py [DIR]"""
import os
import struct
import sys
import zlib

FIN, RSV1, RSV2, RSV3 = 0x80, 0x40, 0x20, 0x10
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
KEY = bytes([0x37, 0xFA, 0x21, 0x3D])
CLIENT, DEFLATE, DEFLATE_SEND = 1, 2, 4


def frame(b0, payload=b"", masked=True, length_bytes=None):
    """A frame as a peer sends it: a client's (masked) unless told otherwise."""
    n = len(payload)
    lb = length_bytes if length_bytes is not None else (0 if n < 126 else 2 if n <= 0xFFFF else 8)
    m = 0x80 if masked else 0
    out = bytes([b0])
    if lb == 0:
        out += bytes([m | n])
    else:
        out += bytes([m | (126 if lb == 2 else 127)]) + n.to_bytes(lb, "big")
    if masked:
        out += KEY
        payload = bytes(c ^ KEY[i % 4] for i, c in enumerate(payload))
    return out + payload


def close_body(code, reason=b""):
    return struct.pack(">H", code) + reason


def deflated(data):
    """RFC 7692 §7.2.1: a sync-flushed DEFLATE stream without its last 4 bytes."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


BAD_UTF8 = b"ok\xc3\x28"
EURO = "\u20ac".encode()
HELLO = b"hello " * 20


def cases():
    """(name, flags, max_message_size, budget byte, stream) after machine_test.cpp's table."""
    s = lambda *frames: b"".join(frames)  # noqa: E731
    yield "5_1_unmasked_to_server", 0, 1000, 0, frame(FIN | TEXT, b"hi", False)
    yield "5_1_masked_to_client", CLIENT, 1000, 0, frame(FIN | TEXT, b"hi")
    yield "5_1_client_reads_unmasked", CLIENT, 1000, 0, frame(FIN | TEXT, b"hi", False)
    for name, bit in (("rsv1", RSV1), ("rsv2", RSV2), ("rsv3", RSV3)):
        yield "5_2_" + name, 0, 1000, 0, frame(FIN | bit | TEXT, b"x")
    yield "5_2_reserved_opcode_3", 0, 1000, 0, frame(FIN | 0x3, b"x")
    yield "5_2_reserved_opcode_b", 0, 1000, 0, frame(FIN | 0xB, b"x")
    yield "5_2_length16_under_126", 0, 1000, 0, frame(FIN | BINARY, b"abc", True, 2)
    yield "5_2_length64_under_65536", 0, 1000, 0, frame(FIN | BINARY, b"abc", True, 8)
    yield "5_2_length64_top_bit", 0, 1000, 0, bytes([FIN | BINARY, 0xFF]) + b"\x80" * 8 + b"\x00" * 4
    yield "5_2_length_edges", 0, 1000, 0, s(frame(FIN | BINARY, b"a" * 125), frame(FIN | BINARY, b"b" * 126),
                                            frame(FIN | BINARY))
    yield "5_4_fragments", 0, 1000, 0, s(frame(TEXT, b"he"), frame(CONT), frame(CONT, b"ll"), frame(FIN | CONT, b"o"))
    yield "5_4_orphan_continuation", 0, 1000, 0, frame(FIN | CONT, b"x")
    yield "5_4_message_inside_message", 0, 1000, 0, s(frame(TEXT, b"a"), frame(FIN | TEXT, b"b"))
    yield "5_4_control_between_fragments", 0, 1000, 0, s(frame(BINARY, b"ab"), frame(FIN | PING, b"p"),
                                                         frame(FIN | PONG, b"q"), frame(FIN | CONT, b"cd"))
    yield "5_4_fragmented_ping", 0, 1000, 0, frame(PING, b"x")
    yield "5_5_ping_over_125", 0, 1000, 0, frame(FIN | PING, b"x" * 126)
    yield "5_5_2_ping", 0, 1000, 0, frame(FIN | PING, b"are you there")
    yield "5_5_3_pong", 0, 1000, 0, frame(FIN | PONG, b"x")
    yield "5_5_1_empty_close", 0, 1000, 0, frame(FIN | CLOSE)
    yield "5_5_1_close_bye", 0, 1000, 0, frame(FIN | CLOSE, close_body(1000, b"bye"))
    yield "5_5_1_close_one_byte", 0, 1000, 0, frame(FIN | CLOSE, b"x")
    yield "7_4_close_1005", 0, 1000, 0, frame(FIN | CLOSE, close_body(1005))
    yield "7_4_close_2999", 0, 1000, 0, frame(FIN | CLOSE, close_body(2999))
    yield "7_4_close_4999", 0, 1000, 0, frame(FIN | CLOSE, close_body(4999, "\u00e9t\u00e9".encode()))
    yield "5_5_1_close_reason_not_utf8", 0, 1000, 0, frame(FIN | CLOSE, close_body(1000, BAD_UTF8))
    yield "5_5_1_nothing_after_close", 0, 1000, 0, s(frame(FIN | CLOSE, close_body(1001)), frame(FIN | TEXT, b"late"))
    yield "8_1_invalid_utf8", 0, 1000, 0, frame(FIN | TEXT, BAD_UTF8)
    yield "8_1_fail_fast", 0, 1000, 0, s(frame(TEXT, b"ok"), frame(CONT, b"\xff"), frame(FIN | CONT, b"never"))
    yield "8_1_char_across_fragments", 0, 1000, 0, s(frame(TEXT, EURO[:1]), frame(CONT, EURO[1:2]),
                                                     frame(FIN | CONT, EURO[2:]))
    yield "8_1_truncated_at_end", 0, 1000, 0, s(frame(TEXT, b"a"), frame(FIN | CONT, EURO[:2]))
    yield "8_1_surrogate", 0, 1000, 0, frame(FIN | TEXT, b"good\xed\xa0\x80")
    yield "8_1_overlong_and_too_high", 0, 1000, 0, s(frame(FIN | TEXT, b"\xc0\x80"), frame(FIN | TEXT, b"\xf4\x90\x80\x80"))
    yield "8_1_emoji_across_fragments", 0, 1000, 0, s(frame(TEXT, b"\xf0\x9f"), frame(CONT, b"\x98"),
                                                      frame(FIN | CONT, b"\x80!"), frame(FIN | CLOSE, close_body(1000)))
    yield "5_6_binary_any_bytes", 0, 1000, 0, frame(FIN | BINARY, BAD_UTF8)
    yield "10_4_over_the_limit", 0, 1000, 0, frame(FIN | BINARY, b"x" * 1001)
    yield "10_4_fragments_over_the_limit", 0, 1000, 0, s(frame(BINARY, b"x" * 600), frame(FIN | CONT, b"y" * 401))
    yield "10_4_at_the_limit", 0, 1000, 0, frame(FIN | BINARY, b"z" * 1000)
    yield "5_5_3_pings_together", 0, 1000, 0, s(frame(FIN | PING, b"1"), frame(FIN | PING, b"2"),
                                                frame(FIN | CLOSE, close_body(1000)))
    yield "7_1_7_ping_then_failure", 0, 1000, 0, s(frame(FIN | PING, b"p"), frame(FIN | CONT, b"x"))
    yield "conformance_fragments_ping_pong", 0, 65536, 0, s(
        frame(TEXT, b"Hel"), frame(FIN | PING, b"p1"), frame(CONT, b"lo, "), frame(FIN | PONG, b"x"),
        frame(FIN | CONT, b"world"), frame(FIN | CLOSE, close_body(1000)))
    yield "budget_1008", 0, 65536, 4, s(frame(BINARY, b"a" * 700), frame(CONT, b"b" * 700), frame(FIN | CONT, b"c"))
    d = DEFLATE | DEFLATE_SEND
    yield "7692_compressed", d, 1000, 0, frame(FIN | RSV1 | TEXT, deflated(HELLO))
    z = deflated(HELLO)
    yield "7692_compressed_fragments", d, 1000, 0, s(frame(RSV1 | TEXT, z[:3]), frame(FIN | CONT, z[3:]))
    yield "7692_compressed_client", CLIENT | d, 1000, 0, frame(FIN | RSV1 | BINARY, deflated(HELLO), False)
    yield "7692_rsv1_continuation", d, 1000, 0, s(frame(TEXT, b"a"), frame(FIN | RSV1 | CONT, b"b"))
    yield "7692_rsv1_control", d, 1000, 0, frame(FIN | RSV1 | PING)
    yield "7692_bad_data", d, 1000, 0, frame(FIN | RSV1 | BINARY, b"\xff\xff\xff")
    yield "7692_bomb", d, 1000, 0, frame(FIN | RSV1 | BINARY, deflated(b"a" * 5000))
    yield "7692_compressed_bad_utf8", d, 1000, 0, frame(FIN | RSV1 | TEXT, deflated(b"o" * 200 + BAD_UTF8))
    # zlib's empty message is one byte (§7.2.3.6); a payload of none is not DEFLATE data (1007).
    yield "7692_empty_messages", d, 1000, 0, s(frame(FIN | RSV1 | TEXT, b"\x00"), frame(FIN | RSV1 | BINARY))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus", "ws_machine")
    os.makedirs(out, exist_ok=True)
    for i, (name, flags, max_size, budget, stream) in enumerate(cases()):
        # Cuts and sends vary from seed to seed (bits 4-5 and 6-7), and so
        # does the generator's seed and the compression threshold.
        flags |= (i % 4) << 4 | ((i // 4) % 4) << 6
        layout = bytes([flags]) + struct.pack("<H", max_size - 1) + bytes([budget, 2, i & 0x7F])
        with open(os.path.join(out, name + ".bin"), "wb") as f:
            f.write(layout + stream)
        # The same stream read in pieces (machine_limits::fragments: bit 7 of
        # byte 5 for ws_machine_fuzz, bit 0 of byte 4 for ws_machine_diff_fuzz).
        layout = bytes([flags]) + struct.pack("<H", max_size - 1) + bytes([budget, 3, 0x80 | (i & 0x7F)])
        with open(os.path.join(out, name + "_in_pieces.bin"), "wb") as f:
            f.write(layout + stream)


if __name__ == "__main__":
    main()
