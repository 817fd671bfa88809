#!/usr/bin/python3
"""User-space memory per idle WebSocket connection on the echo example:
RSS growth of the server over N idle connections, divided by N.

  bench/proto/idle_memory.py build/examples/echo_server [N]
"""
import asyncio
import resource
import socket
import subprocess
import sys
import time

import websockets


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def main(binary, n):
    raise_fd_limit()
    port = free_port()
    server = subprocess.Popen([binary, "--port", str(port), "--quiet"], stdout=subprocess.DEVNULL,
                              preexec_fn=raise_fd_limit)
    try:
        url = f"ws://127.0.0.1:{port}/ws"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        # Warm up: one connection that talks, so one-time allocations are made.
        warm = await websockets.connect(url, compression=None)
        await warm.send("warm")
        await warm.recv()
        await asyncio.sleep(0.5)
        before = rss_kib(server.pid)
        conns = []
        for i in range(0, n, 500):
            batch = await asyncio.gather(*[websockets.connect(url, compression=None, ping_interval=None)
                                           for _ in range(min(500, n - i))])
            conns.extend(batch)
        await asyncio.sleep(1.0)
        after = rss_kib(server.pid)
        per = (after - before) * 1024 / n
        print(f"{n} idle connections: RSS {before} KiB -> {after} KiB, {per:.0f} bytes per connection")
        await asyncio.gather(*[c.close() for c in conns])
        await warm.close()
    finally:
        server.kill()
        server.wait()


asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10000))
