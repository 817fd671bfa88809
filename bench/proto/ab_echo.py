#!/usr/bin/python3
"""Echo throughput and server CPU per message for several echo servers in the
same run (A/B of two builds, with Node's ws as the reference peer), taken in
turns so that the machine's noise falls on all of them alike.

  bench/proto/ab_echo.py WSBENCH NAME=SERVER_BINARY [NAME=...] [--node] [--reps 5]
                         [--size 32] [--connections 100] [--inflight 16] [--duration 5]

Each server runs pinned to CPU 0 and wsbench to CPU 1. For each run: msg/s
(wsbench), the server's user and system CPU time per message (from
/proc/PID/stat around the run) and wsbench's own CPU share. Prints the
medians per server and the ratio of each to the first. Loopback only; every
run is bounded by --duration.
"""
import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def start(argv, port):
    proc = subprocess.Popen(["taskset", "-c", "0", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{argv[0]} did not start")


def run_once(wsbench, argv, args):
    port = free_port()
    proc = start([a.replace("{port}", str(port)) for a in argv], port)
    try:
        time.sleep(0.3)
        u0, s0 = cpu_ticks(proc.pid)
        out = subprocess.run(["taskset", "-c", "1", wsbench, f"ws://127.0.0.1:{port}/ws", "--json", "--quiet",
                              "-c", str(args.connections), "-i", str(args.inflight), "-s", str(args.size),
                              "-d", str(args.duration)], capture_output=True, text=True, timeout=args.duration + 60)
        u1, s1 = cpu_ticks(proc.pid)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    r = json.loads(out.stdout)
    tick = os.sysconf("SC_CLK_TCK")
    messages = r["received"]
    return {
        "msg_s": r["messages_per_s"],
        "user_us": (u1 - u0) / tick / messages * 1e6,
        "sys_us": (s1 - s0) / tick / messages * 1e6,
        "client_cpu": r["client_cpu_share"],
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("wsbench")
    p.add_argument("servers", nargs="+", help="NAME=BINARY (an echo server taking --port N --quiet)")
    p.add_argument("--node", action="store_true", help="add Debian's node-ws echo peer")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--connections", type=int, default=100)
    p.add_argument("--inflight", type=int, default=16)
    p.add_argument("--duration", type=float, default=5)
    args = p.parse_args()
    servers = []
    for spec in args.servers:
        name, binary = spec.split("=", 1)
        servers.append((name, [binary, "--port", "{port}", "--quiet"]))
    if args.node:
        servers.append(("node ws", ["node", os.path.join(HERE, "..", "peers", "node_echo.js"), "{port}"]))
    results = {name: [] for name, _ in servers}
    for rep in range(args.reps):
        for name, argv in servers:
            results[name].append(run_once(args.wsbench, argv, args))
    print(f"echo {args.size} B, {args.connections} connections, {args.inflight} in flight, "
          f"{args.duration:g} s x {args.reps} (medians; server CPU 0, wsbench CPU 1)")
    print(f"{'server':<12} {'msg/s':>12} {'ratio':>7} {'user us/msg':>12} {'sys us/msg':>11} {'wsbench CPU':>12}")
    first = None
    for name, _ in servers:
        rs = results[name]
        med = {k: statistics.median(r[k] for r in rs if r[k] is not None) if any(r[k] is not None for r in rs)
               else float("nan") for k in rs[0]}
        first = first or med["msg_s"]
        print(f"{name:<12} {med['msg_s']:>12,.0f} {med['msg_s'] / first:>7.3f} {med['user_us']:>12.3f} "
              f"{med['sys_us']:>11.3f} {med['client_cpu']:>11.0%}")


if __name__ == "__main__":
    main()
