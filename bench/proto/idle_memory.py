#!/usr/bin/python3
"""User-space memory per idle WebSocket connection on the echo example:
RSS growth of the server over N idle connections, divided by N.

  bench/proto/idle_memory.py build/examples/echo_server [N] [--deflate] [--tls]
  bench/proto/idle_memory.py BEFORE=BINARY AFTER=BINARY [-n 10000] [--tls] [--json OUT]
  bench/proto/idle_memory.py callback=build/examples/echo_server,--api,callback ...   (arguments after commas)

Several servers (NAME=BINARY, or a plain path) are measured one after the
other in the same run, each with a fresh process, and compared to the first.
--deflate: the server accepts permessage-deflate and every client offers it
(each connection sends one compressed message first, so that whatever the
compression path keeps per connection is counted).
--tls: wss://, with a throwaway certificate made by tests/support/make_certs.sh
(the openssl command line, in a temporary directory), given to the server as
--cert/--key.
Run it with /usr/bin/python3 (Debian's python3-websockets); each server is
bounded by --timeout seconds.
"""
import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import ssl
import subprocess
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


async def measure(binary, n, deflate, certs):
    """RSS per connection of one server process over `n` idle connections (wss when `certs`)."""
    port = free_port()
    # "BINARY,--flag,value": extra arguments after the binary, comma-separated.
    args = binary.split(",")[:1] + ["--port", str(port), "--quiet"] + binary.split(",")[1:]
    ssl_ctx = None
    if deflate:
        args.append("--deflate")
    if certs:
        args += ["--cert", f"{certs}/server.pem", "--key", f"{certs}/server.key"]
        ssl_ctx = ssl.create_default_context(cafile=f"{certs}/ca.pem")
    compression = "deflate" if deflate else None
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, preexec_fn=raise_fd_limit)
    conns = []
    warm = None
    try:
        url = f"{'wss' if certs else 'ws'}://{'localhost' if certs else '127.0.0.1'}:{port}/ws"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if server.poll() is not None:
                    raise RuntimeError(f"{binary} exited with {server.returncode} before it listened")
                time.sleep(0.05)
        # Warm up: one connection that talks, so one-time allocations are made.
        warm = await websockets.connect(url, compression=compression, ssl=ssl_ctx)
        await warm.send("warm")
        await warm.recv()
        await asyncio.sleep(0.5)
        before = rss_kib(server.pid)
        # TLS handshakes are the client's (Python's) work: smaller batches keep
        # each within the server's 10 s handshake timeout on a loaded machine.
        step = 100 if certs else 500
        for i in range(0, n, step):
            batch = await asyncio.gather(*[websockets.connect(url, compression=compression, ping_interval=None,
                                                              ssl=ssl_ctx, open_timeout=60)
                                           for _ in range(min(step, n - i))])
            if deflate:
                await asyncio.gather(*[c.send("compress me " * 20) for c in batch])
                await asyncio.gather(*[c.recv() for c in batch])
            conns.extend(batch)
        await asyncio.sleep(1.0)
        after = rss_kib(server.pid)
        return {"connections": n, "rss_before_kib": before, "rss_after_kib": after,
                "bytes_per_connection": (after - before) * 1024 / n}
    finally:
        # The server goes first: the clients then close at once instead of shaking hands 10,000 times.
        server.kill()
        server.wait()
        await asyncio.gather(*[c.close() for c in conns + ([warm] if warm else [])], return_exceptions=True)


async def main(servers, n, deflate, tls, timeout):
    raise_fd_limit()
    certs = None
    try:
        if tls:
            certs = tempfile.mkdtemp(prefix="cnetmod-idle-")
            script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "support",
                                  "make_certs.sh")
            subprocess.run(["sh", script, certs], check=True, stdout=subprocess.DEVNULL)
        kind = ("wss" if tls else "ws") + (" + permessage-deflate" if deflate else "")
        results = {}
        for name, binary in servers:
            r = await asyncio.wait_for(measure(binary, n, deflate, certs), timeout)
            results[name] = r
            print(f"{name}: {n} idle connections ({kind}): RSS {r['rss_before_kib']} KiB -> {r['rss_after_kib']} KiB, "
                  f"{r['bytes_per_connection']:.0f} bytes per connection", flush=True)
        first = next(iter(results.values()))["bytes_per_connection"]
        for name in list(results)[1:]:
            print(f"{name}/{servers[0][0]}: {results[name]['bytes_per_connection'] / first:.3f}")
        return {"kind": kind, "results": results}
    finally:
        if certs:
            shutil.rmtree(certs, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("servers", nargs="+", help="BINARY or NAME=BINARY (an echo example); a bare number is N")
    ap.add_argument("-n", "--connections", type=int, default=None, help="idle connections (10000)")
    ap.add_argument("--deflate", action="store_true")
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--timeout", type=float, default=600, help="seconds each server may take")
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()
    numbers = [s for s in a.servers if s.isdigit()]
    specs = [s for s in a.servers if not s.isdigit()]
    n = a.connections or (int(numbers[0]) if numbers else 10000)
    servers = [s.split("=", 1) if "=" in s else (s, s) for s in specs]
    if not servers:
        ap.error("give an echo server binary")
    out = asyncio.run(main(servers, n, a.deflate, a.tls, a.timeout))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
