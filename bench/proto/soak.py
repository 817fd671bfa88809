#!/usr/bin/python3
"""Connection churn soak: COUNT connect / handshake / close cycles against the
echo example, in three kinds taken in turn, then checks that the server's
file descriptors and resident memory come back to their baseline.

  bench/proto/soak.py build/examples/echo_server [COUNT] [--threads N] [--json FILE]

Kinds of cycle (COUNT in all, a third each):
  clean  handshake, one echo, close frame 1000, wait for the server's close
  rst    handshake, one echo, then a reset (SO_LINGER 0) with no close frame
  mid    half a handshake request, then a reset (the server is mid-request)

The baseline is taken after a warm-up of 1,000 cycles (the first connections
fault in the core's pools); "after" once the last cycle is done and the
server's descriptors are back to the baseline (how long that took is
reported; 10 s at most). Bounded: COUNT cycles and a
time limit of 10 minutes, whichever comes first. Loopback only.
"""
import argparse
import base64
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # idle_memory
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # compare
from compare import free_port  # noqa: E402
from idle_memory import rss_kib  # noqa: E402

LIMIT_S = 600


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def handshake_request():
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


def masked(opcode, payload):
    mask = os.urandom(4)
    body = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + mask + body


def read_until(sock, pred):
    data = b""
    while not pred(data):
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
    return data


def reset(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def cycle(port, kind):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    request = handshake_request()
    if kind == "mid":
        sock.sendall(request[: len(request) // 2])
        reset(sock)
        return
    sock.sendall(request)
    data = read_until(sock, lambda d: b"\r\n\r\n" in d)
    if not data.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"handshake refused: {data[:80]!r}")
    rest = data.split(b"\r\n\r\n", 1)[1]
    sock.sendall(masked(1, b"soak"))
    read_until(sock, lambda d: len(rest + d) >= 6)
    if kind == "rst":
        reset(sock)
        return
    sock.sendall(masked(8, struct.pack("!H", 1000)))
    read_until(sock, lambda d: False)  # the server's close frame, then its FIN
    sock.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("server")
    parser.add_argument("count", nargs="?", type=int, default=20000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--json")
    args = parser.parse_args()

    port = free_port()
    proc = subprocess.Popen([args.server, "--port", str(port), "--quiet"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        kinds = ["clean", "rst", "mid"]
        for i in range(1000):
            cycle(port, kinds[i % 3])
        time.sleep(1)
        base_rss, base_fds, base_cpu = rss_kib(proc.pid), fd_count(proc.pid), cpu_s(proc.pid)

        done = [0] * args.threads
        errors = []
        peak = {"rss": base_rss, "fds": base_fds}
        start = time.time()

        def worker(t):
            i = t
            while i < args.count and time.time() - start < LIMIT_S:
                try:
                    cycle(port, kinds[i % 3])
                    done[t] += 1
                except Exception as e:  # noqa: BLE001 - counted and reported
                    errors.append(repr(e))
                i += args.threads

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(args.threads)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            peak["rss"] = max(peak["rss"], rss_kib(proc.pid))
            peak["fds"] = max(peak["fds"], fd_count(proc.pid))
            time.sleep(0.1)
        elapsed = time.time() - start
        # The server finishes its last closes (a graceful close waits for the
        # peer's FIN): wait for its descriptors to come back, 10 s at most.
        settle_start = time.time()
        while fd_count(proc.pid) > base_fds and time.time() - settle_start < 10:
            time.sleep(0.05)
        settle_s = time.time() - settle_start
        time.sleep(0.5)
        after_rss, after_fds, after_cpu = rss_kib(proc.pid), fd_count(proc.pid), cpu_s(proc.pid)
        result = {
            "cycles": sum(done), "errors": len(errors), "first_errors": errors[:5], "seconds": round(elapsed, 1),
            "cycles_per_s": round(sum(done) / elapsed), "server_cpu_us_per_cycle": round(
                (after_cpu - base_cpu) / max(1, sum(done)) * 1e6, 1),
            "rss_kib": {"baseline": base_rss, "peak": peak["rss"], "after": after_rss},
            "fds": {"baseline": base_fds, "peak": peak["fds"], "after": after_fds, "settled_in_s": round(settle_s, 2)},
        }
        print(json.dumps(result, indent=2))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=2)
        ok = (not errors and after_fds == base_fds and after_rss - base_rss < 4096 and
              sum(done) == args.count)
        print("soak:", "fds and RSS back to baseline" if ok else "NOT back to baseline (or errors)")
        sys.exit(0 if ok else 1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


if __name__ == "__main__":
    main()
