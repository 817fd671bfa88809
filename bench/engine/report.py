#!/usr/bin/env python3
"""Turns Google Benchmark JSON from engine_tcp_echo_bench or
engine_send_zc_bench into markdown tables of medians.

  report.py echo echo.json    # cnetmod vs epoll, with ratios
  report.py zc zc.json        # copied send vs SEND_ZC per size
"""
import json
import statistics
import sys
from collections import defaultdict


def runs(path):
    with open(path) as f:
        data = json.load(f)
    grouped = defaultdict(list)
    for b in data["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        grouped[b["run_name"]].append(b)
    return grouped


def median(values):
    return statistics.median(values) if values else float("nan")


def echo(path):
    grouped = runs(path)
    rows = {}
    for name, bs in grouped.items():
        # BM_echo/<kind>/<size>/<inflight>/<connections>/...
        parts = name.split("/")
        kind, size, inflight, conns, rate = (int(p) for p in parts[1:6])
        rows[(kind, size, inflight, conns, rate)] = {
            key: median([b[key] for b in bs])
            for key in ("msgs_per_s", "server_cpu_pct", "load_cpu_pct", "server_us_per_msg")
        } | {"n": len(bs)}
    print("| size | load | conns | cnetmod msg/s | epoll msg/s | ratio | cnetmod server µs/msg | epoll server µs/msg | CPU ratio (epoll/cnetmod) | server CPU % (cnetmod / epoll) | load CPU % (cnetmod / epoll) | runs |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (kind, size, inflight, conns, rate), u in sorted(rows.items(), key=lambda kv: (kv[0][4], kv[0][1], kv[0][2])):
        if kind != 0 or (1, size, inflight, conns, rate) not in rows:
            continue
        e = rows[(1, size, inflight, conns, rate)]
        load = f"fixed {rate // 1000}k msg/s" if rate else f"{inflight} in flight"
        print(f"| {size} B | {load} | {conns} | {u['msgs_per_s']/1e3:.0f}k | {e['msgs_per_s']/1e3:.0f}k | "
              f"**{u['msgs_per_s']/e['msgs_per_s']:.2f}×** | {u['server_us_per_msg']:.2f} | {e['server_us_per_msg']:.2f} | "
              f"{e['server_us_per_msg']/u['server_us_per_msg']:.2f}× | {u['server_cpu_pct']:.0f} / {e['server_cpu_pct']:.0f} | "
              f"{u['load_cpu_pct']:.0f} / {e['load_cpu_pct']:.0f} | {u['n']} |")


def zc(path):
    grouped = runs(path)
    rows = {}
    for name, bs in grouped.items():
        parts = name.split("/")
        size, mode = int(parts[1]), int(parts[2])
        rows[(size, mode)] = {k: median([b[k] for b in bs]) for k in ("MB_per_s", "sender_ns_per_KiB")} | {"n": len(bs)}
    print("| message | copied send MB/s | SEND_ZC MB/s | throughput ratio (ZC/copy) | copied ns/KiB (sender CPU) | SEND_ZC ns/KiB | runs |")
    print("|---|---|---|---|---|---|---|")
    for size in sorted({s for s, _ in rows}):
        c, z = rows.get((size, 0)), rows.get((size, 1))
        if not c or not z:
            continue
        label = f"{size // 1024} KiB" if size < 1 << 20 else f"{size >> 20} MiB"
        print(f"| {label} | {c['MB_per_s']:.0f} | {z['MB_per_s']:.0f} | {z['MB_per_s']/c['MB_per_s']:.2f}× | "
              f"{c['sender_ns_per_KiB']:.0f} | {z['sender_ns_per_KiB']:.0f} | {c['n']} |")


if __name__ == "__main__":
    {"echo": echo, "zc": zc}[sys.argv[1]](sys.argv[2])
