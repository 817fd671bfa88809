#!/usr/bin/python3
"""SQEs per HTTP request on keep-alive connections, for two or more builds of
the echo example in the same run and in turns.

  bench/proto/http_sqe.py BEFORE=ECHO_BINARY AFTER=ECHO_BINARY [NAME=...]
                          [--reps 3] [--duration 3] [--connections 100]

Each HTTP request on a keep-alive connection is read with a deadline (the
server's request and keep-alive timeouts), so this is where a deadline's
cost in SQEs shows: before the timer wheel each read's deadline was an
IORING_OP_TIMEOUT and, once the request arrived, a TIMEOUT_REMOVE.

The load: C connections, each with one `GET /ws` (no upgrade: the echo
example answers 400 and keeps the connection) in flight at a time, driven
by one Python thread with a selector on CPU 1, for D seconds. The server runs
pinned to CPU 0 with `--quiet --stats-file F`; on SIGTERM it writes its
loop's SQE, enter and completion counts. Per run: requests/s, SQEs and
enters per request, and the server's user and system CPU per request
(/proc/PID/stat). Prints the medians per build and the ratio to the first.
Loopback only; every run is bounded by --duration.
"""
import argparse
import json
import os
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from compare import free_port  # noqa: E402

REQUEST = b"GET /ws HTTP/1.1\r\nHost: bench\r\n\r\n"


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def drive(port, connections, duration):
    """Keep-alive requests, one in flight per connection; returns how many were answered."""
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(connections):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        socks.append(s)
        sel.register(s, selectors.EVENT_READ, bytearray())
        s.send(REQUEST)
    answered = 0
    end = time.monotonic() + duration
    while time.monotonic() < end:
        for key, _ in sel.select(timeout=0.5):
            s, buf = key.fileobj, key.data
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError("the server closed a keep-alive connection")
            buf += chunk
            # A complete answer: the head, then Content-Length bytes.
            while True:
                head_end = buf.find(b"\r\n\r\n")
                if head_end < 0:
                    break
                length = 0
                for line in bytes(buf[:head_end]).split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if len(buf) < head_end + 4 + length:
                    break
                del buf[:head_end + 4 + length]
                answered += 1
                s.send(REQUEST)
    for s in socks:
        s.close()
    return answered


def run_once(binary, connections, duration):
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        stats = os.path.join(tmp, "stats.json")
        proc = subprocess.Popen(["taskset", "-c", "0", binary, "--port", str(port), "--quiet", "--stats-file", stats],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        raise RuntimeError(f"{binary} did not start")
                    time.sleep(0.05)
            u0, s0 = cpu_ticks(proc.pid)
            answered = drive(port, connections, duration)
            u1, s1 = cpu_ticks(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        with open(stats) as f:
            counts = json.load(f)
    tick = os.sysconf("SC_CLK_TCK")
    return {
        "req_s": answered / duration,
        "sqes": counts["sqes"] / answered,
        "enters": counts["enters"] / answered,
        "user_us": (u1 - u0) / tick / answered * 1e6,
        "sys_us": (s1 - s0) / tick / answered * 1e6,
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("servers", nargs="+", help="NAME=BINARY: the echo example of a build (it takes --stats-file)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--duration", type=float, default=3)
    p.add_argument("--connections", type=int, default=100)
    args = p.parse_args()
    os.sched_setaffinity(0, {1})  # the load on CPU 1, the server on CPU 0
    servers = [spec.split("=", 1) for spec in args.servers]
    results = {
name: [] for name, _ in servers}
    for rep in range(args.reps):
        order = servers if rep % 2 == 0 else list(reversed(servers))
        for name, binary in order:
            results[name].append(run_once(binary, args.connections, args.duration))
    print(f"HTTP keep-alive, {args.connections} connections, one request in flight each, "
          f"{args.duration:g} s x {args.reps} (medians; server CPU 0)")
    print(f"{'server':<10} {'req/s':>10} {'SQEs/req':>9} {'enters/req':>11} {'user us/req':>12} {'sys us/req':>11}")
    first = None
    for name, _ in servers:
        med = {
k: statistics.median(r[k] for r in results[name]) for k in results[name][0]}
        print(f"{name:<10} {med['req_s']:>10,.0f} {med['sqes']:>9.3f} {med['enters']:>11.3f} "
              f"{med['user_us']:>12.2f} {med['sys_us']:>11.2f}")
        if first is None:
            first = med
        else:
            print(f"{name + '/' + servers[0][0]:<10} {med['req_s'] / first['req_s']:>10.3f} "
                  f"{med['sqes'] / first['sqes']:>9.3f} {med['enters'] / first['enters']:>11.3f} "
                  f"{med['user_us'] / first['user_us']:>12.3f} {med['sys_us'] / first['sys_us']:>11.3f}")


if __name__ == "__main__":
    main()
