#!/usr/bin/python3
"""cnetmod's echo example against Node's `ws` and a Boost.Beast echo server,
with identical wsbench settings, each server pinned to one core and wsbench
to another. Every run is bounded (--duration seconds) and targets loopback.

  bench/compare.py                 # build, run everything, update bench/RESULTS.md
  bench/compare.py --quick         # one repetition, 1 s runs, fewer cases (a smoke test)

Closed loop: sizes 32 B, 1 KiB, 64 KiB x 1, 100, 1000 connections x 1 and 16
messages in flight; then a fixed rate (50,000 msg/s, 32 B, 100 connections)
for server CPU per message and latency. Each case runs --reps times (servers
in a shuffled order each repetition); the tables give medians. Writes
bench/results/compare.json, compare.png (gnuplot) and the tables between the
markers in bench/RESULTS.md.
"""
import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
RESULTS = os.path.join(ROOT, "bench", "results")
BEGIN, END = "<!-- compare:begin -->", "<!-- compare:end -->"


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def build():
    sh("meson", "configure", BUILD, "-Dbenchmarks=true", stdout=subprocess.DEVNULL)
    sh("ninja", "-C", BUILD, "examples/echo_server", "tools/wsbench", "bench/beast_echo", stdout=subprocess.DEVNULL)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SERVERS = {
    "cnetmod": lambda port: [os.path.join(BUILD, "examples", "echo_server"), "--port", str(port), "--quiet"],
    "node-ws": lambda port: ["node", os.path.join(ROOT, "bench", "peers", "node_echo.js"), str(port)],
    "beast": lambda port: [os.path.join(BUILD, "bench", "beast_echo"), str(port)],
}


class Server:
    """A server on a free loopback port, pinned to `cpus` (a taskset list);
    `command(port)` gives its command line. Returns once it accepts."""

    def __init__(self, name, cpus, command=None):
        self.port = free_port()
        env = dict(os.environ, NODE_PATH="/usr/share/nodejs")
        cmd = (command or SERVERS[name])(self.port)
        self.proc = subprocess.Popen(["taskset", "-c", str(cpus), *cmd], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{name} did not start")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wsbench(server, core, case, duration):
    cmd = ["taskset", "-c", str(core), os.path.join(BUILD, "tools", "wsbench"), f"ws://127.0.0.1:{server.port}/ws",
           "-c", str(case["connections"]), "-s", str(case["size"]), "-d", str(duration), "--json", "-q",
           "--server-pid", str(server.proc.pid), "--binary"]
    if case.get("rate"):
        cmd += ["-r", str(case["rate"])]
    else:
        cmd += ["-i", str(case["inflight"])]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
    try:
        return json.loads(r.stdout)
    except json.JSONDecodeError:
        return {"error": (r.stderr or r.stdout).strip()[:200]}


def case_name(c):
    if c.get("rate"):
        return f"{c['size']} B, {c['connections']} conn, {c['rate']:,} msg/s"
    size = f"{c['size'] // 1024} KiB" if c["size"] >= 1024 else f"{c['size']} B"
    return f"{size}, {c['connections']} conn, {c['inflight']} in flight"


def med(runs, key, sub=None):
    vals = []
    for r in runs:
        v = r.get(key)
        if sub and isinstance(v, dict):
            v = v.get(sub)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            vals.append(v)
    return statistics.median(vals) if vals else None


def fmt_rate(v):
    return "—" if v is None else f"{v / 1000:,.1f}k"


def fmt_num(v, digits=2):
    return "—" if v is None else f"{v:.{digits}f}"


def ratio(a, b):
    return "—" if a is None or not b else f"{a / b:.2f}×"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=2.0)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--server-core", type=int, default=0)
    ap.add_argument("--load-core", type=int, default=1)
    ap.add_argument("--servers", default="cnetmod,node-ws,beast")
    ap.add_argument("--write", default=os.path.join(ROOT, "bench", "RESULTS.md"))
    ap.add_argument("--from-json", help="write the tables and plot from a saved compare.json, without running")
    args = ap.parse_args()

    if args.from_json:
        with open(args.from_json) as f:
            saved = json.load(f)
        write_outputs(saved["args"], saved["results"], saved.get("elapsed", 0), args.write)
        return
    if not args.no_build:
        build()
    servers = args.servers.split(",")
    sizes, conns, inflights = [32, 1024, 65536], [1, 100, 1000], [1, 16]
    if args.quick:
        args.reps, args.duration = 1, 1.0
        sizes, conns = [32, 1024], [1, 100]
    cases = [{"size": s, "connections": c, "inflight": i} for s in sizes for c in conns for i in inflights]
    cases.append({"size": 32, "connections": 100, "rate": 50000})

    results = {name: {case_name(c): [] for c in cases} for name in servers}
    started = time.time()
    for rep in range(args.reps):
        order = servers[:]
        random.shuffle(order)
        for name in order:
            server = Server(name, args.server_core)
            try:
                for c in cases:
                    r = wsbench(server, args.load_core, c, args.duration)
                    results[name][case_name(c)].append(r)
                    print(f"rep {rep + 1}/{args.reps} {name:8} {case_name(c):36} "
                          f"{fmt_rate(r.get('messages_per_s')):>9} msg/s  "
                          f"server {fmt_num(r.get('server_cpu_us_per_message'))} µs/msg  "
                          f"errors {r.get('errors', r.get('error'))}", flush=True)
            finally:
                server.stop()
    elapsed = time.time() - started

    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "compare.json"), "w") as f:
        json.dump({"args": vars(args), "results": results, "elapsed": elapsed}, f, indent=1)
    write_outputs(vars(args), results, elapsed, args.write)


