#!/usr/bin/python3
"""What the metrics cost a server: the demo (one core, CPU 0) echoing 32 B
binary messages on /ws at a fixed rate from wsbench (CPU 1, 100
connections, open loop), once with nobody reading /metrics and once with a
scraper fetching it every --interval seconds (0.1 s by default: 150 times
Prometheus's default 15 s), in turns, so that the machine's noise falls on
both alike. Per run, wsbench's --server-pid figures: the server's user and
system CPU per message. Then the cost of one scrape: --scrapes sequential
GETs of /metrics with no other load, the server's CPU (/proc) over them.

  bench/proto/metrics_scrape.py [--reps 5] [--duration 8] [--rate 20000] [--interval 0.1]
                                [--scrapes 2000] [--json OUT]

Loopback only; every run is bounded in time.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import compare  # noqa: E402

BUILD = compare.BUILD
DEMO = os.path.join(BUILD, "tools", "cnetmod-demo")
WSBENCH = os.path.join(BUILD, "tools", "wsbench")
TICK = os.sysconf("SC_CLK_TCK")


def start_demo():
    return compare.Server("cnetmod-demo", 0, lambda port: [DEMO, "--port", str(port), "--cores", "1", "--quiet",
                                                           "--address", "127.0.0.1"])


def get_metrics(port):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    if not data.startswith(b"HTTP/1.1 200"):
        raise RuntimeError("bad /metrics answer")
    return len(data)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def scraper(port, interval, stop, count):
    while not stop.wait(interval):
        get_metrics(port)
        count[0] += 1


def run_once(args, scraped):
    demo = start_demo()
    port = demo.port
    try:
        stop, count = threading.Event(), [0]
        t = None
        if scraped:
            t = threading.Thread(target=scraper, args=(port, args.interval, stop, count))
            t.start()
        r = subprocess.run(["taskset", "-c", "1", WSBENCH, f"ws://127.0.0.1:{port}/ws", "--json", "--quiet",
                            "--binary", "-c", "100", "-s", "32", "-r", str(args.rate), "-d", str(args.duration),
                            "--server-pid", str(demo.proc.pid)],
                           capture_output=True, text=True, timeout=args.duration + 60)
        stop.set()
        if t:
            t.join()
        j = json.loads(r.stdout)
        j["scrapes"] = count[0]
        return j
    finally:
        demo.stop()


def scrape_cost(args):
    demo = start_demo()
    port, pid = demo.port, demo.proc.pid
    try:
        get_metrics(port)
        size = get_metrics(port)
        c0, t0 = cpu_seconds(pid), time.monotonic()
        for _ in range(args.scrapes):
            get_metrics(port)
        c1, t1 = cpu_seconds(pid), time.monotonic()
        return {"scrapes": args.scrapes, "answer_bytes": size, "server_cpu_us_per_scrape": (c1 - c0) * 1e6 / args.scrapes,
                "wall_us_per_scrape": (t1 - t0) * 1e6 / args.scrapes}
    finally:
        demo.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--duration", type=float, default=8)
    p.add_argument("--rate", type=int, default=20000)
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--scrapes", type=int, default=2000)
    p.add_argument("--json")
    args = p.parse_args()
    runs = {"none": [], "scraped": []}
    for _ in range(args.reps):
        for name in runs:
            runs[name].append(run_once(args, name == "scraped"))
    cost = scrape_cost(args)

    def med(name, key):
        values = [r[key] for r in runs[name] if r.get(key) is not None]
        return statistics.median(values) if values else float("nan")

    print(f"demo /ws echo, 32 B, {args.rate:,} msg/s, 100 connections, {args.duration:g} s x {args.reps} "
          f"(medians; server CPU 0, wsbench CPU 1); scraper every {args.interval:g} s")
    print(f"{'':10} {'msg/s':>9} {'user us/msg':>12} {'sys us/msg':>11} {'total':>7} {'scrapes':>8}")
    for name in runs:
        print(f"{name:10} {med(name, 'messages_per_s'):9,.0f} {med(name, 'server_user_us_per_message'):12.3f} "
              f"{med(name, 'server_system_us_per_message'):11.3f} {med(name, 'server_cpu_us_per_message'):7.3f} "
              f"{med(name, 'scrapes'):8.0f}")
    for key, label in [("server_user_us_per_message", "user"), ("server_cpu_us_per_message", "total")]:
        print(f"scraped/none {label}: {med('scraped', key) / med('none', key):.3f}")
    print(f"one scrape (1 core, {cost['answer_bytes']} B answer): {cost['server_cpu_us_per_scrape']:.1f} µs of server "
          f"CPU, {cost['wall_us_per_scrape']:.1f} µs wall ({cost['scrapes']} in a row)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "runs": runs, "scrape": cost}, f, indent=1)


if __name__ == "__main__":
    main()
