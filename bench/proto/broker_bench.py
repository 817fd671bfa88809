#!/usr/bin/python3
"""Pub/sub across two servers through Redis: two cnetmod-demo processes of
one core each (A on CPU 0, B on CPU 1) with --broker naming one
redis-server (Debian's, started here without persistence), and wsbench's
broadcast mode with its publisher on A (--publish-url) and its receivers on
B; the same run with the publisher on B is the same-server baseline. Per
run: deliveries per second, lost, publish-to-receipt latency (p50/p99),
Redis's CPU per publish (its main thread, INFO cpu, less its idle rate), the PUBLISH commands Redis executed per
publish (INFO commandstats) and the messages it pushed per publish
(INFO stats' output bytes over the size of one pushed message). Every run
is bounded in time and on loopback.

  bench/proto/broker_bench.py [--reps 3] [--duration 5] [--quick]

Prints a Markdown table of medians and writes bench/results/broker.json.
"""
import argparse
import json
import os
import random
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import compare  # noqa: E402

ROOT, BUILD = compare.ROOT, compare.BUILD
CASES = [(1000, 1000), (1000, 100), (100, 5000)]  # receivers on B, publishes per second
SIZE = 32
CHANNEL = "cnetmod:broadcast"
ENVELOPE = 11  # tag, origin id, opcode


def wait_port(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing on port {port}")


def redis_cpu_seconds(port):
    """Redis's own account of its main thread's CPU time (INFO cpu), finer than /proc's ticks."""
    info = redis_info(port, "cpu")
    return float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])


def redis_info(port, section):
    out = subprocess.run(["redis-cli", "-p", str(port), "INFO", section], capture_output=True, text=True,
                         timeout=5).stdout
    info = {}
    for line in out.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            info[k] = v.strip()
    return info


def publish_calls(port):
    stat = redis_info(port, "commandstats").get("cmdstat_publish", "calls=0")
    return int(stat.split(",")[0].split("=")[1])


def pushed_message_bytes():
    payload = ENVELOPE + SIZE
    return len(f"*3\r\n$7\r\nmessage\r\n${len(CHANNEL)}\r\n{CHANNEL}\r\n${payload}\r\n") + payload + 2


