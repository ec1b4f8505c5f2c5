#!/usr/bin/env python3
"""The host side of rust_wq's tests: `make check`, `make stress`, `make bench`.

  check   set-up, builds and lints; host tests (cargo test of wqctl, the
          harness's self-tests); then one VM boot running scripts/guest.sh
          check (KUnit, the C ABI check, e2e, stress, unload and leaks, the
          log scan).  The VM is booted only when every build passed.
  stress  one VM boot running scripts/guest.sh stress (the long scenarios).
  bench   Rust beside its C twin on a release-config kernel (see bench below).
  selftest  the harness's self-tests alone.

The report is one KTAP document (results/MODE/MODE.ktap, also printed): its
top-level tests are the stages, each a subtest whose own KTAP (the guest's,
with the test binaries' and KUnit's documents nested verbatim) is indented
four spaces per level; then one line "N passed, N failed, N skipped"
counting leaf tests as tools/testing/kunit/kunit.py does.  Every document
from the guest is checked (a plan at every level and as many results as it
announces, no "Bail out!", a result line for every subtest), and every
stage must arrive: a missing one is a failed stage.  Exit status 1 when
anything failed.  Progress goes to stderr; logs to results/MODE/.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT = re.compile(r"^(ok|not ok) ([0-9]+)(?: -)?(?: ([^#]*?))?\s*(?:#\s*(.*))?$")
SKIP = re.compile(r"^(SKIP|skip)\b")
STRUCTURE = re.compile(r"^(KTAP version|# Subtest:|1\.\.[0-9]|Bail out!|(not )?ok\b)")
START = time.monotonic()


def progress(msg):
    print(f"# [{time.monotonic() - START:4.0f}s] {msg}", file=sys.stderr, flush=True)


# --- KTAP: checking and counting a document ---------------------------------


@dataclass
class Counts:
    passed: int = 0
    failed: int = 0
    skipped: int = 0

    def add(self, other):
        self.passed += other.passed
        self.failed += other.failed
        self.skipped += other.skipped

    def line(self):
        return f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"


@dataclass
class Block:
    """One level of a KTAP document: its plan and its results."""

    indent: int
    name: str = ""
    plan: int | None = None
    counts: Counts = field(default_factory=Counts)
    results: int = 0
    pending: "Block | None" = None  # a closed subtest waiting for its result line


def check_ktap(text):
    """Counts the leaf tests of KTAP text and lists what is wrong with it."""
    errors = []
    stack = [Block(indent=0)]
    seen_version = False

    def where(b):
        return f"subtest {b.name}" if b.name else "top level" if b is stack[0] else "a nested block"

    def close(b):
        if b.plan is None and (b.results or b is stack[0]):
            errors.append(f"results without a plan line in the {where(b)}")
        elif b.plan is not None and b.plan != b.results:
            errors.append(f"planned {b.plan} tests in the {where(b)}, got {b.results} results")

    def orphan(b):
        if b.pending is not None:
            errors.append(f"no result line for {where(b.pending)}")
            b.counts.add(b.pending.counts)
            b.pending = None

    for raw in text.splitlines():
        line = raw.rstrip()
        body = line.lstrip(" ")
        ind = len(line) - len(body)
        if not STRUCTURE.match(body):
            continue  # a diagnostic, or a line of the kernel log in between
        if body.startswith("KTAP version") and ind == 0 and not seen_version:
            seen_version = True
            continue
        while ind < stack[-1].indent and len(stack) > 1:
            b = stack.pop()
            close(b)
            orphan(stack[-1])
            stack[-1].pending = b
        top = stack[-1]
        if ind > top.indent:
            orphan(top)
            stack.append(Block(indent=ind))
            top = stack[-1]
        if body.startswith("KTAP version"):
            pass  # the header of the nested block opened above
        elif body.startswith("Bail out!"):
            errors.append(body)
        elif body.startswith("# Subtest:"):
            top.name = body[len("# Subtest:"):].strip()
        elif body.startswith("1.."):
            if top.plan is not None:
                errors.append(f"a second plan line in the {where(top)}: {body}")
            top.plan = int(body[3:].split()[0])
        elif m := RESULT.match(body):
            top.results += 1
            ok, num, name, directive = m.group(1) == "ok", int(m.group(2)), (m.group(3) or ""), m.group(4) or ""
            if num != top.results:
                errors.append(f"result {num} ({name}) is the {top.results}th in the {where(top)}")
            sub, top.pending = top.pending, None
            if sub is not None and sub.name and sub.name != name:
                errors.append(f"no result line for subtest {sub.name} (next: {body})")
            leaf = Counts()
            if sub is not None and sub.counts.passed + sub.counts.failed + sub.counts.skipped:
                leaf.add(sub.counts)
                # A failed parent of passing tests is one failure (as kunit.py counts).
                if not ok and not SKIP.match(directive) and not leaf.failed and leaf.passed:
                    leaf.failed += 1
            elif not ok:
                leaf.failed = 1
            elif SKIP.match(directive):
                leaf.skipped = 1
            else:
                leaf.passed = 1
            top.counts.add(leaf)
        else:
            errors.append(f"a result line that is not KTAP: {body}")
    while len(stack) > 1:
        b = stack.pop()
        close(b)
        orphan(stack[-1])
        stack[-1].pending = b
        orphan(stack[-1])
    close(stack[0])
    if not seen_version:
        errors.append("no 'KTAP version 1' line")
    return stack[0].counts, errors


# --- Building the report ------------------------------------------------------


class Stage:
    """One top-level test of the report: leaf results and nested documents."""

    def __init__(self, name):
        self.name, self.lines, self.n = name, [], 0

    def result(self, ok, name, directive="", diag=()):
        self.n += 1
        status = "ok" if ok else "not ok"
        self.lines.append(f"{status} {self.n} {name}" + (f" # {directive}" if directive else ""))
        self.lines += ["# " + d for d in list(diag)[:80]]
        return ok

    def nest(self, name, doc):
        """Nests the KTAP document doc (text) as subtest name; checked first."""
        counts, errors = check_ktap(doc)
        lines = doc.rstrip("\n").splitlines()
        at = next((i + 1 for i, x in enumerate(lines) if x.startswith("KTAP version")), 0)
        lines[at:at] = [f"# Subtest: {name}"]
        self.lines += ["    " + x if x else x for x in lines]
        self.n += 1
        failed = counts.failed or errors
        self.lines.append(f"{'not ok' if failed else 'ok'} {self.n} {name}")
        for e in errors:
            self.result(False, f"{name}.ktap", e)

    def document(self):
        return "\n".join(["KTAP version 1", f"1..{self.n}"] + self.lines) + "\n"


def report(mode, stages, res):
    """Writes and prints the report; returns the exit status."""
    top = Stage("main")
    for s in stages:
        top.nest(s.name, s.document())
    doc = top.document()
    counts, _ = check_ktap(doc)  # what is wrong in a stage is one of its results already
    doc += counts.line() + "\n"
    with open(os.path.join(res, f"{mode}.ktap"), "w") as f:
        f.write(doc)
    sys.stdout.write(doc)
    return 1 if counts.failed or not counts.passed else 0


def excerpt(path, first=50):
    """From the first error line of a log on (50 lines), then its end."""
    try:
        lines = open(path, errors="replace").read().splitlines()
    except OSError as e:
        return [str(e)]
    hit = next((i for i, x in enumerate(lines) if re.search(r"error|warning:|Error|FAILED|panicked|Diff in", x)), None)
    if hit is None or len(lines) - hit < 60:
        return lines[max(0, min(hit if hit is not None else len(lines), len(lines) - 60)):]
    return lines[hit:hit + first] + ["[...]"] + lines[-8:]


def run(cmd, log, **kw):
    with open(log, "w") as f:
        return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, **kw).returncode


def cargo_tests(log, rc):
    """`cargo test` output as a KTAP document, one result per test."""
    s, binary, results, outputs, cur = Stage("cargo_test"), "", [], {}, None
    for line in open(log, errors="replace").read().splitlines():
        if m := re.match(r"^\s*Running .*/([^/ )]+?)(-[0-9a-f]+)?\)", line):
            binary = m.group(1)
        elif m := re.match(r"^\s*Doc-tests (\S+)", line):
            binary = "doc." + m.group(1)
        elif m := re.match(r"^test (.*) \.\.\. (.*)$", line):
            results.append((f"{binary}.{m.group(1).replace(' ', '_')}", m.group(1), m.group(2)))
        elif m := re.match(r"^---- (.*) stdout ----$", line):
            cur = outputs.setdefault(m.group(1), [])
        elif re.match(r"^(failures|successes):$", line):
            cur = None
        elif cur is not None:
            cur.append(line)
    for name, short, status in results:
        if status == "ok":
            s.result(True, name)
        elif status.startswith("ignored"):
            why = status[len("ignored"):].lstrip(", ")
            s.result(True, name, "SKIP ignored" + (f": {why}" if why else ""))
        else:
            s.result(False, name, diag=outputs.get(short, [])[:40])
    if not results:
        s.result(False, "cargo_test", "no host tests found in the cargo test output", excerpt(log))
    elif rc and all(st in ("ok",) or st.startswith("ignored") for _, _, st in results):
        s.result(False, "cargo_test", f"cargo test failed (status {rc})", excerpt(log))
    return s.document()


def required_features(kdir):
    out = subprocess.run(["bash", "-c", f'. scripts/lib.sh && required_features "{kdir}"'],
                         cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip()


def vm_kernel_args(kdir):
    out = subprocess.run(["bash", "-c", f'. scripts/lib.sh && vm_kernel_args "{kdir}"'],
                         cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip()


def boot(cmd, env, logpath):
    """Runs scripts/vm.sh; its output to logpath, the guest's progress to stderr."""
    with open(logpath, "w") as log:
        p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, errors="replace")
        tail = []
        for line in p.stdout:
            log.write(line)
            tail = (tail + [line.rstrip("\n")])[-40:]
            if re.match(r"^\[guest\] (running|ok|not ok|waiting|repeat|items)|^\[rust_wq\]", line):
                progress(line.rstrip("\n").removeprefix("[guest] "))
        return p.wait(), tail


