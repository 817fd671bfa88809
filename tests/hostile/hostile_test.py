#!/usr/bin/python3
"""Attacks on the example servers, each with a bystander that must keep
working and the memory or time bound asserted.

  hostile_test.py ATTACK ECHO_SERVER DEMO

Each attack starts the server it needs (the echo example or the demo) on a
free loopback port, measures the server's resident memory (VmRSS) or CPU
time around the attack, and checks that an ordinary WebSocket client (the
bystander) still gets every echo during and after it. Under the sanitizers
(ASAN_OPTIONS set by tools/run-tests.sh) memory and time bounds are widened:
the sanitizer's allocator keeps freed memory in quarantine and its checks
cost time.
"""
import base64
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

SANITIZED = "ASAN_OPTIONS" in os.environ
MEM_SLACK = 4 if SANITIZED else 1
CPU_SLACK = 3 if SANITIZED else 1
MIB = 1024 * 1024


def log(*args):
    print(*args, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, *args, tls=None):
        self.port = free_port()
        self.log = tempfile.TemporaryFile(mode="w+", errors="replace")
        argv = [binary, "--port", str(self.port), *args]
        if tls:
            argv += ["--cert", tls[0], "--key", tls[1]]
        self.tls = tls is not None
        env = dict(os.environ)
        if SANITIZED:
            # A small quarantine: freed memory is then reused soon, so RSS
            # measures what the server holds, not what the sanitizer keeps.
            env["ASAN_OPTIONS"] = env["ASAN_OPTIONS"] + ":quarantine_size_mb=16:thread_local_quarantine_size_kb=256"
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, text=True, env=env)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        raise AssertionError("server did not start: " + self.output())

    def output(self):
        self.log.seek(0)
        return self.log.read()

    def rss(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self):
        assert self.proc.poll() is None, "the server died: " + self.output()[-2000:]
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


# ---- a small WebSocket client on a plain socket (RFC 6455), blocking ----

class Ws:
    def __init__(self, port, path="/ws", tls=False, extensions=None, timeout=10):
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            raw = ctx.wrap_socket(raw)
        self.sock = raw
        key = base64.b64encode(os.urandom(16)).decode()
        head = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
        if extensions:
            head += f"Sec-WebSocket-Extensions: {extensions}\r\n"
        self.sock.sendall((head + "\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            assert chunk, "closed during the handshake"
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head
        self.response_head = head.decode()

    @staticmethod
    def frame(opcode, payload, fin=True, rsv1=False, length=None):
        n = len(payload) if length is None else length
        b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
        if n < 126:
            head = struct.pack("!BB", b0, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", b0, 0x80 | 127, n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload)) if len(payload) < 4096 else \
            (int.from_bytes(payload, "big") ^ int.from_bytes((mask * (len(payload) // 4 + 1))[:len(payload)],
                                                              "big")).to_bytes(len(payload), "big")
        return head + mask + masked

    def send(self, opcode, payload, **kw):
        self.sock.sendall(self.frame(opcode, payload, **kw))

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk

    def recv(self):
        """(opcode, payload) of the next frame."""
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._need(off + n)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return b0 & 0x0F, payload

    def recv_close_code(self, limit=10):
        """Reads to the close frame and returns its code (None: TCP ended first)."""
        self.sock.settimeout(limit)
        try:
            while True:
                op, payload = self.recv()
                if op == 8:
                    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        except (EOFError, ConnectionResetError):
            return None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Bystander:
    """An ordinary client that echoes a message every 20 ms in a thread; any
    failure is recorded and fails the test at check()."""

    def __init__(self, port, tls=False):
        self.ws = Ws(port, tls=tls)
        self.count = 0
        self.error = None
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            while self.running:
                msg = f"bystander {self.count}".encode()
                self.ws.sock.settimeout(10)
                self.ws.send(1, msg)
                op, payload = self.ws.recv()
                while op in (9, 10):  # the server's liveness pings (answered) and stray pongs
                    if op == 9:
                        self.ws.send(10, payload)
                    op, payload = self.ws.recv()
                if payload != msg:
                    raise AssertionError(f"bystander got {payload[:60]!r} for {msg!r}")
                self.count += 1
                time.sleep(0.02)
        except Exception as e:  # noqa: BLE001 - reported by check()
            self.error = e

    def check(self, at_least=1):
        assert self.error is None, f"the bystander failed: {self.error!r}"
        assert self.thread.is_alive(), "the bystander stopped"
        before = self.count
        deadline = time.time() + 10
        while self.count < before + at_least and time.time() < deadline:
            time.sleep(0.01)
        assert self.count >= before + at_least, "the bystander's echoes stopped"

    def stop(self):
        self.check()
        self.running = False
        self.thread.join(timeout=10)
        self.ws.close()
        return self.count


def make_certs(directory):
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True)
    return cert, key


