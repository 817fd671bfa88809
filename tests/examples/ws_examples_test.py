#!/usr/bin/python3
"""Drives each seed example program with a real client (Python `websockets`,
Debian's python3-websockets) and asserts what the example does.

  ws_examples_test.py EXAMPLE BINARY
"""
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import websockets


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, *args):
        self.port = free_port()
        # Output goes to a file: a pipe nobody reads would block the server.
        self.log = tempfile.TemporaryFile(mode="w+", errors="replace")
        self.proc = subprocess.Popen([binary, "--port", str(self.port), *args],
                                     stdout=self.log, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise AssertionError("server did not start")
        self.url = f"ws://127.0.0.1:{self.port}/ws"

    def stop(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.seek(0)
        return self.log.read()


async def echo_server(s):
    async with websockets.connect(s.url, max_size=None) as ws:
        for m in ["hello", "", "é€😀", "x" * 125, "x" * 126, "y" * 65535, "z" * 65536]:
            await ws.send(m)
            assert await ws.recv() == m
        blob = os.urandom(1 << 20)
        await ws.send(blob)
        assert await ws.recv() == blob
    assert ws.close_code == 1000, ws.close_code
    await asyncio.sleep(0.2)
    out = s.stop()
    assert "WebSocket client connected" in out and "Received: hello" in out and "WebSocket client disconnected" in out, out


async def broadcast_server(s):
    clients = [await websockets.connect(s.url) for _ in range(3)]
    await asyncio.sleep(0.2)  # all registered
    await clients[0].send("to everyone")
    for c in clients:
        assert await asyncio.wait_for(c.recv(), 5) == "to everyone"
    await clients[2].close()
    await asyncio.sleep(0.2)
    await clients[1].send("two left")
    for c in clients[:2]:
        assert await asyncio.wait_for(c.recv(), 5) == "two left"
    for c in clients[:2]:
        await c.close()


async def message_types(s):
    async with websockets.connect(s.url) as ws:
        await ws.send("some text")
        await ws.send(b"\x01\x02\x03\x04")
        waiter = await ws.ping(b"are you there")
        await asyncio.wait_for(waiter, 5)
        await ws.pong(b"unsolicited")
        await asyncio.sleep(0.3)
    assert ws.close_code == 1000
    await asyncio.sleep(0.2)
    out = s.stop()
    for line in ["Text: some text", "Binary: 4 bytes", "Pong received", "Close frame received"]:
        assert line in out, (line, out)


async def subprotocol(s):
    for offered, expected in [(["chat"], "chat"), (["binary"], "binary"), (["other"], None)]:
        async with websockets.connect(s.url, subprotocols=offered) as ws:
            assert ws.subprotocol == expected, (offered, ws.subprotocol)
            await ws.send("hi")
            assert await ws.recv() == f"[{expected or 'none'}] hi"


async def connection_limit(s):
    a = await websockets.connect(s.url)
    b = await websockets.connect(s.url)
    # A third handshake waits for a free slot.
    third = asyncio.ensure_future(websockets.connect(s.url))
    await asyncio.sleep(0.5)
    assert not third.done(), "the third connection was admitted over the limit"
    await a.send("a")
    assert await a.recv() == "a"
    await a.close()
    c = await asyncio.wait_for(third, 5)
    await c.send("c")
    assert await c.recv() == "c"
    await b.close()
    await c.close()


async def chat_room(s):
    ann = await websockets.connect(s.url + "?name=ann")
    assert await asyncio.wait_for(ann.recv(), 5) == "ann joined"
    bob = await websockets.connect(s.url + "?name=bob")
    assert await asyncio.wait_for(ann.recv(), 5) == "bob joined"
    assert await asyncio.wait_for(bob.recv(), 5) == "bob joined"
    await ann.send("hello bob")
    assert await asyncio.wait_for(ann.recv(), 5) == "ann: hello bob"
    assert await asyncio.wait_for(bob.recv(), 5) == "ann: hello bob"
    await bob.close()
    assert await asyncio.wait_for(ann.recv(), 5) == "bob left"
    await ann.close()


async def chat_room_topics(s):
    # The same room over two cores: members connect until both cores have some
    # (SO_REUSEPORT spreads them), and every member sees every line in order.
    names = [f"m{i}" for i in range(8)]
    members = []
    for n in names:
        ws = await websockets.connect(s.url + "?name=" + n)
        members.append(ws)
        # Each earlier member sees this join; the newcomer sees its own.
        for m in members:
            assert await asyncio.wait_for(m.recv(), 5) == f"{n} joined"
    await members[0].send("hello all")
    for m in members:
        assert await asyncio.wait_for(m.recv(), 5) == "m0: hello all"
    await members[-1].close()
    for m in members[:-1]:
        assert await asyncio.wait_for(m.recv(), 5) == f"{names[-1]} left"
    for m in members[:-1]:
        await m.close()


async def heartbeat(s):
    async with websockets.connect(s.url) as ws:
        # websockets answers the server's pings itself; count them on the server side.
        await asyncio.sleep(1.3)
        await ws.send("still here")
        assert await ws.recv() == "still here"
    await asyncio.sleep(0.2)
    out = s.stop()
    assert out.count("Ping sent") >= 2, out


async def echo_server_callback(s):
    """The same echo as a callback route (echo_server --api callback), plus
    many clients at once and a protocol error that ends one of them only."""
    await echo_server_many(s, stop=False)
    await echo_server(s)


async def echo_server_many(s, stop=True):
    async def one(i):
        async with websockets.connect(s.url) as ws:
            for j in range(20):
                await ws.send(f"{i}:{j}")
                assert await ws.recv() == f"{i}:{j}"
    await asyncio.gather(*[one(i) for i in range(20)])


EXTRA_ARGS = {"heartbeat": ["--interval", "0.4"], "connection_limit": ["--max", "2"],
              "echo_server_callback": ["--api", "callback"]}


def main():
    name, binary = sys.argv[1], sys.argv[2]
    server = Server(binary, *EXTRA_ARGS.get(name, []))
    try:
        asyncio.run(asyncio.wait_for(globals()[name](server), 60))
    finally:
        if server.proc.poll() is None:
            server.stop()
    print(f"{name}: ok")


if __name__ == "__main__":
    main()