def stalled(runs):
    # Nothing (or next to nothing) came back within the measured window.
    rate = med(runs, "messages_per_s")
    return rate is None or rate < 100


def write_outputs(args, results, elapsed, write):
    servers = list(results.keys())
    names = list(next(iter(results.values())).keys())
    closed = [n for n in names if "msg/s" not in n]
    fixed = [n for n in names if "msg/s" in n]

    # ---- tables ----
    peers = [s for s in servers if s != "cnetmod"]
    lines = [BEGIN, "",
             f"Generated by `bench/compare.py` (reps {args['reps']}, {args['duration']:g} s per run, "
             f"{time.strftime('%Y-%m-%d')}, {elapsed / 60:.0f} min). Server on core {args['server_core']}, "
             f"wsbench on core {args['load_core']}; binary messages, every echo checked. Medians of the repetitions. "
             "`stalled`: the server answered (next to) nothing within the measured window (the drain after it "
             "still checks every message); no ratio is given then.",
             "",
             "Throughput (messages per second) and cnetmod's ratio to each peer; a `*` marks medians where "
             "wsbench itself was at ≥ 95 % of its core (the figure is then the load generator's limit, and the "
             "server CPU columns decide).", ""]
    head = "| case | " + " | ".join(servers) + " | " + " | ".join(f"cnetmod / {p}" for p in peers) + " |"
    lines += [head, "|" + "---|" * (1 + len(servers) + len(peers))]
    for n in closed:
        row = [n]
        rates = {}
        for s in servers:
            runs = results[s][n]
            rates[s] = None if stalled(runs) else med(runs, "messages_per_s")
            sat = sum(1 for r in runs if r.get("client_saturated")) * 2 > len(runs)
            errs = sum(r.get("errors", 1) if isinstance(r.get("errors", 1), int) else 1 for r in runs)
            text = "stalled" if rates[s] is None else fmt_rate(rates[s]) + (" *" if sat else "")
            row.append(text + (f" ({errs} err)" if errs else ""))
        row += [ratio(rates["cnetmod"], rates[p]) for p in peers]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Server CPU per message (µs, from `--server-pid`: the server's user + system time over the "
              "messages answered) and cnetmod's ratio (lower is better for cnetmod below 1).", ""]
    lines += ["| case | " + " | ".join(servers) + " | " + " | ".join(f"cnetmod / {p}" for p in peers) + " |",
              "|" + "---|" * (1 + len(servers) + len(peers))]
    for n in closed:
        cpu = {s: None if stalled(results[s][n]) else med(results[s][n], "server_cpu_us_per_message")
               for s in servers}
        lines.append("| " + " | ".join([n] + [fmt_num(cpu[s]) for s in servers] +
                                      [ratio(cpu["cnetmod"], cpu[p]) for p in peers]) + " |")
    lines += ["", "At a fixed rate every server sustains (open loop; latency timed from each message's intended "
              "send time):", "",
              "| case | server | msg/s | server CPU µs/msg | p50 µs | p99 µs | p99.9 µs | errors |",
              "|---|---|---|---|---|---|---|---|"]
    for n in fixed:
        for s in servers:
            runs = results[s][n]
            lines.append(f"| {n} | {s} | {fmt_rate(med(runs, 'messages_per_s'))} | "
                         f"{fmt_num(med(runs, 'server_cpu_us_per_message'))} | "
                         f"{fmt_num(med(runs, 'latency_us', 'p50'), 0)} | {fmt_num(med(runs, 'latency_us', 'p99'), 0)} | "
                         f"{fmt_num(med(runs, 'latency_us', 'p999'), 0)} | "
                         f"{sum(r.get('errors', 0) or 0 for r in runs if isinstance(r.get('errors'), int))} |")
    lines += ["", "![throughput](results/compare.png)", "", END]
    table = "\n".join(lines)
    print(table)

    # ---- plot ----
    data = os.path.join(RESULTS, "compare.dat")
    with open(data, "w") as f:
        f.write("case " + " ".join(servers) + "\n")
        for n in closed:
            label = n.replace(" in flight", "").replace(" conn", "c").replace(", ", "/").replace(" ", "")
            f.write(f'"{label}" ' + " ".join(str(med(results[s][n], "messages_per_s") or 0) for s in servers) + "\n")
    script = f"""
set terminal pngcairo size 1400,600 noenhanced
set output '{os.path.join(RESULTS, "compare.png")}'
set title 'WebSocket echo, messages per second (server on one core, wsbench on another; medians)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set ylabel 'messages/s'
set xtics rotate by -40 font ',9'
set key top right
set grid ytics
plot for [i=2:{len(servers) + 1}] '{data}' using i:xtic(1) title columnheader(i)
"""
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"compare: no plot ({e})", file=sys.stderr)

    if write:
        with open(write) as f:
            text = f.read()
        if BEGIN in text and END in text:
            text = text[:text.index(BEGIN)] + table + text[text.index(END) + len(END):]
        else:
            text += "\n" + table + "\n"
        with open(write, "w") as f:
            f.write(text)
        print(f"compare: tables written to {write}")


if __name__ == "__main__":
    main()
