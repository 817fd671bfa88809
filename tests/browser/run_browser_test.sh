#!/usr/bin/env bash
# Starts the demo on a free loopback port and runs chat_test.js (headless
# Chromium through playwright-core) against its chat page.
#   run_browser_test.sh DEMO_BINARY
# Needs /usr/bin/chromium (or CHROMIUM=path) and playwright-core in
# .cache/npm/node_modules; tools/setup.sh installs both.
set -euo pipefail
demo=${1:?usage: run_browser_test.sh DEMO_BINARY}
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
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# A port the kernel just handed out and released; the demo takes it a moment later.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$demo" --port "$port" --address 127.0.0.1 --cores 2 --quiet >"$work/demo.out" 2>"$work/demo.err" &
pid=$!

# Ready when GET / answers; up to 10 s.
ready=""
for _ in $(seq 200); do
  if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
      "http://127.0.0.1:$port/" 2>/dev/null; then ready=1; break; fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
if [ -z "$ready" ]; then
  echo "run_browser_test.sh: the demo did not serve http://127.0.0.1:$port/ within 10 s:" >&2
  cat "$work/demo.out" "$work/demo.err" >&2
  exit 1
fi

status=0
CHROMIUM=$chromium timeout 90 node "$here/chat_test.js" "http://127.0.0.1:$port/" || status=$?
if [ "$status" != 0 ]; then
  echo "run_browser_test.sh: chat_test.js failed ($status); the demo's output:" >&2
  cat "$work/demo.out" "$work/demo.err" >&2
  exit 1
fi
if ! kill -0 "$pid" 2>/dev/null; then
  echo "run_browser_test.sh: the demo exited during the test:" >&2
  cat "$work/demo.out" "$work/demo.err" >&2
  exit 1
fi