def run_case(redis, a, b, receivers, rate, cross, duration):
    pub_port = a["port"] if cross else b["port"]
    calls0, out0 = publish_calls(redis["port"]), int(redis_info(redis["port"], "stats")["total_net_output_bytes"])
    cpu0, t0 = redis_cpu_seconds(redis["port"]), time.monotonic()
    cmd = [os.path.join(BUILD, "tools", "wsbench"), f"ws://127.0.0.1:{b['port']}/broadcast",
           "--publish-url", f"ws://127.0.0.1:{pub_port}/broadcast", "-m", "broadcast", "-c", str(receivers + 1),
           "-p", "1", "-r", str(rate), "-s", str(SIZE), "-d", str(duration), "-t", "1", "--json", "-q",
           "--server-pid", str(b["proc"].pid), "--connect-timeout", "30"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
    cpu1, t1 = redis_cpu_seconds(redis["port"]), time.monotonic()
    calls1, out1 = publish_calls(redis["port"]), int(redis_info(redis["port"], "stats")["total_net_output_bytes"])
    try:
        j = json.loads(r.stdout)
    except json.JSONDecodeError:
        return {"error": (r.stderr or r.stdout).strip()[:200]}
    # Every publish the load made, during the measured window and the ramp around it.
    publishes = max(calls1 - calls0, 1)
    j["redis_publish_calls"] = calls1 - calls0
    j["publish_calls_per_publish"] = (calls1 - calls0) / max(j.get("sent", 0), 1)
    # Less what Redis spends anyway (its timers, the bridges' PINGs), measured idle before the runs.
    j["redis_cpu_us_per_publish"] = (cpu1 - cpu0 - redis["idle_cpu_per_s"] * (t1 - t0)) * 1e6 / publishes
    # Output bytes: pushed messages, plus ":N\r\n" per PUBLISH and the PINGs' replies (small).
    j["redis_messages_per_publish"] = (out1 - out0 - 4 * publishes) / pushed_message_bytes() / publishes
    return j


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
    redis = {"port": compare.free_port()}
    redis["proc"] = subprocess.Popen(["redis-server", "--port", str(redis["port"]), "--bind", "127.0.0.1", "--save",
                                      "", "--appendonly", "no", "--loglevel", "warning"], stdout=subprocess.DEVNULL)
    servers = []
    try:
        wait_port(redis["port"])
        for cpu in (0, 1):
            port = compare.free_port()
            proc = subprocess.Popen(["taskset", "-c", str(cpu), os.path.join(BUILD, "tools", "cnetmod-demo"),
                                     "--port", str(port), "--cores", "1", "--quiet", "--broker",
                                     f"redis://127.0.0.1:{redis['port']}"], stdout=subprocess.DEVNULL)
            servers.append({"port": port, "proc": proc})
            wait_port(port)
        a, b = servers
        c0, t0 = redis_cpu_seconds(redis["port"]), time.monotonic()
        time.sleep(3)
        redis["idle_cpu_per_s"] = (redis_cpu_seconds(redis["port"]) - c0) / (time.monotonic() - t0)
        print(f"Redis idle (two bridges connected): {redis['idle_cpu_per_s'] * 1e3:.1f} ms CPU per second",
              file=sys.stderr)
        results = {}
        runs = [(c, cross) for c in CASES for cross in (False, True)]
        for _ in range(args.reps):
            random.shuffle(runs)
            for (receivers, rate), cross in runs:
                key = f"{receivers}|{rate}|{'cross' if cross else 'same'}"
                r = run_case(redis, a, b, receivers, rate, cross, args.duration)
                results.setdefault(key, []).append(r)
                if "error" in r:
                    print(f"  {key}: {r['error']}", file=sys.stderr)
                time.sleep(0.5)
    finally:
        for s in servers:
            s["proc"].terminate()
            s["proc"].wait()
        redis["proc"].kill()
        redis["proc"].wait()
    os.makedirs(compare.RESULTS, exist_ok=True)
    with open(os.path.join(compare.RESULTS, "broker.json"), "w") as f:
        json.dump(results, f, indent=1)
    print("| receivers on B | publishes/s | publisher on | deliveries/s | lost | p50 | p99 | Redis µs/publish | "
          "PUBLISH per publish | messages pushed per publish | wsbench CPU |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for receivers, rate in CASES:
        for cross in (False, True):
            rs = results[f"{receivers}|{rate}|{'cross' if cross else 'same'}"]
            ok = [r for r in rs if "error" not in r]
            lost = [r.get("lost", 0) + r.get("errors", 0) for r in ok]

            def lat(p):
                v = compare.med(rs, "latency_us", p)
                return "—" if v is None else (f"{v / 1000:.2f} ms" if v >= 1000 else f"{v:.0f} µs")

            def med(key, digits=2):
                v = compare.med(rs, key)
                return "—" if v is None else f"{v:.{digits}f}"
            cpu = compare.med(rs, "client_cpu_share")
            print(f"| {receivers:,} | {rate:,} | {'A (cross-server)' if cross else 'B (same server)'} | "
                  f"{compare.fmt_rate(compare.med(rs, 'deliveries_per_s'))} | {max(lost) if lost else '—'} | "
                  f"{lat('p50')} | {lat('p99')} | {med('redis_cpu_us_per_publish', 1)} | "
                  f"{med('publish_calls_per_publish')} | "
                  f"{med('redis_messages_per_publish')} | "
                  f"{'—' if cpu is None else f'{cpu * 100:.0f} %'} |")


if __name__ == "__main__":
    main()
