#!/usr/bin/env bash
# `make bench`: rust_wq's in-kernel benchmark (RUST_WQ_IOC_BENCH) against the
# kernel's own C workqueue benchmark (lib/test_workqueue.c), side by side in
# one boot.  Expects the module and wqctl to be built (the Makefile does that).
#
# One VM; items/sec moves between runs, hence the repeats and the alternation
# of which of C and Rust goes first.  By default the VM runs with QEMU's
# `-icount shift=0,sleep=off`, which makes the latency percentiles a
# near-deterministic cost figure (guest time advances with instructions).
# On the earlier test kernel without CONFIG_HIGH_RES_TIMERS the guest stalled
# under icount at affinity-scope changes (lib/test_workqueue.ko alone too);
# with HIGH_RES_TIMERS (scripts/kernel.config) it runs.  BENCH_ICOUNT=0 turns
# icount off.
#
# Environment / make variables:
#   BENCH_ITEMS       rounds per thread (default 1000; 50000 is the C module's
#                     own default, sensible on real hardware)
#   BENCH_REPEATS     repeats of every measurement (default 3)
#   BENCH_CPUS        guest CPUs (default 4)
#   BENCH_ICOUNT      1 (default) boots with QEMU's icount; 0 plain TCG/KVM
#   BENCH_ICOUNT_OPTS the icount options (default "-icount shift=0,sleep=off")
#   BENCH_VM_TIMEOUT  seconds for the whole VM (default: scaled to the work)
#   BENCH_VERBOSE     1: also record the guest's kernel console in the raw log
#                     (to debug a hang; the console costs a little guest time)
#   RUST_WQ_BENCH_RUN_TIMEOUT  seconds per insmod / wqctl run in the guest
#
# Writes results/bench-<UTC timestamp>.{txt,csv,json,log} (the table, the
# table as CSV and JSON with every per-repeat figure, and the raw guest log).
# Exit status: 0 when every run succeeded and the kernel log is clean;
# non-zero otherwise (124 when the VM timed out).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export KDIR="${KDIR:-$KBUILD_DIR_DEFAULT}"
items="${BENCH_ITEMS:-1000}"
repeats="${BENCH_REPEATS:-3}"
cpus="${BENCH_CPUS:-4}"
icount="${BENCH_ICOUNT:-1}"
[[ "$items" =~ ^[1-9][0-9]*$ ]] && [ "$items" -le 1000000 ] ||
	die "BENCH_ITEMS must be 1..1000000 (got '$items')"
