#!/usr/bin/env bash
# Starts an example server on a free port and runs a peer client against it.
#   run_interop.sh SERVER_BINARY node|python CLIENT_SCRIPT
set -euo pipefail
server=$1 kind=$2 client=$3
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$server" --port "$port" --quiet >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
  sleep 0.05
done
url="ws://127.0.0.1:$port/ws"
if [ "$kind" = node ]; then
  NODE_PATH=/usr/share/nodejs timeout 60 node "$client" "$url"
else
  timeout 60 /usr/bin/python3 "$client" "$url"
fi
kill -0 $pid || { echo "the server died"; exit 1; }
