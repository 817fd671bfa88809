#!/usr/bin/python3
"""permessage-deflate with context takeover (issue 15): bytes on the wire,
server CPU per message, echo throughput and memory per idle connection, for
cnetmod's echo example beside Node's `ws` measured in the same run. Server
pinned to CPU 0, wsbench to CPU 1, loopback only, every run bounded.

  bench/proto/deflate_takeover.py [--reps 3] [--quick] [--only ratio,throughput,memory]
  bench/proto/deflate_takeover.py --tables bench/results/deflate_takeover.json   # reprint a saved run

ratio: two streams of JSON text messages, generated here with a fixed seed
(realistic variety: names, rooms, ids, timestamps, texts; no line repeats):
~100-byte chat lines and 1-4 KiB documents, sent by wsbench --payload-file
at a fixed rate (open loop, 50 connections) so that server CPU per message
compares: 3,000 msg/s in all for the chat lines and 600 for the documents
(rates Node's `ws` sustains with deflate on one core of this machine), and
the chat lines at 20,000 msg/s for cnetmod alone. The ratio depends on how
many messages a connection has sent (its window fills over the first ~300
chat lines): rows compare within a table, where every server sees the same
messages. Per variant: frame bytes
per payload byte each way (headers and masks included), the server's user
and system CPU per message, wsbench's CPU share. wsbench compresses what it
sends at level 1 (--deflate-level 1) to stay light; servers at level 6.

throughput: closed loop, 100 connections x 16 in flight, wsbench's binary
pattern payload (highly compressible) at 32 B, 1 KiB and 16 KiB: takeover,
no takeover and no deflate, Node `ws` with and without deflate beside.

memory: N connections (default 6,000, in batches of 2,000, each batch given
--settle seconds to go idle before the next) each send 3 compressible 12 KiB
messages (so that the server's receive window, up to 32 KiB, and the send
history it keeps, up to 16 KiB, are full), then stay open and silent
(wsbench --hold-idle); 3.5 s after the last batch went idle (the zlib
streams are back in the pool) the server's RSS growth per connection, minus
the same run's no-deflate baseline. Windows 9, 12, 15 with an unbounded
budget; then window 15 with the default budget (64 MiB a core): how many
connections got takeover. As a diagnostic, the RSS once more after glibc's
malloc_trim(0) is called in the server through gdb (free heap pages handed
back): the memory still in use, apart from what the allocator keeps.

Medians of --reps repetitions (orders shuffled each repetition). Prints
Markdown tables and writes bench/results/deflate_takeover.json.
"""
import argparse
import json
import os
import random
import resource
import signal
import string
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import compare  # noqa: E402  (Server, med, free_port, formatting)

ROOT = compare.ROOT
BUILD = compare.BUILD
WSBENCH = os.path.join(BUILD, "tools", "wsbench")
ECHO = os.path.join(BUILD, "examples", "echo_server")
NODE_ECHO = os.path.join(ROOT, "bench", "peers", "node_echo.js")
SERVER_CORE, LOAD_CORE = 0, 1
CHAT, DOCS = "chat lines (~100 B JSON)", "JSON documents (1-4 KiB)"

# ---------------------------------------------------------------- payloads

NAMES = ("alice bob carol dave erin frank grace heidi ivan judy mallory niaj olivia peggy rupert sybil trent "
         "victor walter yuki zoe amir bea chen dara eli fatima goran hana igor jonas kenji lena marta nikhil "
         "oskar priya quinn rosa sven tariq uma vera wei ximena yusuf").split()
ROOMS = "general random dev ops design support release music".split()
WORDS = ("the a to and I you it is that on for this we in of my ok yes no so just but not have be can do will "
         "was are with it's lol what now thanks please sure maybe later today tomorrow meeting deploy build "
         "test fix bug merge branch review PR ticket prod staging ready done broken works again why how when "
         "where here there coffee lunch nice great cool sounds good idea agree think know see look check "
         "push pull rebase release notes docs link call sync standup after before back soon afk brb "
         "anyone else getting errors on the dashboard since this morning").split()
