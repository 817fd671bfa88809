#!/usr/bin/env bash
# Starts the echo example on a free port and runs a peer client against it.
#   run_interop.sh SERVER_BINARY node|python CLIENT_SCRIPT
#                  [deflate|declined|takeover|small_windows|no_takeover_server] [tls]
#     (none)    plain ws://, the client offers no extension
#     deflate   the server runs with --deflate; the client offers
#               permessage-deflate and checks that it was negotiated
#     declined  the server runs without --deflate; the client offers
#               permessage-deflate and checks that nothing was negotiated
#     takeover, small_windows, no_takeover_server
#               as deflate, then the client's --mode checks: the server runs
#               with --deflate (context takeover both ways), with
#               --deflate --window-bits 9, or with --deflate
#               --no-context-takeover, and the client checks the agreed
#               parameters and round-trips chat lines, documents and 1 MiB
#     tls       wss://: certificates made now by tests/support/make_certs.sh,
#               the server runs with --cert/--key, the client trusts ca.pem
# The client is called as CLIENT_SCRIPT URL [--compression=expect|declined]
#   [--mode=takeover|small_windows|no_takeover_server] [--ca=FILE].
set -euo pipefail
server=$1 kind=$2 client=$3
shift 3
compression="" deflate_mode="" tls=""
for mode in "$@"; do
  case $mode in
    deflate | declined) compression=$mode ;;
    takeover | small_windows | no_takeover_server) compression=deflate deflate_mode=$mode ;;
    tls) tls=1 ;;
    *) echo "run_interop.sh: unknown mode '$mode'" >&2; exit 2 ;;
  esac
done

work=$(mktemp -d /tmp/cnetmod-interop-XXXXXX)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

server_args=(--port 0 --quiet)
client_args=()
scheme=ws
if [ "$compression" = deflate ]; then server_args+=(--deflate); fi
case $deflate_mode in
  small_windows) server_args+=(--window-bits 9) ;;
  no_takeover_server) server_args+=(--no-context-takeover) ;;
esac
# The server's sweep then runs every 10 ms (no ping before 30 s of silence):
# the client's pauses let unused zlib streams go back to the pool.
if [ -n "$deflate_mode" ]; then server_args+=(--pong-timeout-ms 40); fi
if [ -n "$compression" ]; then
  client_args+=("--compression=$([ "$compression" = deflate ] && echo expect || echo declined)")
fi
if [ -n "$deflate_mode" ]; then client_args+=("--mode=$deflate_mode"); fi
if [ -n "$tls" ]; then
  sh "$(dirname "$0")/../support/make_certs.sh" "$work/certs"
  server_args+=(--cert "$work/certs/server.pem" --key "$work/certs/server.key")
  client_args+=("--ca=$work/certs/ca.pem")
  scheme=wss
fi

# --port 0: the server picks the port and prints it ("... on ws://localhost:PORT/ws").
# The files exist before the server does, so the loop below can read them at once.
: >"$work/server.out"
"$server" "${server_args[@]}" >"$work/server.out" 2>"$work/server.err" &
pid=$!
port=""
for _ in $(seq 200); do
  port=$(sed -n 's|.*://localhost:\([0-9]*\)/ws.*|\1|p' "$work/server.out" | head -n1)
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
if [ -z "$port" ]; then
  echo "run_interop.sh: the echo server did not start:" >&2
  cat "$work/server.out" "$work/server.err" >&2
  exit 1
fi

# The certificate names IP:127.0.0.1 too; "localhost" might resolve to ::1.
url="$scheme://127.0.0.1:$port/ws"
echo "run_interop.sh: $kind client against $url ${server_args[*]}"
if [ "$kind" = node ]; then
  NODE_PATH=/usr/share/nodejs timeout 60 node "$client" "$url" "${client_args[@]}"
else
  timeout 60 /usr/bin/python3 "$client" "$url" "${client_args[@]}"
fi
kill -0 "$pid" 2>/dev/null || { echo "run_interop.sh: the server died" >&2; cat "$work/server.err" >&2; exit 1; }
