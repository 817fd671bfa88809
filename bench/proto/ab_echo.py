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
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from compare import Server  # noqa: E402


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def run_once(wsbench, argv, args):
    server = Server(argv[0], 0, lambda port: [a.replace("{port}", str(port)) for a in argv])
    try:
        time.sleep(0.3)
        u0, s0 = cpu_ticks(server.proc.pid)
        out = subprocess.run(["taskset", "-c", "1", wsbench, f"ws://127.0.0.1:{server.port}/ws", "--json", "--quiet",
                              "-c", str(args.connections), "-i", str(args.inflight), "-s", str(args.size),
                              "-d", str(args.duration)] + (["--deflate"] if args.deflate else []),
                             capture_output=True, text=True, timeout=args.duration + 60)
        u1, s1 = cpu_ticks(server.proc.pid)
    finally:
        server.stop()
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
    p.add_argument("--verbose", action="store_true", help="print every run")
    p.add_argument("--deflate", action="store_true", help="servers get --deflate, wsbench offers permessage-deflate")
    args = p.parse_args()
    servers = []
    for spec in args.servers:
        name, binary = spec.split("=", 1)
        servers.append((name, [binary, "--port", "{port}", "--quiet"] + (["--deflate"] if args.deflate else [])))
    if args.node:
        servers.append(("node ws", ["node", os.path.join(HERE, "..", "peers", "node_echo.js"), "{port}"] +
                        (["--deflate"] if args.deflate else [])))
    results = {name: [] for name, _ in servers}
    for rep in range(args.reps):
        for name, argv in servers:
            results[name].append(run_once(args.wsbench, argv, args))
            if args.verbose:
                r = results[name][-1]
                print(f"  rep {rep} {name}: {r['msg_s']:,.0f} msg/s, user {r['user_us']:.3f} sys {r['sys_us']:.3f} "
                      f"us/msg, wsbench {r['client_cpu']:.0%}", flush=True)
    print(f"echo {args.size} B{' deflate' if args.deflate else ''}, {args.connections} connections, "
          f"{args.inflight} in flight, "
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