EMOJI = ["👍", "😂", "🎉", "🙏", "🔥", "👀", "✅", ":+1:", ":tada:"]
ALNUM = string.ascii_lowercase + string.digits


def chat_lines(n, seed=15):
    """~100-byte chat events as a server would fan them out: mostly messages, some reactions and edits."""
    r = random.Random(seed)
    users = [f"{r.choice(NAMES)}{r.choice(['', '', '_', '.', '-dev'])}{r.randrange(100) if r.random() < 0.4 else ''}"
             for _ in range(300)]
    ts = 1718031234567
    out = []
    for _ in range(n):
        ts += r.randrange(150, 25000)
        room, user = r.choice(ROOMS), r.choice(users)
        ident = "".join(r.choice(ALNUM) for _ in range(8))
        kind = r.random()
        if kind < 0.82:
            words = [r.choice(WORDS) for _ in range(r.randrange(1, 6))]
            if r.random() < 0.15:
                words.append(r.choice(EMOJI))
            if r.random() < 0.05:
                words.append(f"https://git.example.com/pr/{r.randrange(1000, 9999)}")
            text = " ".join(words)
            if r.random() < 0.5:
                text = text[0].upper() + text[1:]
            ev = {"type": "msg", "room": room, "user": user, "id": ident, "ts": ts, "text": text}
        elif kind < 0.94:
            ev = {"type": "reaction", "room": room, "user": user, "target": ident, "emoji": r.choice(EMOJI), "ts": ts}
        else:
            ev = {"type": "edit", "room": room, "user": user, "id": ident, "ts": ts,
                  "text": " ".join(r.choice(WORDS) for _ in range(r.randrange(2, 6)))}
        out.append(json.dumps(ev, ensure_ascii=False, separators=(",", ":")))
    return out


def json_documents(n, seed=16):
    """1-4 KiB JSON documents (orders with a customer and line items)."""
    r = random.Random(seed)
    products = [(f"SKU-{r.randrange(10000, 99999)}",
                 " ".join(r.choice(WORDS).capitalize() for _ in range(r.randrange(2, 5))),
                 round(r.uniform(1, 300), 2), r.choice(["books", "garden", "kitchen", "toys", "audio", "tools"]))
                for _ in range(400)]
    ts = 1718031234
    out = []
    for _ in range(n):
        target = r.randrange(1024, 3900)
        ts += r.randrange(1, 120)
        name = r.choice(NAMES)
        doc = {
            "id": "ord_" + "".join(r.choice(ALNUM) for _ in range(16)),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{r.randrange(1000):03d}Z",
            "status": r.choice(["pending", "paid", "shipped", "delivered", "refunded"]),
            "customer": {"id": r.randrange(10**6, 10**7), "name": f"{name.capitalize()} {r.choice(NAMES).capitalize()}",
                         "email": f"{name}{r.randrange(1000)}@example.com",
                         "address": {"street": f"{r.randrange(1, 999)} {r.choice(WORDS).capitalize()} Street",
                                     "city": r.choice(["Lyon", "Porto", "Graz", "Turku", "Leeds", "Gdańsk"]),
                                     "zip": f"{r.randrange(10000, 99999)}", "country": r.choice(["FR", "PT", "AT",
                                                                                                 "FI", "GB", "PL"])}},
            "items": [],
            "notes": " ".join(r.choice(WORDS) for _ in range(r.randrange(0, 20))),
        }
        while True:
            sku, title, price, category = r.choice(products)
            qty = r.randrange(1, 6)
            doc["items"].append({"sku": sku, "title": title, "category": category, "qty": qty, "unit_price": price,
                                 "discount": round(r.choice([0, 0, 0, 0.05, 0.1, 0.15]) * price * qty, 2),
                                 "warehouse": r.choice(["north", "south", "east"]),
                                 "eta_days": r.randrange(1, 15)})
            text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
            if len(text.encode()) >= target:
                break
        subtotal = sum(i["qty"] * i["unit_price"] - i["discount"] for i in doc["items"])
        doc["totals"] = {"subtotal": round(subtotal, 2), "tax": round(subtotal * 0.2, 2), "currency": "EUR"}
        out.append(json.dumps(doc, ensure_ascii=False, separators=(",", ":")))
    return out


