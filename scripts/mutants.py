#!/usr/bin/env python3
"""`make mutants`: the deliberate breaks of tests/mutants/, each caught by the test it names.

Each tests/mutants/NN-name.patch is a small patch of the module or of the harness, with a
header (before the diff) that says what it breaks and which test must catch it:

    Mutant: MOD_DELAY of a running item waits for it.
    Expect: e2e mod_delay_started_enoent

Expect is an entry of tests/inventory.txt (kunit SUITE.CASE, e2e TEST, stress SCENARIO) or
`selftest NAME` (a harness self-test, for patches of scripts/).  For each mutant this applies
the patch to a scratch copy of the tree (build/mutants/NAME/); a patch of scripts/ is checked by
running that copy's harness self-tests; a patch of the module is built there against KDIR.  The
built mutants then run in as few VM boots as possible (scripts/guest.sh mutants): for each,
insmod (KUnit limited to the expected case, or to none), the expected test alone, rmmod, and the
kernel-log scan since its insmod.  A mutant is caught when its expected test fails; a mutant that
the rest of the suite catches instead (insmod fails, the log scan, a crash or hang that ends the
boot) is reported as caught elsewhere, a hole in the expected test's assertions.  A boot that
dies, or whose kernel oopsed (taint D), is restarted with the mutants it did not get to.  A
mutant caught elsewhere after other mutants in its boot (whose damage, such as a leaked timer
firing into freed module memory, may have been the cause) runs once more, first in a new boot,
and that run decides.

Prints "N of M mutants caught" and the survivors; exit status 0 when every mutant was caught by
its expected test.  Environment: KDIR (default: the cached tree), MUTANTS (globs of names to
run, e.g. '0* *flush*'), RUST_WQ_MUTANT_TIMEOUT (seconds per test run in the guest, 120).
"""

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MUTANTS = os.path.join(ROOT, "tests", "mutants")
WORK = os.path.join(ROOT, "build", "mutants")
START = time.monotonic()
# What a scratch copy holds: the module's sources and the scripts (a mutant patches one of them).
COPY = ["Kbuild", "rust_wq_main.rs", "src", "include", "bench", "scripts", "tests"]


def progress(msg):
    print(f"# [{time.monotonic() - START:4.0f}s] {msg}", file=sys.stderr, flush=True)


def load():
    out = []
    patterns = os.environ.get("MUTANTS", "*").split()
    for f in sorted(os.listdir(MUTANTS)):
        if not f.endswith(".patch"):
            continue
        name = f[:-len(".patch")]
        if not any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(name.split("-", 1)[-1], p) for p in patterns):
            continue
        text = open(os.path.join(MUTANTS, f)).read()
        head = text.split("\n--- ", 1)[0]
        expect = re.search(r"^Expect: (\w+) (\S+)$", head, re.M)
        why = re.search(r"^Mutant: (.*)$", head, re.M)
        files = re.findall(r"^\+\+\+ b/(\S+)", text, re.M)
        if not expect or not why or not files:
            sys.exit(f"mutants: {f}: needs 'Mutant:' and 'Expect: KIND NAME' lines and a diff")
        out.append({"name": name, "patch": os.path.join(MUTANTS, f), "kind": expect.group(1),
                    "test": expect.group(2), "why": why.group(1), "files": files})
    return out


def scratch(m):
    """A fresh copy of the tree with the mutant applied; None (and the reason) if it does not apply."""
    d = os.path.join(WORK, m["name"])
    for sub in COPY:
        src, dst = os.path.join(ROOT, sub), os.path.join(d, sub)
        if os.path.isdir(dst):
            shutil.rmtree(dst)
        if os.path.isdir(src):
            shutil.copytree(src, dst, copy_function=shutil.copy2)
        elif os.path.exists(src):
            os.makedirs(d, exist_ok=True)
            shutil.copy2(src, dst)
    p = subprocess.run(["patch", "-p1", "-s", "--no-backup-if-mismatch", "-d", d, "-i", m["patch"]],
                       capture_output=True, text=True)
    return d, (None if p.returncode == 0 else (p.stdout + p.stderr).strip())


def toolchain(cmd):
    return ["bash", "-c", '. scripts/lib.sh && toolchain_env && set +eu && ' + cmd]


