#!/usr/bin/env bash
# Installs the library into a temporary prefix and builds a WebSocket echo
# server outside the tree with Debian's cmake, from three lines of CMake
# (find_package, add_executable, target_link_libraries), then talks to it
# with Python's websockets. Also: a version above the installed one is refused.
set -euo pipefail
build=$2  # $1, the source root, is not needed: only the installed copy is used
prefix=$(mktemp -d)
work=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$prefix" "$work"
}
trap cleanup EXIT

meson install -C "$build" --destdir "$prefix" --quiet >/dev/null
config=$(find "$prefix" -name cnetmodConfig.cmake | head -n 1)
[ -n "$config" ] || { echo "cnetmodConfig.cmake was not installed"; exit 1; }
[ -f "$(dirname "$config")/cnetmodConfigVersion.cmake" ] || { echo "cnetmodConfigVersion.cmake was not installed"; exit 1; }
# The staged prefix: the directory that holds include/cnetmod/.
staged=$(find "$prefix" -type d -path '*/include/cnetmod' -printf '%h\n' | head -n 1)
staged=${staged%/include}
# The config finds its prefix from its own location, so the staged copy is used as is.
export CMAKE_PREFIX_PATH="$staged"

mkdir -p "$work/app" "$work/too_new"
cat > "$work/app/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.16)
project(echo LANGUAGES CXX)
find_package(cnetmod 0.1 REQUIRED)
add_executable(echo main.cpp)
target_link_libraries(echo PRIVATE cnetmod::cnetmod)
CMAKE
cat > "$work/app/main.cpp" <<'CPP'
// The seed's echo server, for one client: `echo PORT SECONDS` (port 0: any)
// prints the port it listens on, echoes one client's messages and exits 0
// when that client leaves, or 1 after SECONDS without one.
#include <cnetmod/engine/engine.hpp>
#include <cnetmod/proto/ws/ws.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
using namespace cnetmod;

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: echo PORT SECONDS\n");
        return 2;
    }
    net_init guard;
    io_context ctx;
    bool served = false;
    http::server srv(ctx);
    srv.get("/ws", [&](http::request_context& req) -> task<void> {
        if (!req.is_websocket_upgrade()) {
            req.resp().set_status(http::status::bad_request);
            co_return;
        }
        auto ws = co_await req.upgrade_to_websocket();
        while (true) {
            auto msg = co_await ws.recv();
            if (!msg) break;
            co_await ws.send(*msg);
        }
        served = true;
        ctx.stop();
    });
    srv.listen(static_cast<std::uint16_t>(std::atoi(argv[1])), "127.0.0.1");
    std::printf("%u\n", static_cast<unsigned>(srv.port()));
    std::fflush(stdout);
    spawn(ctx, [](io_context& ctx, int seconds) -> task<void> {
        co_await async_sleep(ctx, std::chrono::seconds(seconds));
        ctx.stop();
    }(ctx, std::atoi(argv[2])));
    ctx.run();
    return served ? 0 : 1;
}
CPP

generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi
cmake -S "$work/app" -B "$work/app/build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release >"$work/configure.log" 2>&1 ||
  { cat "$work/configure.log"; echo "cmake could not configure against the installed package"; exit 1; }
cmake --build "$work/app/build" >"$work/build.log" 2>&1 ||
  { cat "$work/build.log"; echo "the CMake project did not build against cnetmod::cnetmod"; exit 1; }

"$work/app/build/echo" 0 20 >"$work/server.out" &
server_pid=$!
port=
for _ in $(seq 100); do
  port=$(head -n 1 "$work/server.out")
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "the echo server did not start"; exit 1; }

timeout 20 /usr/bin/python3 - "$port" <<'PY'
import asyncio, sys, websockets

async def main(port):
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
        for text in ["hello from CMake", "Привет, мир 😀"]:
            await ws.send(text)
            got = await ws.recv()
            assert got == text, f"sent {text!r}, got {got!r}"

asyncio.run(asyncio.wait_for(main(int(sys.argv[1])), 10))
PY
status=0
wait "$server_pid" || status=$?
server_pid=
[ "$status" = 0 ] || { echo "the echo server exited with $status"; exit 1; }
echo "CMake project built against the installed package; its echo server answered"

# find_package(cnetmod 99) must fail: the version file refuses it.
cat > "$work/too_new/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.16)
project(too_new LANGUAGES CXX)
find_package(cnetmod 99 REQUIRED)
CMAKE
if cmake -S "$work/too_new" -B "$work/too_new/build" "${generator[@]}" >"$work/too_new.log" 2>&1; then
  cat "$work/too_new.log"
  echo "find_package(cnetmod 99) succeeded against version 0.x"
  exit 1
fi
grep -q 'compatible with requested version "99"' "$work/too_new.log" || { cat "$work/too_new.log"; echo "find_package(cnetmod 99) failed for another reason"; exit 1; }
echo "find_package(cnetmod 99) is refused"
