#!/usr/bin/python3
"""A Python `websockets` (Debian python3-websockets) echo server for cnetmod's
client, with websockets' default permessage-deflate:
    python_server.py [--no-deflate] [--cert FILE --key FILE]
Prints its port, echoes every message with its type, and answers "wire?"
with "wire:N", N the bytes received below the WebSocket layer so far (to
check that the client really compressed what it sent). --no-deflate: offer
no extension (compression=None). --cert/--key: wss://."""
import argparse
import asyncio
import ssl

import websockets


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
        else:
            await ws.send(message)


async def main(args):
    context = None
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
    compression = None if args.no_deflate else "deflate"
    async with websockets.serve(echo, "127.0.0.1", 0, ssl=context, max_size=None, compression=compression) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        # Bounded: a test that forgets this server does not leave it running.
        await asyncio.sleep(120)


parser = argparse.ArgumentParser()
parser.add_argument("--no-deflate", action="store_true")
parser.add_argument("--cert")
parser.add_argument("--key")
asyncio.run(main(parser.parse_args()))