def main():
    kdir = os.environ.get("KDIR") or subprocess.run(
        ["bash", "-c", '. scripts/lib.sh && printf %s "$KBUILD_DIR_DEFAULT"'], cwd=ROOT,
        capture_output=True, text=True).stdout
    mutants = load()
    if not mutants:
        sys.exit("mutants: none selected")
    os.makedirs(WORK, exist_ok=True)
    verdict = {}  # name -> (caught | elsewhere | survived | error, how)
    guest = []
    t_build = time.monotonic()
    for m in mutants:
        d, err = scratch(m)
        if err:
            verdict[m["name"]] = ("error", f"the patch does not apply: {err}")
            continue
        if m["kind"] == "selftest":
            p = subprocess.run([sys.executable, os.path.join(d, "scripts", "harness.py"), "selftest"],
                               cwd=d, capture_output=True, text=True)
            hit = re.search(rf"^not ok \d+ {re.escape(m['test'])}$", p.stdout, re.M)
            verdict[m["name"]] = ("caught" if hit else "survived", "its self-test failed" if hit else "every self-test passed")
            progress(f"{m['name']}: {'caught' if hit else 'SURVIVED'} (harness self-tests)")
            continue
        log = os.path.join(d, "build.log")
        with open(log, "w") as f:
            rc = subprocess.run(toolchain(f'make --no-print-directory -C "{kdir}" M="{d}" modules'), cwd=ROOT,
                                stdout=f, stderr=subprocess.STDOUT).returncode
        if rc or not os.path.exists(os.path.join(d, "rust_wq.ko")):
            verdict[m["name"]] = ("error", f"does not build (see {os.path.relpath(log, ROOT)})")
            progress(f"{m['name']}: does not build")
            continue
        progress(f"{m['name']}: built")
        guest.append(m)
    t_build = time.monotonic() - t_build
    boots, t_vm = 0, 0.0
    retried = set()  # mutants run once more, first in a boot of their own
    while guest:
        boots += 1
        out = os.path.join(WORK, f"guest-{boots}")
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        with open(os.path.join(out, "list"), "w") as f:
            for m in guest:
                f.write(f"{m['name']}\t{os.path.join(WORK, m['name'], 'rust_wq.ko')}\t{m['kind']}\t{m['test']}\n")
        progress(f"VM boot {boots}: {len(guest)} mutants")
        t0 = time.monotonic()
        timeout = 120 + 200 * len(guest)
        with open(os.path.join(out, "vm.log"), "w") as f:
            # --console: a panic or oops that ends the boot is kept in vm.log (errors only).
            rc = subprocess.run(["bash", "scripts/vm.sh", "--kdir", kdir, "--console", "--timeout", str(timeout),
                                 "--rwdir", out,
                                 "--", f"bash {ROOT}/scripts/guest.sh mutants {ROOT} {out}"], cwd=ROOT,
                                stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
        t_vm += time.monotonic() - t0
        done = {}
        try:
            for line in open(os.path.join(out, "results")):
                name, status, how = (line.rstrip("\n").split("\t") + ["", ""])[:3]
                done[name] = (status, how)
        except OSError:
            pass
        missing = [m for m in guest if m["name"] not in done]
        again = []
        for i, m in enumerate(guest):
            if m["name"] not in done:
                continue
            if done[m["name"]][0] == "elsewhere" and i > 0 and m["name"] not in retried:
                # Not caught by its test, but by a splat that an earlier mutant of this boot
                # may have caused (a leaked timer firing into freed module memory): once more,
                # first in a new boot.
                retried.add(m["name"])
                again.append(m)
                progress(f"{m['name']}: caught elsewhere after other mutants ({done[m['name']][1]}); again, first in a new boot")
                continue
            verdict[m["name"]] = done[m["name"]]
            progress(f"{m['name']}: {done[m['name']][0]} ({done[m['name']][1]})")
        if missing and "(stopped)" not in done:
            # The boot ended while this one ran: the suite would have failed (crash or hang),
            # unless an earlier mutant of this boot left the kernel to die (then once more, first
            # in a new boot).
            m = missing.pop(0)
            if m is not guest[0] and m["name"] not in retried:
                retried.add(m["name"])
                again.append(m)
                progress(f"{m['name']}: the VM died (status {rc}) after other mutants; again, first in a new boot")
            else:
                verdict[m["name"]] = ("elsewhere", f"the VM died or hung while it ran (vm.sh status {rc}; console: {out}/vm.log)")
                progress(f"{m['name']}: caught elsewhere (VM status {rc})")
        guest = again + missing
    caught = [n for n, (s, _) in verdict.items() if s == "caught"]
    elsewhere = [n for n, (s, _) in verdict.items() if s == "elsewhere"]
    bad = [n for n in verdict if n not in caught and n not in elsewhere]
    print(f"{len(caught)} of {len(mutants)} mutants caught by their expected test"
          + (f", {len(elsewhere)} more by the rest of the suite" if elsewhere else "")
          + f" (build {t_build:.0f} s, {boots} VM boot(s) {t_vm:.0f} s, wall {time.monotonic() - START:.0f} s)")
    for n in elsewhere:
        print(f"caught elsewhere: {n}: {verdict[n][1]}")
    for n in bad:
        print(f"SURVIVED: {n}: {verdict[n][1]}")
    return 0 if not bad and not elsewhere else 1


if __name__ == "__main__":
    sys.exit(main())