def guest(mode, kdir, res, timeout, stages):
    """Boots the VM with scripts/guest.sh MODE and collects its stage documents."""
    out = os.path.join(res, "guest")
    os.makedirs(out, exist_ok=True)
    require = required_features(kdir)
    kargs = vm_kernel_args(kdir)
    progress(f"VM: booting {kdir} (timeout {timeout} s; required: {require or 'none'}; "
             f"kernel args: {kargs or 'none'}; log: {os.path.relpath(res, ROOT)}/vm.log)")
    cmd = ["bash", "scripts/vm.sh", "--kdir", kdir, "--timeout", str(timeout), "--rwdir", out,
           "--append", kargs, "--", f"bash {ROOT}/scripts/guest.sh {mode} {ROOT} {out}"]
    env = dict(os.environ, RUST_WQ_REQUIRE=require)
    t0 = time.monotonic()
    rc, tail = boot(cmd, env, os.path.join(res, "vm.log"))
    progress(f"VM: finished in {time.monotonic() - t0:.0f} s (status {rc})")
    try:
        done = open(os.path.join(out, "done")).read().split()
    except OSError:
        done = []
    why = {124: f"the VM timed out after {timeout} s",
           255: "the guest died without an exit status (kernel panic?)"}.get(rc, f"the guest ended with status {rc}")
    result = []
    for name in stages:
        path = os.path.join(out, f"{name}.ktap")
        if name in done and os.path.exists(path):
            result.append(from_guest(name, open(path, errors="replace").read()))
        else:
            s = Stage(name)
            s.result(False, name, f"the guest never reported this stage: {why}", [x for x in tail if x])
            result.append(s)
    if rc != 0 and len(done) == len(stages):
        result[-1].result(False, "vm_run", f"vm.sh exited with status {rc}", tail[-20:])
    return result


