#!/usr/bin/env python3
"""`make check-debian`: rust_wq built for and tested on Debian's stock 7.3 kernel, unmodified.

The steps of scripts/debian.sh (deps, fetch, toolchain, prepare, build, layout: the packages,
the stock kernel's rustc and bindgen, the prepared tree, the module, and the guards that the
build matches the kernel), then wqctl and the ABI check with the project's own toolchain, then
one boot of the stock vmlinuz under virtme-ng running scripts/guest.sh check-all (the end-to-end
suite and what else `make check` runs in its two boots, in one) and scripts/guest.sh run (the wqctl demo session).  The VM is
booted only when every build step passed.

The report is one KTAP document (results/debian/debian.ktap, also printed) in `make check`'s
format (scripts/harness.py), ending with "N passed, N failed, N skipped".  Checks that need a
debug option the stock kernel lacks (KUnit, lockdep, kmemleak, failslab) are skipped there and
counted as skipped: the guest is told what the kernel is configured with (RUST_WQ_REQUIRE, from
the prepared tree's .config, which is the stock one), and a check that the kernel could run
fails instead of skipping.  Exit status 1 when anything failed.

Environment: RUST_WQ_DEBIAN_VM_TIMEOUT (seconds, default 900), and scripts/debian.sh's.
"""

import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402  (the KTAP report and the VM plumbing of `make check`)

ROOT = harness.ROOT
GUEST_STAGES = harness.GUEST_CHECK_ALL + ["demo"]


def debian(what):
    """A path or value printed by scripts/debian.sh."""
    p = subprocess.run(["bash", "scripts/debian.sh", what], cwd=ROOT, capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"check-debian: scripts/debian.sh {what} failed: {p.stderr.strip()}")
    return p.stdout.strip()


def demo_stage(out):
    """The wqctl demo session (scripts/guest.sh run) as a stage of one result."""
    s = harness.Stage("demo")
    try:
        rc = open(os.path.join(out, "demo.rc")).read().strip()
        log = open(os.path.join(out, "demo.log"), errors="replace").read().splitlines()
    except OSError as e:
        s.result(False, "wqctl_demo_session", f"the guest never reported the demo: {e}")
        return s
    ok = rc == "0" and "[guest] run: OK" in log
    s.result(ok, "wqctl_demo_session", "" if ok else f"scripts/guest.sh run ended with status {rc}",
             [] if ok else log[-60:])
    return s


def warnings_result(build):
    """The module built with the stock rustc (and without KUnit, which the stock kernel lacks) is
    warning-free, as with the project's own toolchain (README "Minimum Rust, and builds without
    KUnit"): rustc's "warning..." lines but its "N warnings emitted" summary, and gcc's."""
    log = os.path.join(debian("kodir"), "build.log")
    lines = open(log, errors="replace").read().splitlines()
    warn = [x for x in lines if (x.startswith("warning") or ": warning:" in x)
            and not re.match(r"warning: [0-9]+ warnings? emitted", x)]
    return build.result(not warn, "build_warnings", f"{len(warn)} compiler warnings, see {log}" if warn else "",
                        warn[:20])


def main():
    res = os.path.join(ROOT, "results", "debian")
    shutil.rmtree(res, ignore_errors=True)
    os.makedirs(res)
    krel, version = debian("release").split()
    harness.progress(f"check-debian: Debian's stock kernel {krel} (package version {version})")

    build = harness.Stage("debian_build")

    def step(name, cmd):
        harness.progress(name)
        log = os.path.join(res, f"{name}.log")
        t0 = time.monotonic()
        rc = harness.run(cmd, log)
        took = f"{time.monotonic() - t0:.0f} s"
        lines = open(log, errors="replace").read().splitlines()
        if rc == 0:
            # What the step checked (the guards' lines), as diagnostics.
            notes = [x.removeprefix("[rust_wq] ") for x in lines if "guard (" in x] + [f"{name}: {took}"]
            return build.result(True, name, diag=notes)
        return build.result(False, name, f"failed after {took}", harness.excerpt(log))

    mk = ["make", "--no-print-directory", "-C", ROOT, "NO_SETUP=1", "RUSTFMT_COLOR=never"]
    built = True
    for what in ("deps", "fetch", "toolchain", "prepare", "build", "layout"):
        if not step(what, ["bash", "scripts/debian.sh", what]):
            built = False
            break
        if what == "build":
            warnings_result(build)
    built = all([built, step("wqctl", mk + ["wqctl"]), step("abi_check", mk + ["abi-check"])])

    if not built:
        guest = harness.not_booted(GUEST_STAGES, "the VM was not booted: a build step failed")
    else:
        guest = boot(krel, version, res)
    harness.progress(f"check-debian: done in {time.monotonic() - harness.START:.0f} s")
    return harness.report("debian", [build] + guest, res)


