#!/usr/bin/python3
"""Python's `websockets` (Debian python3-websockets) as a client against a
cnetmod echo server:
    python_client.py URL [--compression=expect|declined] [--ca=FILE]
Without --compression the client offers no extension. With it, it offers
permessage-deflate (websockets' default) and checks that the server accepted
it (expect) or answered without it (declined). --ca: trust this CA for wss://."""
import argparse
import asyncio
import random
import ssl

import websockets

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
    print(f"python websockets client ({args.url}, compression={args.compression}): all interop checks passed")


parser = argparse.ArgumentParser()
parser.add_argument("url")
parser.add_argument("--compression", choices=["expect", "declined"])
parser.add_argument("--ca")
asyncio.run(main(parser.parse_args()))