def from_guest(name, doc):
    """The guest's document of a stage, checked: what is wrong is added as failures."""
    s = Stage(name)
    _, errors = check_ktap(doc)
    lines = doc.rstrip("\n").splitlines()
    if lines and lines[0].startswith("KTAP version"):
        lines = lines[1:]
    if lines and re.fullmatch(r"1\.\.[0-9]+", lines[0]):
        lines = lines[1:]
    s.lines = lines
    s.n = sum(1 for x in lines if re.match(r"^(not )?ok [0-9]", x))
    for e in errors:
        s.result(False, "ktap", e)
    return s


def not_booted(stages, why):
    out = []
    for name in stages:
        s = Stage(name)
        s.result(False, name, f"not run: {why}")
        out.append(s)
    return out


# --- make check -----------------------------------------------------------------

GUEST_CHECK = ["kunit", "abi_check", "e2e", "stress", "unload_and_leaks", "log_scan"]
GUEST_STRESS = ["load", "stress", "unload_and_leaks", "log_scan"]


def check(args):
    res = os.path.join(ROOT, "results", "check")
    shutil.rmtree(res, ignore_errors=True)
    os.makedirs(res)
    kdir = args.kdir
    mk = ["make", "--no-print-directory", "-C", ROOT, "NO_SETUP=1", f"KDIR={kdir}", "RUSTFMT_COLOR=never"]

    setup = Stage("setup_and_lints")

    def step(name, logname, *targets, cmd=None):
        progress(name)
        log = os.path.join(res, f"{logname}.log")
        if run(cmd or mk + list(targets), log) == 0:
            return setup.result(True, name)
        return setup.result(False, name, diag=excerpt(log))

    step("setup", "setup", cmd=["bash", "scripts/setup.sh", "deps" if args.kdir_given else "all"])
    # Clippy first: it compiles the module with clippy-driver; the module
    # build right after recompiles it with rustc (what gets loaded).
    step("lint.clippy_kernel", "clippy-kernel", "lint-clippy")
    built = all([step("build.module", "module", "module"),
                 step("build.compile_fail", "compile-fail", "compile-fail"),
                 step("build.wqctl", "wqctl", "wqctl"),
                 step("build.abi_check", "abi-check", "abi-check")])
    step("lint.rustfmt", "rustfmt", "lint-rustfmt")
    step("lint.cargo_fmt", "cargo-fmt", "lint-cargo-fmt")
    step("lint.cargo_clippy", "cargo-clippy", "lint-cargo-clippy")
    step("lint.scripts", "lint-scripts", "lint-scripts")

    host = Stage("host_tests")
    progress("cargo test (wqctl)")
    log = os.path.join(res, "cargo-test.log")
    host.nest("cargo_test", cargo_tests(log, run(mk + ["test-host"], log)))
    progress("harness self-tests")
    host.nest("harness_selftest", selftest())

    if not built:
        guest_stages = not_booted(GUEST_CHECK, "the VM was not booted: a build step failed, "
                                               "the VM would test stale artefacts")
    elif not os.path.exists(os.path.join(kdir, "arch/x86/boot/bzImage")):
        guest_stages = not_booted(GUEST_CHECK, f"no kernel image in {kdir}")
    else:
        guest_stages = guest("check", kdir, res, int(os.environ.get("RUST_WQ_CHECK_VM_TIMEOUT", 600)),
                             GUEST_CHECK)
    progress(f"done in {time.monotonic() - START:.0f} s")
    return report("check", [setup, host] + guest_stages, res)


