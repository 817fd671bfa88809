#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (AddressSanitizer + UBSan) and runs
# each for a bounded time on a copy of its seed corpus. Exits non-zero on a
# crash. Usage: run_fuzzers.sh BUILD_DIR [SECONDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$1
seconds=${2:-20}
out="$build/fuzz"
mkdir -p "$out"
common=(-std=c++20 -O1 -g -fno-sanitize-recover=undefined -I"$build/include")
flags=("${common[@]}" -fsanitize=fuzzer,address,undefined)
object_flags=("${common[@]}" -fsanitize=fuzzer-no-link,address,undefined)  # for objects linked into several targets
clang++ "${flags[@]}" -o "$out/http_request_fuzz" "$here/http_request_fuzz.cpp" \
  "$root/proto/http/request_parser.cpp"
# shellcheck disable=SC2046
clang++ "${flags[@]}" -o "$out/ws_frame_fuzz" "$here/ws_frame_fuzz.cpp" \
  "$root/proto/ws/frame.cpp" "$root/proto/ws/mask.cpp" "$root/proto/ws/utf8.cpp" $(pkg-config --cflags --libs simdjson)
# ws::machine's sources, compiled once for both of its targets.
machine_objs=()
for src in machine frame mask utf8 permessage_deflate deflate_stream; do
  clang++ "${object_flags[@]}" -c -o "$out/ws_$src.o" "$root/proto/ws/$src.cpp"
  machine_objs+=("$out/ws_$src.o")
done
# The machine counts into the engine's per-thread counters (engine/metrics.cpp).
clang++ "${object_flags[@]}" -c -o "$out/engine_metrics.o" "$root/engine/metrics.cpp"
machine_objs+=("$out/engine_metrics.o")
for name in ws_machine_fuzz ws_machine_diff_fuzz; do
  # shellcheck disable=SC2046
  clang++ "${flags[@]}" -o "$out/$name" "$here/$name.cpp" "${machine_objs[@]}" -ldeflate -lz $(pkg-config --libs simdjson)
done
for target in http_request_fuzz:http ws_frame_fuzz:ws ws_machine_fuzz:ws_machine ws_machine_diff_fuzz:ws_machine; do
  name=${target%%:*} corpus=${target##*:}
  work="$out/corpus-$name"
  rm -rf "$work" && cp -r "$here/corpus/$corpus" "$work"
  "$out/$name" -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 "$work" 2>"$out/$name.log" ||
    { tail -n 40 "$out/$name.log"; echo "$name: crashed"; exit 1; }
  echo "$name: $(grep -m1 -o 'stat::number_of_executed_units: [0-9]*' "$out/$name.log" | awk '{print $2}') runs in ${seconds}s, no crash"
done
