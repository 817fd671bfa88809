#!/usr/bin/env python3
"""Runs doxygen over the public headers, exactly those meson installs.

Usage: run_doxygen.py DOXYFILE BUILD_DIR [KEY=VALUE ...] [--input PATH ...]

The configured DOXYFILE (tools/docs/Doxyfile.in) names the pages; this adds
every installed header (build/meson-info/intro-installed.json) to INPUT, as
its path below build/include or build/generated, so that each shows the
include line an embedder writes. KEY=VALUE pairs override the Doxyfile
(tests/docs/check_documented.py turns warnings into errors with them);
--input replaces all of INPUT (pages and headers) with the given files. Exits with doxygen's status.
"""

import json
import pathlib
import subprocess
import sys


def installed_headers(build_dir):
    """Each installed header, as a path into build/include or build/generated."""
    plan = json.loads((build_dir / "meson-info" / "intro-installed.json").read_text())
    headers = []
    for dest in plan.values():
        at = dest.find("/include/cnetmod/")
        if at < 0 or not dest.endswith((".hpp", ".h")):
            continue
        below = dest[at + len("/include/") :]
        for root in ("include", "generated"):
            if (build_dir / root / below).exists():
                headers.append(str(build_dir / root / below))
                break
        else:
            sys.exit(f"run_doxygen: {below} is installed but in neither {build_dir}/include nor /generated; "
                     "reconfigure the build (meson setup --reconfigure)")
    return sorted(headers)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    doxyfile, build_dir = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]).resolve()
    rest = sys.argv[3:]
    inputs = None
    if "--input" in rest:
        at = rest.index("--input")
        rest, inputs = rest[:at], rest[at + 1 :]
    config = doxyfile.read_text()
    if inputs is None:
        config += "\nINPUT += " + " ".join(f'"{p}"' for p in installed_headers(build_dir)) + "\n"
    else:
        config += "\nINPUT = " + " ".join(f'"{p}"' for p in inputs) + "\n"
    for pair in rest:
        key, _, value = pair.partition("=")
        config += f"{key} = {value}\n"
    return subprocess.run(["doxygen", "-"], input=config, text=True).returncode


if __name__ == "__main__":
    sys.exit(main())
