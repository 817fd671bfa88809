#!/usr/bin/python3
"""Two cnetmod-demo processes sharing the chat room and /broadcast through a
real Redis (Debian's redis-server, started here on a free port without
persistence, killed at the end), with Python websockets clients on each:
every message reaches the members of both servers once; with Redis killed
each demo keeps its own room working; once Redis is back (same port) the
room spans both servers again.

  demo_broker_test.py CNETMOD_DEMO
"""
import asyncio
import shutil
import socket
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


def wait_port(port, proc):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"exited with {proc.returncode}")
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def start_redis(port):
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--loglevel", "warning"], stdout=subprocess.DEVNULL)
    wait_port(port, proc)
    return proc


def redis_cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True,
                          timeout=5).stdout.strip()


def start_demo(port, broker):
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen([DEMO, "--port", str(port), "--cores", "2", "--grace", "1", "--broker", broker],
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    wait_port(port, proc)
    return proc, log


async def recv(ws, limit=5):
    return await asyncio.wait_for(ws.recv(), limit)


async def nothing_more(ws):
    try:
        extra = await asyncio.wait_for(ws.recv(), 0.3)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"unexpected {extra!r}")


async def subscribed(redis_port, channel, servers):
    """Waits until `servers` servers have subscribed to `channel`."""
    for _ in range(100):
        if redis_cli(redis_port, "PUBSUB", "NUMSUB", channel).split("\n")[-1] == str(servers):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{channel}: not {servers} subscribers")


async def across(a, b, redis_port):
    ann = await websockets.connect(f"ws://127.0.0.1:{a}/chat?name=ann")
    assert await recv(ann) == "ann joined"
    await subscribed(redis_port, "cnetmod:chat", 1)
    bob = await websockets.connect(f"ws://127.0.0.1:{b}/chat?name=bob")
    assert await recv(bob) == "bob joined"
    assert await recv(ann) == "bob joined"
    await subscribed(redis_port, "cnetmod:chat", 2)
    for i in range(20):
        await (ann if i % 2 == 0 else bob).send(f"m{i}")
    want = [f"{'ann' if i % 2 == 0 else 'bob'}: m{i}" for i in range(20)]
    for member in (ann, bob):
        got = [await recv(member) for _ in range(20)]
        for who in ("ann", "bob"):  # in order per publisher
            assert [g for g in got if g.startswith(who)] == [w for w in want if w.startswith(who)], got
        await nothing_more(member)  # and none twice
    fans = [await websockets.connect(f"ws://127.0.0.1:{port}/broadcast") for port in (a, b, a, b)]
    await subscribed(redis_port, "cnetmod:broadcast", 2)
    await fans[0].send("fan-out from A")
    await fans[1].send("fan-out from B")
    for f in fans:
        got = sorted([await recv(f), await recv(f)])
        assert got == ["fan-out from A", "fan-out from B"], got
    for f in fans:
        await f.close()
    return ann, bob


async def main_async(a, b, redis_port, redis):
    ann, bob = await across(a, b, redis_port)
    # Redis killed: each demo's own room goes on.
    redis.kill()
    redis.wait()
    await asyncio.sleep(0.3)
    carl = await websockets.connect(f"ws://127.0.0.1:{a}/chat?name=carl")
    assert await recv(carl) == "carl joined"
    assert await recv(ann) == "carl joined"
    await carl.send("alone on A")
    assert await recv(ann) == "carl: alone on A"
    assert await recv(carl) == "carl: alone on A"
    await nothing_more(bob)
    # Back: the demos reconnect and resubscribe.
    redis = start_redis(redis_port)
    await subscribed(redis_port, "cnetmod:chat", 2)
    await bob.send("back")
    for member in (ann, bob, carl):
        assert await recv(member) == "bob: back"
    for member in (ann, bob, carl):
        await member.close()
    return redis


def main():
    if shutil.which("redis-server") is None:
        print("SKIP: redis-server is not installed")
        sys.exit(77)
    redis_port, a, b = free_port(), free_port(), free_port()
    redis = start_redis(redis_port)
    demos = []
    try:
        demos = [start_demo(a, f"redis://127.0.0.1:{redis_port}"), start_demo(b, f"redis://127.0.0.1:{redis_port}")]
        redis = asyncio.run(main_async(a, b, redis_port, redis))
        for proc, log in demos:
            log.seek(0)
            out = log.read()
            assert "topics shared through the broker" in out, out
    finally:
        for proc, _ in demos:
            proc.kill()
            proc.wait()
        redis.kill()
        redis.wait()
    print("cnetmod-demo with a broker: all checks passed")


main()
