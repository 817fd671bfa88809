#!/usr/bin/env bash
# Fails when a C++ file of the tree differs from what clang-format makes of it.
set -euo pipefail
cd "$1"
files=$(git ls-files '*.cpp' '*.hpp' 2>/dev/null || find engine proto tools examples tests bench -name '*.[ch]pp')
clang-format --dry-run --Werror $files
echo "$(echo "$files" | wc -w) files formatted"
