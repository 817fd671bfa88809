#!/usr/bin/env python3
"""Checks the installed public headers, as an embedder sees them.

The headers meson installs (build/meson-info/intro-installed.json) are copied
into a staging include tree that holds nothing else, and each is checked in a
translation unit that is `#include <cnetmod/...>` and nothing more:

  self-contained   it compiles alone (no dependence on include order, nor on
                   a header that is not installed);
  no-internal      it reaches no internal header (a `detail/` one);
  no-system-deps   it reaches neither <liburing.h>, an OpenSSL header nor
                   <simdjson.h> (UTF-8 validation's, used in utf8.cpp only),
                   so embedders do not inherit them.

Usage: check_headers.py CHECK BUILD_DIR COMPILER [COMPILER_ARGS...]
Every offending header is listed with the chain of includes that leads to
the offence; the exit status is 1 if there is any.
"""

import concurrent.futures
import functools
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

CXXFLAGS = ["-std=c++20", "-Wall", "-Wextra", "-Werror", "-Wno-restrict"]


def installed_headers(build_dir):
    """(source path, path below include/) of every installed header."""
    plan = json.loads((pathlib.Path(build_dir) / "meson-info" / "intro-installed.json").read_text())
    headers = []
    for source, dest in plan.items():
        if not dest.endswith((".hpp", ".h")):
            continue
        marker = "/include/cnetmod/"
        at = dest.find(marker)
        if at < 0:
            continue
        headers.append((source, dest[at + len("/include/") :]))
    return sorted(headers, key=lambda h: h[1])


@functools.cache
def dependency_cflags():
    pkg_config = shutil.which("pkg-config")
    if not pkg_config:
        return ()
    out = subprocess.run([pkg_config, "--cflags", "liburing", "libdeflate", "openssl"], capture_output=True, text=True)
    return tuple(out.stdout.split()) if out.returncode == 0 else ()


def include_tree(stderr):
    """(depth, path) of each header in g++'s -H output, in order."""
    for line in stderr.splitlines():
        dots = len(line) - len(line.lstrip("."))
        if dots and line[dots : dots + 1] == " ":
            yield dots, line[dots + 1 :].strip()


def offending_chains(stderr, staging, is_offence):
    """The include chains (from the header under test) that end in an offence;
    only the first offence of a chain, not what the offending header includes."""
    chains = []
    stack = []  # (shown path, offends)
    for depth, path in include_tree(stderr):
        del stack[depth - 1 :]
        shown = os.path.relpath(path, staging) if path.startswith(staging) else path
        offends = is_offence(path, staging)
        if offends and not any(o for _, o in stack):
            chains.append(" -> ".join(s for s, _ in stack + [(shown, offends)]))
        stack.append((shown, offends))
    return chains


def root_cause(chain):
    """`header -> offending header`: the last link of a chain."""
    return " -> ".join(chain.split(" -> ")[-2:])


def is_internal(path, staging):
    return path.startswith(staging) and "/detail/" in path[len(staging) :]


def is_system_dep(path, _staging):
    return path.endswith(("/liburing.h", "/simdjson.h")) or "/openssl/" in path


def check_one(check, header, staging, compiler):
    with tempfile.NamedTemporaryFile("w", suffix=".cpp", delete=False) as tu:
        tu.write(f"#include <{header}>\n")
    try:
        flags = CXXFLAGS + ["-I" + staging] + list(dependency_cflags())
        if check == "self-contained":
            cmd = compiler + flags + ["-fsyntax-only", tu.name]
        else:
            cmd = compiler + flags + ["-E", "-H", "-o", os.devnull, tu.name]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            return [f"does not compile on its own:\n{out.stderr.strip()}"]
        if check == "self-contained":
            return []
        predicate = is_internal if check == "no-internal" else is_system_dep
        return offending_chains(out.stderr, staging, predicate)
    finally:
        os.unlink(tu.name)


def main():
    if len(sys.argv) < 4 or sys.argv[1] not in ("self-contained", "no-internal", "no-system-deps"):
        print(__doc__)
        return 2
    check, build_dir, compiler = sys.argv[1], sys.argv[2], sys.argv[3:]
    headers = installed_headers(build_dir)
    if not headers:
        print("no installed headers found in", build_dir)
        return 1
    with tempfile.TemporaryDirectory() as staging_root:
        staging = os.path.join(staging_root, "include") + "/"
        for source, relative in headers:
            target = os.path.join(staging, relative)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(source, target)
        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            results = list(pool.map(lambda h: (h[1], check_one(check, h[1], staging, compiler)), headers))
    if check == "no-internal":
        # An internal header that is installed may include others; only public ones are held to this.
        results = [(h, problems) for h, problems in results if "/detail/" not in h]
    failed = [(h, problems) for h, problems in results if problems]
    for header, problems in failed:
        print(f"FAIL {header}")
        for p in problems:
            print("    " + p.replace("\n", "\n    "))
    # The inclusions to remove: the last public cnetmod header of each chain and what it includes.
    causes = sorted({root_cause(p) for _, problems in failed for p in problems}) if check != "self-contained" else []
    if causes:
        print("caused by these inclusions:")
        for c in causes:
            print("    " + c)
    print(f"{check}: {len(results) - len(failed)} of {len(results)} installed headers pass")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
