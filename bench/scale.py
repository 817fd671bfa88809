#!/usr/bin/python3
"""Echo throughput of cnetmod's echo example on 1..N server cores: the
server runs on cores 0..n-1 (one io_uring loop per core, SO_REUSEPORT
listeners), wsbench on the cores after them with as many threads. Bounded
runs on loopback; medians of --reps.

  bench/scale.py                  # N = the machine's cores / 2 (the rest load the server)
  bench/scale.py --cores 8        # on a larger machine

Writes bench/results/scale.json, scale.png (gnuplot) and a table between the
markers in bench/RESULTS.md. On this project's 2-core machine only n = 1 has
a core of its own for the load; the script is there for larger machines.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
RESULTS = os.path.join(ROOT, "bench", "results")
BEGIN, END = "<!-- scale:begin -->", "<!-- scale:end -->"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_once(n, load_cores, args):
    port = free_port()
    server = subprocess.Popen(["taskset", "-c", f"0-{n - 1}", os.path.join(BUILD, "examples", "echo_server"),
                               "--port", str(port), "--quiet", "--cores", str(n)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        cpus = ",".join(str(c) for c in load_cores)
        r = subprocess.run(["taskset", "-c", cpus, os.path.join(BUILD, "tools", "wsbench"),
                            f"ws://127.0.0.1:{port}/ws", "-c", str(args.connections), "-i", str(args.inflight),
                            "-s", str(args.size), "-t", str(len(load_cores)), "-d", str(args.duration), "--json", "-q",
                            "--binary", "--server-pid", str(server.pid)],
                           capture_output=True, text=True, timeout=args.duration + 120)
        return json.loads(r.stdout)
    finally:
        server.terminate()
        server.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cpu_count = len(os.sched_getaffinity(0))
    ap.add_argument("--cores", type=int, default=max(1, cpu_count // 2), help="largest server core count")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--connections", type=int, default=200)
    ap.add_argument("--inflight", type=int, default=16)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--write", default=os.path.join(ROOT, "bench", "RESULTS.md"))
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(["ninja", "-C", BUILD, "examples/echo_server", "tools/wsbench"], check=True,
                       stdout=subprocess.DEVNULL)

    rows = []
    for n in range(1, args.cores + 1):
        load = list(range(n, cpu_count)) or [cpu_count - 1]
        load = load[:max(1, min(len(load), n))]  # as many load cores as server cores, where there are enough
        runs = [run_once(n, load, args) for _ in range(args.reps)]
        rate = statistics.median(r["messages_per_s"] for r in runs)
        cpu = statistics.median(r["server_cpu_us_per_message"] or 0 for r in runs)
        sat = any(r["client_saturated"] for r in runs)
        rows.append({"cores": n, "load_cores": len(load), "messages_per_s": rate, "per_core": rate / n,
                     "server_cpu_us_per_message": cpu, "load_saturated": sat, "errors": sum(r["errors"] for r in runs)})
        print(f"{n} server cores, {len(load)} load: {rate:,.0f} msg/s ({rate / n:,.0f} per core), "
              f"server {cpu:.2f} µs/msg{' (load saturated)' if sat else ''}", flush=True)

    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "scale.json"), "w") as f:
        json.dump({"args": vars(args), "rows": rows}, f, indent=1)
    data = os.path.join(RESULTS, "scale.dat")
    with open(data, "w") as f:
        for r in rows:
            f.write(f"{r['cores']} {r['messages_per_s']} {r['per_core']}\n")
    script = f"""
set terminal pngcairo size 900,500
set output '{os.path.join(RESULTS, "scale.png")}'
set title 'cnetmod echo: throughput by server cores ({args.size} B, {args.connections} connections, {args.inflight} in flight)'
set xlabel 'server cores'
set ylabel 'messages/s'
set y2label 'messages/s per core'
set ytics nomirror
set y2tics
set xtics 1
set grid
plot '{data}' using 1:2 with linespoints title 'total' axes x1y1, '' using 1:3 with linespoints title 'per core' axes x1y2
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=False)

    lines = [BEGIN, "", f"Generated by `bench/scale.py --cores {args.cores}` ({args.size} B, {args.connections} "
             f"connections, {args.inflight} in flight, {args.reps} reps of {args.duration:g} s, medians; "
             f"{time.strftime('%Y-%m-%d')}).", "",
             "| server cores | load cores | msg/s | per core | server CPU µs/msg | load saturated | errors |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['cores']} | {r['load_cores']} | {r['messages_per_s']:,.0f} | {r['per_core']:,.0f} | "
                     f"{r['server_cpu_us_per_message']:.2f} | {'yes' if r['load_saturated'] else 'no'} | {r['errors']} |")
    lines += ["", "![scaling](results/scale.png)", "", END]
    table = "\n".join(lines)
    print(table)
    if args.write:
        with open(args.write) as f:
            text = f.read()
        if BEGIN in text and END in text:
            text = text[:text.index(BEGIN)] + table + text[text.index(END) + len(END):]
        else:
            text += "\n" + table + "\n"
        with open(args.write, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
