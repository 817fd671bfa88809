#!/usr/bin/env bash
# User-space instructions per echoed message of an echo server, counted by
# callgrind (deterministic, unlike CPU time on a shared machine): the server
# runs under valgrind twice, echoing N and 3N messages (32 B binary, 100
# connections, 16 in flight, from wsbench), and the difference of its
# instruction totals over 2N is the cost per message, without start-up and
# handshakes.
#
#   bench/proto/echo_instructions.sh WSBENCH ECHO_BINARY [ARGS...]
#   N=100000 SIZE=32 INFLIGHT=16 bench/proto/echo_instructions.sh build/tools/wsbench \
#       build/examples/echo_server --api callback
#
# Needs valgrind. Loopback only; each run is bounded by `timeout`.
set -euo pipefail
wsbench=$1
shift
n=${N:-100000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run() {
    local messages=$1 port=$((20000 + RANDOM % 20000)) out="$work/cg.$1"
    rm -f "$work/server.log"
    shift
    timeout 600 valgrind --tool=callgrind --callgrind-out-file="$out" "$@" --port "$port" --quiet \
        >"$work/server.log" 2>&1 &
    local pid=$!
    for _ in $(seq 300); do
        grep -q "server on" "$work/server.log" 2>/dev/null && break
        sleep 0.2
    done
    timeout 300 "$wsbench" "ws://127.0.0.1:$port/ws" -q --binary -c 100 -s "${SIZE:-32}" -i "${INFLIGHT:-16}" \
        -n "$messages" >"$work/wsbench.log" 2>&1 || { cat "$work/wsbench.log" >&2; kill -9 "$pid"; exit 1; }
    # Dump the counts now (the server does not stop by itself): valgrind runs under timeout.
    local vg
    vg=$(pgrep -P "$pid")
    callgrind_control -d "$vg" >/dev/null 2>&1
    kill -9 "$vg" "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    awk '/^(summary|totals):/ {print $2; exit}' "$out".*
}

a=$(run "$n" "$@")
b=$(run $((3 * n)) "$@")
echo "$* : $(((b - a) / (2 * n))) instructions per message ($a over $n, $b over $((3 * n)))"
