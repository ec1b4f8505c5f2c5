#!/usr/bin/env python3
"""The host side of rust_wq's tests: `make check`, `make stress`, `make bench`.

  check   set-up and the builds the VM needs; then two VM boots at the same
          time, scripts/guest.sh check and check2 (KUnit, the C ABI check, the
          two lanes of e2e, the short stress scenarios, torture, unload and
          leaks, the log scan in each), while the host runs the lints and
          its own tests (cargo test of wqctl, the harness's self-tests).  The
          VMs are booted only when every build they need passed.
  stress  one VM boot running scripts/guest.sh stress (the long scenarios).
  bench   Rust beside its C twin on a release-config kernel (see bench below).
  selftest  the harness's self-tests alone.

The report is one KTAP document (results/MODE/MODE.ktap, also printed): its
top-level tests are the stages, each a subtest whose own KTAP (the guest's,
with the test binaries' and KUnit's documents nested verbatim) is indented
four spaces per level; then one line "N passed, N failed, N skipped"
counting leaf tests as tools/testing/kunit/kunit.py does.  Every document
from the guest is checked (a "KTAP version" header and a plan at every
level and as many results as it announces, no "Bail out!", a result line
for every subtest, no directive but SKIP on an `ok` line), a failed parent
is a failure whatever its subtests printed (a binary that printed SKIP lines
and then hung), and every stage must arrive: a missing one is a failed stage.  Exit status 1 when
anything failed.  Progress goes to stderr; logs to results/MODE/.
"""

import argparse
import concurrent.futures
import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

import inventory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT = re.compile(r"^(ok|not ok) ([0-9]+)(?: -)?(?: ([^#]*?))?\s*(?:#\s*(.*))?$")
# The one directive an `ok` line may carry (KTAP: "# SKIP reason"); anything
# else after an `ok` ("# SKIPPED", "# TODO", ...) is an error, never a pass.
SKIP = re.compile(r"^SKIP(\s|$)")
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
    header: bool = False  # its "KTAP version" line was seen
    leaves: list = field(default_factory=list)  # ([name, ...], "pass"|"fail"|"skip"), paths below it


def check_ktap(text, leaves=None):
    """Counts the leaf tests of KTAP text and lists what is wrong with it.

    Every nested document must start with its own "KTAP version" line and
    have a plan (a test binary that printed nothing, or died before its
    plan, is an error).  A parent result "not ok" is a failure whatever its
    subtests printed: one more failure when none of them failed (a binary
    that printed only SKIP lines and then hung, was killed or exited
    non-zero).  An `ok` line's only directive is SKIP.  When leaves is a
    list, the leaf tests are appended to it as (path, status): path the
    list of names from the top level down, status "pass", "fail" or "skip".
    """
    errors = []
    stack = [Block(indent=0)]
    seen_version = False

    def where(b):
        return f"subtest {b.name}" if b.name else "top level" if b is stack[0] else "a nested block"

    def close(b):
        if b is not stack[0] and not b.header:
            errors.append(f"no 'KTAP version' header in the {where(b)}")
        if b.plan is None:
            errors.append(f"{'results' if b.results else 'nothing'} without a plan line in the {where(b)}")
        elif b.plan != b.results:
            errors.append(f"planned {b.plan} tests in the {where(b)}, got {b.results} results")

    def orphan(b):
        if b.pending is not None:
            errors.append(f"no result line for {where(b.pending)}")
            b.counts.add(b.pending.counts)
            b.leaves += [([b.pending.name or "?"] + p, st) for p, st in b.pending.leaves]
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
            if top.header or top.plan is not None or top.results or top is stack[0]:
                errors.append(f"a 'KTAP version' line that does not start a document: {body}")
            top.header = True
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
            if ok and directive and not SKIP.match(directive):
                errors.append(f"an 'ok' line whose directive is not SKIP: {body}")
            leaf = Counts()
            if sub is not None and sub.counts.passed + sub.counts.failed + sub.counts.skipped:
                leaf.add(sub.counts)
                # A failed parent is a failure whatever its subtests printed (kunit.py counts
                # it only when some passed: a hang after SKIP lines would vanish).
                if not ok and not leaf.failed:
                    leaf.failed += 1
                    top.leaves.append(([name, "(parent)"], "fail"))
                top.leaves += [([name] + p, st) for p, st in sub.leaves]
            else:
                if not ok:
                    leaf.failed = 1
                elif SKIP.match(directive):
                    leaf.skipped = 1
                else:
                    leaf.passed = 1
                top.leaves.append(([name], "fail" if leaf.failed else "skip" if leaf.skipped else "pass"))
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
    if leaves is not None:
        leaves += stack[0].leaves
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


