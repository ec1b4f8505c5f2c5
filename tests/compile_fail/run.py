#!/usr/bin/env python3
"""Compile-fail checks of the workqueue layer's API (`make compile-fail`).

Every tests/compile_fail/*.rs must be rejected by rustc with the error its
"// expect-error: REGEX" line names.  The cases are modules of a copy of the
crate (build/compile_fail/crate/), built by kbuild against KDIR with the
kernel's own rustc flags.  rustc reports the type errors of every function, so
one build checks all cases: it must fail with exactly one error per case, each
case's expected message pointing at that case's file.

Usage: KDIR=... tests/compile_fail/run.py (toolchain environment set up, as
`make compile-fail` does).  Prints KTAP, one result per case; exit status 1 if
any case is not rejected as expected.
"""

import glob
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def main():
    kdir = os.environ.get("KDIR") or sys.exit("KDIR must name a kernel build tree")
    crate = os.path.join(ROOT, "build", "compile_fail", "crate")
    shutil.rmtree(crate, ignore_errors=True)
    os.makedirs(crate)
    shutil.copy(os.path.join(ROOT, "rust_wq_main.rs"), crate)
    shutil.copy(os.path.join(ROOT, "Kbuild"), crate)
    shutil.copytree(os.path.join(ROOT, "src"), os.path.join(crate, "src"))
    cases = sorted(glob.glob(os.path.join(HERE, "*.rs")))
    with open(os.path.join(crate, "rust_wq_main.rs"), "a") as f:
        for case in cases:
            name = os.path.basename(case)[:-3]
            f.write(f'\n#[path = "{case}"]\nmod compile_fail_{name};\n')

    print(f"KTAP version 1\n1..{len(cases) + 1}")
    build = subprocess.run(["make", "--no-print-directory", "-C", kdir, f"M={crate}", "modules"],
                           capture_output=True, text=True, errors="replace")
    with open(os.path.join(crate, "build.log"), "w") as f:
        f.write(build.stdout + build.stderr)
    # "error[E0599]: message" followed (within a few lines) by "--> path:line:col".
    errors, msg = [], None
    for line in (build.stdout + build.stderr).splitlines():
        if re.match(r"^error(\[E[0-9]+\])?: ", line) and "aborting" not in line and "could not compile" not in line:
            msg = line
        elif msg and (m := re.match(r"^ *--> (.*)", line)):
            errors.append((m.group(1), msg))
            msg = None
    failed = build.returncode == 0
    for n, case in enumerate(cases, 1):
        name = os.path.basename(case)[:-3]
        with open(case) as f:
            expect = next((x[len("// expect-error: "):].strip() for x in f if x.startswith("// expect-error: ")), "")
        mine = [m for path, m in errors if path.startswith(case + ":")]
        if not expect:
            print(f"not ok {n} {name} # no '// expect-error:' line")
        elif not mine:
            print(f"not ok {n} {name} # compiled (no error in this file)")
        elif len(mine) != 1 or not re.search(expect, mine[0]):
            print(f"not ok {n} {name} # not the expected error: {expect}")
            print("\n".join("#   " + m for m in mine))
        else:
            print(f"ok {n} {name} # {mine[0][:120]}")
            continue
        failed = True
    n = len(cases) + 1
    if build.returncode == 0:
        print(f"not ok {n} total # the crate with all {len(cases)} cases compiled")
    elif len(errors) != len(cases):
        print(f"not ok {n} total # {len(errors)} errors for {len(cases)} cases:")
        print("\n".join(f"#   {p}\t{m}" for p, m in errors))
        failed = True
    else:
        print(f"ok {n} total # {len(errors)} errors for {len(cases)} cases")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
