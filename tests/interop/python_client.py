#!/usr/bin/python3
"""Python's `websockets` (Debian python3-websockets) as a client against a
cnetmod echo server:
    python_client.py URL [--compression=expect|declined]
        [--mode=takeover|small_windows|no_takeover_server] [--ca=FILE]
Without --compression the client offers no extension. With it, it offers
permessage-deflate (websockets' default) and checks that the server accepted
it (expect) or answered without it (declined).
--mode (with --compression=expect): what the server was started with and so
what the answer must be (RFC 7692 §7.1), then chat lines, documents and
1 MiB messages over the agreed windows:
  takeover            echo_server --deflate: websockets' default offer,
                      context takeover both ways, 32 KiB windows;
  small_windows       echo_server --deflate --window-bits 9: an offer of
                      client_max_window_bits=9, server_max_window_bits=10 is
                      answered with 9 both ways; the default offer and one
                      without client_max_window_bits are checked too;
  no_takeover_server  echo_server --deflate --no-context-takeover: both
                      *_no_context_takeover in the answer to the default offer.
--ca: trust this CA for wss://."""
import argparse
import asyncio
import json
import random
import ssl

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

KIB = 1024
MIB = 1024 * 1024


class wire_counter:
    """Counts the bytes the connection receives below the WebSocket layer
    (after TLS, before permessage-deflate) by wrapping the protocol's
    data_received, which the transport looks up on each call."""

    def __init__(self, ws):
        self.total = 0
        inner = ws.data_received

        def counted(data):
            self.total += len(data)
            inner(data)

        ws.data_received = counted