def stress(args):
    res = os.path.join(ROOT, "results", "stress")
    shutil.rmtree(res, ignore_errors=True)
    os.makedirs(res)
    for f in ("rust_wq.ko", "wqctl/target/release/rust_wq_stress"):
        if not os.path.exists(os.path.join(ROOT, f)):
            sys.exit(f"stress: {f} missing (run 'make stress', which builds it)")
    if not os.path.exists(os.path.join(args.kdir, "arch/x86/boot/bzImage")):
        sys.exit(f"stress: no kernel image in {args.kdir} (make setup)")
    stages = guest("stress", args.kdir, res, int(os.environ.get("RUST_WQ_STRESS_VM_TIMEOUT", 1500)),
                   GUEST_STRESS)
    progress(f"stress run: {time.monotonic() - START:.0f} s")
    return report("stress", stages, res)


# --- make bench -------------------------------------------------------------------


def bench(args):
    """Every operation of the workqueue layer timed beside its C twin (bench/rust_wq_ctwin.c, the
    same kernel calls from C), the kernel's own lib/test_workqueue.c per affinity scope, and
    throughput in guest instructions per item, all in one VM boot on a release-config kernel.

    The release kernel (scripts/kernel-release.config: the test kernel's config without its debug
    options) is built on first use (about 6 minutes on 2 cores) and cached in
    ~/.cache/rust_wq/build-7.3-release-<hash>.  The module and the twin are built for the booted
    kernel in build/bench-<kernel tree name>/ from a copy of the sources, so the debug build in
    the tree is left alone.  By default QEMU runs with `-icount shift=0,sleep=off`: the guest clock
    advances one nanosecond per instruction, so latencies are instruction counts.

    Environment: BENCH_KERNEL (release, or debug: the test kernel), KDIR (a tree of your own),
    BENCH_ITEMS (rounds per run and thread, 1000), BENCH_REPEATS (3), BENCH_CPUS (4), BENCH_SETS
    ("ops scopes tput"), BENCH_ICOUNT (1; 0: plain TCG/KVM), BENCH_ICOUNT_OPTS, BENCH_VM_TIMEOUT,
    BENCH_VERBOSE (1: the guest console in the log), RUST_WQ_BENCH_RUN_TIMEOUT (per run, guest).

    Writes results/bench-<kernel>-<UTC stamp>.{txt,csv,json,log,svg} and the guest's directory
    .guest/, and copies the picture to results/bench-latest-<kernel>.svg (the README shows it).
    Exit status 0 when every run succeeded and the kernel log is clean.
    """
    env = os.environ
    kernel, items, repeats, cpus = (env.get("BENCH_KERNEL", "release"), env.get("BENCH_ITEMS", "1000"),
                                    env.get("BENCH_REPEATS", "3"), env.get("BENCH_CPUS", "4"))
    sets = env.get("BENCH_SETS", "ops scopes tput")
    for name, v, hi in (("BENCH_ITEMS", items, 1000000), ("BENCH_REPEATS", repeats, None), ("BENCH_CPUS", cpus, None)):
        if not re.fullmatch(r"[1-9][0-9]*", v) or (hi and int(v) > hi):
            sys.exit(f"bench: {name} must be a positive integer{f' <= {hi}' if hi else ''} (got '{v}')")
    items, repeats, cpus = int(items), int(repeats), int(cpus)

    def setup(what):
        p = subprocess.run(["bash", "scripts/setup.sh", what], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        if p.returncode:
            sys.exit(f"bench: scripts/setup.sh {what} failed")
        return p.stdout.strip()

    if args.kdir_given:
        kernel, kdir = "custom", args.kdir
        setup("deps")
    elif kernel == "release":
        kdir = setup("bench-kdir")
        setup("bench-kernel")
    elif kernel == "debug":
        kdir = args.kdir
        setup("all")
    else:
        sys.exit(f"bench: BENCH_KERNEL must be release or debug (got '{kernel}')")
    c_ko = os.path.join(kdir, "lib/test_workqueue.ko")
    if not os.path.exists(c_ko):
        sys.exit(f"bench: {c_ko} not found: the kernel tree needs CONFIG_TEST_WORKQUEUE=m")

    # The module and the twin for this kernel, from a copy of the sources (kbuild's M= needs a
    # tree without in-tree build outputs); copy2 keeps timestamps: the next build is incremental.
    kodir = os.path.join(ROOT, "build", "bench-" + os.path.basename(kdir))
    progress(f"bench: building rust_wq.ko and rust_wq_ctwin.ko for {os.path.basename(kdir)} in {kodir}")
    for d in ("src", "bench", "include"):
        shutil.rmtree(os.path.join(kodir, d), ignore_errors=True)
        for dirpath, _, files in os.walk(os.path.join(ROOT, d)):
            for f in files:
                if f.endswith((".rs", ".c", ".h")):
                    dst = os.path.join(kodir, os.path.relpath(dirpath, ROOT))
                    os.makedirs(dst, exist_ok=True)
                    shutil.copy2(os.path.join(dirpath, f), dst)
    for f in ("Kbuild", "rust_wq_main.rs"):
        shutil.copy2(os.path.join(ROOT, f), kodir)
    build = f'. scripts/lib.sh && toolchain_env && set +eu && make --no-print-directory -C "{kdir}" M="{kodir}" modules'
    for what, cmd in (("module", ["bash", "-c", build]), ("wqctl", ["make", "--no-print-directory", "wqctl", "NO_SETUP=1"])):
        log = os.path.join(kodir, f"{what}-build.log")
        if run(cmd, log):
            sys.stderr.write("\n".join(open(log, errors="replace").read().splitlines()[-30:]) + "\n")
            sys.exit(f"bench: the {what} build failed, see {log}")

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    outdir = os.path.join(ROOT, "results")
    base = os.path.join(outdir, f"bench-{kernel}-{stamp}")
    guest_dir = base + ".guest"
    os.makedirs(guest_dir)
    qemu = []
    icount_opts = env.get("BENCH_ICOUNT_OPTS", "-icount shift=0,sleep=off")
    if env.get("BENCH_ICOUNT", "1") == "1":
        qemu = ["--qemu-opts", icount_opts]
    if env.get("BENCH_VERBOSE", "0") == "1":
        qemu.append("--verbose")
    # Boot plus about 40 s per 1000 items and repeat under icount, with a wide margin.
    timeout = int(env.get("BENCH_VM_TIMEOUT", 300 + repeats * ((items + 999) // 1000) * 300))
    progress(f"bench: {kernel} kernel, items={items} repeats={repeats} cpus={cpus} sets='{sets}' "
             f"qemu='{qemu[1] if qemu else ''}' vm timeout {timeout}s; raw guest log {base}.log")
    genv = dict(env, RUST_WQ_BENCH_KODIR=kodir, RUST_WQ_BENCH_ITEMS=str(items), RUST_WQ_BENCH_REPEATS=str(repeats),
                RUST_WQ_BENCH_SETS=sets, RUST_WQ_BENCH_C_KO=c_ko)
    cmd = ["bash", "scripts/vm.sh", "--kdir", kdir, "--cpus", str(cpus), "--timeout", str(timeout),
           "--rwdir", guest_dir] + qemu + ["--", f"bash {ROOT}/scripts/guest.sh bench {ROOT} {guest_dir}"]
    t0 = time.monotonic()
    rc, _ = boot(cmd, genv, base + ".log")
    vm_wall, wall = int(time.monotonic() - t0), int(time.monotonic() - START)
    report_rc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts/bench-report.py"), "--guest", guest_dir,
                                "--out", base, "--kernel", kernel, "--items", str(items), "--repeats", str(repeats),
                                "--cpus", str(cpus), "--qemu-opts", qemu[1] if qemu else "", "--sets", sets,
                                "--vm-status", str(rc), "--wall", str(wall), "--vm-wall", str(vm_wall)]).returncode
    if os.path.exists(base + ".svg"):
        shutil.copy(base + ".svg", os.path.join(outdir, f"bench-latest-{kernel}.svg"))
    progress(f"bench: wrote {base}.{{txt,csv,json,log,svg}} (wall time {wall} s, of which VM {vm_wall} s)")
    if rc:
        progress(f"bench: FAILED (VM status {rc})")
        return rc
    progress("bench: FAILED (see the failures above)" if report_rc else "bench: OK")
    return 1 if report_rc else 0


# --- the harness's self-tests ---------------------------------------------------------


def selftest():
    """Known-bad inputs to each fail-closed piece of the harness."""
    s = Stage("harness_selftest")

    def expect(name, cond, seen):
        s.result(bool(cond), name, diag=[] if cond else [f"seen: {x}" for x in str(seen).splitlines()[:20]])

    c, e = check_ktap("KTAP version 1\n1..3\nok 1 a\nok 2 b # SKIP no hotplug\nnot ok 3 c\n")
    expect("ktap_counts_skips", c.line() == "1 passed, 1 failed, 1 skipped" and not e, (c, e))
    nested = "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: suite\n    1..3\n    ok 1 a\n    ok 2 b\nok 1 suite\n"
    c, e = check_ktap(nested)
    expect("ktap_nested_plan", "planned 3 tests in the subtest suite, got 2 results" in e, e)
    c, e = check_ktap("KTAP version 1\n1..2\nok 1 a\nBail out! device gone\n")
    expect("ktap_bail_out", "Bail out! device gone" in e, e)
    expect("ktap_top_plan", "planned 2 tests in the top level, got 1 results" in e, e)
    c, e = check_ktap("KTAP version 1\n1..2\nok 1 a\nok b\n")
    expect("ktap_unparsed", "a result line that is not KTAP: ok b" in e, e)
    c, e = check_ktap("KTAP version 1\nok 1 a\n")
    expect("ktap_no_plan", "results without a plan line in the top level" in e, e)
    c, e = check_ktap("KTAP version 1\n1..1\n    # Subtest: s\n    1..1\n    ok 1 x\nok 1 t\n")
    expect("ktap_subtest_result_line", "no result line for subtest s (next: ok 1 t)" in e, e)
    good = "KTAP version 1\n1..2\n    KTAP version 1\n    # Subtest: p\n    1..2\n    ok 1 x\n" \
           "    ok 2 y # SKIP n/a\nok 1 p\nnot ok 2 q\n# why\n"
    c, e = check_ktap(good)
    expect("ktap_good_document", c.line() == "1 passed, 1 failed, 1 skipped" and not e, (c, e))
    c, e = check_ktap("KTAP version 1\n1..1\n    KTAP version 1\n    1..1\n    ok 1 x\nnot ok 1 p\n")
    expect("ktap_failed_parent_counts", c.failed == 1 and c.passed == 1 and not e, (c, e))
    st = Stage("s")
    st.nest("inner", "KTAP version 1\n1..2\nok 1 a\n")
    expect("stage_lost_result", "not ok 2 inner.ktap # planned 2 tests in the top level, got 1 results"
           in st.lines, st.lines)
    doc = from_guest("e2e", "KTAP version 1\n1..3\nok 1 a\nok 2 b\n").document()
    expect("stage_truncated_document", "not ok 3 ktap # planned 3 tests in the top level, got 2 results"
           in doc, doc)
    missing = not_booted(["kunit"], "x")[0].document()
    expect("stage_missing_fails", "not ok 1 kunit # not run: x" in missing, missing)

    def scan(text, allow=None):
        env = dict(os.environ)
        env.pop("RUST_WQ_DMESG_ALLOW", None)
        if allow is not None:
            env["RUST_WQ_DMESG_ALLOW"] = allow
        p = subprocess.run(["bash", "scripts/dmesg-scan.sh"], input=text, cwd=ROOT, env=env,
                           capture_output=True, text=True)
        return p.returncode, (p.stdout + p.stderr).strip()

    r = scan("[ 1.0] hello\n[ 2.0] WARNING: CPU: 1 PID: 2 at x\n")
    expect("dmesg_scan_catches_warning", r[0] == 1 and r[1].startswith("WARNING: CPU"), r)
    r = scan("[ 1.0] hello\n")
    expect("dmesg_scan_clean_passes", r == (0, ""), r)
    r = scan("hello\n", "(")
    expect("dmesg_scan_bad_allow_list_fails", r[0] == 2 and "invalid allow-list regex" in r[1], r)
    r = scan("WARNING: known thing\nBUG: other\n", "known thing")
    expect("dmesg_scan_allow_list_applies", r[0] == 1 and r[1].splitlines()[0] == "BUG: other", r)
    return s.document()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["check", "stress", "bench", "selftest"])
    ap.add_argument("--kdir", default=os.environ.get("KDIR", ""))
    args = ap.parse_args()
    args.kdir_given = bool(os.environ.get("KDIR_GIVEN"))
    if args.mode == "selftest":
        doc = selftest()
        sys.stdout.write(doc)
        counts, errors = check_ktap(doc)
        return 1 if counts.failed or errors else 0
    return {"check": check, "stress": stress, "bench": bench}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