def settle(server, seconds=0.5):
    time.sleep(seconds)
    return server.rss()


# ---- attacks ----

def ping_flood(echo, _demo, tls=False):
    """Pings as fast as the socket takes them, never reading: pongs coalesce
    (RFC 6455 §5.5.3) and what is queued stays bounded."""
    with tempfile.TemporaryDirectory() as d:
        s = Server(echo, "--quiet", tls=make_certs(d) if tls else None)
        try:
            by = Bystander(s.port, tls=tls)
            base = settle(s)
            attacker = Ws(s.port, tls=tls)
            ping = Ws.frame(9, b"p" * 125)
            burst = ping * 512
            attacker.sock.settimeout(0.5)
            sent, peak, end = 0, base, time.time() + 4
            while time.time() < end:
                try:
                    attacker.sock.sendall(burst)
                    sent += len(burst)
                except (socket.timeout, BlockingIOError):
                    pass  # the server's window is full: it reads no faster than it can answer
                except (BrokenPipeError, ConnectionResetError):
                    break
                peak = max(peak, s.rss())
            by.check()
            growth = peak - base
            log(f"ping flood ({'wss' if tls else 'ws'}): {sent / MIB:.0f} MiB of pings in 4 s, "
                f"server RSS {base / MIB:.1f} -> peak {peak / MIB:.1f} MiB (+{growth / MIB:.1f})")
            assert sent > 8 * MIB, "the attack did not get going"
            assert growth < 16 * MIB * MEM_SLACK, f"one connection's pongs took {growth / MIB:.0f} MiB"
            attacker.close()
            by.stop()
        finally:
            s.stop()


def ping_flood_tls(echo, demo):
    ping_flood(echo, demo, tls=True)