def compressible_text(n):
    line = "cnetmod interop: the same line again and again, ünïcödé too. "
    return (line * (n // len(line) + 1))[:n]


def random_text(rng, n):
    # Random code points from four UTF-8 lengths, cut to exactly n characters.
    alphabet = "azAZ09~ éßЖ中文€😀"
    return "".join(rng.choice(alphabet) for _ in range(n))


async def check_extension(ws, compression):
    header = ws.response_headers.get("Sec-WebSocket-Extensions")
    names = [type(e).__name__ for e in ws.extensions]
    if compression == "expect":
        assert header and header.split(";")[0].strip() == "permessage-deflate", header
        assert names == ["PerMessageDeflate"], names
    else:
        assert header is None, header
        assert names == [], names


async def echo(ws, message, label):
    await ws.send(message)
    got = await asyncio.wait_for(ws.recv(), 20)
    assert type(got) is type(message), f"{label}: came back as {type(got).__name__}"
    assert got == message, f"{label}: {len(message)} sent, {len(got)} back, contents differ"


async def seed_checks(ws):
    for n in [0, 125, 126, 65535, 65536, 1 << 20]:
        text = "é" * (n // 2) + "x" * (n % 2)
        await echo(ws, text, f"text {n}")
        blob = bytes((i * 31) & 0xFF for i in range(n))
        await echo(ws, blob, f"binary {n}")
    # A fragmented message: websockets sends an iterable as fragments.
    await ws.send(["frag", "men", "ted"])
    assert await ws.recv() == "fragmented"
    await ws.send([b"\x01", b"\x02\x03"])
    assert await ws.recv() == b"\x01\x02\x03"
    waiter = await ws.ping(b"py-ping")
    await asyncio.wait_for(waiter, 5)


async def compression_checks(ws, compression):
    rng = random.Random(7692)
    for n in [0, 1, 16 * KIB, MIB]:
        await echo(ws, compressible_text(n), f"compressible text {n}")
        await echo(ws, compressible_text(n).encode(), f"compressible binary {n}")
        await echo(ws, random_text(rng, n), f"random text {n}")
        await echo(ws, rng.randbytes(n), f"random binary {n}")
    # Fragmented messages: with permessage-deflate, websockets compresses the
    # fragments as one stream, RSV1 on the first frame only (RFC 7692 §6.1).
    parts = [compressible_text(64 * KIB) for _ in range(16)]
    await ws.send(parts)
    assert await ws.recv() == "".join(parts), "fragmented compressible text"
    blobs = [rng.randbytes(n) for n in (1, 0, 300, 70000, 5)]
    await ws.send(blobs)
    assert await ws.recv() == b"".join(blobs), "fragmented random binary"
    await ws.send(["é", "", "ß" * 500])
    assert await ws.recv() == "é" + "ß" * 500, "fragmented small text"
    waiter = await ws.ping(b"py-ping-deflate")
    await asyncio.wait_for(waiter, 5)

    # The echo of 1 MiB of repetitive text must come back compressed when
    # deflate was negotiated, and whole when it was not.
    counter = wire_counter(ws)
    await echo(ws, compressible_text(MIB), "compressible text 1 MiB (counted)")
    if compression == "expect":
        assert counter.total < 64 * KIB, f"1 MiB echo took {counter.total} bytes: not compressed"
    else:
        assert counter.total > MIB, f"1 MiB echo took only {counter.total} bytes"


# ---- Context takeover and window sizes (--mode) ----------------------------

# What each mode offers (websockets' settings; None: its default offer,
# client_max_window_bits without a value) and the answer the server must give.
TAKEOVER_OFFERS = {
    "takeover": None,
    "small_windows": {"client_max_window_bits": 9, "server_max_window_bits": 10},
    "no_takeover_server": None,
}
TAKEOVER_ANSWERS = {
    "takeover": {},
    "small_windows": {"server_max_window_bits": "9", "client_max_window_bits": "9"},
    "no_takeover_server": {"server_no_context_takeover": True, "client_no_context_takeover": True},
}
WORDS = ("the quick brown fox jumps over a lazy dog hello world chat room message server client deflate window "
         "context takeover again yes no maybe later today tomorrow great thanks see you soon ok lol ünïcödé 中文").split()


def deflate_params(header):
    """ "permessage-deflate; a; b=9" -> {"a": True, "b": "9"}; fails unless
    the answer names permessage-deflate alone."""
    name, *params = [p.strip() for p in (header or "").split(";")]
    assert name == "permessage-deflate", f"Sec-WebSocket-Extensions: {header!r}"
    pairs = [p.split("=", 1) for p in params]
    return {kv[0].strip(): kv[1].strip() if len(kv) == 2 else True for kv in pairs}


def expect_answer(ws, expected, label):
    header = ws.response_headers.get("Sec-WebSocket-Extensions")
    params = deflate_params(header)
    assert params == expected, f"{label}: the server answered {header!r}"
    # websockets agreed the same: from the client, "remote" is the server.
    (ext,) = ws.extensions
    agreed = (ext.remote_no_context_takeover, ext.local_no_context_takeover, ext.remote_max_window_bits,
              ext.local_max_window_bits)
    assert agreed == ("server_no_context_takeover" in params, "client_no_context_takeover" in params,
                      int(params.get("server_max_window_bits", 15)), int(params.get("client_max_window_bits", 15))), \
        f"{label}: websockets agreed {agreed} on {header!r}"


def open_with(url, ssl_context, offer):
    """offer: None for websockets' default offer, else the parameters of
    ClientPerMessageDeflateFactory. max_queue=None: echoes of messages sent
    all at once are read while the sends go on."""
    extensions = [ClientPerMessageDeflateFactory(**offer, compress_settings={"memLevel": 5})] if offer else None
    return websockets.connect(url, max_size=None, max_queue=None, compression="deflate", extensions=extensions,
                              ssl=ssl_context, open_timeout=10, close_timeout=5)


def chat_line(rng, seq):
    """A ~100-byte JSON chat line: shared keys, changing words, as a chat sends them."""
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(6, 12)))
    return json.dumps({"type": "chat", "room": "lobby", "from": f"user{rng.randrange(20)}", "seq": seq, "text": text},
                      ensure_ascii=False, separators=(",", ":"))


def json_document(rng, n):
    """A JSON document of about n characters (cut to n: it need not parse)."""
    parts, size, seq = ["["], 1, 0
    while size < n:
        line = chat_line(rng, seq) + ","
        parts.append(line)
        size += len(line)
        seq += 1
    return "".join(parts)[:n]


async def echo_all(ws, messages, label):
    """Sends every message at once and expects them back in order, intact,
    of the same type."""
    for m in messages:
        await ws.send(m)
    for i, m in enumerate(messages):
        got = await asyncio.wait_for(ws.recv(), 30)
        what = f"{label} #{i} ({type(m).__name__}, {len(m)} long)"
        assert type(got) is type(m), f"{what}: came back as {type(got).__name__}"
        assert got == m, f"{what}: contents differ"


async def pause():
    """Long enough for the server's sweeps (every 10 ms with --pong-timeout-ms
    40) to give an unused zlib stream back to the pool, keeping only the
    bytes of its window, from which the next message's stream starts again."""
    await asyncio.sleep(0.05)


async def chat_lines(ws, counter, rng, expect_shrink):
    lines = [chat_line(rng, seq) for seq in range(300)]
    payload = sum(len(line.encode()) for line in lines)
    before = counter.total
    for i in range(0, len(lines), 50):
        await echo_all(ws, lines[i:i + 50], f"chat lines {i}..")
        await pause()
    wire = counter.total - before
    # With context takeover the server's deflater refers to earlier lines:
    # ~100-byte lines shrink to 25-40 %; alone they would go plain (under
    # compression_threshold) or barely shrink.
    if expect_shrink:
        assert wire < 0.6 * payload, f"300 chat lines ({payload} bytes) took {wire} bytes on the wire"
    else:
        assert wire >= payload, f"300 chat lines ({payload} bytes) took only {wire} bytes without takeover"
    await echo_all(ws, [line.encode() for line in lines[:100]], "binary chat lines")


async def documents(ws, rng):
    """Documents of 1-64 KiB between chat lines, incompressible ones among
    them (the server sends those plain, and its window must then forget
    them), and 1 MiB messages; the windows carry over all of it."""
    kib = 1
    while kib <= 64:
        mixed = [json_document(rng, kib * KIB), chat_line(rng, kib), rng.randbytes(kib * KIB)]
        mixed += [chat_line(rng, kib + 1), json_document(rng, kib * KIB + 7).encode(), chat_line(rng, kib + 2)]
        mixed += [random_text(rng, kib * 100), chat_line(rng, kib + 3)]
        await echo_all(ws, mixed, f"documents of {kib} KiB and chat lines")
        await pause()
        kib *= 2
    await echo_all(ws, [json_document(rng, MIB), chat_line(rng, 1), rng.randbytes(MIB), chat_line(rng, 2)], "1 MiB")
    await echo_all(ws, [json_document(rng, MIB).encode(), compressible_text(MIB), chat_line(rng, 3)], "1 MiB again")


async def exercise(ws, rng, expect_shrink):
    counter = wire_counter(ws)
    await chat_lines(ws, counter, rng, expect_shrink)
    await documents(ws, rng)
    await chat_lines(ws, counter, rng, expect_shrink)


async def takeover_checks(url, ssl_context, mode):
    rng = random.Random(7692)
    offer = TAKEOVER_OFFERS[mode]
    async with open_with(url, ssl_context, offer) as ws:
        expect_answer(ws, TAKEOVER_ANSWERS[mode], f"{mode}: the offer {offer or 'websockets default'}")
        await exercise(ws, rng, mode != "no_takeover_server")
    if mode != "small_windows":
        return
    # The server's window (9) limits both directions when the offer lets it:
    # websockets' default offer names client_max_window_bits without a value.
    async with open_with(url, ssl_context, None) as ws:
        expect_answer(ws, {"server_max_window_bits": "9", "client_max_window_bits": "9"}, "the default offer")
        await exercise(ws, rng, True)
    # An offer without client_max_window_bits cannot be limited: the client
    # is asked to keep no context instead (RFC 7692 §7.1.1.2), its window 32 KiB.
    async with open_with(url, ssl_context, {"client_max_window_bits": None}) as ws:
        expect_answer(ws, {"client_no_context_takeover": True, "server_max_window_bits": "9"},
                      "an offer without client_max_window_bits")
        await exercise(ws, rng, True)


async def main(args):
    ssl_context = ssl.create_default_context(cafile=args.ca) if args.ca else None
    offer = "deflate" if args.compression else None
    connect = lambda: websockets.connect(
        args.url, max_size=None, compression=offer, ssl=ssl_context, open_timeout=10, close_timeout=5
    )
    async with connect() as ws:
        if args.compression:
            await check_extension(ws, args.compression)
        await seed_checks(ws)
        if args.compression:
            await compression_checks(ws, args.compression)
    for code in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4000, 4999]:
        ws = await connect()
        await ws.close(code, "bye")
        assert ws.close_code == code, (code, ws.close_code)
    if args.mode:
        await takeover_checks(args.url, ssl_context, args.mode)
    print(f"python websockets client ({args.url}, compression={args.compression}, mode={args.mode}): "
          "all interop checks passed")


parser = argparse.ArgumentParser()
parser.add_argument("url")
parser.add_argument("--compression", choices=["expect", "declined"])
parser.add_argument("--mode", choices=list(TAKEOVER_OFFERS))
parser.add_argument("--ca")
arguments = parser.parse_args()
if arguments.mode and arguments.compression != "expect":
    parser.error("--mode needs --compression=expect")
asyncio.run(main(arguments))
