#!/usr/bin/env python3
"""Adds up the results of one or more `meson test` runs, per test case.

GoogleTest cases are counted one by one from meson's JUnit log; any other
test counts as one. A test program that failed without a failing case on
record (a crash, a timeout) counts as one failure, so nothing is lost.
Prints `tests: N passed, M failed` (and the skipped count) and exits 1 when
anything failed or nothing ran."""
import json
import sys
import xml.etree.ElementTree as ET


def count(build_dir):
    passed = failed = skipped = 0
    failing_programs = set()
    junit = ET.parse(f"{build_dir}/meson-logs/testlog.junit.xml").getroot()
    for suite in junit.iter("testsuite"):
        program = suite.get("name", "")
        for case in suite.iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
                failing_programs.add(program)
                print(f"FAILED: {program} {case.get('name')}", file=sys.stderr)
            elif case.find("skipped") is not None:
                skipped += 1
            else:
                passed += 1
    with open(f"{build_dir}/meson-logs/testlog.json") as log:
        for line in log:
            result = json.loads(line)
            if result["result"] in ("OK", "SKIP", "EXPECTEDFAIL"):
                continue
            name = result["name"]
            if not any(name in program for program in failing_programs):
                failed += 1
                print(f"FAILED: {name} ({result['result']})", file=sys.stderr)
    return passed, failed, skipped


def main():
    passed = failed = skipped = 0
    for build_dir in sys.argv[1:]:
        p, f, s = count(build_dir)
        passed, failed, skipped = passed + p, failed + f, skipped + s
    print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
    sys.exit(1 if failed or passed == 0 else 0)


if __name__ == "__main__":
    main()
