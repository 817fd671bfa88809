#!/usr/bin/env python3
"""Fails when a public symbol is undocumented.

Runs the API reference's configuration (tools/docs/Doxyfile.in, through
tools/docs/run_doxygen.py) over the installed headers with warnings as
errors and no output but the warnings: every public class, struct, function,
enum, enumerator, member, typedef, variable, macro and namespace must carry
a Doxygen comment, and no comment may be malformed. Each offending symbol is
listed as doxygen names it, with its header and line.

Doxygen's own warnings leave out namespaces, files (so macros) and the
members of a namespace that is itself undocumented; those are found in its
XML output, which lists every symbol read.

First it proves that it can fail: the same configuration over a header with
one undocumented function must report that function, or the check itself is
broken (a setting that silences warnings, a doxygen that reads nothing).

Usage: check_documented.py RUN_DOXYGEN DOXYFILE BUILD_DIR
"""

import pathlib
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

STRICT = ["WARN_IF_UNDOCUMENTED=YES", "WARN_IF_DOC_ERROR=YES", "WARN_AS_ERROR=FAIL_ON_WARNINGS", "QUIET=YES",
          "GENERATE_HTML=NO", "GENERATE_LATEX=NO", "GENERATE_XML=YES", "XML_PROGRAMLISTING=NO",
          "SEARCHENGINE=NO"]

PROBE = """\
/// A documented namespace.
namespace probe {
/// A documented function.
int documented_function(int x);
int undocumented_probe_function(int x);
}  // namespace probe
namespace undocumented_probe_namespace {
int undocumented_probe_member();
}
#define UNDOCUMENTED_PROBE_MACRO 1
"""
# What the probe must report: doxygen's warning, then the XML inventory's finds.
PROBE_MISSING = ["undocumented_probe_function", "undocumented_probe_namespace",
                 "undocumented_probe_namespace::undocumented_probe_member", "probe.hpp", "UNDOCUMENTED_PROBE_MACRO"]


def has_text(element):
    return element is not None and "".join(element.itertext()).strip() != ""


def documented(element):
    return any(has_text(element.find(tag)) for tag in ("briefdescription", "detaileddescription",
                                                      "inbodydescription"))


def internal(name):
    parts = name.split("::")
    return "detail" in parts or parts[0] == "std"


def undocumented_in_xml(xml_dir):
    """Namespaces and files without a comment, and the members of those
    (doxygen is silent on both), as "file:line: name (kind)"."""
    found = []

    def report(element, name, kind):
        location = element.find("location")
        where = location.get("file", "?") if location is not None else "?"
        if location is not None and location.get("line"):
            where += ":" + location.get("line")
        found.append(f"{where}: {name} ({kind}) is not documented")

    for path in sorted(xml_dir.glob("*.xml")):
        if path.name in ("index.xml", "Doxyfile.xml"):
            continue
        for compound in ET.parse(path).getroot().iter("compounddef"):
            kind, name = compound.get("kind"), compound.findtext("compoundname", "")
            if kind not in ("namespace", "file") or internal(name) or name.endswith(".md"):
                continue
            if documented(compound):
                continue
            report(compound, name, kind)
            for member in compound.iter("memberdef"):
                qualified = name + "::" + member.findtext("name", "") if kind == "namespace" else member.findtext(
                    "name", "")
                if not documented(member) and not internal(qualified):
                    report(member, qualified, member.get("kind"))
    return found


def run(run_doxygen, doxyfile, build_dir, workdir, inputs=None):
    """(exit status, warnings) of doxygen in the strict configuration."""
    log = workdir / "warnings.log"
    cmd = [sys.executable, run_doxygen, doxyfile, build_dir, f"OUTPUT_DIRECTORY={workdir}",
           f"WARN_LOGFILE={log}"] + STRICT
    if inputs:
        cmd += ["--input"] + inputs
    out = subprocess.run(cmd, capture_output=True, text=True)
    warnings = (log.read_text() if log.exists() else "") + out.stderr
    lines = sorted(set(line for line in warnings.splitlines() if line.strip()))
    lines += undocumented_in_xml(workdir / "xml")
    return out.returncode, lines


def main():
    run_doxygen, doxyfile, build_dir = sys.argv[1:4]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        (tmp / "probe").mkdir()
        probe = tmp / "probe" / "probe.hpp"
        probe.write_text(PROBE)
        status, lines = run(run_doxygen, doxyfile, build_dir, tmp / "probe", [str(probe)])
        said = "\n".join(lines)
        missed = [name for name in PROBE_MISSING if f" {name} " not in said and f" {name}(" not in said]
        if status == 0 or missed or "documented_function(" in said.replace("undocumented_probe_function(", ""):
            print("the check cannot fail: over a header with undocumented symbols doxygen exited "
                  f"{status}, and {', '.join(missed) or 'a documented function'} was "
                  f"{'not reported' if missed else 'reported'}; it said:\n{said or '(nothing)'}\n"
                  "fix tools/docs/Doxyfile.in or this script's settings")
            return 1
        (tmp / "headers").mkdir()
        status, lines = run(run_doxygen, doxyfile, build_dir, tmp / "headers")
    if status != 0 or lines:
        print("\n".join(lines) or f"doxygen exited {status} without a warning")
        print(f"\n{len(lines)} problem(s) in the public headers: document each symbol named above with a /// "
              "comment (a namespace once, a header with /// @file; see tools/docs/Doxyfile.in)")
        return 1
    print("every public symbol is documented")
    return 0


if __name__ == "__main__":
    sys.exit(main())
