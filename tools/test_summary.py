#!/usr/bin/python3
"""Sums test cases over meson test logs: cmocka and unittest report their
own case counts, anything else counts as one case.  A test whose process
failed counts at least one failure even when its output claims none.
Prints 'N passed, N failed' and exits 1 when anything failed or nothing ran."""

import json
import re
import sys

CMOCKA_PASSED = re.compile(r"^\[  PASSED  \] (\d+) test", re.M)
CMOCKA_FAILED = re.compile(r"^\[  FAILED  \] (\d+) test", re.M)
CMOCKA_SKIPPED = re.compile(r"^\[  SKIPPED \] (\d+) test", re.M)
UNITTEST_RAN = re.compile(r"^Ran (\d+) tests? in", re.M)
UNITTEST_BAD = re.compile(r"^FAILED \((.*)\)$", re.M)
UNITTEST_SKIPPED = re.compile(r"skipped=(\d+)")


def count(entry):
    out = (entry.get("stdout") or "") + (entry.get("stderr") or "")
    ok = entry["result"] in ("OK", "EXPECTEDFAIL")
    skipped_whole = entry["result"] == "SKIP"
    if skipped_whole:
        return 0, 0, 1
    passed = sum(map(int, CMOCKA_PASSED.findall(out)))
    failed = sum(map(int, CMOCKA_FAILED.findall(out)))
    skipped = sum(map(int, CMOCKA_SKIPPED.findall(out)))
    ran = UNITTEST_RAN.findall(out)
    if ran:
        total = sum(map(int, ran))
        bad = 0
        for m in UNITTEST_BAD.findall(out):
            for part in m.split(","):
                name, _, n = part.strip().partition("=")
                if name in ("failures", "errors"):
                    bad += int(n)
                elif name == "skipped":
                    skipped += int(n)
        skipped += sum(map(int, UNITTEST_SKIPPED.findall(
            "\n".join(l for l in out.splitlines() if l.startswith("OK")))))
        passed += total - bad
        failed += bad
        passed -= skipped
    if passed + failed + skipped == 0:
        passed, failed = (1, 0) if ok else (0, 1)
    if not ok and failed == 0:
        failed = 1
    return passed, failed, skipped


def main(paths):
    passed = failed = skipped = 0
    for path in paths:
        with open(path) as f:
            for line in f:
                entry = json.loads(line)
                p, fl, s = count(entry)
                passed, failed, skipped = passed + p, failed + fl, skipped + s
                if fl:
                    print(f"FAILED: {entry['name']} ({path})", file=sys.stderr)
    tail = f", {skipped} skipped" if skipped else ""
    print(f"{passed} passed, {failed} failed{tail}")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
