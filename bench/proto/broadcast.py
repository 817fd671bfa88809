#!/usr/bin/python3
"""Broadcast fan-out on cnetmod-demo's /broadcast (pub/sub over cores) with
wsbench's broadcast mode: one publisher at a fixed rate, N subscribers of
32-byte messages; deliveries per second, what was lost, publish-to-receipt
latency, server CPU per delivery (--server-pid) and server memory per
subscriber (RSS growth while the run holds its connections). Node's `ws`
sending to each client in turn (bench/peers/node_broadcast.js) runs the same
cases where it keeps up. Every run is bounded and on loopback.

  bench/proto/broadcast.py [--reps 3] [--duration 5] [--quick]

One server core: the server on CPU 0, wsbench on CPU 1. Two server cores:
the server on both CPUs and wsbench (two threads) beside it, so the load
generator takes part of the cores it measures. Prints a Markdown table of
medians and writes bench/results/broadcast.json.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import compare  # noqa: E402

ROOT, BUILD = compare.ROOT, compare.BUILD

CASES = [  # subscribers, server cores, publishes per second, cnetmod-demo --batch-us
    (1000, 1, 100, 0), (1000, 1, 1000, 0), (1000, 1, 3000, 0), (1000, 1, 6000, 0), (1000, 1, 9000, 0),
    (1000, 1, 1000, 2000), (1000, 1, 6000, 2000),
    (1000, 2, 1000, 0), (1000, 2, 6000, 0), (1000, 2, 9000, 0),
    (10000, 1, 100, 0), (10000, 1, 300, 0), (10000, 1, 600, 0),
    (10000, 2, 300, 0), (10000, 2, 600, 0),
]
NODE_CASES = [(1000, 1, 100, 0), (1000, 1, 170, 0), (1000, 1, 1000, 0)]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def server_for(kind, cores, batch_us):
    def cmd(port):
        if kind == "cnetmod":
            return [os.path.join(BUILD, "tools", "cnetmod-demo"), "--port", str(port), "--cores", str(cores),
                    "--batch-us", str(batch_us), "--quiet"]
        return ["node", os.path.join(ROOT, "bench", "peers", "node_broadcast.js"), str(port)]
    return cmd


def run_case(kind, subs, cores, rate, batch_us, duration):
    cpus = "0" if cores == 1 else "0,1"
    server = compare.Server(kind, cpus, server_for(kind, cores, batch_us))
    try:
        before = rss_kib(server.proc.pid)
        peak = [before]
        stop = threading.Event()

        def sample():
            while not stop.wait(0.2):
                peak[0] = max(peak[0], rss_kib(server.proc.pid))
        t = threading.Thread(target=sample)
        t.start()
        cmd = ["taskset", "-c", "1" if cores == 1 else "0,1", os.path.join(BUILD, "tools", "wsbench"),
               f"ws://127.0.0.1:{server.port}/broadcast", "-m", "broadcast", "-c", str(subs + 1), "-p", "1",
               "-r", str(rate), "-s", "32", "-d", str(duration), "-t", "1" if cores == 1 else "2", "--json", "-q",
               "--server-pid", str(server.proc.pid), "--connect-timeout", "30"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 180)
        stop.set()
        t.join()
        try:
            j = json.loads(r.stdout)
        except json.JSONDecodeError:
            return {"error": (r.stderr or r.stdout).strip()[:200]}
        j["rss_bytes_per_subscriber"] = (peak[0] - before) * 1024 / subs
        return j
    finally:
        server.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.duration = 1, 2
    subprocess.run(["ninja", "-C", BUILD, "tools/cnetmod-demo", "tools/wsbench"], check=True,
                   stdout=subprocess.DEVNULL)
    results = {}
    runs = [("cnetmod", c) for c in CASES] + [("node-ws", c) for c in NODE_CASES]
    for rep in range(args.reps):
        random.shuffle(runs)
        for kind, (subs, cores, rate, batch_us) in runs:
            key = f"{kind}|{subs}|{cores}|{rate}|{batch_us}"
            r = run_case(kind, subs, cores, rate, batch_us, args.duration)
            results.setdefault(key, []).append(r)
            if "error" in r:
                print(f"  {key}: {r['error']}", file=sys.stderr)
            time.sleep(0.5)
    os.makedirs(compare.RESULTS, exist_ok=True)
    with open(os.path.join(compare.RESULTS, "broadcast.json"), "w") as f:
        json.dump(results, f, indent=1)
    print("| server | subscribers | server cores | publishes/s | batch | deliveries/s | lost | p50 | p99 | "
          "server µs/delivery | RSS B/subscriber |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for kind, cases in (("cnetmod", CASES), ("node-ws", NODE_CASES)):
        for subs, cores, rate, batch_us in cases:
            rs = results[f"{kind}|{subs}|{cores}|{rate}|{batch_us}"]
            lost = [r.get("lost", 0) + r.get("errors", 0) for r in rs if "error" not in r]

            def lat(p):
                v = compare.med(rs, "latency_us", p)
                return "—" if v is None else (f"{v / 1000:.1f} ms" if v >= 1000 else f"{v:.0f} µs")
            batch = f"{batch_us / 1000:g} ms" if batch_us else "—"
            print(f"| {kind} | {subs:,} | {cores} | {rate:,} | {batch} | "
                  f"{compare.fmt_rate(compare.med(rs, 'deliveries_per_s'))} "
                  f"| {max(lost) if lost else '—'} | {lat('p50')} | {lat('p99')} | "
                  f"{compare.fmt_num(compare.med(rs, 'server_cpu_us_per_message'))} | "
                  f"{compare.fmt_num(compare.med(rs, 'rss_bytes_per_subscriber'), 0)} |")


if __name__ == "__main__":
    main()
