#!/usr/bin/python3
"""cnetmod-demo with real clients (Python websockets, plain HTTP): the page,
the chat room across two cores in the seed's text format, echo, fan-out,
a bad name, and the graceful shutdown on SIGINT (every client gets 1001,
the process exits 0).

  demo_test.py CNETMOD_DEMO
"""
import asyncio
import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import websockets

DEMO = sys.argv[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(port, *extra):
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen([DEMO, "--port", str(port), "--cores", "2", "--grace", "2", *extra], stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, log
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("the demo did not start")


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", path)
    r = c.getresponse()
    return r.status, r.getheader("Content-Type"), r.read().decode()


async def recv(ws):
    return await asyncio.wait_for(ws.recv(), 5)


async def chat(port):
    base = f"ws://127.0.0.1:{port}/chat?name="
    # Enough members that both cores have some (SO_REUSEPORT spreads them).
    names = ["ann", "bob", "J%C3%B6rg", "d+e"] + [f"u{i}" for i in range(6)]
    shown = ["ann", "bob", "Jörg", "d e"] + [f"u{i}" for i in range(6)]
    members = []
    for raw, name in zip(names, shown):
        ws = await websockets.connect(base + raw)
        members.append(ws)
        for m in members:
            assert await recv(m) == f"{name} joined"
    ext = members[0].response_headers.get("Sec-WebSocket-Extensions", "")
    assert "permessage-deflate" in ext, ext
    await members[2].send("grüße " + "x" * 3000)  # big enough to go compressed
    for m in members:
        assert await recv(m) == "Jörg: grüße " + "x" * 3000
    await members[1].close()
    for m in members[:1] + members[2:]:
        assert await recv(m) == "bob left"
    for m in members[:1] + members[2:]:
        await m.close()


async def echo_and_fan_out(port):
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as e:
        await e.send("echo me")
        assert await recv(e) == "echo me"
        await e.send(b"\x00\x01")
        assert await recv(e) == b"\x00\x01"
    fans = [await websockets.connect(f"ws://127.0.0.1:{port}/broadcast") for _ in range(6)]
    await asyncio.sleep(0.1)  # every subscription is in place on its core
    for i in range(20):
        await fans[i % 3].send(f"b{i}")
    for f in fans:
        got = [await recv(f) for _ in range(20)]
        # One publisher's messages arrive in its order.
        for p in range(3):
            mine = [g for g in got if int(g[1:]) % 3 == p]
            assert mine == [f"b{i}" for i in range(20) if i % 3 == p], got
    for f in fans:
        await f.close()


async def shutdown(proc, port):
    clients = [await websockets.connect(f"ws://127.0.0.1:{port}/ws") for _ in range(8)]
    room = await websockets.connect(f"ws://127.0.0.1:{port}/chat?name=last")
    assert await recv(room) == "last joined"
    proc.send_signal(signal.SIGINT)
    codes = []
    for c in clients + [room]:
        try:
            while True:
                await asyncio.wait_for(c.recv(), 5)
        except websockets.ConnectionClosed as e:
            codes.append(e.rcvd.code if e.rcvd else None)
    assert codes == [1001] * len(codes), codes


async def secure_chat(port, ca):
    ctx = ssl.create_default_context(cafile=ca)
    ws = await websockets.connect(f"wss://localhost:{port}/chat?name=tls", ssl=ctx)
    assert await recv(ws) == "tls joined"
    await ws.send("over TLS")
    assert await recv(ws) == "tls: over TLS"
    await ws.close()


def tls(port):
    """--cert/--key: the page over https:// and the room over wss://."""
    certs = tempfile.mkdtemp(prefix="cnetmod-demo-certs-")
    try:
        subprocess.run(["sh", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support",
                                           "make_certs.sh"), certs], check=True, stdout=subprocess.DEVNULL)
        proc, log = start(port, "--cert", f"{certs}/server.pem", "--key", f"{certs}/server.key")
        try:
            c = http.client.HTTPSConnection("localhost", port, timeout=5,
                                            context=ssl.create_default_context(cafile=f"{certs}/ca.pem"))
            c.request("GET", "/")
            r = c.getresponse()
            assert r.status == 200 and "<html" in r.read().decode().lower()
            asyncio.run(secure_chat(port, f"{certs}/ca.pem"))
            log.seek(0)
            assert f"https://localhost:{port}/" in log.read()
        finally:
            proc.kill()
            proc.wait()
        bad = subprocess.run([DEMO, "--port", str(port), "--cert", f"{certs}/bad.pem", "--key",
                              f"{certs}/server.key"], capture_output=True, text=True, timeout=10)
        assert bad.returncode == 1 and "bad.pem" in bad.stderr, (bad.returncode, bad.stderr)
    finally:
        shutil.rmtree(certs, ignore_errors=True)


def main():
    tls(free_port())
    port = free_port()
    proc, log = start(port)
    try:
        status, ctype, body = get(port, "/")
        assert status == 200 and ctype.startswith("text/html") and "<html" in body.lower(), (status, ctype)
        assert "/chat?name=" in body, "the page joins the chat room"
        status, _, body = get(port, "/chat")
        assert status == 400 and "name" in body, (status, body)
        status, _, _ = get(port, "/nowhere")
        assert status == 404
        asyncio.run(chat(port))
        asyncio.run(echo_and_fan_out(port))
        asyncio.run(shutdown(proc, port))
        assert proc.wait(timeout=10) == 0, "the demo exits 0 after Ctrl-C"
        log.seek(0)
        out = log.read()
        assert f"http://localhost:{port}/" in out and f"ws://localhost:{port}/ws" in out, out
        assert f"ws://localhost:{port}/broadcast" in out and "2 cores" in out, out
        assert "shutting down" in out and "stopped" in out, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print("cnetmod-demo: all checks passed")


main()
