#!/usr/bin/python3
"""Echo throughput and server CPU per message with permessage-deflate and
TLS on and off: cnetmod's echo example against Node's `ws` (zlib, context
takeover) with the same settings, each server pinned to core 0 and wsbench
to core 1, loopback only, every run bounded by --duration.

  bench/proto/tls_deflate.py [--reps 3] [--duration 3] [--quick]

Variants: ws, ws + deflate, wss, wss + deflate (a throwaway certificate from
tests/support/make_certs.sh). wsbench's payload is a 26-byte pattern
repeated, so compressed messages are small: this measures the cost of
compressing, not the gain on a slow link. Prints a Markdown table of
medians and writes bench/results/tls_deflate.json.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import compare  # noqa: E402  (Server, med, formatting)

ROOT = compare.ROOT
BUILD = compare.BUILD
VARIANTS = [("ws", False, False), ("ws + deflate", True, False), ("wss", False, True), ("wss + deflate", True, True)]
CASES = [
    {"size": 32, "connections": 100, "inflight": 16},
    {"size": 1024, "connections": 100, "inflight": 16},
    {"size": 16384, "connections": 100, "inflight": 16},
    {"size": 1024, "connections": 100, "inflight": 1},
]


def server_command(kind, deflate, certs):
    def cmd(port):
        if kind == "cnetmod":
            c = [os.path.join(BUILD, "examples", "echo_server"), "--port", str(port), "--quiet"]
        else:
            c = ["node", os.path.join(ROOT, "bench", "peers", "node_echo.js"), str(port)]
        if deflate:
            c.append("--deflate")
        if certs:
            c += ["--cert", f"{certs}/server.pem", "--key", f"{certs}/server.key"]
        return c
    return cmd


def run_wsbench(server, case, duration, deflate, certs):
    scheme, host = ("wss", "localhost") if certs else ("ws", "127.0.0.1")
    cmd = ["taskset", "-c", "1", os.path.join(BUILD, "tools", "wsbench"), f"{scheme}://{host}:{server.port}/ws",
           "-c", str(case["connections"]), "-s", str(case["size"]), "-d", str(duration), "-i", str(case["inflight"]),
           "--json", "-q", "--server-pid", str(server.proc.pid), "--binary"]
    if deflate:
        cmd.append("--deflate")
    if certs:
        cmd += ["--ca", f"{certs}/ca.pem"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
    try:
        return json.loads(r.stdout)
    except json.JSONDecodeError:
        return {"error": (r.stderr or r.stdout).strip()[:200]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=3)
    ap.add_argument("--quick", action="store_true", help="one repetition of 1 s runs")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.duration = 1, 1
    subprocess.run(["ninja", "-C", BUILD, "examples/echo_server", "tools/wsbench"], check=True,
                   stdout=subprocess.DEVNULL)
    certs = tempfile.mkdtemp(prefix="cnetmod-bench-certs-")
    subprocess.run(["sh", os.path.join(ROOT, "tests", "support", "make_certs.sh"), certs], check=True,
                   stdout=subprocess.DEVNULL)
    results = {}
    try:
        for rep in range(args.reps):
            for case in CASES:
                runs = [(k, v) for k in ("cnetmod", "node-ws") for v in VARIANTS]
                random.shuffle(runs)
                for kind, (vname, deflate, tls) in runs:
                    c = certs if tls else None
                    server = compare.Server(kind, 0, server_command(kind, deflate, c))
                    try:
                        r = run_wsbench(server, case, args.duration, deflate, c)
                    finally:
                        server.stop()
                    key = f"{compare.case_name(case)}|{kind}|{vname}"
                    results.setdefault(key, []).append(r)
                    if "error" in r:
                        print(f"  {key}: {r['error']}", file=sys.stderr)
    finally:
        shutil.rmtree(certs, ignore_errors=True)
    os.makedirs(compare.RESULTS, exist_ok=True)
    with open(os.path.join(compare.RESULTS, "tls_deflate.json"), "w") as f:
        json.dump(results, f, indent=1)
    print("| case | variant | cnetmod msg/s | Node msg/s | ratio | cnetmod server µs/msg | Node server µs/msg |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for case in CASES:
        for vname, _, _ in VARIANTS:
            ours = results[f"{compare.case_name(case)}|cnetmod|{vname}"]
            node = results[f"{compare.case_name(case)}|node-ws|{vname}"]
            a, b = compare.med(ours, "messages_per_s"), compare.med(node, "messages_per_s")
            print(f"| {compare.case_name(case)} | {vname} | {compare.fmt_rate(a)} | {compare.fmt_rate(b)} | "
                  f"{compare.ratio(a, b)} | {compare.fmt_num(compare.med(ours, 'server_cpu_us_per_message'))} | "
                  f"{compare.fmt_num(compare.med(node, 'server_cpu_us_per_message'))} |")


if __name__ == "__main__":
    main()
