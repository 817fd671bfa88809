#!/usr/bin/python3
"""Issue 12's before/after figures for the socket layer: the echo example of
two or more builds, in the same run and in turns, so that the machine's noise
falls on all of them alike.

  bench/proto/socket_core.py WSBENCH BEFORE=ECHO_BINARY AFTER=ECHO_BINARY [NAME=...]
                             [--reps 5] [--duration 5] [--connections 100]
                             [--rows small16,small1,large16,rate] [--json OUT] [--verbose]

Rows: 32 B with 16 in flight, 32 B with 1 in flight, 4 KiB with 16 in flight
(closed loop), and 32 B at a fixed 50,000 msg/s (wsbench -r, open loop); 100
connections, binary messages. Each server runs pinned to CPU 0 with
`--quiet --stats-file F`, wsbench to CPU 1 with `--server-pid`. Per run:

  msg/s         wsbench's rate over the measured window
  user, sys     the server's user-space and kernel CPU per message over that
                window (wsbench --server-pid; /proc ticks, 10 ms each)
  SQEs/msg      the loop's SQEs (echo_server --stats-file, written on SIGTERM)
                over the messages wsbench received in the whole run; both
                count the handshakes and the drain after the window, which
                at 100 connections is noise
  enters/msg    io_uring_enter calls over the same messages
  wsbench CPU   the load generator's share of its core (near 100 %: the
                closed-loop rate is wsbench's limit, compare the CPU columns)

Prints the medians per row and server, and each server's ratio to the first
(after / before). Loopback only; every run is bounded in time.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from compare import Server  # noqa: E402

ROWS = {
    "small16": {"label": "32 B, 16 in flight", "size": 32, "inflight": 16},
    "small1": {"label": "32 B, 1 in flight", "size": 32, "inflight": 1},
    "large16": {"label": "4 KiB, 16 in flight", "size": 4096, "inflight": 16},
    "rate": {"label": "32 B, 50,000 msg/s", "size": 32, "rate": 50000},
}
METRICS = ["msg_s", "user_us", "sys_us", "sqes", "enters", "client_cpu"]


def read_stats(path):
    try:
        with open(path) as f:
            return json.loads(f.readline())
    except (OSError, ValueError):
        return None


def run_once(wsbench, binary, row, args):
    """One server start, one wsbench run against it, the server stopped by SIGTERM."""
    with tempfile.TemporaryDirectory(prefix="cnetmod-socket-core-") as tmp:
        stats_path = os.path.join(tmp, "stats.json")
        server = Server(binary, args.server_cpu,
                        lambda port: binary.split(",")[:1] + ["--port", str(port), "--quiet", "--stats-file", stats_path]
                        + binary.split(",")[1:])
        try:
            time.sleep(0.3)
            load = ["-r", str(row["rate"])] if row.get("rate") else ["-i", str(row["inflight"])]
            cmd = ["taskset", "-c", str(args.load_cpu), wsbench, f"ws://127.0.0.1:{server.port}/ws", "--json",
                   "--quiet", "--binary", "-c", str(args.connections), "-s", str(row["size"]),
                   "-d", str(args.duration), "--server-pid", str(server.proc.pid)] + load
            try:
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 60)
                r = json.loads(out.stdout)
            except (subprocess.TimeoutExpired, ValueError) as e:
                return {"error": f"wsbench: {e}"}
        finally:
            server.stop()  # SIGTERM: the server writes its counters and exits
        stats = read_stats(stats_path)
    received = r.get("received") or 0
    per_message = (lambda key: stats[key] / received if stats and received else None)
    return {
        "msg_s": r["messages_per_s"],
        "user_us": r.get("server_user_us_per_message"),
        "sys_us": r.get("server_system_us_per_message"),
        "sqes": per_message("sqes"),
        "enters": per_message("enters"),
        "client_cpu": r["client_cpu_share"],
        "errors": r.get("errors", 0),
        "received": received,
        "stats": stats,
    }


def median(runs, key):
    values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
    return statistics.median(values) if values else None


def fmt(v, spec):
    return "—" if v is None else format(v, spec)


def print_row(row, names, results):
    print(f"\n{row['label']}")
    print(f"{'server':<14} {'msg/s':>11} {'user us/msg':>12} {'sys us/msg':>11} {'SQEs/msg':>9} "
          f"{'enters/msg':>11} {'wsbench CPU':>12} {'errors':>7}")
    meds = {}
    for name in names:
        runs = results[name]
        meds[name] = {k: median(runs, k) for k in METRICS}
        m = meds[name]
        errors = sum(r.get("errors", 0) or 0 for r in runs) + sum(1 for r in runs if "error" in r)
        print(f"{name:<14} {fmt(m['msg_s'], '11,.0f')} {fmt(m['user_us'], '12.3f')} {fmt(m['sys_us'], '11.3f')} "
              f"{fmt(m['sqes'], '9.3f')} {fmt(m['enters'], '11.3f')} "
              f"{fmt(m['client_cpu'] and m['client_cpu'] * 100, '11.0f')}% {errors:>7}")
    first = meds[names[0]]
    for name in names[1:]:
        ratio = {k: (meds[name][k] / first[k] if meds[name][k] is not None and first[k] else None) for k in METRICS}
        print(f"{name + '/' + names[0]:<14} {fmt(ratio['msg_s'], '11.3f')} {fmt(ratio['user_us'], '12.3f')} "
              f"{fmt(ratio['sys_us'], '11.3f')} {fmt(ratio['sqes'], '9.3f')} {fmt(ratio['enters'], '11.3f')} "
              f"{fmt(ratio['client_cpu'], '12.3f')}")
    return meds


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("wsbench")
    p.add_argument("servers", nargs="+", help="NAME=BINARY[,ARG...]: an echo example taking --port N --quiet --stats-file F (and ARGs)")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--duration", type=float, default=5)
    p.add_argument("--connections", type=int, default=100)
    p.add_argument("--rows", default=",".join(ROWS), help=f"a comma list of {', '.join(ROWS)}")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--load-cpu", type=int, default=1)
    p.add_argument("--json", help="write every run and the medians here")
    p.add_argument("--verbose", action="store_true", help="print every run")
    args = p.parse_args()
    servers = [spec.split("=", 1) for spec in args.servers]
    if any(len(s) != 2 for s in servers):
        p.error("servers are NAME=BINARY")
    names = [name for name, _ in servers]
    rows = [ROWS[k] for k in args.rows.split(",")]

    results = {row["label"]: {name: [] for name in names} for row in rows}
    started = time.time()
    for rep in range(args.reps):
        for row in rows:
            # Alternate who goes first, so that neither build always follows the other.
            order = servers if rep % 2 == 0 else servers[::-1]
            for name, binary in order:
                r = run_once(args.wsbench, binary, row, args)
                results[row["label"]][name].append(r)
                if args.verbose:
                    print(f"  rep {rep + 1} {row['label']:<20} {name}: {fmt(r.get('msg_s'), ',.0f')} msg/s, "
                          f"user {fmt(r.get('user_us'), '.3f')} sys {fmt(r.get('sys_us'), '.3f')} us/msg, "
                          f"SQEs/msg {fmt(r.get('sqes'), '.3f')}, wsbench {fmt(r.get('client_cpu'), '.0%')}"
                          f"{', ' + r['error'] if 'error' in r else ''}", flush=True)
    elapsed = time.time() - started

    print(f"socket core: echo example, {args.connections} connections, binary, {args.duration:g} s x {args.reps} "
          f"(medians; server CPU {args.server_cpu}, wsbench CPU {args.load_cpu}; {elapsed / 60:.1f} min)")
    medians = {row["label"]: print_row(row, names, results[row["label"]]) for row in rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "elapsed_s": elapsed, "medians": medians, "runs": results}, f, indent=1)


if __name__ == "__main__":
    main()