def report(mode, stages, res, note=""):
    """Writes and prints the report; returns the exit status."""
    top = Stage("main")
    for s in stages:
        top.nest(s.name, s.document())
    doc = top.document()
    counts, _ = check_ktap(doc)  # what is wrong in a stage is one of its results already
    doc += counts.line() + (f" ({note})" if note else "") + "\n"
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


def lib_sh(function, kdir):
    """scripts/lib.sh FUNCTION KDIR's output; None (and why, on stderr) when it failed: a
    silently empty answer would turn every required debug feature into a skip."""
    out = subprocess.run(["bash", "-c", f'. scripts/lib.sh && {function} "$1"', "lib.sh", kdir],
                         cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        progress(f"scripts/lib.sh {function} {kdir} failed (status {out.returncode}): {out.stderr.strip()}")
        return None
    return out.stdout.strip()


def kill_tree(pid):
    """SIGKILL to pid and every process below it (vm.sh's `timeout` runs vng and QEMU in a
    process group of its own, so a group kill would miss them)."""
    children = {}
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    todo = [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            os.kill(p, 9)
        except OSError:
            pass


# A VM that has printed nothing at all this long after QEMU started (with vm.sh --console
# the kernel's first line comes within seconds) hung before its kernel ran.
FIRST_OUTPUT_S = 90


def boot(cmd, env, logpath, tag="", first_output_s=None):
    """Runs scripts/vm.sh; its output to logpath, the guest's progress to stderr (prefixed
    with tag, so that two boots at the same time can be told apart). With first_output_s, a
    VM that prints nothing within that many seconds is killed. Returns (status, the last
    lines, whether it printed anything)."""
    with open(logpath, "w") as log:
        p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, errors="replace")
        printed = threading.Event()
        if first_output_s:
            def watchdog():
                if not printed.wait(first_output_s):
                    kill_tree(p.pid)
            threading.Thread(target=watchdog, daemon=True).start()
        tail = []
        for line in p.stdout:
            printed.set()
            log.write(line)
            tail = (tail + [line.rstrip("\n")])[-40:]
            if re.match(r"^\[guest\] (running|ok|not ok|waiting|repeat|items)|^\[rust_wq\]", line):
                progress((f"({tag.lstrip('_')}) " if tag else "") + line.rstrip("\n").removeprefix("[guest] "))
        rc = p.wait()
        printed.set()
        return rc, tail, bool(tail)


def guest(mode, kdir, res, timeout, stages, extra_args="", tag="", cpus=None):
    """Boots the VM with scripts/guest.sh MODE and collects its stage documents.

    extra_args: more kernel command-line options; tag: a suffix for the guest's
    output directory and log, so that two boots of one run keep apart; cpus: vCPUs
    (default: scripts/vm.sh's)."""
    out = os.path.join(res, "guest" + tag)
    os.makedirs(out, exist_ok=True)
    require, kargs = lib_sh("required_features", kdir), lib_sh("vm_kernel_args", kdir)
    if require is None or kargs is None:
        return not_booted(stages, f"scripts/lib.sh cannot read the configuration of {kdir} (its .config): "
                                  "the VM would run with no required debug feature")
    kargs = " ".join(x for x in (kargs, extra_args) if x)
    vmlog = f"vm{tag}.log"
    progress(f"VM: booting {kdir} (timeout {timeout} s; required: {require or 'none'}; "
             f"kernel args: {kargs or 'none'}; log: {os.path.relpath(res, ROOT)}/{vmlog})")
    cmd = ["bash", "scripts/vm.sh", "--kdir", kdir, "--timeout", str(timeout), "--rwdir", out, "--console",
           *(["--cpus", str(cpus)] if cpus else []),
           "--append", kargs, "--", f"bash {ROOT}/scripts/guest.sh {mode} {ROOT} {out}"]
    env = dict(os.environ, RUST_WQ_REQUIRE=require)
    t0 = time.monotonic()
    rc, tail, printed = boot(cmd, env, os.path.join(res, vmlog), tag, FIRST_OUTPUT_S)
    if not printed:
        # QEMU hung before the kernel printed its first line (seen about once in 15 runs of
        # two VMs at once on 2 cores): nothing of the module ran. Boot once more.
        progress(f"VM{tag}: no output at all in {FIRST_OUTPUT_S} s (hung before the kernel ran); booting again")
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        rc, tail, printed = boot(cmd, env, os.path.join(res, vmlog), tag, FIRST_OUTPUT_S)
    progress(f"VM{tag}: finished in {time.monotonic() - t0:.0f} s (status {rc})")
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


def check_inventory(stages, expected):
    """Stage inventory: one result per kind of test, failed when the report's leaves do not
    name every entry of the inventory exactly once, or name one that is not in it."""
    s = Stage("inventory")
    leaves = []
    for st in stages:
        found = []
        check_ktap(st.document(), found)
        leaves += [([st.name] + path, status) for path, status in found]
    seen = inventory.reported(leaves)
    missing, unexpected, twice = inventory.compare(expected, seen)
    for kind in sorted({e.split(" ", 1)[0] for e in list(expected) + list(seen)}):
        of = [e for e in expected if e.startswith(kind + " ")]
        m, u, t = ([e for e in x if e.startswith(kind + " ")] for x in (missing, unexpected, twice))
        diag = ([f"not reported: {e}" for e in m] + [f"not in tests/inventory.txt: {e}" for e in u]
                + [f"reported {len(seen[e])} times: {e}" for e in t])
        s.result(not diag, f"inventory.{kind}",
                 "" if not diag else f"{len(m)} of {len(of)} not reported, {len(u)} unexpected, {len(t)} repeated",
                 diag or [f"{len(of) - len(m)} of {len(of)} reported"])
    if not s.n:
        s.result(False, "inventory", "the inventory is empty (make inventory)")
    return s


def not_booted(stages, why):
    out = []
    for name in stages:
        s = Stage(name)
        s.result(False, name, f"not run: {why}")
        out.append(s)
    return out


# --- make check -----------------------------------------------------------------

GUEST_CHECK = ["kunit", "e2e", "stress", "unload_and_leaks", "log_scan"]
GUEST_CHECK2 = ["kunit_maxcpus", "stress", "e2e", "torture", "abi_check", "unload_and_leaks", "log_scan"]
# guest.sh check-all (make check-debian): both parts in one boot.
GUEST_CHECK_ALL = ["kunit", "e2e", "abi_check", "stress", "unload_and_leaks", "log_scan"]
# The KUnit suites of each boot of make check (kunit.filter_glob): the first runs every suite
# but rust_wq_races, the second rust_wq_races, whose P6 case wants a CPU that was never online:
# the second boot has 5 vCPUs and maxcpus=4 (CPU 4 possible, never online).
CHECK1_ARGS = "kunit.filter_glob=rust_wq_[!r]*"
CHECK2_CPUS = 5
CHECK2_ARGS = "maxcpus=4 kunit.filter_glob=rust_wq_races"


def suffixed(stage, tag):
    """The stage, its name ending in tag (a second boot's log_scan beside the first's)."""
    if not stage.name.endswith(tag):
        stage.name += tag
    return stage


GUEST_STRESS = ["load", "stress", "unload_and_leaks", "log_scan"]


# The inputs of the two slow host steps whose verdict is a function of their inputs alone (as
# cargo keeps `cargo clippy`'s): the module's sources, the rules that build them, the kernel tree
# and the toolchain (Stamp adds those two). The rest of the steps take under 2 s.
CLIPPY_INPUTS = ("Makefile", "Kbuild", "rust_wq_main.rs", "src/**", "bench/**", "include/**")
COMPILE_FAIL_INPUTS = ("Makefile", "tests/compile_fail/**", "src/**", "rust_wq_main.rs")


class Stamp:
    """A host step's record of its last clean run (build/stamps/NAME): the sha256 of its input
    files (path and content), of the kernel tree it used (the path, and size and mtime of its
    .config, Module.symvers and rust/ metadata) and of the toolchain (`rustc -vV`,
    `clippy-driver -V`, `bindgen --version` under scripts/lib.sh's toolchain_env). The step runs
    again when any of it differs, and records a new stamp only when it passed."""

    def __init__(self, name, patterns, kdir):
        self.path = os.path.join("build", "stamps", name)
        h = hashlib.sha256()
        files = sorted({f for p in patterns for f in glob.glob(p, root_dir=ROOT, recursive=True)
                        if os.path.isfile(os.path.join(ROOT, f))})
        for f in files:
            h.update(f.encode() + b"\0")
            with open(os.path.join(ROOT, f), "rb") as fh:
                h.update(fh.read() + b"\0")
        kd = os.path.realpath(kdir)
        h.update(kd.encode() + b"\0")
        for f in [".config", "Module.symvers"] + sorted(glob.glob("rust/*.rmeta", root_dir=kd)):
            try:
                st = os.stat(os.path.join(kd, f))
                h.update(f"{f} {st.st_size} {st.st_mtime_ns}\0".encode())
            except OSError:
                h.update(f"{f} missing\0".encode())
        tools = subprocess.run(["bash", "-c", "source scripts/lib.sh && toolchain_env && "
                                "rustc -vV && clippy-driver -V && bindgen --version"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        h.update(f"{tools.returncode} {tools.stdout}".encode())
        self.digest = h.hexdigest()
        self.ok = tools.returncode == 0 and bool(files)

    def unchanged(self):
        try:
            with open(os.path.join(ROOT, self.path)) as f:
                return self.ok and f.read().strip() == self.digest
        except OSError:
            return False

    def record(self):
        if self.ok:
            os.makedirs(os.path.dirname(os.path.join(ROOT, self.path)), exist_ok=True)
            with open(os.path.join(ROOT, self.path), "w") as f:
                f.write(self.digest + "\n")


def check(args):
    res = os.path.join(ROOT, "results", "check")
    shutil.rmtree(res, ignore_errors=True)
    os.makedirs(res)
    kdir = args.kdir
    mk = ["make", "--no-print-directory", "-C", ROOT, "NO_SETUP=1", f"KDIR={kdir}", "RUSTFMT_COLOR=never"]

    setup = Stage("setup_and_lints")

    def step(name, logname, *targets, cmd=None, nice=False, inputs=None):
        progress(name)
        log = os.path.join(res, f"{logname}.log")
        stamp = inputs and Stamp(logname, inputs, kdir)
        if stamp and stamp.unchanged():
            with open(log, "w") as f:
                f.write(f"inputs unchanged since its last clean run ({stamp.path}: {stamp.digest})\n")
            return setup.result(True, name, diag=[f"not run again: its inputs are those of its last clean run "
                                                  f"(sha256 {stamp.digest[:16]}, {stamp.path})"])
        if run((["nice", "-n", "19"] if nice else []) + (cmd or mk + list(targets)), log) == 0:
            if stamp:
                stamp.record()
            return setup.result(True, name)
        return setup.result(False, name, diag=excerpt(log))

    step("setup", "setup", cmd=["bash", "scripts/setup.sh", "deps" if args.kdir_given else "all"])
    # What the VMs load and run first; the rest of the host's work runs while they boot.
    built = all([step("build.module", "module", "module"),
                 step("build.wqctl", "wqctl", "wqctl"),
                 step("build.abi_check", "abi-check", "abi-check")])
    image = os.path.exists(os.path.join(kdir, "arch/x86/boot/bzImage"))
    why = ("the VM was not booted: a build step failed, the VM would test stale artefacts" if not built
           else f"no kernel image in {kdir}" if not image else None)
    timeout = int(os.environ.get("RUST_WQ_CHECK_VM_TIMEOUT", 600))
    boots = {}
    if why is None:
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
        boots = {"check": pool.submit(guest, "check", kdir, res, timeout, GUEST_CHECK, CHECK1_ARGS),
                 "check2": pool.submit(guest, "check2", kdir, res, timeout, GUEST_CHECK2, CHECK2_ARGS,
                                       tag="_2", cpus=CHECK2_CPUS)}
        pool.shutdown(wait=False)
    # The rest at the lowest CPU priority: the VMs are the longer path, and these take the
    # time their guests leave idle. Clippy builds a copy of the module's sources
    # (build/clippy-tree): the VMs load the module built here meanwhile.
    step("lint.clippy_kernel", "clippy-kernel", "lint-clippy", nice=True, inputs=CLIPPY_INPUTS)
    step("build.compile_fail", "compile-fail", "compile-fail", nice=True, inputs=COMPILE_FAIL_INPUTS)
    step("inventory.up_to_date", "inventory", cmd=[sys.executable, "scripts/inventory.py", "diff"], nice=True)
    step("lint.rustfmt", "rustfmt", "lint-rustfmt", nice=True)
    step("lint.cargo_fmt", "cargo-fmt", "lint-cargo-fmt", nice=True)
    step("lint.cargo_clippy", "cargo-clippy", "lint-cargo-clippy", nice=True)
    step("lint.scripts", "lint-scripts", "lint-scripts", nice=True)

    host = Stage("host_tests")
    progress("cargo test (wqctl)")
    log = os.path.join(res, "cargo-test.log")
    host.nest("cargo_test", cargo_tests(log, run(["nice", "-n", "19"] + mk + ["test-host"], log)))
    progress("harness self-tests")
    host.nest("harness_selftest", selftest())
    progress("host steps done; waiting for the VMs")

    if why is None:
        guest_stages, check2_stages = boots["check"].result(), boots["check2"].result()
    else:
        guest_stages = not_booted(GUEST_CHECK, why)
        check2_stages = not_booted(GUEST_CHECK2, why)
    check2_stages = [suffixed(s, "_2") for s in check2_stages]
    stages = [setup, host] + guest_stages + check2_stages
    try:
        expected = inventory.read()
        stages.append(check_inventory(guest_stages + check2_stages, expected))
    except OSError as e:
        expected = []
        stages.append(Stage("inventory"))
        stages[-1].result(False, "inventory", f"cannot read the inventory: {e} (make inventory)")
    progress(f"done in {time.monotonic() - START:.0f} s")
    return report("check", stages, res, f"inventory: {len(expected)} tests: {inventory.summary(expected)}")


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
    ("ops scopes tput scale"), BENCH_ICOUNT (1; 0: plain TCG/KVM), BENCH_ICOUNT_OPTS, BENCH_VM_TIMEOUT,
    BENCH_VERBOSE (1: the guest console in the log), RUST_WQ_BENCH_RUN_TIMEOUT (per run, guest).

    Writes results/bench-<kernel>-<UTC stamp>.{txt,csv,json,log,svg} and the guest's directory
    .guest/, and copies the picture to results/bench-latest-<kernel>.svg (the README shows it).
    Exit status 0 when every run succeeded and the kernel log is clean.
    """
    env = os.environ
    kernel, items, repeats, cpus = (env.get("BENCH_KERNEL", "release"), env.get("BENCH_ITEMS", "1000"),
                                    env.get("BENCH_REPEATS", "3"), env.get("BENCH_CPUS", "4"))
    sets = env.get("BENCH_SETS", "ops scopes tput scale")
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
    rc, _, _ = boot(cmd, genv, base + ".log")
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
    c, e = check_ktap("KTAP version 1\n1..1\n    KTAP version 1\n    1..1\n    ok 1 a # SKIP n/a\n"
                      "not ok 1 bin # timed out after 180 s\n")
    expect("ktap_failed_parent_of_skips_fails", c.failed == 1 and c.skipped == 1 and not e, (c, e))
    c, e = check_ktap("KTAP version 1\n1..1\n    1..1\n    ok 1 a\nok 1 bin\n")
    expect("ktap_nested_header_required", "no 'KTAP version' header in the a nested block" in e, e)
    c, e = check_ktap("KTAP version 1\n1..1\n    KTAP version 1\nok 1 bin\n")
    expect("ktap_nested_plan_required", "nothing without a plan line in the a nested block" in e, e)
    c, e = check_ktap("KTAP version 1\n1..2\nok 1 a # SKIPPED\nok 2 b # TODO later\n")
    expect("ktap_only_skip_directive", len(e) == 2 and "directive is not SKIP: ok 1 a # SKIPPED" in e[0], e)

    # scripts/guest.sh's run_binary (what nests a test binary in the guest) on
    # binaries that misbehave, through the whole report: each must fail.
    with tempfile.TemporaryDirectory() as tmp:
        def binary(name, script, limit=20):
            path = os.path.join(tmp, name)
            with open(path, "w") as f:
                f.write("#!/bin/sh\n" + script)
            os.chmod(path, 0o755)
            p = subprocess.run(["bash", "scripts/guest.sh", "binary", ROOT, os.path.join(tmp, "out-" + name), str(limit),
                                path], cwd=ROOT, capture_output=True, text=True, timeout=60)
            top = Stage("main")
            top.nest("stage", from_guest("stage", p.stdout).document())
            c, _ = check_ktap(top.document())
            return c, p.stdout

        skips = "echo 'KTAP version 1'; echo 1..2; echo 'ok 1 a # SKIP n/a'; "
        cases = {  # name: (script, time limit, expected summary, a text the document must hold)
            "binary_silent_fails": ("exit 0\n", 20, "0 passed, 1 failed, 0 skipped", "no KTAP header and plan"),
            "binary_header_without_plan_fails": ("echo 'KTAP version 1'\n", 20, None, "no KTAP header and plan"),
            "binary_hang_after_skip_fails": (skips + "exec sleep 60\n", 1, None, "timed out after 1 s"),
            "binary_exit_status_after_skip_fails": (skips + "exit 3\n", 20, None, "exit status 3"),
            "binary_killed_after_skip_fails": (skips + "kill -KILL $$\n", 20, None, "exit status 137"),
            "binary_good_passes": (skips + "echo 'ok 2 b'\n", 20, "1 passed, 0 failed, 1 skipped", "ok 1 good"),
        }
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(len(cases)) as pool:
            runs = {n: pool.submit(binary, n.removeprefix("binary_"), sc, lim) for n, (sc, lim, _, _) in cases.items()}
        for n, (_, _, want, text) in cases.items():
            c, d = runs[n].result()
            good = c.line() == want if want else c.failed and not c.passed
            expect(n, good and text in d, (c.line(), d))

    def leaf_stage(name, doc):
        st = Stage(name)
        st.lines, st.n = doc.splitlines(), sum(1 for x in doc.splitlines() if re.match(r"^(not )?ok ", x))
        return st

    e2e = leaf_stage("e2e", "    KTAP version 1\n    1..3\n    ok 1 a\n    ok 2 b # SKIP n/a\n    ok 3 z\n"
                            "ok 1 rust_wq_e2e\n")
    kunit = leaf_stage("kunit", "    KTAP version 1\n    1..1\n        KTAP version 1\n        1..2\n"
                                "        ok 1 c1\n        not ok 2 c2\n    not ok 1 suite\nnot ok 1 rust_wq\n")
    st = leaf_stage("stress", "    KTAP version 1\n    1..1\n    ok 1 s\nok 1 rust_wq_stress s\n"
                              "    KTAP version 1\n    1..1\n    ok 1 s\nok 2 rust_wq_stress s\n")
    inv = check_inventory([e2e, kunit, st], ["e2e a", "e2e b", "e2e c", "kunit suite.c1", "kunit suite.c2",
                                             "stress s"])
    doc = inv.document()
    expect("inventory_complete_kind_passes", "ok 2 inventory.kunit" in doc, doc)
    expect("inventory_missing_and_unexpected_fail", "not ok 1 inventory.e2e # 1 of 3 not reported, 1 unexpected, "
           "0 repeated" in doc and "# not reported: e2e c" in doc and "# not in tests/inventory.txt: e2e z" in doc,
           doc)
    expect("inventory_repeated_fails", "# reported 2 times: stress s" in doc, doc)
    missing, _, _ = inventory.compare(["kunit s.x"], inventory.reported([(["kunit", "rust_wq"], "fail")]))
    expect("inventory_nothing_reported_fails", missing == ["kunit s.x"], missing)
    # A host step's stamp: another input file or another kernel tree is another digest.
    stamps = [Stamp("selftest", files, kd).digest for files, kd in
              ((("Makefile",), "/nonexistent-a"), (("Makefile", "Kbuild"), "/nonexistent-a"),
               (("Makefile",), "/nonexistent-b"), (("Makefile",), "/nonexistent-a"))]
    expect("stamp_sees_inputs_and_kernel_tree", len(set(stamps[:3])) == 3 and stamps[3] == stamps[0], stamps)

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
    r = scan("WARNING: known thing\n", "known thing")
    expect("dmesg_scan_allowed_lines_shown", r == (0, "allowed: WARNING: known thing"), r)
    for name, allow in (("dot", "."), ("empty_match", "x*"), ("warning", "WARNING")):
        r = scan("WARNING: CPU: 0 PID: 1 at x\n", allow)
        expect(f"dmesg_scan_broad_allow_refused_{name}", r[0] == 2 and "too broad" in r[1], r)
    for name, line in (("drain", "workqueue rust_wq_owned: drain_workqueue() isn't complete after 100 tries"),
                       ("kmemleak_off", "kmemleak: Kernel memory leak detector disabled")):
        r = scan(f"[ 1.0] {line}\n")
        expect(f"dmesg_scan_catches_{name}", r == (1, line), r)
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
