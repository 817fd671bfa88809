#!/usr/bin/env bash
# Starts the demo on a free loopback port and runs chat_test.js (headless
# Chromium through playwright-core) against its chat page. With `across`,
# starts redis-server (no persistence) and two demos sharing the room
# through it (--broker), one page on each.
#   run_browser_test.sh DEMO_BINARY [across]
# Needs /usr/bin/chromium (or CHROMIUM=path) and playwright-core in
# .cache/npm/node_modules; tools/setup.sh installs both.
set -euo pipefail
demo=${1:?usage: run_browser_test.sh DEMO_BINARY [across]}
across=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

chromium=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
  echo "run_browser_test.sh: no Chromium at $chromium; run tools/setup.sh (it installs the chromium package)" >&2
  exit 1
fi
export NODE_PATH="$repo/.cache/npm/node_modules${NODE_PATH:+:$NODE_PATH}"
if ! node -e "require.resolve('playwright-core')" 2>/dev/null; then
  echo "run_browser_test.sh: node cannot find playwright-core (NODE_PATH=$NODE_PATH); run tools/setup.sh" >&2
  exit 1
fi

work=$(mktemp -d /tmp/cnetmod-browser-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# A port the kernel just handed out and released; the server takes it a moment later.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts a demo (extra arguments passed on) and waits until GET / answers; up to 10 s.
start_demo() {
  local port=$1 n=${#pids[@]}
  shift
  "$demo" --port "$port" --address 127.0.0.1 --cores 2 --quiet "$@" >"$work/demo$n.out" 2>"$work/demo$n.err" &
  pids+=($!)
  for _ in $(seq 200); do
    if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
        "http://127.0.0.1:$port/" 2>/dev/null; then return 0; fi
    kill -0 "${pids[$n]}" 2>/dev/null || break
    sleep 0.05
  done
  echo "run_browser_test.sh: the demo did not serve http://127.0.0.1:$port/ within 10 s:" >&2
  cat "$work/demo$n.out" "$work/demo$n.err" >&2
  exit 1
}

urls=()
if [ "$across" = across ]; then
  if ! command -v redis-server >/dev/null; then
    echo "run_browser_test.sh: no redis-server; run tools/setup.sh (it installs the redis-server package)" >&2
    exit 1
  fi
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning >/dev/null &
  pids+=($!)
  for _ in $(seq 100); do
    redis-cli -p "$redis_port" PING 2>/dev/null | grep -q PONG && break
    sleep 0.05
  done
  for _ in 1 2; do
    port=$(free_port)
    start_demo "$port" --broker "redis://127.0.0.1:$redis_port"
    urls+=("http://127.0.0.1:$port/")
  done
else
  port=$(free_port)
  start_demo "$port"
  urls+=("http://127.0.0.1:$port/")
fi

status=0
CHROMIUM=$chromium timeout 90 node "$here/chat_test.js" "${urls[@]}" || status=$?
if [ "$status" != 0 ]; then
  echo "run_browser_test.sh: chat_test.js failed ($status); the demos' output:" >&2
  cat "$work"/demo*.out "$work"/demo*.err >&2
  exit 1
fi
for p in "${pids[@]}"; do
  if ! kill -0 "$p" 2>/dev/null; then
    echo "run_browser_test.sh: a server exited during the test:" >&2
    cat "$work"/demo*.out "$work"/demo*.err >&2
    exit 1
  fi
done
