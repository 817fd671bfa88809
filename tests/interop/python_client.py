#!/usr/bin/python3
"""Python's `websockets` (Debian python3-websockets) as a client against a
cnetmod echo server: python_client.py ws://127.0.0.1:PORT/ws"""
import asyncio
import sys

import websockets


async def main(url):
    async with websockets.connect(url, max_size=None, compression=None) as ws:
        for n in [0, 125, 126, 65535, 65536, 1 << 20]:
            text = "é" * (n // 2) + "x" * (n % 2)
            await ws.send(text)
            assert await ws.recv() == text, f"text {n}"
            blob = bytes((i * 31) & 0xFF for i in range(n))
            await ws.send(blob)
            assert await ws.recv() == blob, f"binary {n}"
        # A fragmented message: websockets sends an iterable as fragments.
        await ws.send(["frag", "men", "ted"])
        assert await ws.recv() == "fragmented"
        await ws.send([b"\x01", b"\x02\x03"])
        assert await ws.recv() == b"\x01\x02\x03"
        waiter = await ws.ping(b"py-ping")
        await asyncio.wait_for(waiter, 5)
    for code in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4000, 4999]:
        ws = await websockets.connect(url, compression=None)
        await ws.close(code, "bye")
        assert ws.close_code == code, (code, ws.close_code)
    print("python websockets client: all interop checks passed")


asyncio.run(main(sys.argv[1]))
