#!/usr/bin/env bash
# Installs what is missing (Debian 12, as root), then configures and builds
# cnetmod in build/ (release). Safe to run again: it only does what is left.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  g++ meson ninja-build pkg-config python3 git clang-format
  liburing-dev libdeflate-dev zlib1g-dev libsimdjson-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev libfmt-dev nlohmann-json3-dev
  libboost-dev gnuplot-nox linux-perf
  python3-websockets node-ws nodejs clang libclang-rt-14-dev chromium
  libhiredis-dev redis-server redis-tools cmake prometheus doxygen
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]}; run this as root so apt-get can install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# tests/browser drives Debian's chromium with playwright-core, kept in the
# git-ignored .cache/npm; 1.64.x is the release made for Chromium 156 (Debian 12's).
playwright_core=1.64.1
if ! grep -qs "\"version\": \"$playwright_core\"" .cache/npm/node_modules/playwright-core/package.json; then
  if ! command -v npm >/dev/null; then
    # Debian's nodejs comes without npm (other builds of nodejs carry their own).
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null
  fi
  echo "setup: installing playwright-core $playwright_core into .cache/npm"
  mkdir -p .cache/npm
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix .cache/npm --no-save --no-audit --no-fund \
    --loglevel=error "playwright-core@$playwright_core"
fi

if [ ! -f build/build.ninja ]; then
  meson setup build --buildtype=release >/dev/null
fi
ninja -C build