# ---------------------------------------------------------------- servers and wsbench

def server_command(kind, flags):
    def cmd(port):
        if kind == "cnetmod":
            return [ECHO, "--port", str(port), "--quiet", *flags]
        return ["node", NODE_ECHO, str(port), *flags]
    return cmd


def wsbench(server, args, timeout):
    cmd = ["taskset", "-c", str(LOAD_CORE), WSBENCH, f"ws://127.0.0.1:{server.port}/ws", "--json", "-q",
           "--server-pid", str(server.proc.pid), *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    try:
        return json.loads(r.stdout)
    except json.JSONDecodeError:
        return {"error": (r.stderr or r.stdout).strip()[:300]}


def run_cases(cases, reps, duration, label):
    """cases: name -> (kind, server flags, wsbench args). Each case a fresh server, orders shuffled per rep."""
    results = {name: [] for name in cases}
    for rep in range(reps):
        order = list(cases)
        random.shuffle(order)
        for name in order:
            kind, server_flags, args = cases[name]
            server = compare.Server(kind, SERVER_CORE, server_command(kind, server_flags))
            try:
                r = wsbench(server, [*args, "-d", str(duration)], duration + 60)
            finally:
                server.stop()
            results[name].append(r)
            print(f"{label} rep {rep + 1}/{reps} {name:58} {compare.fmt_rate(r.get('messages_per_s')):>8} msg/s  "
                  f"wire {fmt(r.get('wire_ratio_received'), 3)}  server {fmt(r.get('server_user_us_per_message'))}"
                  f"+{fmt(r.get('server_system_us_per_message'))} µs  wsbench {pct(r.get('client_cpu_share'))}  "
                  f"errors {r.get('errors', r.get('error'))}", flush=True)
    return results


def fmt(v, digits=2):
    return "—" if v is None else f"{v:.{digits}f}"


def pct(v):
    return "—" if v is None else f"{v * 100:.0f} %"


def errors(runs):
    return sum(r["errors"] if isinstance(r.get("errors"), int) else 1 for r in runs)


def share(runs):
    """wsbench's median CPU share, with a * when it was saturated in most runs (its limit, not the server's)."""
    saturated = sum(1 for r in runs if r.get("client_saturated")) * 2 > len(runs)
    return pct(compare.med(runs, "client_cpu_share")) + (" *" if saturated else "")


# ---------------------------------------------------------------- 1a: ratio and CPU at a fixed rate

# wsbench compresses its own messages at level 1 (cheap for the load generator); the server's level is its default, 6.
CLIENT_DEFLATE = ["--deflate", "--deflate-level", "1"]
NO_TAKEOVER_16 = ["--no-context-takeover", "--deflate-threshold", "16"]


def variants_fixed_rate():
    """name -> (server kind, server flags, wsbench flags, peer row for the CPU ratio); text messages."""
    node_takeover = "node-ws, takeover (perMessageDeflate defaults)"
    node_alone = "node-ws, no takeover, threshold 16"
    node_plain = "node-ws, no deflate"
    return {
        "cnetmod, takeover (default)": ("cnetmod", ["--deflate"], CLIENT_DEFLATE, node_takeover),
        "cnetmod, takeover, --deflate-level 1": ("cnetmod", ["--deflate", "--deflate-level", "1"], CLIENT_DEFLATE,
                                                 node_takeover),
        "cnetmod, no takeover (threshold 1024, default)": ("cnetmod", ["--deflate", "--no-context-takeover"],
                                                           [*CLIENT_DEFLATE, "--no-context-takeover"], node_alone),
        "cnetmod, no takeover, threshold 16": ("cnetmod", ["--deflate", *NO_TAKEOVER_16],
                                               [*CLIENT_DEFLATE, *NO_TAKEOVER_16], node_alone),
        "cnetmod, no deflate": ("cnetmod", [], [], node_plain),
        node_takeover: ("node-ws", ["--deflate"], CLIENT_DEFLATE, None),
        node_alone: ("node-ws", ["--deflate", "--deflate-threshold", "16"], [*CLIENT_DEFLATE, *NO_TAKEOVER_16], None),
        node_plain: ("node-ws", [], [], None),
    }


def fixed_rate_plan(args):
    """(stream, rate, variant names): every variant at a rate Node's `ws` sustains on one core here; cnetmod's
    also at the issue's 20,000 msg/s for the chat lines (Node falls behind there: its figures would not compare)."""
    every = list(variants_fixed_rate())
    ours = ["cnetmod, takeover (default)", "cnetmod, takeover, --deflate-level 1", "cnetmod, no takeover, threshold 16",
            "cnetmod, no deflate"]
    return [(CHAT, args.chat_rate, every), (CHAT, args.chat_high_rate, ours), (DOCS, args.doc_rate, every)]


def fixed_rate(files, args):
    out = {}
    variants = variants_fixed_rate()
    for stream, rate, names in fixed_rate_plan(args):
        cases = {name: (variants[name][0], variants[name][1],
                        [*variants[name][2], "--payload-file", files[stream], "-c", str(args.connections),
                         "-r", str(rate)]) for name in names}
        key = f"{stream}, {rate:,} msg/s"
        out[key] = {"stream": stream, "rate": rate,
                    "results": run_cases(cases, args.reps, args.duration, key)}
    return out


def behind(runs, rate):
    """The server answered under 95 % of the rate within the window: it fell behind (CPU/msg not comparable)."""
    got = compare.med(runs, "messages_per_s")
    return got is None or got < 0.95 * rate


def table_fixed_rate(data, connections):
    lines = []
    variants = variants_fixed_rate()
    for key, d in data.items():
        res = d["results"]

        def cpu(name, field="server_cpu_us_per_message"):
            return compare.med(res[name], field) if name in res else None

        def added(name, field="server_cpu_us_per_message"):
            """What deflate adds over the same server's no-deflate row (a difference of medians)."""
            plain = cpu(name.split(",")[0] + ", no deflate", field)
            return None if "no deflate" in name or plain is None or cpu(name, field) is None \
                else cpu(name, field) - plain

        lines += [f"**{key}** in all over {connections} connections (open loop), text messages:", "",
                  "| variant | msg/s | wire/payload server→client | wire/payload client→server | server user µs/msg | "
                  "server sys µs/msg | server µs/msg | vs node-ws same mode | added by deflate, user / all µs/msg | "
                  "added vs node-ws same mode (all) | wsbench CPU | p99 ms | errors |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, runs in res.items():
            peer = variants[name][3]
            comparable = peer in res and not behind(res[peer], d["rate"])
            vs = compare.ratio(cpu(name), cpu(peer)) if comparable else ""
            vs_added = compare.ratio(added(name), added(peer)) if comparable and added(peer) else ""
            extra = "" if added(name) is None else \
                f"{fmt(added(name, 'server_user_us_per_message'))} / {fmt(added(name))}"
            rate = compare.fmt_rate(compare.med(runs, "messages_per_s"))
            rate += " (behind)" if behind(runs, d["rate"]) else ""
            p99 = compare.med(runs, "latency_us", "p99")
            wire = f"{fmt(compare.med(runs, 'wire_ratio_received'), 3)} | {fmt(compare.med(runs, 'wire_ratio_sent'), 3)}"
            lines.append(
                f"| {name} | {rate} | {wire} | "
                f"{fmt(cpu(name, 'server_user_us_per_message'))} | {fmt(cpu(name, 'server_system_us_per_message'))} | "
                f"{fmt(cpu(name))} | {vs} | {extra} | {vs_added} | {share(runs)} | "
                f"{fmt(None if p99 is None else p99 / 1000, 1)} | {errors(runs)} |")
        lines.append("")
    return lines


# ---------------------------------------------------------------- 1b: closed-loop throughput

def variants_throughput():
    return {
        "cnetmod, takeover": ("cnetmod", ["--deflate"], CLIENT_DEFLATE),
        "cnetmod, no takeover": ("cnetmod", ["--deflate", "--no-context-takeover"],
                                 [*CLIENT_DEFLATE, "--no-context-takeover"]),
        "cnetmod, no deflate": ("cnetmod", [], []),
        "node-ws, takeover": ("node-ws", ["--deflate"], CLIENT_DEFLATE),
        "node-ws, no deflate": ("node-ws", [], []),
    }


def throughput(args):
    out = {}
    for size in args.sizes:
        cases = {name: (kind, sflags, [*wflags, "--binary", "-s", str(size), "-c", "100", "-i", "16"])
                 for name, (kind, sflags, wflags) in variants_throughput().items()}
        out[str(size)] = run_cases(cases, args.reps, args.closed_duration, f"{size} B")
    return out


def size_text(size):
    return f"{size // 1024} KiB" if size >= 1024 else f"{size} B"


def table_throughput(data):
    lines = ["| size | variant | msg/s | vs node-ws same mode | server user µs/msg | server sys µs/msg | "
             "wire/payload server→client | wsbench CPU | errors |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for size, res in data.items():
        for name, runs in res.items():
            rate = compare.med(runs, "messages_per_s")
            peer = "node-ws, no deflate" if "no deflate" in name else "node-ws, takeover"
            vs = compare.ratio(rate, compare.med(res[peer], "messages_per_s")) if name.startswith("cnetmod") and \
                "no takeover" not in name else ""
            lines.append(f"| {size_text(int(size))} | {name} | {compare.fmt_rate(rate)} | {vs} | "
                         f"{fmt(compare.med(runs, 'server_user_us_per_message'))} | "
                         f"{fmt(compare.med(runs, 'server_system_us_per_message'))} | "
                         f"{fmt(compare.med(runs, 'wire_ratio_received'), 3)} | {share(runs)} | {errors(runs)} |")
    return lines + [""]


# ---------------------------------------------------------------- 2: memory per idle connection

def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field}")


class holder:
    """A wsbench process whose connections, once filled, stay idle (--hold-idle) until stop()."""

    def __init__(self, port, args):
        self.proc = subprocess.Popen(["taskset", "-c", str(LOAD_CORE), WSBENCH, f"ws://127.0.0.1:{port}/ws",
                                      "--json", "-q", "--hold-idle", "600", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.idle = threading.Event()
        self.err = []
        self.out = ""
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.err.append(line.strip())
            if "holding connections idle" in line:
                self.idle.set()
        self.idle.set()  # it ended (an error): nobody waits forever

    def wait_idle(self, timeout):
        if not self.idle.wait(timeout) or self.proc.poll() is not None:
            raise RuntimeError(f"wsbench did not reach its idle hold: {' | '.join(self.err)[-300:]}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.out, _ = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.out, _ = self.proc.communicate()
        self.reader.join(5)
        try:
            return json.loads(self.out)
        except json.JSONDecodeError:
            return {"error": " | ".join(self.err)[-300:]}


def trim_heap(pid):
    """A diagnostic, not what a server does: glibc's malloc_trim(0) called in the server through gdb, which
    hands free heap pages back to the kernel; the RSS after it is the memory still in use (None without gdb)."""
    try:
        r = subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "call (int)malloc_trim(0)"],
                           capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        return None
    time.sleep(0.2)
    return status_kib(pid, "VmRSS")


def memory_case(server_flags, client_flags, n, batch, settle, fill_size=12288, fill_messages=3):
    """Server RSS over n idle connections filled in batches; returns the figures of one run."""
    server = compare.Server("cnetmod", SERVER_CORE, server_command("cnetmod", server_flags))
    holders = []
    try:
        fill = ["--binary", "-s", str(fill_size), "-i", "1"]
        # Warm-up: a few connections that talk and close, so that one-time allocations are made.
        warm = wsbench(server, [*client_flags, *fill, "-c", "4", "-n", "12"], 60)
        if warm.get("errors") != 0:
            raise RuntimeError(f"warm-up failed: {warm}")
        time.sleep(1.5)
        before = status_kib(server.proc.pid, "VmRSS")
        before_trimmed = trim_heap(server.proc.pid)
        for start in range(0, n, batch):
            b = min(batch, n - start)
            h = holder(server.port, [*client_flags, *fill, "-c", str(b), "-n", str(fill_messages * b)])
            holders.append(h)
            h.wait_idle(120)
            time.sleep(settle)  # this batch's zlib streams go back before the next batch connects
        time.sleep(max(0.0, 3.5 - settle))
        after = status_kib(server.proc.pid, "VmRSS")
        time.sleep(1.5)
        later = status_kib(server.proc.pid, "VmRSS")
        peak = status_kib(server.proc.pid, "VmHWM")
        trimmed = trim_heap(server.proc.pid)
        reports = [h.stop() for h in holders]
        holders = []
    finally:
        for h in holders:
            h.stop()
        server.stop()
    bad = [r for r in reports if r.get("errors") != 0]
    return {
        "connections": n, "batch": batch,
        "rss_before_kib": before, "rss_after_kib": after, "rss_later_kib": later, "rss_peak_kib": peak,
        "bytes_per_connection": (later - before) * 1024 / n,
        "rss_trimmed_kib": trimmed,
        "rss_before_trimmed_kib": before_trimmed,
        "trimmed_bytes_per_connection": None if trimmed is None or before_trimmed is None
        else (trimmed - before_trimmed) * 1024 / n,
        "peak_bytes_per_batch_connection": (peak - before) * 1024 / batch,
        "deflate_connections": sum(r.get("deflate_connections", 0) for r in reports),
        "takeover_connections": sum(r.get("takeover_connections", 0) for r in reports),
        "server_window_bits": max((r.get("server_window_bits", 0) for r in reports), default=0),
        "errors": sum(r.get("errors", 1) if isinstance(r.get("errors", 1), int) else 1 for r in reports),
        "error_text": [r.get("error") for r in bad][:2],
    }


def memory(args):
    unbounded = ["--compression-budget-kib", str(64 * 1024 * 1024)]  # 64 GiB: every connection gets takeover
    cases = {"no deflate (baseline)": ([], [])}
    for bits in args.windows:
        cases[f"takeover, window {bits}"] = (["--deflate", "--window-bits", str(bits), *unbounded],
                                             ["--deflate", "--window-bits", str(bits)])
    cases["takeover, window 15, default budget (64 MiB/core)"] = (["--deflate"], ["--deflate"])
    results = {name: [] for name in cases}
    for rep in range(args.reps):
        order = list(cases)
        random.shuffle(order)
        for name in order:
            sflags, cflags = cases[name]
            r = memory_case(sflags, cflags, args.memory_connections, args.batch, args.settle, args.fill_size,
                            args.fill_messages)
            results[name].append(r)
            print(f"memory rep {rep + 1}/{args.reps} {name:50} {r['bytes_per_connection']:8.0f} B/conn  "
                  f"takeover {r['takeover_connections']}/{r['deflate_connections']}  window {r['server_window_bits']}  "
                  f"peak {r['rss_peak_kib'] // 1024} MiB  errors {r['errors']}", flush=True)
    return results


def table_memory(data):
    base = compare.med(data["no deflate (baseline)"], "bytes_per_connection")
    tbase = compare.med(data["no deflate (baseline)"], "trimmed_bytes_per_connection")
    lines = ["| server | connections | with takeover | RSS after, MiB | RSS per connection | minus baseline | "
             "peak RSS, MiB | after malloc_trim(0): per connection, minus baseline | errors |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, runs in data.items():
        per = compare.med(runs, "bytes_per_connection")
        trimmed = compare.med(runs, "trimmed_bytes_per_connection")
        baseline = name.startswith("no deflate")
        delta = "" if baseline or per is None else f"{(per - base) / 1024:.1f} KiB"
        tdelta = "—" if trimmed is None else f"{trimmed / 1024:.1f} KiB" + (
            "" if baseline or tbase is None else f", {(trimmed - tbase) / 1024:.1f} KiB")
        lines.append(f"| {name} | {runs[0]['connections']:,} | {compare.med(runs, 'takeover_connections'):,.0f} | "
                     f"{compare.med(runs, 'rss_later_kib') / 1024:.0f} | {per / 1024:.1f} KiB | {delta} | "
                     f"{compare.med(runs, 'rss_peak_kib') / 1024:.0f} | {tdelta} | "
                     f"{sum(r['errors'] for r in runs)} |")
    return lines + [""]


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one repetition, short runs, fewer connections")
    ap.add_argument("--only", default="ratio,throughput,memory")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per fixed-rate run")
    ap.add_argument("--closed-duration", type=float, default=2.0, help="seconds per closed-loop run")
    ap.add_argument("--connections", type=int, default=50, help="fixed-rate runs")
    ap.add_argument("--chat-rate", type=int, default=3000, help="chat lines, every variant")
    ap.add_argument("--chat-high-rate", type=int, default=20000, help="chat lines, cnetmod's variants")
    ap.add_argument("--doc-rate", type=int, default=600, help="JSON documents, every variant")
    ap.add_argument("--memory-connections", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--fill-size", type=int, default=12288, help="bytes of each memory-run message")
    ap.add_argument("--fill-messages", type=int, default=3, help="messages each memory-run connection sends")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds between memory batches")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--json", default=os.path.join(compare.RESULTS, "deflate_takeover.json"))
    ap.add_argument("--tables", metavar="JSON", help="print the tables of a saved run, without running")
    args = ap.parse_args()
    if args.tables:
        with open(args.tables) as f:
            print_tables(json.load(f))
        return
    args.sizes = [32, 1024, 16384]
    args.windows = [9, 12, 15]
    if args.quick:
        args.reps, args.duration, args.closed_duration = 1, 1.0, 1.0
        args.memory_connections, args.batch = 2000, 1000
    only = set(args.only.split(","))
    if not args.no_build:
        subprocess.run(["ninja", "-C", BUILD, "examples/echo_server", "tools/wsbench"], check=True,
                       stdout=subprocess.DEVNULL)
    # Each connection is a descriptor: the servers and wsbench inherit the raised limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.memory_connections + 200 and "memory" in only:
        sys.exit(f"deflate_takeover: RLIMIT_NOFILE {hard} is below {args.memory_connections} connections")

    started = time.time()
    out = {"args": vars(args), "started": time.strftime("%Y-%m-%d %H:%M")}
    with tempfile.TemporaryDirectory(prefix="cnetmod-deflate-") as tmp:
        files = {}
        for stream, lines in ((CHAT, chat_lines(50000)), (DOCS, json_documents(4000))):
            path = os.path.join(tmp, f"{len(files)}.jsonl")
            with open(path, "w") as f:
                f.write("\n".join(lines) + "\n")
            sizes = [len(x.encode()) for x in lines]
            out.setdefault("streams", {})[stream] = {"lines": len(lines), "mean_bytes": sum(sizes) / len(sizes),
                                                     "min_bytes": min(sizes), "max_bytes": max(sizes),
                                                     "example": lines[0]}
            files[stream] = path
        if "ratio" in only:
            out["fixed_rate"] = fixed_rate(files, args)
    if "throughput" in only:
        out["throughput"] = throughput(args)
    if "memory" in only:
        out["memory"] = memory(args)
    out["elapsed_s"] = time.time() - started

    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)
    print_tables(out)


def print_tables(out):
    lines = [f"deflate_takeover.py: reps {out['args']['reps']}, {out['elapsed_s'] / 60:.1f} min, {out['started']}", ""]
    for stream, s in out.get("streams", {}).items():
        lines.append(f"- {stream}: {s['lines']:,} lines, {s['min_bytes']}-{s['max_bytes']} B, "
                     f"mean {s['mean_bytes']:.0f} B; e.g. `{s['example'][:160]}`")
    lines.append("")
    if "fixed_rate" in out:
        lines += table_fixed_rate(out["fixed_rate"], out["args"]["connections"])
    if "throughput" in out:
        lines += ["Closed loop, 100 connections × 16 in flight, binary pattern payload:", ""]
        lines += table_throughput(out["throughput"])
    if "memory" in out:
        lines += ["Memory per idle connection (server RSS growth / connections, after ≥ 3.5 s idle):", ""]
        lines += table_memory(out["memory"])
    print("\n".join(lines))


if __name__ == "__main__":
    main()
