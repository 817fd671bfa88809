#!/usr/bin/python3
"""A Python `websockets` (Debian python3-websockets) echo server for cnetmod's
client, with websockets' default permessage-deflate:
    python_server.py [--no-deflate] [--server-max-window-bits N|none]
                     [--client-max-window-bits N|none] [--cert FILE --key FILE]
Prints its port, echoes every message with its type, answers "wire?" with
"wire:N", N the bytes received below the WebSocket layer so far (to check
that the client really compressed what it sent), and "ext?" with "ext:" and
the Sec-WebSocket-Extensions value it answered the handshake with.
--no-deflate: offer no extension (compression=None). --server-max-window-bits,
--client-max-window-bits: the windows it asks for (RFC 7692 §7.1.2; 12 both,
websockets' default; none: no limit). Context takeover both ways unless the
client offers otherwise. --cert/--key: wss://."""
import argparse
import asyncio
import ssl

import websockets
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory


async def echo(ws):
    wire = 0
    inner = ws.data_received

    # The transport looks data_received up on each call, so this counts
    # every byte from here on (decrypted, still compressed).
    def counted(data):
        nonlocal wire
        wire += len(data)
        inner(data)

    ws.data_received = counted
    async for message in ws:
        if message == "wire?":
            await ws.send(f"wire:{wire}")
        elif message == "ext?":
            await ws.send("ext:" + ws.response_headers.get("Sec-WebSocket-Extensions", ""))
        else:
            await ws.send(message)


async def main(args):
    context = None
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
    # websockets' default factory, with the windows asked for.
    deflate = ServerPerMessageDeflateFactory(server_max_window_bits=args.server_max_window_bits,
                                             client_max_window_bits=args.client_max_window_bits,
                                             compress_settings={"memLevel": 5})
    extensions = None if args.no_deflate else [deflate]
    async with websockets.serve(echo, "127.0.0.1", 0, ssl=context, max_size=None, compression=None,
                                extensions=extensions) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        # Bounded: a test that forgets this server does not leave it running.
        await asyncio.sleep(120)


parser = argparse.ArgumentParser()
parser.add_argument("--no-deflate", action="store_true")
window_bits = lambda value: None if value == "none" else int(value)
parser.add_argument("--server-max-window-bits", type=window_bits, default=12)
parser.add_argument("--client-max-window-bits", type=window_bits, default=12)
parser.add_argument("--cert")
parser.add_argument("--key")
asyncio.run(main(parser.parse_args()))
