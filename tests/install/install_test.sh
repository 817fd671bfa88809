#!/usr/bin/env bash
# Installs the library into a temporary prefix and builds a program outside
# the tree with only `pkg-config --cflags --libs cnetmod`, then runs it.
set -euo pipefail
src=$1
build=$2
prefix=$(mktemp -d)
work=$(mktemp -d)
trap 'rm -rf "$prefix" "$work"' EXIT

meson install -C "$build" --destdir "$prefix" --quiet >/dev/null
root=$(find "$prefix" -name cnetmod.pc -printf '%h\n' | head -n 1)
[ -n "$root" ] || { echo "cnetmod.pc was not installed"; exit 1; }
# The .pc file names the configured prefix; point pkg-config at the staged copy.
export PKG_CONFIG_PATH="$root"
export PKG_CONFIG_SYSROOT_DIR="$prefix"

cat > "$work/main.cpp" <<'CPP'
#include <cnetmod/engine/engine.hpp>
#include <cnetmod/proto/ws/utf8.hpp>
#include <cstdio>
#include <string>
using namespace cnetmod;

task<std::string> round_trip(io_context& ctx) {
    auto listener = tcp_listener::bind(ctx, ip_endpoint::loopback_v4(0));
    auto client = co_await tcp_connect(ctx, ip_endpoint::loopback_v4(listener.port()));
    auto server = co_await listener.accept();
    co_await client.send(std::string_view("installed"));
    char buf[32];
    auto n = co_await server.recv(std::as_writable_bytes(std::span(buf)));
    co_return std::string(buf, n);
}

int main() {
    net_init guard;
    io_context ctx;
    auto got = sync_wait(ctx, round_trip(ctx));
    // UTF-8 validation links simdjson through the .pc file's Requires.
    if (!ws::is_valid_utf8("Привет, мир — 東京都の天気は晴れです 😀") || ws::is_valid_utf8("\xED\xA0\x80")) return 2;
    std::printf("%s\n", got.c_str());
    return got == "installed" ? 0 : 1;
}
CPP
# shellcheck disable=SC2046
g++ -std=c++20 -o "$work/app" "$work/main.cpp" $(pkg-config --cflags --libs cnetmod)
out=$("$work/app")
[ "$out" = "installed" ] || { echo "unexpected output: $out"; exit 1; }
echo "installed library builds and runs: $out"