def boot(krel, version, res):
    """One boot of the stock image: guest.sh check-all, then guest.sh run (the demo)."""
    kdir, kodir = debian("kdir"), debian("kodir")
    out = os.path.join(res, "guest")
    os.makedirs(out)
    require, kargs = harness.lib_sh("required_features", kdir), harness.lib_sh("vm_kernel_args", kdir)
    if require is None or kargs is None:
        return harness.not_booted(GUEST_STAGES, "scripts/lib.sh could not read the prepared tree's .config")
    timeout = int(os.environ.get("RUST_WQ_DEBIAN_VM_TIMEOUT", 900))
    image = debian("image")
    harness.progress(f"VM: booting the stock {image} (timeout {timeout} s; required: {require or 'none'}; "
                     f"kernel args: {kargs or 'none'}; log: {os.path.relpath(res, ROOT)}/vm.log)")
    g = f"bash {ROOT}/scripts/guest.sh"
    cmd = ["bash", "scripts/vm.sh", "--kdir", kdir, "--image", image, "--busybox", debian("busybox"),
           "--timeout", str(timeout), "--rwdir", out, "--append", kargs, "--",
           f"{{ uname -r; uname -v; }} >{out}/kernel; {g} check-all {ROOT} {out}; "
           f"{g} run {ROOT} {out}/demo >{out}/demo.log 2>&1; echo $? >{out}/demo.rc"]
    env = dict(os.environ, RUST_WQ_REQUIRE=require, RUST_WQ_KO=os.path.join(kodir, "rust_wq.ko"))
    t0 = time.monotonic()
    rc, tail, _ = harness.boot(cmd, env, os.path.join(res, "vm.log"))
    harness.progress(f"VM: finished in {time.monotonic() - t0:.0f} s (status {rc})")

    # The stock kernel, not another one, ran the tests.
    stock = harness.Stage("stock_kernel")
    try:
        uname = open(os.path.join(out, "kernel")).read().splitlines()
    except OSError:
        uname = []
    booted = len(uname) == 2 and uname[0] == krel and f" Debian {version} " in uname[1]
    stock.result(booted, "booted_stock_image", "" if booted else "the guest is not the stock kernel",
                 [f"uname -r: {uname[0]}", f"uname -v: {uname[1]}"] if len(uname) == 2 else tail[-20:])

    stages = []
    done = open(os.path.join(out, "done")).read().split() if os.path.exists(os.path.join(out, "done")) else []
    why = {124: f"the VM timed out after {timeout} s",
           255: "the guest died without an exit status (kernel panic?)"}.get(rc, f"the guest ended with status {rc}")
    for name in harness.GUEST_CHECK_ALL:
        path = os.path.join(out, f"{name}.ktap")
        if name in done and os.path.exists(path):
            stages.append(harness.from_guest(name, open(path, errors="replace").read()))
        else:
            s = harness.Stage(name)
            s.result(False, name, f"the guest never reported this stage: {why}", [x for x in tail if x])
            stages.append(s)
    demo = demo_stage(out)
    if rc != 0:
        demo.result(False, "vm_run", f"vm.sh exited with status {rc}", tail[-20:])
    return [stock] + stages + [demo]


if __name__ == "__main__":
    sys.exit(main())
