#!/usr/bin/python3
"""cnetmod-demo's /metrics scraped by a real Prometheus server (Debian's
`prometheus`, started here on a free port with a throwaway TSDB, killed at
the end): known traffic from real clients (Python websockets echo
messages, chat lines, bad handshakes, closes with chosen codes), then
Prometheus's HTTP API must report exactly those counts.

  prometheus_test.py CNETMOD_DEMO
"""
import asyncio
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

import websockets

DEMO = sys.argv[1]
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
JOB = "cnetmod"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what):
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"{what} exited with {proc.returncode} before listening")
            time.sleep(0.05)
    raise AssertionError(f"{what}: nothing listens on {port}")


def start_demo(port):
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen([DEMO, "--port", str(port), "--cores", "2", "--grace", "1", "--quiet"], stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    wait_port(port, proc, "cnetmod-demo")
    return proc, log


def start_prometheus(tmp, target_port, port):
    if not os.access(PROMETHEUS, os.X_OK):
        raise AssertionError(f"no Prometheus server at {PROMETHEUS}: install Debian's prometheus (tools/setup.sh)")
    config = os.path.join(tmp, "prometheus.yml")
    with open(config, "w") as f:
        f.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: {JOB}
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:{target_port}"]
""")
    log = open(os.path.join(tmp, "prometheus.log"), "w+")
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp}/data",
                             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
                             "--storage.tsdb.retention.time=1h"], stdout=log, stderr=subprocess.STDOUT, text=True)
    wait_port(port, proc, "prometheus")
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/-/ready")
            if c.getresponse().status == 200:
                return proc, log
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("Prometheus did not become ready in 15 s")


class Prometheus:
    """Instant queries through Prometheus's HTTP API."""

    def __init__(self, port):
        self.port = port

    def query(self, expr):
        """The instant vector of `expr` as {frozenset(labels): value}."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        c.request("GET", "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        r = c.getresponse()
        body = json.loads(r.read())
        assert r.status == 200 and body["status"] == "success", (expr, r.status, body)
        return {frozenset(s["metric"].items()): float(s["value"][1]) for s in body["data"]["result"]}

    def value(self, expr):
        """The one value of `expr`, or None when it has no series."""
        v = self.query(expr)
        assert len(v) <= 1, (expr, v)
        return next(iter(v.values())) if v else None

    def wait_scrape_after(self, t, deadline_s=10):
        """Waits until Prometheus has scraped the demo with a scrape that started after `t`."""
        deadline = time.time() + deadline_s
        while time.time() < deadline:
            last = self.value(f'timestamp(up{{job="{JOB}"}})')
            if last is not None and last > t:
                return
            time.sleep(0.1)
        raise AssertionError(f"no scrape of the demo after {t} within {deadline_s} s")

    def wait_value(self, expr, want, deadline_s=10):
        deadline = time.time() + deadline_s
        got = None
        while time.time() < deadline:
            got = self.value(expr)
            if got == want:
                return
            time.sleep(0.2)
        raise AssertionError(f"{expr}: {got}, expected {want}")


failures = []


def check(prom, expr, want):
    got = prom.value(expr)
    if got != want:
        failures.append(f"{expr} = {got}, expected {want}")
        print("FAIL:", failures[-1])
    else:
        print(f"ok: {expr} = {got:g}")


def total(family, labels=""):
    return f"sum(cnetmod_{family}{{{labels}}})"


async def recv(ws):
    return await asyncio.wait_for(ws.recv(), 5)


# Sizes of the echo messages: one byte, the frame-length edges, big enough
# for the 64-bit length form; every connection sends all of them.
SIZES = [1, 125, 126, 1000, 65536, 70000]
ECHO_CLOSE_CODES = [1000, 1001, 4000]  # one echo connection each; 4000 is counted as "other"


async def echo_traffic(port):
    """Three echo connections, one without permessage-deflate; each closes with its own code."""
    url = f"ws://127.0.0.1:{port}/ws"
    conns = [await websockets.connect(url, max_size=None),
             await websockets.connect(url, max_size=None),
             await websockets.connect(url, max_size=None, compression=None)]
    deflated = [bool(c.response_headers.get("Sec-WebSocket-Extensions")) for c in conns]
    assert deflated == [True, True, False], deflated
    for i, ws in enumerate(conns):
        for n in SIZES:
            msg = bytes([65 + i]) * n if n % 2 else "é" * (n // 2)  # binary and text (2-byte UTF-8)
            await ws.send(msg)
            assert await recv(ws) == msg
    for ws, code in zip(conns, ECHO_CLOSE_CODES):
        await ws.close(code=code)
    return sum(deflated) * len(SIZES)


def raw_request(port, request):
    """Sends one HTTP request and returns the status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request.encode())
        return s.recv(4096).split(b"\r\n", 1)[0].decode()


