#!/usr/bin/python3
"""Published messages to peers with context takeover (RFC 7692 §7.1.1):
Python websockets (Debian python3-websockets) and Node ws (Debian node-ws,
pubsub_member.js) members of cnetmod-demo's chat room (/chat) and fan-out
(/broadcast), on two cores, with the libraries' default offers.

A published message reaches a takeover peer in a form compressed once for
every such peer, from an empty window and ending in a sync flush; a message
whose shared form would not shrink is compressed by the connection's own
deflater instead, whose window has taken the published messages' bytes too.
So each connection's stream mixes both, and a window that went astray would
show as a message that does not inflate or inflates to other bytes. Every
member must receive every line exactly once, intact, each sender's in its
order; the Python members also count the frames of each kind (a frame that
needs earlier messages to inflate came from the connection's own deflater)
and both kinds must be there.

  pubsub_takeover_test.py CNETMOD_DEMO

The demo has no route that sends to one connection directly and publishes to
it as well (/chat and /broadcast only publish, /ws only echoes), so the
connection's own deflater comes in only for published messages whose shared
form does not shrink, which the lines here make happen on purpose.
"""
import asyncio
import base64
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import zlib

import websockets

DEMO = sys.argv[1]
MEMBER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pubsub_member.js")
LINES_PER_MEMBER = 40  # six members: 240 chat lines
# Halfway through the chat every member is silent this long: the demo's
# sweep (every second) gives the zlib streams of connections unused for a
# whole sweep back to the pool, keeping their windows' bytes; published
# lines then go to windows kept that way.
PAUSE = 2.5
WORDS = ("the quick brown fox jumps over a lazy dog hello world chat room message server client deflate window "
         "context takeover again yes no maybe later today tomorrow great thanks see you soon ok lol ünïcödé 中文").split()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_demo(port):
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen([DEMO, "--port", str(port), "--cores", "2", "--grace", "2", "--quiet"], stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, log
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("the demo did not start")


def expect_takeover(header, who):
    """The answer must be permessage-deflate with context takeover both ways
    and 32 KiB windows: the default offers of both libraries, answered with
    no parameter at all."""
    assert header is not None and header.strip() == "permessage-deflate", \
        f"{who}: Sec-WebSocket-Extensions {header!r}, expected context takeover both ways"


def chat_lines(rng, name):
    """What one member says: ~100-byte JSON lines (shared forms), short
    replies that repeat (alone they do not shrink: the connection's own
    deflater sends them, referring to the published bytes its window took),
    and documents of 8-48 KiB. None: the pause."""
    lines = []
    for seq in range(LINES_PER_MEMBER):
        if seq == LINES_PER_MEMBER // 2:
            lines.append(None)
        kind = seq % 4
        if kind in (0, 2):
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(6, 12)))
            lines.append(json.dumps({"type": "chat", "from": name, "seq": seq, "text": text}, ensure_ascii=False))
        elif kind == 1:
            lines.append(f"short reply {seq % 3}")
        else:
            words = [rng.choice(WORDS) for _ in range(2048 * (1 + seq % 24) // 6)]
            lines.append(f"document {seq}: " + " ".join(words))
    return lines


def blobs(rng):
    """Binary messages for /broadcast: R+R (its shared form shrinks), then R
    alone (its shared form cannot: only a deflater whose window holds R+R
    makes it shrink), then S+S and R again (a back-reference across S+S),
    and a random blob that shrinks nowhere."""
    out = []
    for _ in range(3):
        r, s = rng.randbytes(1500), rng.randbytes(1000)
        out += [r + r, r, s + s, r, rng.randbytes(700)]
    return out


class frame_kinds:
    """Counts, on a websockets connection, the compressed frames that
    inflate alone (a shared form, or a message that refers to nothing
    earlier) and those that need earlier messages: a fresh inflater fails
    on them ("invalid distance too far back"). Wraps the extension's decode,
    which the protocol looks up on each frame."""

    def __init__(self, ws):
        self.alone = self.with_history = 0
        (ext,) = ws.extensions
        inner = ext.decode

        def decode(frame, *, max_size=None):
            if frame.rsv1:
                try:
                    zlib.decompressobj(-15).decompress(frame.data + b"\x00\x00\xff\xff")
                    self.alone += 1
                except zlib.error:
                    self.with_history += 1
            return inner(frame, max_size=max_size)

        ext.decode = decode


class python_member:
    def __init__(self, name, route, url):
        self.name, self.route, self.url = name, route, url

    async def open(self):
        self.ws = await websockets.connect(self.url, max_size=None, max_queue=None, open_timeout=10, close_timeout=5)
        header = self.ws.response_headers.get("Sec-WebSocket-Extensions")
        expect_takeover(header, self.name)
        (ext,) = self.ws.extensions
        agreed = (ext.remote_no_context_takeover, ext.local_no_context_takeover, ext.remote_max_window_bits,
                  ext.local_max_window_bits)
        assert agreed == (False, False, 15, 15), f"{self.name}: websockets agreed {agreed} on {header!r}"
        self.kinds = frame_kinds(self.ws)
        if self.route == "chat":
            while (m := await asyncio.wait_for(self.ws.recv(), 10)) != f"{self.name} joined":
                pass

    async def run(self, send, expect, membership):
        async def sender():
            for m in send:
                if m is None:
                    await asyncio.sleep(PAUSE)
                    continue
                await self.ws.send(m)
                await asyncio.sleep(0.001)

        async def receiver():
            got = []
            while len(got) < expect:
                m = await asyncio.wait_for(self.ws.recv(), 30)
                if m not in membership:
                    got.append(m)
            return got

        _, got = await asyncio.gather(sender(), receiver())
        return got

    async def close(self):
        await self.ws.close(1000, "bye")
        assert self.ws.close_code == 1000, (self.name, self.ws.close_code)


class node_member:
    def __init__(self, name, route, url):
        self.name, self.route, self.url = name, route, url

    async def open(self, send, expect, names):
        # limit: the report of what it received is one line of a few MiB.
        self.proc = await asyncio.create_subprocess_exec("node", MEMBER, stdin=subprocess.PIPE,
                                                         stdout=subprocess.PIPE, limit=64 << 20,
                                                         env={**os.environ, "NODE_PATH": "/usr/share/nodejs"})
        encoded = [{"pause_ms": PAUSE * 1000} if m is None else {"b": base64.b64encode(m).decode()}
                   if isinstance(m, bytes) else {"t": m} for m in send]
        self.tell(json.dumps({"url": self.url, "name": self.name, "route": self.route, "names": names,
                              "send": encoded, "expect": expect}))
        expect_takeover((await self.event())["open"], self.name)

    def tell(self, line):
        self.proc.stdin.write(line.encode() + b"\n")

    async def event(self):
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        assert line, f"{self.name}: pubsub_member.js ended (exit {await self.proc.wait()})"
        return json.loads(line)

    async def run(self):
        self.tell("go")
        got = (await self.event())["received"]
        return [base64.b64decode(m["b"]) if "b" in m else m["t"] for m in got]

    async def close(self):
        self.tell("close")
        assert (await self.event())["closed"] == 1000, self.name
        assert await asyncio.wait_for(self.proc.wait(), 10) == 0, self.name

    async def stop(self):
        """Ends the process if it still runs (a check failed on the way)."""
        if getattr(self, "proc", None) and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


def check_received(who, got, said, published):
    """Every sender's messages, exactly once, intact and in its order."""
    by_sender = {name: [] for name in said}
    for m in got:
        sender = published(m)
        assert sender in by_sender, f"{who} received a message from no member: {m[:80]!r}"
        by_sender[sender].append(m)
    for name, expected in said.items():
        mine = by_sender[name]
        assert len(mine) == len(expected), f"{who} received {len(mine)} of {name}'s {len(expected)} messages"
        for i, (a, b) in enumerate(zip(mine, expected)):
            assert a == b, f"{who}: {name}'s message #{i} ({len(b)} long) arrived as {len(a)} other bytes"


async def room(port, route):
    """Six members, half Python, half Node, on `route`; each sends its
    messages while receiving everyone's."""
    url = f"ws://127.0.0.1:{port}/{route}" + ("?name=" if route == "chat" else "")
    names = [f"py{i}" if i % 2 == 0 else f"node{i}" for i in range(6)]
    rng = random.Random(7692 if route == "chat" else 6455)
    sends = {n: chat_lines(rng, n) if route == "chat" else blobs(rng) for n in names}
    said = {n: [m for m in s if m is not None] for n, s in sends.items()}
    expect = sum(len(s) for s in said.values())
    membership = {f"{n} {what}" for n in names for what in ("joined", "left")}
    members = []
    try:
        for n in names:
            member_url = url + n if route == "chat" else url
            if n.startswith("py"):
                members.append(python_member(n, route, member_url))
                await members[-1].open()
            else:
                members.append(node_member(n, route, member_url))
                await members[-1].open(sends[n], expect, names)
        if route == "broadcast":
            await asyncio.sleep(0.5)  # every subscription is in place on its core (no "joined" here)

        results = await asyncio.gather(*[m.run(sends[m.name], expect, membership) if isinstance(m, python_member)
                                         else m.run() for m in members])
        if route == "chat":
            # The room prefixes each line with its sender's name.
            said = {n: [f"{n}: {line}" for line in lines] for n, lines in said.items()}
            published = lambda m: m.split(": ", 1)[0]
        else:
            published = lambda m: next((n for n, blobs in said.items() if m in blobs), None)
        for m, got in zip(members, results):
            check_received(m.name, got, said, published)
        for m in members:
            if isinstance(m, python_member):
                assert m.kinds.alone > 0 and m.kinds.with_history > 0, \
                    (f"{m.name} on /{route}: {m.kinds.alone} compressed frames inflate alone, "
                     f"{m.kinds.with_history} need earlier messages; expected both kinds")
                print(f"{m.name} on /{route}: {expect} messages; compressed frames: {m.kinds.alone} shared or alone, "
                      f"{m.kinds.with_history} from the connection's own deflater")
        for m in members:
            await m.close()
    finally:
        for m in members:
            if isinstance(m, node_member):
                await m.stop()


def main():
    port = free_port()
    proc, log = start_demo(port)
    try:
        asyncio.run(asyncio.wait_for(room(port, "chat"), 60))
        asyncio.run(asyncio.wait_for(room(port, "broadcast"), 60))
        assert proc.poll() is None, "the demo exited during the test"
    except BaseException:
        log.seek(0)
        print("the demo's output:\n" + log.read(), file=sys.stderr)
        raise
    finally:
        proc.kill()
        proc.wait()
    print("pubsub_takeover_test: every member received every message once, intact, in order")


main()
