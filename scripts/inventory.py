#!/usr/bin/env python3
"""The inventory: every test `make check` must report, checked in as tests/inventory.txt.

  scripts/inventory.py write   regenerate tests/inventory.txt from the code (`make inventory`)
  scripts/inventory.py diff    the difference between the code and tests/inventory.txt (exit 1 if any)

A line of the inventory is KIND NAME:
  kunit   SUITE.CASE  every `#[test]` of every `#[kunit_tests(SUITE)]` module in KUNIT_SOURCES
  e2e     TEST        `rust_wq_e2e --list`
  stress  SCENARIO    `rust_wq_stress --list`, less NOT_IN_CHECK (each with the reason)

The lists come from the code (the test binaries list their own tests; the KUnit cases are read
from the sources), so a test added or dropped shows up as a line in the diff of the inventory,
which a reviewer sees.  `make check` (scripts/harness.py) then fails a run that does not report
every test of the inventory exactly once, or reports a test that is not in it: a suite dropped
from the build, a test dropped from an `all()` list, a filter left set, a binary that stopped
early all fail even when every document is self-consistent.

A new kind of test binary: one line in BINARIES (the name of its subtest in the report, the
kind, and how to list its tests); the harness maps the report's leaves through the same table.
"""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INVENTORY = os.path.join(ROOT, "tests", "inventory.txt")
RELEASE = os.path.join(ROOT, "wqctl", "target", "release")

# Where the module's KUnit suites are defined (files or directories, relative to the root).
KUNIT_SOURCES = ["rust_wq_main.rs", "src"]

# The subtest that nests a test binary's (or KUnit's) document in the report, by the first word
# of its name -> the kind of its tests, and the command listing them (None: read the sources).
BINARIES = {
    "rust_wq": ("kunit", None),
    "rust_wq_e2e": ("e2e", [os.path.join(RELEASE, "rust_wq_e2e"), "--list"]),
    "rust_wq_stress": ("stress", [os.path.join(RELEASE, "rust_wq_stress"), "--list"]),
}

# Tests a binary lists that `make check` does not run, and why.
NOT_IN_CHECK = {
    ("stress", "failnth_insmod"): "every allocation of the module load failed in turn: the core "
                                  "loader's vmalloc failures print call traces that the log scan flags "
                                  "(run by hand, see README)",
}


def kunit_cases():
    """SUITE.CASE for every #[test] fn of every #[kunit_tests(SUITE)] module in KUNIT_SOURCES."""
    files = []
    for src in KUNIT_SOURCES:
        path = os.path.join(ROOT, src)
        if os.path.isfile(path):
            files.append(path)
        for dirpath, dirs, names in os.walk(path):
            dirs.sort()
            files += [os.path.join(dirpath, n) for n in sorted(names) if n.endswith(".rs")]
    cases = []
    for path in files:
        text = open(path).read()
        suite = None
        for m in re.finditer(r"kunit_tests\((\w+)\)|#\[test\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\(\w+\))?\s+)?fn\s+(\w+)",
                             text):
            if m.group(1):
                suite = m.group(1)
            elif suite is None:
                sys.exit(f"inventory: {os.path.relpath(path, ROOT)}: a #[test] fn {m.group(2)} outside a "
                         "kunit_tests module")
            else:
                cases.append(f"{suite}.{m.group(2)}")
    return cases


def listed(cmd):
    if not os.access(cmd[0], os.X_OK):
        sys.exit(f"inventory: {cmd[0]} missing: build it first (make wqctl; make inventory does)")
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"inventory: {' '.join(cmd)} failed with status {p.returncode}: {p.stderr.strip()}")
    return [x.strip() for x in p.stdout.splitlines() if x.strip()]


def generate():
    """The inventory of the code as it is: sorted KIND NAME lines."""
    lines = set()
    for kind, cmd in BINARIES.values():
        for name in kunit_cases() if cmd is None else listed(cmd):
            if (kind, name) not in NOT_IN_CHECK:
                lines.add(f"{kind} {name}")
    return sorted(lines)


def read(path=INVENTORY):
    """The checked-in inventory: the set of KIND NAME lines."""
    out = []
    for line in open(path):
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def summary(entries):
    """'81 e2e tests, 49 KUnit cases in 9 suites, 7 stress scenarios'."""
    by = {}
    for e in entries:
        kind, name = e.split(" ", 1)
        by.setdefault(kind, []).append(name)
    words = {"kunit": "KUnit cases", "e2e": "e2e tests", "stress": "stress scenarios"}
    parts = []
    for kind in sorted(by):
        part = f"{len(by[kind])} {words.get(kind, kind + ' tests')}"
        if kind == "kunit":
            part += f" in {len({n.split('.')[0] for n in by[kind]})} suites"
        parts.append(part)
    return ", ".join(parts)


def reported(leaves):
    """The inventory entries a report's leaves ((path, status), scripts/harness.py check_ktap)
    stand for, as {entry: [status, ...]}; leaves of no known binary are left out."""
    out, params = {}, set()
    for path, status in leaves:
        if "(parent)" in path:
            continue  # the extra failure of a failed parent: not a test of its own
        for i, part in enumerate(path[:-1]):
            kind = BINARIES.get(part.split(" ")[0], (None,))[0]
            if kind is None:
                continue
            rest = path[i + 1:]
            if kind == "kunit":
                if len(rest) < 2:
                    break
                # A parameterised case has its parameters below it: one entry.
                name = ".".join(rest[:2])
                if len(rest) > 2:
                    if name in params:
                        break
                    params.add(name)
            else:
                name = rest[0]
            out.setdefault(f"{kind} {name}", []).append(status)
            break
    return out


def compare(expected, seen):
    """What is wrong with a run that reported seen ({entry: statuses}) against expected entries:
    (missing, unexpected, reported more than once)."""
    exp = set(expected)
    missing = sorted(exp - set(seen))
    unexpected = sorted(set(seen) - exp)
    twice = sorted(e for e, st in seen.items() if len(st) > 1)
    return missing, unexpected, twice


def write():
    entries = generate()
    head = [
        "# Every test `make check` must report, one a line: KIND NAME.  A run that does not report",
        "# each of them exactly once, or reports one that is not here, fails.",
        "# Generated from the code by `make inventory` (scripts/inventory.py): do not edit by hand;",
        "# review the diff (a removed line is a test that no longer runs).",
        f"# {summary(entries)}: {len(entries)} in all.",
    ]
    for (kind, name), why in sorted(NOT_IN_CHECK.items()):
        head.append(f"# Not in make check: {kind} {name}: {why}.")
    with open(INVENTORY + ".tmp", "w") as f:
        f.write("\n".join(head + entries) + "\n")
    os.replace(INVENTORY + ".tmp", INVENTORY)
    print(f"tests/inventory.txt: {summary(entries)} ({len(entries)} in all)")


def diff():
    now, old = generate(), read() if os.path.exists(INVENTORY) else []
    added, removed = sorted(set(now) - set(old)), sorted(set(old) - set(now))
    for e in added:
        print(f"+{e}  (in the code, not in tests/inventory.txt)")
    for e in removed:
        print(f"-{e}  (in tests/inventory.txt, not in the code)")
    if added or removed:
        print("run `make inventory` and review the diff of tests/inventory.txt")
        return 1
    return 0


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in ("write", "diff"):
        sys.exit("usage: scripts/inventory.py write|diff")
    return write() if sys.argv[1] == "write" else diff()


if __name__ == "__main__":
    sys.exit(main())