def _http_exchange(port, data, shut=False, timeout=5):
    """Sends `data`, optionally half-closes, and reads until the server closes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(data)
    if shut:
        sock.shutdown(socket.SHUT_WR)
    out = b""
    try:
        while True:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            out += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    sock.close()
    return out


def smuggling(_echo, demo):
    """Transfer-Encoding per RFC 9112 §6: a hidden request in a body framed
    by two Transfer-Encoding lines is never served."""
    s = Server(demo, "--quiet")
    try:
        by = Bystander(s.port)
        hidden = b"0\r\n\r\nGET /SMUGGLED HTTP/1.1\r\nHost: x\r\n\r\n"
        cases = {
            "chunked then identity, two lines": b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
            "chunked twice": b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            "chunked, chunked": b"Transfer-Encoding: chunked, chunked\r\n",
            "identity then chunked... and gzip": b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
            "chunked not last": b"Transfer-Encoding: chunked, gzip\r\n",
            "empty": b"Transfer-Encoding: \r\n",
            "with Content-Length": b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        }
        for name, fields in cases.items():
            out = _http_exchange(s.port, b"POST /nope HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n" + hidden)
            status = out.split(b" ", 2)[1] if out else b"-"
            assert status in (b"400", b"501"), f"{name}: {out[:200]!r}"
            assert out.count(b"HTTP/1.1 ") == 1, f"{name}: a second answer: {out!r}"
            assert b"SMUGGLED" not in out, f"{name}: the hidden request was served: {out!r}"
        # HTTP/1.0 with Transfer-Encoding: 400 and the connection closed.
        out = _http_exchange(s.port, b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" + hidden)
        assert out.startswith(b"HTTP/1.1 400"), out[:200]
        assert out.count(b"HTTP/1.1 ") == 1, out
        # Bounded like a head: a 1 MiB chunk extension, 50,000 trailer lines.
        out = _http_exchange(s.port, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;"
                             + b"e" * MIB + b"\r\nx\r\n0\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 400"), out[:200]
        out = _http_exchange(s.port, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n"
                             + b"T: v\r\n" * 50000 + b"\r\n")
        assert out.startswith(b"HTTP/1.1 431"), out[:200]
        by.stop()
    finally:
        s.stop()
    log("smuggling: every framing attempt refused (400/501/431) and the connection closed")


def half_close(_echo, demo):
    """A client that sends its requests then shuts down its sending side gets
    every answer before the server closes."""
    s = Server(demo, "--quiet")
    try:
        by = Bystander(s.port)
        request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        single = sum(_http_exchange(s.port, request, shut=True).count(b"HTTP/1.1 200") for _ in range(60))
        pipelined = _http_exchange(s.port, request * 200, shut=True, timeout=20).count(b"HTTP/1.1 200")
        http10 = sum(_http_exchange(s.port, b"GET / HTTP/1.0\r\n\r\n", shut=True).count(b"HTTP/1.1 200")
                     for _ in range(20))
        log(f"half-close: {single}/60 single, {pipelined}/200 pipelined, {http10}/20 HTTP/1.0 answered")
        assert single == 60 and pipelined == 200 and http10 == 20
        by.stop()
    finally:
        s.stop()


def stalled_messages(echo, _demo):
    """Eight peers each send 15 MiB of a 16 MiB frame and go quiet: the core's
    reassembly budget (64 MiB) turns the later ones away with 1008, and the
    message timeout ends the rest."""
    s = Server(echo, "--quiet", "--message-timeout-ms", "3000")
    try:
        by = Bystander(s.port)
        base = settle(s)
        attackers = []
        part = os.urandom(15 * MIB)
        for _ in range(8):
            a = Ws(s.port, timeout=20)
            a.sock.sendall(Ws.frame(2, part, length=16 * MIB))  # a 16 MiB frame, 1 MiB short
            attackers.append(a)
        time.sleep(0.5)
        during = s.rss()
        by.check()
        codes = [a.recv_close_code(limit=15) for a in attackers]
        after = settle(s, 1.0)
        by.check()
        log(f"stalled messages: server RSS {base / MIB:.1f} -> {during / MIB:.1f} MiB with 8 x 15 MiB pending "
            f"(+{(during - base) / MIB:.1f}), {after / MIB:.1f} after; close codes {codes}")
        assert all(c == 1008 for c in codes), codes
        assert during - base < 100 * MIB * MEM_SLACK, f"+{(during - base) / MIB:.0f} MiB for incomplete messages"
        for a in attackers:
            a.close()
        by.stop()
    finally:
        s.stop()


def http_no_read(_echo, demo):
    """Clients that pipeline requests and never read: the server stops reading
    their requests once a little is queued for them."""
    s = Server(demo, "--quiet")
    try:
        by = Bystander(s.port)
        base = settle(s)
        clients, sent = [], 0
        request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        burst = request * 2000
        for _ in range(50):
            c = socket.create_connection(("127.0.0.1", s.port))
            c.setblocking(False)
            clients.append(c)
        end = time.time() + 3
        while time.time() < end:
            for c in clients:
                try:
                    sent += c.send(burst)
                except BlockingIOError:
                    pass
            time.sleep(0.01)
        time.sleep(0.5)
        during = s.rss()
        by.check()
        log(f"pipelining, never reading: 50 clients sent {sent / MIB:.1f} MiB of requests; "
            f"server RSS {base / MIB:.1f} -> {during / MIB:.1f} MiB (+{(during - base) / MIB:.1f})")
        assert during - base < 24 * MIB * MEM_SLACK, f"+{(during - base) / MIB:.0f} MiB"
        for c in clients:
            c.close()
        by.stop()
    finally:
        s.stop()


def dead_peer(echo, _demo):
    """A peer that neither answers pings nor sends anything is reset after
    ping interval + pong timeout; one that answers stays; accepted sockets
    carry TCP keepalive."""
    s = Server(echo, "--quiet", "--ping-interval-ms", "400", "--pong-timeout-ms", "400")
    try:
        by = Bystander(s.port)  # answers pings
        silent = Ws(s.port)
        silent.sock.settimeout(10)
        start = time.time()
        pings, ended = 0, None
        try:
            while True:
                op, _ = silent.recv()
                pings += op == 9
        except (EOFError, ConnectionResetError):
            ended = time.time() - start
        assert ended is not None and ended < 5, f"the silent peer was held {ended}"
        assert pings >= 1, "no liveness ping came"
        idle = socket.create_connection(("127.0.0.1", s.port))  # nothing in flight: its timer is keepalive's
        time.sleep(0.2)
        ss = subprocess.run(["ss", "-tno", "state", "established",
                             f"( sport = :{s.port} and dport = :{idle.getsockname()[1]} )"],
                            capture_output=True, text=True).stdout
        idle.close()
        assert "timer:(keepalive" in ss, ss
        time.sleep(1.5)  # several ping intervals: the answering bystander stays
        by.stop()
        log(f"dead peer: a silent peer got {pings} ping(s) and was reset after {ended:.2f} s; "
            f"the answering bystander stayed; accepted sockets have TCP keepalive")
    finally:
        s.stop()


def _deflate(data):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def deflate_bombs(echo, _demo):
    """Compressed messages that inflate far past the limit end in 1009 after
    bounded work (one pass, bounded by the inflate ratio)."""
    s = Server(echo, "--quiet", "--deflate")
    try:
        by = Bystander(s.port)
        bombs = {"19 KiB": _deflate(b"\0" * (20 * MIB))[:19 * 1024], "16 KiB -> 16 MiB": _deflate(b"\0" * (16 * MIB))}
        for name, bomb in bombs.items():
            rounds = 20
            before = s.cpu_seconds()
            for _ in range(rounds):
                a = Ws(s.port, extensions="permessage-deflate")
                assert "permessage-deflate" in a.response_head
                a.send(2, bomb, rsv1=True)
                code = a.recv_close_code()
                assert code == 1009, code
                a.close()
            per_bomb = (s.cpu_seconds() - before) / rounds * 1000
            log(f"deflate bomb {name} ({len(bomb)} B): 1009 each, {per_bomb:.1f} ms of server CPU per bomb")
            assert per_bomb < 10 * CPU_SLACK, f"{per_bomb:.1f} ms per bomb"
        by.stop()
    finally:
        s.stop()


def handshake_rules(echo, demo):
    """Version 8 is answered with the version spoken; a duplicated key is
    refused; a second server on a taken port refuses to start."""
    s = Server(echo, "--quiet")
    d = Server(demo, "--quiet")
    try:
        by = Bystander(s.port)
        v8 = (b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n")
        for port in (s.port, d.port):
            out = _http_exchange(port, v8)
            head = out.split(b"\r\n\r\n")[0]
            assert head.split(b" ")[1] in (b"400", b"426"), head
            assert b"\r\nSec-WebSocket-Version: 13" in head, head
        dup = (b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"
               b"Sec-WebSocket-Version: 13\r\n\r\n")
        out = _http_exchange(s.port, dup)
        assert out.startswith(b"HTTP/1.1 400"), out[:200]
        for binary in (echo, demo):
            second = subprocess.run([binary, "--port", str(s.port if binary == echo else d.port), "--quiet"],
                                    capture_output=True, text=True, timeout=10)
            assert second.returncode == 1, (second.returncode, second.stdout, second.stderr)
            assert "Address already in use" in second.stdout + second.stderr, second.stdout + second.stderr
        by.stop()
    finally:
        s.stop()
        d.stop()
    log("handshake rules: version 8 answered with Sec-WebSocket-Version: 13, duplicated key 400, "
        "a second server on a taken port exits 1 naming it")


ATTACKS = {f.__name__: f for f in (ping_flood, ping_flood_tls, smuggling, half_close, stalled_messages, http_no_read,
                                   dead_peer, deflate_bombs, handshake_rules)}

if __name__ == "__main__":
    name, echo_exe, demo_exe = sys.argv[1:4]
    ATTACKS[name](echo_exe, demo_exe)
    log(f"{name}: ok")
