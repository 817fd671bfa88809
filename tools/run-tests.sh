#!/usr/bin/env bash
# Runs the whole test suite twice: on the release build, then on a build
# with AddressSanitizer and UndefinedBehaviorSanitizer. Ends with the line
# `tests: N passed, M failed` and exits non-zero when anything failed.
# Expects tools/setup.sh to have run (the README's command does both).
set -uo pipefail
cd "$(dirname "$0")/.."

meson test -C build --num-processes 1 --print-errorlogs
if [ ! -f build-asan/build.ninja ]; then
  meson setup build-asan --buildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false \
    -Dbenchmarks=false >/dev/null || { echo "tests: 0 passed, 1 failed"; exit 1; }
fi
if ninja -C build-asan >/dev/null; then
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C build-asan --num-processes 1 --print-errorlogs --no-suite install --no-suite fuzz --no-suite format --no-suite docs \
    --no-suite headers
else
  echo "sanitizer build failed" >&2
  exit 1
fi
python3 tools/count_tests.py build build-asan
