#!/usr/bin/python3
"""User-space memory per idle WebSocket connection on the echo example:
RSS growth of the server over N idle connections, divided by N.

  bench/proto/idle_memory.py build/examples/echo_server [N] [--deflate] [--tls]

--deflate: the server accepts permessage-deflate and every client offers it
(each connection sends one compressed message first, so that whatever the
compression path keeps per connection is counted).
--tls: wss://, with a throwaway certificate made by tests/support/make_certs.sh.
"""
import asyncio
import os
import resource
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
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


async def main(binary, n, deflate, tls):
    raise_fd_limit()
    port = free_port()
    args = [binary, "--port", str(port), "--quiet"]
    ssl_ctx = None
    certs = None
    if deflate:
        args.append("--deflate")
    if tls:
        certs = tempfile.mkdtemp(prefix="cnetmod-idle-")
        script = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "support", "make_certs.sh")
        subprocess.run(["sh", script, certs], check=True, stdout=subprocess.DEVNULL)
        args += ["--cert", f"{certs}/server.pem", "--key", f"{certs}/server.key"]
        ssl_ctx = ssl.create_default_context(cafile=f"{certs}/ca.pem")
    compression = "deflate" if deflate else None
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, preexec_fn=raise_fd_limit)
    try:
        url = f"{'wss' if tls else 'ws'}://{'localhost' if tls else '127.0.0.1'}:{port}/ws"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        # Warm up: one connection that talks, so one-time allocations are made.
        warm = await websockets.connect(url, compression=compression, ssl=ssl_ctx)
        await warm.send("warm")
        await warm.recv()
        await asyncio.sleep(0.5)
        before = rss_kib(server.pid)
        conns = []
        for i in range(0, n, 500):
            batch = await asyncio.gather(*[websockets.connect(url, compression=compression, ping_interval=None,
                                                              ssl=ssl_ctx)
                                           for _ in range(min(500, n - i))])
            if deflate:
                await asyncio.gather(*[c.send("compress me " * 20) for c in batch])
                await asyncio.gather(*[c.recv() for c in batch])
            conns.extend(batch)
        await asyncio.sleep(1.0)
        after = rss_kib(server.pid)
        per = (after - before) * 1024 / n
        kind = ("wss" if tls else "ws") + (" + permessage-deflate" if deflate else "")
        print(f"{n} idle connections ({kind}): RSS {before} KiB -> {after} KiB, {per:.0f} bytes per connection")
        await asyncio.gather(*[c.close() for c in conns])
        await warm.close()
    finally:
        server.kill()
        server.wait()
        if certs:
            shutil.rmtree(certs, ignore_errors=True)


if __name__ == "__main__":
    flags = [a for a in sys.argv[1:] if a.startswith("--")]
    positional = [a for a in sys.argv[1:] if not a.startswith("--")]
    asyncio.run(main(positional[0], int(positional[1]) if len(positional) > 1 else 10000, "--deflate" in flags,
                     "--tls" in flags))
