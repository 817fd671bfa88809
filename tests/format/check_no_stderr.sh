#!/usr/bin/env bash
# The library writes nothing to stderr itself: every diagnostic goes through
# cnetmod::log (engine/log.cpp, whose default sink is the one writer).
# Lists any other use of stderr, std::cerr or std::clog under engine/ and
# proto/ and exits 1 if there is one. Usage: check_no_stderr.sh SOURCE_ROOT
set -euo pipefail
cd "$1"
found=$(grep -rnE '\bstderr\b|std::cerr|std::clog|\bperror\(' engine proto --include='*.cpp' --include='*.hpp' |
  grep -v '^engine/log\.cpp:' | grep -vE '^[^:]+:[0-9]+:\s*//' || true)
if [ -n "$found" ]; then
  echo "library code writing to stderr outside cnetmod::log:" >&2
  echo "$found" >&2
  exit 1
fi
echo "no stderr outside engine/log.cpp"