def bad_handshakes(port):
    # A plain GET to a WebSocket route: no handshake (400).
    status = raw_request(port, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert " 400 " in status, status
    # Version 8 instead of 13 (426).
    status = raw_request(port, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n")
    assert " 426 " in status, status


async def refused_handshake(port):
    # The chat room's upgrade handler refuses a connection without a name.
    try:
        await websockets.connect(f"ws://127.0.0.1:{port}/chat")
    except websockets.InvalidStatusCode as e:
        assert e.status_code == 400, e.status_code
    else:
        raise AssertionError("/chat without a name was accepted")


MEMBERS = ["ann", "bob", "cid"]
LINES = ["hello", "grüße " + "x" * 3000, "", "bye for now"]


async def join_chat(port):
    members = []
    for name in MEMBERS:
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/chat?name={name}")
        members.append(ws)
        for m in members:
            assert await recv(m) == f"{name} joined"
    for i, line in enumerate(LINES):
        await members[i % len(members)].send(line)
        for m in members:
            assert await recv(m) == f"{MEMBERS[i % len(members)]}: {line}"
    return members


async def leave_chat(members):
    for m in members:
        await m.close()


def main():
    tmp = tempfile.mkdtemp(prefix="cnetmod-prometheus-")
    demo = prom_proc = prom_log = None
    started = time.time()
    try:
        demo_port = free_port()
        demo, demo_log = start_demo(demo_port)
        prom_port = free_port()
        prom_proc, prom_log = start_prometheus(tmp, demo_port, prom_port)
        prom = Prometheus(prom_port)

        # A first scrape, before any traffic: the counters start at 0.
        prom.wait_scrape_after(time.time() - 1)
        check(prom, f'up{{job="{JOB}"}}', 1)
        check(prom, total("ws_messages_received_total"), 0)

        loop = asyncio.new_event_loop()
        compressed_echoes = loop.run_until_complete(echo_traffic(demo_port))
        bad_handshakes(demo_port)
        loop.run_until_complete(refused_handshake(demo_port))
        members = loop.run_until_complete(join_chat(demo_port))

        echo_messages = len(ECHO_CLOSE_CODES) * len(SIZES)
        echo_bytes = len(ECHO_CLOSE_CODES) * sum(SIZES)
        line_bytes = [len(line.encode()) for line in LINES]
        received = echo_messages + len(LINES)
        # Every join goes to the members so far (the new one included); every line to all of them.
        joins = [(f"{name} joined", k + 1) for k, name in enumerate(MEMBERS)]
        lines = [(f"{MEMBERS[i % len(MEMBERS)]}: {line}", len(MEMBERS)) for i, line in enumerate(LINES)]
        deliveries = sum(n for _, n in joins + lines)
        delivered_bytes = sum(len(text.encode()) * n for text, n in joins + lines)

        # Phase 1: the chat members are still in the room.
        prom.wait_value(total("ws_messages_received_total"), received)
        prom.wait_scrape_after(time.time())
        check(prom, f'up{{job="{JOB}"}}', 1)
        check(prom, total("ws_messages_received_total"), received)
        check(prom, total("ws_message_bytes_received_total"), echo_bytes + sum(line_bytes))
        # Python websockets compresses every message on a connection with permessage-deflate.
        check(prom, total("ws_compressed_messages_received_total"), compressed_echoes + len(LINES))
        check(prom, total("ws_messages_sent_total"), echo_messages + deliveries)
        check(prom, total("ws_message_bytes_sent_total"), echo_bytes + delivered_bytes)
        check(prom, total("pubsub_deliveries_total"), deliveries)
        check(prom, total("pubsub_drops_total"), 0)
        # What the server compresses depends on its settings (small messages may go plain), never more than
        # what it sent to peers that agreed to permessage-deflate: all but the third echo connection's.
        sent_compressed = prom.value(total("ws_compressed_messages_sent_total"))
        if sent_compressed is None or not 0 < sent_compressed <= echo_messages - len(SIZES) + deliveries:
            failures.append(f"compressed messages sent {sent_compressed}, expected 1 to "
                            f"{echo_messages - len(SIZES) + deliveries}")
            print("FAIL:", failures[-1])
        check(prom, total("ws_handshakes_total", 'result="ok"'), len(ECHO_CLOSE_CODES) + len(MEMBERS))
        check(prom, total("ws_handshakes_total", 'result="not_websocket"'), 1)
        check(prom, total("ws_handshakes_total", 'result="bad_version"'), 1)
        check(prom, total("ws_handshakes_total", 'result="refused"'), 1)
        check(prom, total("ws_handshakes_total", 'result="failed"'), 0)
        check(prom, total("ws_connections_open"), len(MEMBERS))
        for label in ["1000", "1001", "other"]:  # 4000 is counted as "other"
            check(prom, total("ws_closes_received_total", f'code="{label}"'), 1)
        check(prom, total("ws_closes_received_total"), len(ECHO_CLOSE_CODES))
        # The server answers each close with the peer's code (RFC 6455 §5.5.1).
        for label in ["1000", "1001", "other"]:
            check(prom, total("ws_closes_sent_total", f'code="{label}"'), 1)
        check(prom, total("backpressure_events_total"), 0)
        connections = len(ECHO_CLOSE_CODES) + 3 + len(MEMBERS)  # echo, bad and refused handshakes, chat
        accepted = prom.value(total("http_connections_accepted_total"))
        if accepted is None or accepted < connections:
            failures.append(f"http connections accepted {accepted}, expected >= {connections}")
            print("FAIL:", failures[-1])
        # Per-core series, core label on each.
        for family in ["loop_turns_total", "completions_total", "sqes_total", "busy_seconds_total",
                       "ws_messages_received_total", "http_connections_accepted_total"]:
            for core in ["0", "1"]:
                got = prom.query(f'cnetmod_{family}{{core="{core}"}}')
                if len(got) != 1:
                    failures.append(f'cnetmod_{family}{{core="{core}"}}: {len(got)} series, expected 1')
                    print("FAIL:", failures[-1])
            check(prom, f"count(cnetmod_{family})", 2)
        for family in ["loop_turns_total", "completions_total", "sqes_total", "socket_received_bytes_total",
                       "socket_sent_bytes_total"]:
            v = prom.value(total(family))
            if not v or v <= 0:
                failures.append(f"{total(family)} = {v}, expected > 0")
                print("FAIL:", failures[-1])
        check(prom, 'cnetmod_broker_state{state="none"}', 1)

        # Phase 2: everyone leaves; each leaving member's "left" goes to those still in the room.
        loop.run_until_complete(leave_chat(members))
        loop.close()
        prom.wait_value(total("ws_connections_open"), 0)
        prom.wait_scrape_after(time.time())
        check(prom, total("ws_connections_open"), 0)
        check(prom, total("ws_closes_received_total", 'code="1000"'), 1 + len(MEMBERS))
        check(prom, total("ws_closes_received_total"), len(ECHO_CLOSE_CODES) + len(MEMBERS))
        check(prom, total("ws_messages_received_total"), received)
        check(prom, total("ws_closes_sent_total"), len(ECHO_CLOSE_CODES) + len(MEMBERS))
        # "NAME left" goes to the members still in the room: 2, 1, 0.
        left = sum(len(MEMBERS) - 1 - k for k in range(len(MEMBERS)))
        check(prom, total("pubsub_deliveries_total"), deliveries + left)
        check(prom, total("send_queue_bytes"), 0)
        check(prom, f'up{{job="{JOB}"}}', 1)
    finally:
        for proc in (demo, prom_proc):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        if failures and prom_log is not None:
            prom_log.seek(0)
            print("prometheus log:\n" + prom_log.read()[-3000:])
        if prom_log is not None:
            prom_log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{len(failures)} checks failed")
        sys.exit(1)
    print(f"cnetmod-demo metrics through Prometheus: all checks passed in {time.time() - started:.1f} s")


main()
