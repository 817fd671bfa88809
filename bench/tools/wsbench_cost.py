#!/usr/bin/python3
"""wsbench's own cost: two or more builds of wsbench against the same echo
server, in turns, so that the machine's noise falls on all of them alike.

  bench/tools/wsbench_cost.py ECHO_SERVER BEFORE=WSBENCH AFTER=WSBENCH [NAME=WSBENCH ...]
                              [--reps 5] [--duration 5] [--connections 100]
                              [--rows small16,small1,large16]

Rows: 32 B with 16 in flight, 32 B with 1 in flight, 4 KiB with 16 in
flight; closed loop, binary messages. Each run starts the server pinned to
CPU 0 (`--quiet`) and runs one wsbench pinned to CPU 1 with --server-pid.
Per row and build, the medians of:

  msg/s        the rate over the measured window
  user, sys    wsbench's own user-space and kernel CPU per message
               (client_user_ns_per_message, client_system_ns_per_message;
               a build without the second shows total minus user)
  total        wsbench's CPU per message: its CPU share over the rate
  CPU, wait    wsbench's share of its core, and of the time it waited for
               a CPU (other processes on CPU 1; absent in older builds)
  server       the server's CPU per message, µs

Loopback only; every run is bounded in time.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from compare import Server  # noqa: E402

ROWS = {
    "small16": {"label": "32 B, 16 in flight", "size": 32, "inflight": 16},
    "small1": {"label": "32 B, 1 in flight", "size": 32, "inflight": 1},
    "large16": {"label": "4 KiB, 16 in flight", "size": 4096, "inflight": 16},
}


def run_once(echo, wsbench, row, args):
    server = Server("echo", 0, lambda port: [echo, "--port", str(port), "--quiet"])
    try:
        cmd = ["taskset", "-c", "1", wsbench, f"ws://127.0.0.1:{server.port}/ws", "--json", "-q", "--binary",
               "-c", str(args.connections), "-s", str(row["size"]), "-i", str(row["inflight"]),
               "-d", str(args.duration), "--server-pid", str(server.proc.pid)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 60)
        r = json.loads(out.stdout)
    finally:
        server.stop()
    rate = r["messages_per_s"]
    total = r["client_cpu_share"] * r["threads"] / rate * 1e9 if rate else None
    user = r["client_user_ns_per_message"]
    system = r.get("client_system_ns_per_message", total - user if total is not None else None)
    return {"msg_s": rate, "user": user, "sys": system, "total": total, "cpu": r["client_cpu_share"],
            "wait": r.get("client_cpu_wait_share"), "server": r.get("server_cpu_us_per_message"),
            "errors": r.get("errors", 0)}


def median(runs, key):
    values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
    return statistics.median(values) if values else None


def fmt(v, spec):
    return "—" if v is None else format(v, spec)


def pct(v):
    return "    —" if v is None else f"{v * 100:4.0f}%"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("echo")
    ap.add_argument("builds", nargs="+", help="NAME=WSBENCH")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--rows", default="small16,small1,large16")
    args = ap.parse_args()
    builds = [b.split("=", 1) for b in args.builds]
    for key in args.rows.split(","):
        row = ROWS[key]
        results = {name: [] for name, _ in builds}
        for _ in range(args.reps):
            for name, path in builds:
                results[name].append(run_once(args.echo, path, row, args))
        print(f"\n{row['label']}, {args.connections} connections, {args.reps} x {args.duration:g} s (medians)")
        print(f"{'build':<10} {'msg/s':>10} {'user ns':>8} {'sys ns':>7} {'total ns':>9} {'CPU':>5} {'wait':>5} "
              f"{'server us':>9} {'errors':>6}")
        for name, _ in builds:
            runs = results[name]
            m = {k: median(runs, k) for k in ["msg_s", "user", "sys", "total", "cpu", "wait", "server"]}
            users = [r["user"] for r in runs]
            print(f"{name:<10} {fmt(m['msg_s'], '10,.0f')} {fmt(m['user'], '8.1f')} {fmt(m['sys'], '7.0f')} "
                  f"{fmt(m['total'], '9.0f')} {pct(m['cpu'])} {pct(m['wait'])} {fmt(m['server'], '9.3f')} "
                  f"{sum(r['errors'] for r in runs):>6}   user {min(users):.0f}–{max(users):.0f}")


if __name__ == "__main__":
    main()
