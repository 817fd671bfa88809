#!/usr/bin/env bash
# Builds a meson project that has cnetmod as a subproject (subprojects/cnetmod
# linked to this tree) and takes it with dependency('cnetmod', fallback: ...),
# then runs it: an echo server and a client in one process, one round trip.
# Kept cheap (the library is compiled a second time): buildtype plain (-O0,
# no -g), and only the library is built, as for every subproject use.
set -euo pipefail
src=$(cd "$1" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/subprojects"
ln -s "$src" "$work/subprojects/cnetmod"
cat > "$work/meson.build" <<'MESON'
project('consumer', 'cpp', default_options: ['cpp_std=c++20'])
cnetmod_dep = dependency('cnetmod', fallback: ['cnetmod', 'cnetmod_dep'])
executable('round_trip', 'main.cpp', dependencies: cnetmod_dep)
MESON
cat > "$work/main.cpp" <<'CPP'
#include <cnetmod/engine/engine.hpp>
#include <cnetmod/proto/ws/ws.hpp>
#include <cnetmod/version.hpp>
#include <cstdio>
#include <string>
using namespace cnetmod;

task<std::string> round_trip(io_context& ctx, std::uint16_t port) {
    auto ws = co_await ws::connect(ctx, "ws://127.0.0.1:" + std::to_string(port) + "/ws");
    co_await ws.send("through the subproject");
    auto reply = co_await ws.recv();
    std::string got = reply ? std::string(*reply) : std::string();
    co_await ws.close();
    co_return got;
}

int main() {
    net_init guard;
    io_context ctx;
    http::server srv(ctx);
    srv.get("/ws", [](http::request_context& req) -> task<void> {
        auto ws = co_await req.upgrade_to_websocket();
        while (true) {
            auto msg = co_await ws.recv();
            if (!msg) break;
            co_await ws.send(*msg);
        }
    });
    srv.listen(0, "127.0.0.1");
    auto got = sync_wait(ctx, round_trip(ctx, srv.port()));
    std::printf("%s (cnetmod %s)\n", got.c_str(), std::string(version()).c_str());
    return got == "through the subproject" && version() == CNETMOD_VERSION ? 0 : 1;
}
CPP

# --force-fallback-for: the subproject even where an installed cnetmod.pc exists.
meson setup "$work/build" "$work" --buildtype=plain --force-fallback-for=cnetmod >"$work/setup.log" 2>&1 ||
  { cat "$work/setup.log"; echo "meson could not configure cnetmod as a subproject"; exit 1; }
ninja -C "$work/build" round_trip >"$work/build.log" 2>&1 ||
  { cat "$work/build.log"; echo "the project did not build with cnetmod as a subproject"; exit 1; }
out=$(timeout 20 "$work/build/round_trip")
case "$out" in
  "through the subproject (cnetmod "*) ;;
  *) echo "unexpected output: $out"; exit 1 ;;
esac
echo "built and ran with cnetmod as a meson subproject: $out"