[[ "$repeats" =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPEATS must be a positive integer (got '$repeats')"
[[ "$cpus" =~ ^[1-9][0-9]*$ ]] || die "BENCH_CPUS must be a positive integer (got '$cpus')"

c_ko="$KDIR/lib/test_workqueue.ko"
[ -f "$c_ko" ] || die "$c_ko not found: the kernel tree needs CONFIG_TEST_WORKQUEUE=m"
[ -f "$RUST_WQ_ROOT/rust_wq.ko" ] || die "rust_wq.ko not built (make module)"
[ -x "$RUST_WQ_ROOT/wqctl/target/release/wqctl" ] || die "wqctl not built (make user)"
command -v python3 >/dev/null || die "python3 is needed to build the report"

# Whole-VM budget: boot plus, per 1000 items and repeat, ~20 s of C and
# ~12 Rust runs of up to ~10 s each under icount, with a wide margin.
kunits=$(((items + 999) / 1000))
vm_timeout="${BENCH_VM_TIMEOUT:-$((240 + repeats * kunits * 120))}"

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
outdir="$RUST_WQ_ROOT/results"
mkdir -p "$outdir"
base="$outdir/bench-$stamp"
raw="$base.log"

qemu=()
icount_opts="${BENCH_ICOUNT_OPTS:--icount shift=0,sleep=off}"
[ "$icount" = 1 ] && qemu=(--qemu-opts "$icount_opts")
[ "${BENCH_VERBOSE:-0}" = 1 ] && qemu+=(--verbose)
log "bench: items=$items repeats=$repeats cpus=$cpus icount=$icount${qemu[1]:+ ($icount_opts)} vm timeout ${vm_timeout}s"
log "bench: raw guest log -> $raw"

start=$SECONDS
set +e
bash "$RUST_WQ_ROOT/scripts/vm.sh" --kdir "$KDIR" --cpus "$cpus" --timeout "$vm_timeout" "${qemu[@]}" -- \
	"bash $RUST_WQ_ROOT/scripts/bench-guest.sh $RUST_WQ_ROOT $items $repeats $c_ko" \
	2>&1 | tee "$raw" | grep --line-buffered -E '^\[bench-guest\]|^RWQ-BENCH-(FAIL|SCAN|DONE)|^\[rust_wq\]' >&2
rc=${PIPESTATUS[0]}
set -e
wall=$((SECONDS - start))

report_rc=0
python3 - "$raw" "$base" "$items" "$repeats" "$cpus" "$icount" "$wall" "$rc" "${qemu[1]:-}" <<'PY' || report_rc=$?
import json, statistics, sys

raw, base, items, repeats, cpus, icount, wall, vm_rc, qemu_opts = sys.argv[1:]
items, repeats, wall, vm_rc = int(items), int(repeats), int(wall), int(vm_rc)
SCOPES = ["cpu", "smt", "cache_shard", "cache", "numa", "system"]
ONLY = [  # (row label, path, scope, start latency)
    ("percpu", "percpu", None, False),
    ("system-percpu", "system-percpu", None, False),
    ("unbound-sysfs/cache +start", "unbound-sysfs", "cache", True),
    ("percpu +start", "percpu", None, True),
    ("system-percpu +start", "system-percpu", None, True),
]

recs, fails, scan, done = [], [], None, None
for line in open(raw, errors="replace"):
    line = line.rstrip("\n")
    if line.startswith("RWQ-BENCH {"):
        try:
            recs.append(json.loads(line[len("RWQ-BENCH "):]))
        except ValueError as e:
            fails.append(f"unparsable record ({e}): {line}")
    elif line.startswith("RWQ-BENCH-FAIL "):
        fails.append(line[len("RWQ-BENCH-FAIL "):])
    elif line.startswith("RWQ-BENCH-SCAN "):
        scan = line.split()[1]
    elif line.startswith("RWQ-BENCH-DONE "):
        done = line.split()[1]

def med(v):
    return statistics.median(v) if v else None

def sel(impl, path, scope, start):
    return sorted(
        (r for r in recs
         if r["impl"] == impl and r["path"] == path and r.get("scope") == scope
         and bool(r.get("start_latency", False)) == start),
        key=lambda r: r["rep"])

rows = []
for s in SCOPES:
    c, rs = sel("c", "unbound-sysfs", s, False), sel("rust", "unbound-sysfs", s, False)
    for name, got in (("C", c), ("Rust", rs)):
        if len(got) != repeats:
            fails.append(f"unbound-sysfs/{s}: {len(got)} {name} result(s), expected {repeats}")
    cm = {k: med([r[k] for r in c]) for k in ("items_per_sec", "queue_p50_ns", "queue_p90_ns", "queue_p95_ns")}
    rm = {k: med([r[k] for r in rs]) for k in ("items_per_sec", "queue_p50_ns", "queue_p90_ns", "queue_p95_ns")}
    cr = {r["rep"]: r for r in c}
    per = [r["items_per_sec"] / cr[r["rep"]]["items_per_sec"]
           for r in rs if r["rep"] in cr and cr[r["rep"]]["items_per_sec"]]
    ratio = rm["items_per_sec"] / cm["items_per_sec"] if cm["items_per_sec"] and rm["items_per_sec"] is not None else None
    p50r = rm["queue_p50_ns"] / cm["queue_p50_ns"] if cm["queue_p50_ns"] and rm["queue_p50_ns"] is not None else None
    rows.append({
        "row": f"unbound-sysfs/{s}", "path": "unbound-sysfs", "scope": s, "start_latency": False,
        "c_items_per_sec": cm["items_per_sec"], "rust_items_per_sec": rm["items_per_sec"],
        "ratio": ratio, "ratio_min": min(per) if per else None, "ratio_max": max(per) if per else None,
        "c_queue_p50_ns": cm["queue_p50_ns"], "c_queue_p90_ns": cm["queue_p90_ns"], "c_queue_p95_ns": cm["queue_p95_ns"],
        "rust_queue_p50_ns": rm["queue_p50_ns"], "rust_queue_p90_ns": rm["queue_p90_ns"], "rust_queue_p95_ns": rm["queue_p95_ns"],
        "p50_ratio": p50r,
        "rust_start_p50_ns": None, "rust_start_p90_ns": None, "rust_start_p95_ns": None,
        "rust_items_per_sec_min": min((r["items_per_sec"] for r in rs), default=None),
        "rust_items_per_sec_max": max((r["items_per_sec"] for r in rs), default=None),
        "threads": rs[0]["threads"] if rs else (c[0]["threads"] if c else None),
        "c_runs": c, "rust_runs": rs,
    })
for label, path, scope, start in ONLY:
    rs = sel("rust", path, scope, start)
    if len(rs) != repeats:
        fails.append(f"{label}: {len(rs)} Rust result(s), expected {repeats}")
    keys = ("items_per_sec", "queue_p50_ns", "queue_p90_ns", "queue_p95_ns",
            "start_p50_ns", "start_p90_ns", "start_p95_ns")
    rm = {k: med([r[k] for r in rs]) for k in keys}
    rows.append({
        "row": label, "path": path, "scope": scope, "start_latency": start,
        "c_items_per_sec": None, "rust_items_per_sec": rm["items_per_sec"],
        "ratio": None, "ratio_min": None, "ratio_max": None,
        "c_queue_p50_ns": None, "c_queue_p90_ns": None, "c_queue_p95_ns": None,
        "rust_queue_p50_ns": rm["queue_p50_ns"], "rust_queue_p90_ns": rm["queue_p90_ns"],
        "rust_queue_p95_ns": rm["queue_p95_ns"], "p50_ratio": None,
        "rust_start_p50_ns": rm["start_p50_ns"] if start else None,
        "rust_start_p90_ns": rm["start_p90_ns"] if start else None,
        "rust_start_p95_ns": rm["start_p95_ns"] if start else None,
        "rust_items_per_sec_min": min((r["items_per_sec"] for r in rs), default=None),
        "rust_items_per_sec_max": max((r["items_per_sec"] for r in rs), default=None),
        "threads": rs[0]["threads"] if rs else None,
        "c_runs": [], "rust_runs": rs,
    })

def n(v):
    return "-" if v is None else f"{v:.0f}"

def trip(a, b, c):
    return "-" if a is None else f"{a:.0f}/{b:.0f}/{c:.0f}"

def rat(v):
    return "-" if v is None else f"{v:.2f}"

hdr = ["scope/path", "C items/s", "Rust items/s", "Rust/C [min..max]",
       "C p50/p90/p95 ns", "Rust p50/p90/p95 ns", "p50 R/C", "Rust start p50/p90/p95 ns"]
table = [hdr]
for r in rows:
    spread = rat(r["ratio"])
    if r["ratio_min"] is not None:
        spread += f" [{r['ratio_min']:.2f}..{r['ratio_max']:.2f}]"
    table.append([
        r["row"], n(r["c_items_per_sec"]), n(r["rust_items_per_sec"]), spread,
        trip(r["c_queue_p50_ns"], r["c_queue_p90_ns"], r["c_queue_p95_ns"]),
        trip(r["rust_queue_p50_ns"], r["rust_queue_p90_ns"], r["rust_queue_p95_ns"]),
        rat(r["p50_ratio"]),
        trip(r["rust_start_p50_ns"], r["rust_start_p90_ns"], r["rust_start_p95_ns"]),
    ])
w = [max(len(row[i]) for row in table) for i in range(len(hdr))]
fmt = lambda row: "  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(row)).rstrip()
threads = next((r["threads"] for r in rows if r["threads"]), "?")
ok = vm_rc == 0 and not fails and scan == "ok" and done == "0"
lines = [
    f"rust_wq bench: {items} items/thread x {threads} threads, {repeats} repeat(s), {cpus} vCPUs, "
    f"QEMU {qemu_opts or 'without icount'}; medians over repeats; "
    f"Rust/C = ratio of median items/s [min..max of per-repeat ratios]",
    fmt(table[0]), fmt(["-" * x for x in w])]
lines += [fmt(row) for row in table[1:]]
lines.append(f"kernel log scan: {scan or 'missing'}; VM status {vm_rc}; wall time {wall} s; "
             f"{'OK' if ok else 'FAILED'}")
for f in fails:
    lines.append(f"FAIL: {f}")
if scan is None or done is None:
    lines.append("FAIL: the guest did not finish (no RWQ-BENCH-SCAN/RWQ-BENCH-DONE line)")
text = "\n".join(lines) + "\n"
print(text, end="")
open(base + ".txt", "w").write(text)

cols = ["row", "path", "scope", "start_latency", "threads", "c_items_per_sec", "rust_items_per_sec",
        "ratio", "ratio_min", "ratio_max", "rust_items_per_sec_min", "rust_items_per_sec_max",
        "c_queue_p50_ns", "c_queue_p90_ns", "c_queue_p95_ns",
        "rust_queue_p50_ns", "rust_queue_p90_ns", "rust_queue_p95_ns", "p50_ratio",
        "rust_start_p50_ns", "rust_start_p90_ns", "rust_start_p95_ns"]
with open(base + ".csv", "w") as f:
    f.write(",".join(cols) + "\n")
    for r in rows:
        vals = []
        for c in cols:
            v = r[c]
            if v is None:
                v = ""
            elif isinstance(v, bool):
                v = str(v).lower()
            elif isinstance(v, float):
                v = f"{v:.4f}" if c in ("ratio", "ratio_min", "ratio_max", "p50_ratio") else f"{v:.1f}"
            vals.append(str(v))
        f.write(",".join(vals) + "\n")
json.dump({"items": items, "repeats": repeats, "cpus": int(cpus), "icount": icount == "1", "qemu_opts": qemu_opts,
           "wall_seconds": wall, "vm_status": vm_rc, "kernel_log_scan": scan, "ok": ok,
           "failures": fails, "rows": rows}, open(base + ".json", "w"), indent=1)
sys.exit(0 if ok else 1)
PY

log "bench: wrote $base.{txt,csv,json,log} (wall time ${wall} s)"
if [ $rc -ne 0 ]; then
	log "bench: FAILED (VM status $rc)"
	exit $rc
fi
if [ $report_rc -ne 0 ]; then
	log "bench: FAILED (see the FAIL lines above and $raw)"
	exit 1
fi
log "bench: OK"
