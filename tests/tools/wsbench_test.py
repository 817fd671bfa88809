#!/usr/bin/python3
"""wsbench against the echo and broadcast examples, in short bounded runs:
what it sends comes back, nothing is counted as an error, the JSON has its
documented fields, and each bad input gives its message and exit code.
--metrics-url against cnetmod-demo: the server's counters changed by what
wsbench sent; against a stand-in server: the text format's corners.

  wsbench_test.py WSBENCH ECHO_SERVER BROADCAST_SERVER CONNECTION_LIMIT CNETMOD_DEMO
"""
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
import ws_examples_test as examples  # noqa: E402  (Server, free_port)

free_port = examples.free_port

WSBENCH, ECHO, BROADCAST, LIMIT, DEMO = sys.argv[1:6]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


class Server(examples.Server):
    """An example program on a free port (tests/examples' helper), stopped on leaving a `with`."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def wsbench(*args, timeout=60):
    r = subprocess.run([WSBENCH, *args], capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def run_json(*args):
    rc, out, err = wsbench(*args, "--json", "-q")
    try:
        return rc, json.loads(out), err
    except json.JSONDecodeError:
        print(out, err)
        return rc, None, err


FIELDS = ["url", "mode", "connections", "size", "threads", "duration_s", "sent", "received", "messages_per_s",
          "mb_per_s", "latency_us", "connect_ms", "errors", "mismatches", "unexpected_closes", "connect_failures",
          "lost", "client_cpu_share", "client_saturated", "client_user_ns_per_message", "client_system_ns_per_message",
          "server_cpu_us_per_message", "server_user_us_per_message", "server_system_us_per_message"]

with Server(ECHO, "--quiet") as echo:
    # Closed loop, text, with the server's CPU sampled.
    rc, j, err = run_json(echo.url, "-c", "20", "-i", "4", "-d", "1", "--server-pid", str(echo.proc.pid))
    check(rc == 0 and j is not None, f"closed-loop run exits 0 with JSON (rc {rc}, {err})")
    if j:
        for f in FIELDS:
            check(f in j, f"JSON field {f}")
        check(j["sent"] == j["received"] and j["received"] > 0, f"sent == received ({j['sent']}, {j['received']})")
        check(j["errors"] == 0, f"no errors ({j['errors']})")
        check(j["messages_per_s"] > 0, "a message rate")
        for p in ["p50", "p90", "p99", "p999", "max"]:
            check(j["latency_us"][p] > 0, f"latency {p}")
        check(j["latency_us"]["p50"] <= j["latency_us"]["p99"] <= j["latency_us"]["max"], "percentiles in order")
        check(j["connect_ms"]["count"] == 20, "20 handshakes timed")
        check(j["server_cpu_us_per_message"] is not None and j["server_cpu_us_per_message"] > 0,
              "server CPU per message")
        check(abs(j["server_user_us_per_message"] + j["server_system_us_per_message"] -
                  j["server_cpu_us_per_message"]) < 1e-6, "server user + system CPU per message = total")
        check(0 < j["client_cpu_share"] <= 1.5, f"client CPU share ({j['client_cpu_share']})")
        # Both come from the same window: CPU per message times the rate is the CPU share.
        own = (j["client_user_ns_per_message"] + j["client_system_ns_per_message"]) * j["messages_per_s"] / 1e9
        check(abs(own - j["client_cpu_share"] * j["threads"]) < 0.01,
              f"wsbench's user + system CPU per message add up to its CPU share ({own:.3f}, {j['client_cpu_share']:.3f})")

    # A message count instead of a duration; binary; several threads; sizes at the frame-length edges.
    for size in ["0", "1", "125", "126", "65536"]:
        rc, j, err = run_json(echo.url, "-c", "4", "-t", "2", "-n", "400", "-s", size, "--binary")
        check(rc == 0 and j and j["received"] == 400 and j["errors"] == 0,
              f"400 binary messages of {size} B come back whole (rc {rc}, {j and j['received']}, {err})")

    # Open loop at a fixed rate: about rate x duration messages, each timed from its intended send.
    rc, j, err = run_json(echo.url, "-c", "10", "-r", "2000", "-d", "1")
    check(rc == 0 and j and j["errors"] == 0, f"open loop without errors (rc {rc}, {err})")
    if j:
        check(1500 <= j["received"] <= 2500, f"open loop sends at the rate asked ({j['received']} in 1 s at 2000/s)")
        check(j["sent"] == j["received"], "open loop: every message answered")

    # Connect storm.
    rc, j, err = run_json(echo.url, "-m", "connect", "-c", "4", "-d", "1")
    check(rc == 0 and j and j["handshakes_per_s"] > 0 and j["connect_ms"]["count"] > 4,
          f"connect storm counts handshakes (rc {rc}, {err})")

    # The table and the progress line.
    rc, out, err = wsbench(echo.url, "-c", "5", "-d", "2")
    check(rc == 0, "table run exits 0")
    for word in ["msg/s", "latency", "p99.9", "connect", "errors", "wsbench CPU"]:
        check(word in out, f"the table shows {word}")
    check("[  1 s]" in err and "p99" in err, "a progress line each second")

    # Bad input: each a clear one-line error and a non-zero exit.
    rc, out, err = wsbench("http://127.0.0.1/")
    check(rc == 2 and "bad URL" in err, f"bad URL (rc {rc}: {err.strip()})")
    rc, out, err = wsbench(f"ws://127.0.0.1:{free_port()}/ws")
    check(rc == 1 and "refused" in err, f"refused connection (rc {rc}: {err.strip()})")
    rc, out, err = wsbench(f"ws://127.0.0.1:{echo.port}/nowhere")
    check(rc == 1 and "HTTP/1.1 404" in err, f"failed handshake shows the status line (rc {rc}: {err.strip()})")
    rc, out, err = wsbench("ws://no-such-host.invalid:80/ws", "--connect-timeout", "5", timeout=30)
    check(rc == 1 and "resolve" in err, f"unreachable host (rc {rc}: {err.strip()})")
    rc, out, err = wsbench(echo.url, "--connections", "0")
    check(rc != 0 and err, "a bad option is refused")
    check(len(err.strip().splitlines()) <= 2, "errors are short")

# permessage-deflate and wss://, with a throwaway certificate.
certs = tempfile.mkdtemp(prefix="cnetmod-wsbench-certs-")
try:
    subprocess.run(["sh", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support", "make_certs.sh"),
                    certs], check=True, stdout=subprocess.DEVNULL)
    with Server(ECHO, "--quiet", "--deflate", "--cert", f"{certs}/server.pem", "--key", f"{certs}/server.key") as tls:
        wss = f"wss://localhost:{tls.port}/ws"
        rc, j, err = run_json(wss, "--ca", f"{certs}/ca.pem", "-c", "10", "-i", "4", "-n", "2000", "-s", "4096",
                              "--deflate")
        check(rc == 0 and j and j["received"] == 2000 and j["errors"] == 0,
              f"wss:// with --deflate: 2000 messages of 4 KiB come back whole (rc {rc}, {err})")
        check(j and j["tls"] is True and j["deflate"] is True, "JSON says TLS and permessage-deflate were on")
        rc, j, err = run_json(wss, "--insecure", "-c", "2", "-n", "100")
        check(rc == 0 and j and j["received"] == 100 and j["deflate"] is False,
              f"--insecure skips verification; no --deflate, no compression (rc {rc}, {err})")
        rc, out, err = wsbench(wss, "-n", "10")
        check(rc == 1 and "certificate verify failed" in err,
              f"an untrusted certificate is one clear line (rc {rc}: {err.strip()})")
        rc, out, err = wsbench(f"ws://127.0.0.1:{tls.port}/ws", "--ca", f"{certs}/ca.pem", "-n", "10")
        check(rc == 2 and "wss://" in err, f"--ca with a ws:// URL is refused (rc {rc}: {err.strip()})")
    with Server(ECHO, "--quiet") as plain:
        rc, j, err = run_json(plain.url, "--deflate", "-c", "2", "-n", "100")
        check(rc == 0 and j and j["deflate"] is False,
              f"a server without compression: the run goes on uncompressed (rc {rc}, {err})")
        rc, out, err = wsbench(plain.url, "--deflate", "-c", "2", "-n", "100")
        check(rc == 0 and "declined permessage-deflate" in err, f"and says so ({err.strip()})")
finally:
    shutil.rmtree(certs, ignore_errors=True)

with Server(BROADCAST) as bc:
    rc, j, err = run_json(bc.url, "-m", "broadcast", "-c", "11", "-p", "1", "-r", "200", "-d", "1")
    check(rc == 0 and j is not None, f"broadcast run (rc {rc}, {err})")
    if j:
        check(j["published"] > 100 and j["deliveries"] == j["published"] * 10,
              f"every receiver gets every publish ({j['deliveries']} of {j['published']} x 10)")
        check(j["lost"] == 0 and j["errors"] == 0, "nothing lost in broadcast")
    # --publish-url: the publishers connect there (here the same server under
    # another spelling of its address), the receivers to the URL.
    other = bc.url.replace("127.0.0.1", "localhost")
    rc, j, err = run_json(bc.url, "-m", "broadcast", "-c", "11", "-p", "1", "-r", "200", "-d", "1",
                          "--publish-url", other)
    check(rc == 0 and j is not None and j.get("publish_url") == other, f"--publish-url run (rc {rc}, {err})")
    if j:
        check(j["deliveries"] == j["published"] * 10 and j["lost"] == 0,
              f"--publish-url: every receiver gets every publish ({j['deliveries']} of {j['published']} x 10)")
    rc, _, err = wsbench(bc.url, "--publish-url", bc.url, "-n", "10")
    check(rc == 2 and "broadcast" in err, f"--publish-url outside broadcast mode (rc {rc}: {err.strip()})")
    rc, _, err = wsbench(bc.url, "-m", "broadcast", "-c", "3", "--publish-url", "wss://127.0.0.1:1/x")
    check(rc == 2 and "both" in err, f"--publish-url of the other scheme (rc {rc}: {err.strip()})")
    rc, _, err = wsbench(bc.url, "-m", "broadcast", "-c", "3", "--publish-url", "nowhere")
    check(rc == 2 and "--publish-url" in err, f"a bad --publish-url (rc {rc}: {err.strip()})")

with Server(LIMIT, "--max", "3") as limited:
    # Connections over the server's limit wait for a slot and time out:
    # counted as failed connects, and the exit is non-zero.
    rc, j, err = run_json(limited.url, "-c", "6", "-d", "1", "--connect-timeout", "1")
    check(rc == 1 and j and j["connect_failures"] == 3 and j["received"] > 0,
          f"failed connects make the run fail, the others still run (rc {rc}, {j and j['connect_failures']})")

# --metrics-url: the demo's /metrics read before and after the run.
with Server(DEMO, "--cores", "2", "--quiet") as demo:
    metrics = f"http://127.0.0.1:{demo.port}/metrics"
    rc, j, err = run_json(f"ws://127.0.0.1:{demo.port}/ws", "-c", "8", "-i", "4", "-n", "3000", "-s", "100",
                          "--metrics-url", metrics)
    check(rc == 0 and j and "server_metrics" in j, f"echo run with --metrics-url (rc {rc}, {err})")
    if j and "server_metrics" in j:
        m = j["server_metrics"]
        check(m["url"] == metrics, "server_metrics names its URL")
        check(m["messages_received"] == j["sent"] == 3000,
              f"the server received what wsbench sent ({m['messages_received']}, {j['sent']})")
        check(m["messages_sent"] == j["received"], f"and sent what wsbench received ({m['messages_sent']})")
        check(m["message_bytes_received"] == 3000 * 100 and m["message_bytes_sent"] == 3000 * 100,
              f"payload bytes each way ({m['message_bytes_received']}, {m['message_bytes_sent']})")
        check(m["handshakes_ok"] == 8, f"8 handshakes in the run, the probe's before it ({m['handshakes_ok']})")
        # The connection of the second read is accepted inside the run.
        check(m["connections_accepted"] == 9, f"connections accepted ({m['connections_accepted']})")
        check(m["loop_turns"] > 0 and m["completions"] >= m["loop_turns"] and m["sqes"] > 0,
              f"loop turns, completions, SQEs ({m['loop_turns']}, {m['completions']}, {m['sqes']})")
        check(abs(m["completions_per_turn"] - m["completions"] / m["loop_turns"]) < 1e-9, "completions per turn")
        check(abs(m["sqes_per_turn"] - m["sqes"] / m["loop_turns"]) < 1e-9, "SQEs per turn")
        check(m["busy_seconds"] > 0 and abs(m["busy_us_per_message"] - m["busy_seconds"] * 1e6 / 3000) < 1e-6,
              f"busy time, per message sent ({m['busy_seconds']}, {m['busy_us_per_message']})")
        check(m["backpressure_events"] == 0 and m["pubsub_deliveries"] == 0, "no backpressure, no pub/sub")
        check(m["counters"].get('cnetmod_ws_handshakes_total{result="ok"}') == 8,
              "counters keyed by family and labels, summed over the core label")
        check(m["counters"].get("cnetmod_ws_messages_received_total") == 3000, "a family without other labels")
        check(not any('core="' in k for k in list(m["counters"]) + list(m["gauges"])), "no core label left")
        check(m["gauges"].get("cnetmod_ws_connections_open") == 0, "gauges as after the run: nothing open")
        closes = m["counters"].get('cnetmod_ws_closes_received_total{code="1000"}')
        check(closes == 8, f"every connection closed with 1000 ({closes})")
    # Broadcast: one publish in, a delivery to every /broadcast connection (the publisher's too).
    rc, j, err = run_json(f"ws://127.0.0.1:{demo.port}/broadcast", "-m", "broadcast", "-c", "6", "-p", "1", "-r",
                          "200", "-d", "1", "--metrics-url", metrics)
    check(rc == 0 and j and "server_metrics" in j, f"broadcast run with --metrics-url (rc {rc}, {err})")
    if j and "server_metrics" in j:
        m = j["server_metrics"]
        check(m["messages_received"] == j["published"] > 0,
              f"the server received every publish ({m['messages_received']}, {j['published']})")
        check(m["pubsub_deliveries"] == m["messages_sent"] == j["published"] * 6,
              f"and delivered each to all 6 ({m['pubsub_deliveries']}, {m['messages_sent']}, {j['published']})")
    rc, out, err = wsbench(f"ws://127.0.0.1:{demo.port}/ws", "-c", "2", "-n", "200", "--metrics-url", metrics)
    check(rc == 0 and "the run's change at " + metrics in out and "200 received, 200 sent" in out and
          "per turn" in out, f"the table shows the server's change ({out})")
    rc, _, err = wsbench(f"ws://127.0.0.1:{demo.port}/ws", "-n", "10", "--metrics-url", "https://127.0.0.1/metrics")
    check(rc == 2 and "--metrics-url" in err and "http://" in err,
          f"an https:// --metrics-url (rc {rc}: {err.strip()})")
    rc, _, err = wsbench(f"ws://127.0.0.1:{demo.port}/ws", "-n", "10", "--metrics-url",
                         f"http://127.0.0.1:{free_port()}/metrics")
    check(rc == 1 and "--metrics-url" in err and "refused" in err, f"nothing at --metrics-url (rc {rc}: {err.strip()})")
    rc, _, err = wsbench(f"ws://127.0.0.1:{demo.port}/ws", "-n", "10", "--metrics-url",
                         f"http://127.0.0.1:{demo.port}/nowhere")
    check(rc == 1 and "404" in err, f"a --metrics-url that answers 404 (rc {rc}: {err.strip()})")


class StandIn(http.server.BaseHTTPRequestHandler):
    """Another server's exposition, chunked: escaped label values, a timestamp, a reset counter, OpenMetrics-style
    counter names, a histogram; every read advances the counters."""
    protocol_version = "HTTP/1.1"
    reads = 0

    def do_GET(self):
        n = StandIn.reads
        StandIn.reads += 1
        text = "\n".join([
            "# HELP requests_total Requests.", "# TYPE requests_total counter",
            f'requests_total{{path="/a\\"b}}",core="0"}} {10 + 5 * n} 1700000000000',
            f'requests_total{{core="1",path="/a\\"b}}"}} {20 + 5 * n}',
            f'requests_total{{path="/c"}} {1 + n}',
            "# TYPE events counter", f"events_total {100 * n}",
            "# TYPE resets counter", f"resets_total {7 if n == 0 else 3}",
            "# TYPE latency_seconds histogram", f'latency_seconds_bucket{{le="+Inf"}} {4 * n}',
            f"latency_seconds_sum {0.5 * n}", f"latency_seconds_count {4 * n}",
            "# TYPE temperature gauge", f"temperature {n + 0.25}", "", "   ", "untyped_thing NaN",
        ]) + "\n"
        body = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(0, len(body), 50):
            piece = body[i:i + 50]
            self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args):
        pass


stand_in = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
threading.Thread(target=stand_in.serve_forever, daemon=True).start()
try:
    with Server(ECHO, "--quiet") as echo:
        rc, j, err = run_json(echo.url, "-c", "2", "-n", "100", "--metrics-url",
                              f"http://127.0.0.1:{stand_in.server_address[1]}/metrics")
        check(rc == 0 and j and "server_metrics" in j, f"--metrics-url at a stand-in (rc {rc}, {err})")
        if j and "server_metrics" in j:
            m = j["server_metrics"]
            want = {'requests_total{path="/a\\"b}"}': 10, 'requests_total{path="/c"}': 1, "events_total": 100,
                    "resets_total": 3, 'latency_seconds_bucket{le="+Inf"}': 4, "latency_seconds_sum": 0.5,
                    "latency_seconds_count": 4}
            check(m["counters"] == want, f"the counters' change: {m['counters']}")
            check(m["gauges"].get("temperature") == 1.25 and "untyped_thing" in m["gauges"],
                  f"gauges as after the run: {m['gauges']}")
            check(m["messages_received"] is None and m["loop_turns"] is None,
                  "no cnetmod figures from a server without them")
        rc, out, err = wsbench(echo.url, "-c", "2", "-n", "100", "--metrics-url",
                               f"http://127.0.0.1:{stand_in.server_address[1]}/metrics")
        check(rc == 0 and "counters changed" in out, f"the table says what changed ({out})")
finally:
    stand_in.shutdown()

if failures:
    print(f"{len(failures)} checks failed")
    sys.exit(1)
print("all wsbench checks passed")
