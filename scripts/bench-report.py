#!/usr/bin/env python3
"""The report of `make bench`: tables, CSV, JSON and an SVG picture.

Reads the results directory written by `scripts/guest.sh bench` (records.jsonl,
the kernel logs of the C loads in loads/, the KTAP document bench.ktap with a
result per run, and the kernel release) and writes OUT.txt (the tables, also printed), OUT.csv,
OUT.json and OUT.svg.  Exit status 1 when a run failed, a record is missing,
the kernel log scan failed or the guest did not finish; 0 otherwise (the
Rust/C targets are reported, OVER or ok per row, not enforced: it is a
measurement, not a test).

Three implementations per operation: "rust" (this module's layer), "ctwin" (the
C twin, bench/rust_wq_ctwin.c) and "upstream" (upstream's kernel::workqueue,
Linux 7.3, where it can do the operation: src/bench/upstream.rs).

Under QEMU's -icount shift=0 the guest clock advances one nanosecond per
guest instruction, so the "ns" figures are instruction counts.
"""

import argparse
import json
import math
import os
import re
import statistics
import sys

# THE TABLE OF ROWS, in table order: (op, path, pointer, what the Rust layer does besides
# the C call).  The C twin makes the plain C call (the same one for both pointers); upstream
# has a column where UPSTREAM_OPS says it can do the operation.
OPS = [
    ("queue", "percpu", "Arc", "same calls: queue_work_on(WORK_CPU_UNBOUND), item reused"),
    ("queue", "percpu", "KBox", "same calls: as above, the item a Pin<KBox> (its work function hands it back)"),
    ("queue", "system-percpu", "Arc", "same calls: as above, on system_percpu_wq"),
    ("queue", "system-percpu", "KBox", "same calls: as above, Pin<KBox>"),
    ("queue-fresh", "percpu", "Arc", "same calls: queue_work_on of a new item each round (test_workqueue.c's method)"),
    ("queue-fresh", "percpu", "KBox", "same calls: as above, Pin<KBox>"),
    ("queue-on", "percpu", "Arc", "same calls: queue_work_on(own CPU), after an online check of the CPU (a cpumask bit)"),
    ("delayed", "system-percpu", "Arc",
     "nothing on success: queue_delayed_work_on alone (a refusal reads the disable depth to say EBUSY or EPERM)"),
    ("delayed", "system-percpu", "KBox", "as above, Pin<KBox>"),
    ("delayed", "percpu", "Arc",
     "the window: interrupts off, the item's arming count up and down, a load of st (registered on the queue's "
     "armed list: no lock; the first arm of an item takes the list lock once to register it)"),
    ("delayed", "percpu", "KBox", "as above, Pin<KBox>"),
    ("mod-delayed", "system-percpu", "Arc",
     "interrupts off (two helper calls) and the gate's reader add/sub (one atomic add enters and checks that no "
     "disable is held or changing); the caller hands its pointer in and gets it back if the item was pending: no "
     "reference count is touched"),
    ("mod-delayed", "percpu", "Arc", "the same inside the window (the arming count up and down, a load of st)"),
    ("cancel-idle", "percpu", "Arc", "a branch on cancel_delayed_work's result"),
    ("cancel-armed", "system-percpu", "Arc", "a branch on the result"),
    ("cancel-armed", "percpu", "Arc", "a branch on the result (the registration stays: no unlink)"),
    ("cancel-sync-idle", "percpu", "Arc",
     "C's cancel_delayed_work_sync inside the gate's writer add/sub (mod_delayed must not hand C a pointer meanwhile)"),
    ("cancel-sync-armed", "system-percpu", "Arc", "as above"),
    ("cancel-sync-armed", "percpu", "Arc", "as above (the registration stays: no unlink)"),
    ("flush-idle", "percpu", "Arc", "same calls: flush_work"),
    ("disable", "percpu", "Arc",
     "the callers' disable depth: one atomic increment after disable_work and a branch on its flags (the cap), "
     "and keeping C's result for the pointer of a pending item"),
    ("enable", "percpu", "Arc",
     "an atomic subtract (and an add back when no disable of the caller's is held) before enable_work: enable "
     "never undoes cancel_sync's own disable or reaches C's underflow warning"),
    ("static", "system-percpu", "Arc", "same calls: queue_work_on of a DECLARE_WORK item (after one load: lazy initialisation)"),
]
# What upstream's kernel::workqueue (7.3) can do: enqueue and enqueue_delayed on a borrowed or
# system queue (no enqueue_on, mod_delayed, cancel, flush, disable, enable, static items, owned
# queues); elsewhere its column says "—".
UPSTREAM_OPS = {"queue", "queue-fresh", "delayed"}
# Rust/C p50 targets: immediate operations; the delayed/cancel/enable ones on a system queue;
# the same on an owned queue (the run's own WQ_PERCPU queue, path "percpu"; the scaling rows are
# owned-queue rows).
IMMEDIATE_OPS = {"queue", "queue-fresh", "queue-on", "static", "flush-idle", "disable"}
TARGETS = {"immediate": 1.01, "system queue": 1.05, "owned queue": 1.10}
# The scaling set: dropping an owned queue with N armed items, N CPUs arming on one queue.
DROP_NS = [10, 1000, 100000]
PAR_THREADS = [1, 2, 4]
SCOPES = ["cpu", "smt", "cache_shard", "cache", "numa", "system"]
TPUT_THREADS = [1, 2, 4]
NONE = "\u2014"


def target_of(op, path):
    """The Rust/C p50 target of a row: (class, limit)."""
    cls = "immediate" if op in IMMEDIATE_OPS else "system queue" if path.startswith("system") else "owned queue"
    return cls, TARGETS[cls]


def verdict(rat, limit):
    return "-" if rat is None else "ok" if rat <= limit else "OVER"


def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


TWIN_RUN = re.compile(r"^rust_wq_ctwin: run op=([a-z-]+) queue=([a-z-]+) threads=([0-9]+) items=([0-9]+) "
                      r"p50=([0-9]+) p90=([0-9]+) p95=([0-9]+) p99=([0-9]+) elapsed_ns=([0-9]+)")
C_SCOPE = re.compile(r"^test_workqueue: +([a-z_]+) +([0-9]+) items/sec\s+p50=([0-9]+)\s+p90=([0-9]+)\s+p95=([0-9]+) ns")
C_THREADS = re.compile(r"^test_workqueue: running ([0-9]+) threads")


def load_records(rec, log, fails):
    """The measurements of one load of the C twin or of test_workqueue (its kernel log)."""
    args = dict(a.split("=", 1) for a in rec["args"].split() if "=" in a)
    base = {k: rec[k] for k in ("impl", "set", "rep", "order")}
    what = f"{rec['impl']} rep {rec['rep']} {rec['set']}"
    out = []
    if rec["impl"] == "ctwin":
        for m in filter(None, map(TWIN_RUN.match, log)):
            out.append(dict(base, op=m[1], path=m[2], scope=args.get("scope"), threads=int(m[3]), items=int(m[4]),
                            queue_p50_ns=int(m[5]), queue_p90_ns=int(m[6]), queue_p95_ns=int(m[7]),
                            queue_p99_ns=int(m[8]), elapsed_ns=int(m[9])))
        want = len([r for r in args.get("runs", "").split(",") if r])
        if len(out) != want:
            fails.append(f"{what}: {len(out)} run lines in dmesg, expected {want}")
    else:
        threads = next((int(m[1]) for m in map(C_THREADS.match, log) if m), None)
        for m in filter(None, map(C_SCOPE.match, log)):
            out.append(dict(base, op="queue-fresh", path="unbound-sysfs", scope=m[1], items=int(args["wq_items"]),
                            threads=threads, items_per_sec=int(m[2]), queue_p50_ns=int(m[3]),
                            queue_p90_ns=int(m[4]), queue_p95_ns=int(m[5])))
        if len(out) != len(SCOPES):
            fails.append(f"{what}: found {len(out)} scope lines in dmesg, expected {len(SCOPES)}")
    return out


def parse(guest):
    """The guest's results directory: records.jsonl, loads/, bench.ktap, kernel."""
    recs, fails, scan, done, kernel_line = [], [], None, None, None
    try:
        with open(os.path.join(guest, "kernel")) as f:
            kernel_line = f.read().strip()
        with open(os.path.join(guest, "records.jsonl")) as f:
            lines = f.read().splitlines()
    except OSError as e:
        return recs, [f"the guest wrote no records: {e}"], scan, done, kernel_line
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError as e:
            fails.append(f"unparsable record ({e}): {line}")
            continue
        if "log" not in rec:
            recs.append(rec)
            continue
        with open(os.path.join(guest, rec["log"]), errors="replace") as f:
            recs += load_records(rec, f.read().splitlines(), fails)
    try:
        with open(os.path.join(guest, "bench.ktap"), errors="replace") as f:
            ktap = f.read().splitlines()
    except OSError:
        return recs, fails + ["the guest did not finish (no bench.ktap)"], scan, done, kernel_line
    done, failed = "0", False
    for line in ktap:
        if re.match(r"^(not )?ok ", line):
            failed = line.startswith("not ok ")
            if failed:
                fails.append(line.split(" ", 3)[3])
                done = "1"
        elif line.startswith("# ") and failed:
            fails.append("  " + line[2:])
        if re.match(r"^(not )?ok [0-9]+ dmesg_clean", line):
            scan = "ok" if line.startswith("ok") else "fail"
    return recs, fails, scan, done, kernel_line


class Sel:
    def __init__(self, recs, repeats, fails):
        self.recs, self.repeats, self.fails = recs, repeats, fails

    def get(self, impl, set_, op, path, scope=None, threads=None, expect=True, kbox=False, items=None):
        got = [r for r in self.recs
               if r["impl"] == impl and r.get("set") == set_ and r.get("op") == op
               and r.get("path") == path and r.get("scope") == scope
               and (threads is None or r.get("threads") == threads)
               and (items is None or r.get("items") == items)
               and bool(r.get("kbox", False)) == kbox]
        if expect and len(got) != self.repeats:
            what = f"{impl} {set_} {op} {path}" + (f"/{scope}" if scope else "") + \
                (f" threads={threads}" if threads else "") + (f" items={items}" if items else "") + \
                (" KBox" if kbox else "")
            self.fails.append(f"{what}: {len(got)} result(s), expected {self.repeats}")
        return sorted(got, key=lambda r: r["rep"])


def summary(runs):
    """Median and spread of the percentiles of a list of runs."""
    out = {}
    for k in ("queue_p50_ns", "queue_p90_ns", "queue_p95_ns", "queue_p99_ns", "items_per_sec"):
        vals = [r.get(k) for r in runs if r.get(k) is not None]
        out[k] = med(vals)
        out[k + "_min"] = min(vals) if vals else None
        out[k + "_max"] = max(vals) if vals else None
    per_item = [r["elapsed_ns"] / (r["threads"] * r["items"]) for r in runs
                if r.get("elapsed_ns") and r.get("threads") and r.get("items")]
    out["ns_per_item"] = med(per_item)
    out["ns_per_item_min"] = min(per_item) if per_item else None
    out["ns_per_item_max"] = max(per_item) if per_item else None
    ips = [r["threads"] * r["items"] * 1e9 / r["elapsed_ns"] for r in runs
           if r.get("elapsed_ns") and r.get("threads") and r.get("items")]
    if out["items_per_sec"] is None and ips:
        out["items_per_sec"] = med(ips)
        out["items_per_sec_min"], out["items_per_sec_max"] = min(ips), max(ips)
    return out


def n(v):
    return "-" if v is None else f"{v:.0f}"


def spread(m, lo, hi):
    if m is None:
        return "-"
    if lo is None or lo == hi:
        return f"{m:.0f}"
    return f"{m:.0f} [{lo:.0f}..{hi:.0f}]"


def ratio(a, b):
    return a / b if a is not None and b else None


def r2(v):
    return "-" if v is None else f"{v:.3f}"


def render(table, left=(0,)):
    """Columns in `left` are left-aligned, the others right-aligned."""
    w = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    def fmt(row):
        return "  ".join(c.ljust(w[i]) if i in left else c.rjust(w[i]) for i, c in enumerate(row)).rstrip()
    return [fmt(table[0]), fmt(["-" * x for x in w])] + [fmt(r) for r in table[1:]]


COLORS = {"C twin": "#4477aa", "Rust": "#ee6677", "upstream Rust": "#ccbb44", "test_workqueue.c": "#228833"}


def bar_panel(out, y, W, left, right, heading, rows):
    """Bars per row (C twin, Rust, upstream Rust where measured), the Rust/C and Rust/upstream
    ratios at the right, OVER in red where the row misses its target; returns the new y."""
    bar_h, gap = 9, 8
    out.append(f'<text x="20" y="{y}" font-size="13" font-weight="bold">{esc(heading)}</text>')
    y += 14
    vmax = max([v for r in rows for v in (r["c"], r["rust"], r.get("up")) if v] or [1])
    scale = (W - left - right - 200) / vmax
    for r in rows:
        out.append(f'<text x="{left - 8}" y="{y + bar_h + 2}" font-size="11" text-anchor="end">'
                   f'{esc(r["label"])}</text>')
        top = y
        bars = [("C twin", r["c"]), ("Rust", r["rust"])] + ([("upstream Rust", r.get("up"))] if "up" in r else [])
        for name, v in bars:
            if v:
                wpx = max(1.0, v * scale)
                out.append(f'<rect x="{left}" y="{y}" width="{wpx:.1f}" height="{bar_h}" '
                           f'fill="{COLORS[name]}"/>')
                out.append(f'<text x="{left + wpx + 4:.1f}" y="{y + bar_h - 1}" font-size="9">'
                           f'{v:.0f}</text>')
            elif name == "upstream Rust":
                out.append(f'<text x="{left + 4}" y="{y + bar_h - 1}" font-size="9" fill="#888888">'
                           f'upstream: {NONE}</text>')
            y += bar_h
        text = "" if r["ratio"] is None else f'R/C x{r["ratio"]:.3f}'
        if r.get("up_ratio") is not None:
            text += f'  R/up x{r["up_ratio"]:.3f}'
        color = "#cc0000" if r.get("verdict") == "OVER" else "#000000"
        if r.get("verdict") == "OVER":
            text += " OVER"
        if text:
            out.append(f'<text x="{W - right}" y="{top + bar_h + 2}" font-size="10" text-anchor="end" '
                       f'fill="{color}">{esc(text.strip())}</text>')
        y += gap
    y += 10
    out += legend(20, y, [(n, COLORS[n]) for n in ("C twin", "Rust", "upstream Rust")])
    return y + 30


def svg(path, title, op_rows, scope_rows, scale_rows):
    """Per-operation p50 bars (C twin, Rust, upstream Rust), the scaling rows, and the
    queue_work latency distribution (p50, p90, p95 and p99 where measured) per affinity scope."""
    W, left, right = 1040, 260, 20
    colors = COLORS
    out = []
    y = 40
    out.append(f'<text x="20" y="24" font-size="16" font-weight="bold">{esc(title)}</text>')
    # Panel 1.
    y += 10
    if op_rows:
        y = bar_panel(out, y, W, left, right,
                      "Per operation: p50 of the timed call (guest instructions under -icount)", op_rows)
    if scale_rows:
        y = bar_panel(out, y, W, left, right,
                      "How cost grows: p50 instructions per item dropped / per arm (owned per-CPU queue)",
                      scale_rows)
    if not scope_rows:
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{y}" '
                f'viewBox="0 0 {W} {y}" font-family="sans-serif">'
                f'<rect width="{W}" height="{y}" fill="white"/>')
        open(path, "w").write(head + "\n" + "\n".join(out) + "\n</svg>\n")
        return
    # Panel 2.
    out.append(f'<text x="20" y="{y}" font-size="13" font-weight="bold">'
               'queue_work per affinity scope, one thread per CPU (log scale): '
               'dot p50, ticks p90/p95, line to p99 (test_workqueue.c: to p95)</text>')
    y += 14
    vals = [v for s in scope_rows for line in s["lines"] for v in line["pct"] if v]
    lo, hi = nice_range(min(vals or [1]), max(vals or [10]))
    span = W - left - right - 60
    def x(v):
        return left + (math.log10(max(v, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * span
    row_h = 11
    axis_y = y
    y += 12
    top = y
    for s in scope_rows:
        out.append(f'<text x="20" y="{y + 10}" font-size="11" font-weight="bold">{esc(s["scope"])}</text>')
        for line in s["lines"]:
            p50, p90, p95, p99 = line["pct"]
            color = line["color"]
            cy = y + row_h / 2
            out.append(f'<text x="{left - 8}" y="{y + row_h - 2}" font-size="10" text-anchor="end">'
                       f'{esc(line["label"])}</text>')
            if p50:
                end = p99 or p95 or p90 or p50
                out.append(f'<line x1="{x(p50):.1f}" y1="{cy}" x2="{x(end):.1f}" '
                           f'y2="{cy}" stroke="{color}" stroke-width="2"/>')
                for t in (p90, p95):
                    if t:
                        out.append(f'<line x1="{x(t):.1f}" y1="{cy - 4}" x2="{x(t):.1f}" '
                                   f'y2="{cy + 4}" stroke="{color}" stroke-width="1.5"/>')
                out.append(f'<circle cx="{x(p50):.1f}" cy="{cy}" r="3.5" fill="{color}"/>')
                out.append(f'<text x="{x(end) + 6:.1f}" y="{y + row_h - 2}" font-size="9">'
                           f'p50 {p50:.0f}</text>')
            y += row_h
        y += 6
    # The log axis: grid lines and labels at 1, 2, 5 times powers of ten.
    for t in ticks(lo, hi):
        out.append(f'<line x1="{x(t):.1f}" y1="{top - 4}" x2="{x(t):.1f}" y2="{y}" stroke="#dddddd"/>')
        out.append(f'<text x="{x(t):.1f}" y="{axis_y + 8}" font-size="9" text-anchor="middle">{t:,}</text>')
    y += 8
    out += legend(20, y, [("test_workqueue.c (INIT_WORK each round)", colors["test_workqueue.c"]),
                          ("C twin", colors["C twin"]), ("Rust", colors["Rust"])])
    y += 24
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{y}" '
            f'viewBox="0 0 {W} {y}" font-family="sans-serif">'
            f'<rect width="{W}" height="{y}" fill="white"/>')
    open(path, "w").write(head + "\n" + "\n".join(out) + "\n</svg>\n")


def nice_range(lo, hi):
    """The 1-2-5 steps just below `lo` and just above `hi`."""
    steps = [m * 10 ** e for e in range(0, 10) for m in (1, 2, 5)]
    return (max([t for t in steps if t <= lo] or [1]), min([t for t in steps if t >= hi] or [hi]))


def ticks(lo, hi):
    return [m * 10 ** e for e in range(0, 10) for m in (1, 2, 5) if lo <= m * 10 ** e <= hi]


def legend(x, y, items):
    out = []
    for name, color in items:
        out.append(f'<rect x="{x}" y="{y - 9}" width="12" height="10" fill="{color}"/>')
        out.append(f'<text x="{x + 16}" y="{y}" font-size="11">{esc(name)}</text>')
        x += 30 + 7 * len(name)
    return out


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--guest", required=True, help="the results directory the guest wrote")
    ap.add_argument("--out", required=True, help="output path without extension")
    ap.add_argument("--kernel", default="release")
    ap.add_argument("--items", type=int, required=True)
    ap.add_argument("--repeats", type=int, required=True)
    ap.add_argument("--cpus", type=int, required=True)
    ap.add_argument("--qemu-opts", default="")
    ap.add_argument("--vm-status", type=int, default=0)
    ap.add_argument("--wall", type=int, default=0)
    ap.add_argument("--vm-wall", type=int, default=0)
    ap.add_argument("--sets", default=None, help="the sets that ran (default: those with records)")
    a = ap.parse_args()

    recs, fails, scan, done, kernel_line = parse(a.guest)
    sets = a.sets.split() if a.sets else sorted({r.get("set") for r in recs if r.get("set")})
    sel = Sel(recs, a.repeats, fails)
    lines = [f"rust_wq bench on the {a.kernel} kernel ({kernel_line or 'unknown'}): {a.items} items "
             f"per run and thread, {a.repeats} repeat(s), {a.cpus} vCPUs, QEMU {a.qemu_opts or 'without icount'}; "
             "medians over repeats, [min..max] where they differ"]
    if a.qemu_opts and "icount" in a.qemu_opts:
        lines.append("Under -icount shift=0 one guest ns is one guest instruction: the ns figures are instruction counts.")
    rows_json = {"ops": [], "scopes": [], "tput": [], "scale": []}

    def pcts(x):
        return f"{n(x['queue_p50_ns'])}/{n(x['queue_p90_ns'])}/{n(x['queue_p99_ns'])}"

    op_svg = []
    if "ops" in sets:
        t = [["operation", "queue", "items", "C twin p50/p90/p99", "Rust p50/p90/p99", "upstream p50/p90/p99",
              "Rust/C p50", "Rust/upstream p50", "Rust-C p50", "target", "", "what Rust does besides the C call"]]
        met = total = 0
        for op, path, ptr, note in OPS:
            kbox = ptr == "KBox"
            c = summary(sel.get("ctwin", "ops", op, path))
            rs = summary(sel.get("rust", "ops", op, path, kbox=kbox))
            up = summary(sel.get("upstream", "ops", op, path, kbox=kbox)) if op in UPSTREAM_OPS else None
            rat = ratio(rs["queue_p50_ns"], c["queue_p50_ns"])
            up_rat = ratio(rs["queue_p50_ns"], up["queue_p50_ns"]) if up else None
            delta = None if rat is None else rs["queue_p50_ns"] - c["queue_p50_ns"]
            cls, limit = target_of(op, path)
            v = verdict(rat, limit)
            total += 1
            met += v == "ok"
            t.append([op, path, ptr, pcts(c), pcts(rs), pcts(up) if up else NONE,
                      r2(rat), r2(up_rat) if up else NONE, "-" if delta is None else f"{delta:+.0f}",
                      f"{limit:.2f}", v, note])
            rows_json["ops"].append({"op": op, "path": path, "pointer": ptr, "note": note, "ctwin": c, "rust": rs,
                                     "upstream": up, "p50_ratio": rat, "p50_ratio_upstream": up_rat,
                                     "p50_delta_ns": delta, "target_class": cls, "target": limit, "verdict": v})
            row = {"label": f"{op} ({path}{', KBox' if kbox else ''})", "c": c["queue_p50_ns"],
                   "rust": rs["queue_p50_ns"], "ratio": rat, "verdict": v}
            if up:
                row.update(up=up["queue_p50_ns"], up_ratio=up_rat)
            op_svg.append(row)
        lines += ["", "Per operation: the timed call, one thread, Rust beside its C twin "
                  "(bench/rust_wq_ctwin.c, the same kernel calls) and upstream's kernel::workqueue "
                  "(7.3, same queue borrowed, same items and timing points; " + NONE + ": upstream cannot do it)"]
        lines += render(t, left=(0, 1, 2, 10, 11))
        lines.append(f"targets Rust/C p50: {TARGETS['immediate']} immediate operations "
                     f"({', '.join(sorted(IMMEDIATE_OPS))}), {TARGETS['system queue']} the others on a system queue, "
                     f"{TARGETS['owned queue']:.2f} on an owned queue (percpu); met by {met} of {total} rows")
        byop = {(r["op"], r["path"]): r for r in rows_json["ops"] if r["pointer"] == "Arc"}
        reused, fresh = byop.get(("queue", "percpu")), byop.get(("queue-fresh", "percpu"))
        if reused and fresh:
            reuse = {}
            for side in ("ctwin", "rust"):
                used, new = reused[side]["queue_p50_ns"], fresh[side]["queue_p50_ns"]
                reuse[side] = None if used is None or new is None else used - new
            rows_json["reuse_cost_ns"] = reuse
            def sgn(v):
                return "-" if v is None else f"{v:+.0f}"
            lines.append("queueing an item that ran before costs, against a freshly initialised one (queue - queue-fresh, "
                         f"p50): C twin {sgn(reuse['ctwin'])}, Rust {sgn(reuse['rust'])} instructions "
                         "(__queue_work: get_work_pool() and the running-instance check); lib/test_workqueue.c "
                         "queues a fresh item every round (INIT_WORK)")

    scale_svg = []
    if "scale" in sets:
        _, limit = target_of("drop-armed", "percpu")
        t = [["run", "C twin p50/p90/p99", "Rust p50/p90/p99", "Rust/C p50", "target", "",
              "C twin instr/round", "Rust instr/round"]]
        for nn in DROP_NS:
            c = summary(sel.get("ctwin", "scale", "drop-armed", "percpu", items=nn))
            rs = summary(sel.get("rust", "scale", "drop-armed", "percpu", items=nn))
            rat = ratio(rs["queue_p50_ns"], c["queue_p50_ns"])
            v = verdict(rat, limit)
            t.append([f"drop an owned queue, {nn:,} armed items (per item)", pcts(c), pcts(rs), r2(rat),
                      f"{limit:.2f}", v, "-", "-"])
            rows_json["scale"].append({"run": "drop-armed", "n": nn, "ctwin": c, "rust": rs, "p50_ratio": rat,
                                       "target": limit, "verdict": v})
            scale_svg.append({"label": f"drop queue, {nn:,} armed", "c": c["queue_p50_ns"],
                              "rust": rs["queue_p50_ns"], "ratio": rat, "verdict": v})
        for th in PAR_THREADS:
            if th > a.cpus:
                continue
            c = summary(sel.get("ctwin", "scale", "delayed-par", "percpu", None, th))
            rs = summary(sel.get("rust", "scale", "delayed-par", "percpu", None, th))
            rat = ratio(rs["queue_p50_ns"], c["queue_p50_ns"])
            v = verdict(rat, limit)
            t.append([f"{th} CPU(s) arming on one owned queue (per arm)", pcts(c), pcts(rs), r2(rat),
                      f"{limit:.2f}", v, n(c["ns_per_item"]), n(rs["ns_per_item"])])
            rows_json["scale"].append({"run": "delayed-par", "threads": th, "ctwin": c, "rust": rs,
                                       "p50_ratio": rat, "target": limit, "verdict": v})
            scale_svg.append({"label": f"arm, {th} CPU(s) at once", "c": c["queue_p50_ns"],
                              "rust": rs["queue_p50_ns"], "ratio": rat, "verdict": v})
        lines += ["", "How cost grows (owned per-CPU queue): dropping the queue with N armed delayed items "
                  "(C: cancel_delayed_work_sync() of each, then destroy_workqueue(); figures per item, over "
                  "5 rounds; items allocated and armed untimed), and N CPUs arming delayed items on one queue "
                  "at once (figures per arm, all threads' arms together; instr/round = elapsed / (threads x rounds), "
                  "the untimed cancel included)"]
        lines += render(t, left=(0, 5))
        lines.append("Under -icount QEMU runs the vCPUs one after another (no multi-threaded TCG): N CPUs "
                     "interleave in time slices rather than truly at once, so lock contention (spinning, "
                     "cache-line transfers) barely shows; what shows is the instruction count per arm.")

    scope_svg = []
    if "scopes" in sets:
        t = [["scope", "test_workqueue p50/p90/p95", "twin fresh p50", "Rust fresh p50", "R/C fresh",
              "twin reused p50", "Rust reused p50", "R/C reused", "reused-fresh twin/Rust",
              "test_workqueue items/s"]]
        for s in SCOPES:
            c = summary(sel.get("c", "scopes", "queue-fresh", "unbound-sysfs", s))
            tf = summary(sel.get("ctwin", "scopes", "queue-fresh", "unbound-sysfs", s))
            rf = summary(sel.get("rust", "scopes", "queue-fresh", "unbound-sysfs", s))
            tr = summary(sel.get("ctwin", "scopes", "rt", "unbound-sysfs", s))
            rr = summary(sel.get("rust", "scopes", "rt", "unbound-sysfs", s))
            d_t = None if tr["queue_p50_ns"] is None or tf["queue_p50_ns"] is None else tr["queue_p50_ns"] - tf["queue_p50_ns"]
            d_r = None if rr["queue_p50_ns"] is None or rf["queue_p50_ns"] is None else rr["queue_p50_ns"] - rf["queue_p50_ns"]
            t.append([s, f"{n(c['queue_p50_ns'])}/{n(c['queue_p90_ns'])}/{n(c['queue_p95_ns'])}",
                      n(tf["queue_p50_ns"]), n(rf["queue_p50_ns"]), r2(ratio(rf["queue_p50_ns"], tf["queue_p50_ns"])),
                      n(tr["queue_p50_ns"]), n(rr["queue_p50_ns"]), r2(ratio(rr["queue_p50_ns"], tr["queue_p50_ns"])),
                      f"{'-' if d_t is None else f'{d_t:+.0f}'}/{'-' if d_r is None else f'{d_r:+.0f}'}",
                      spread(c["items_per_sec"], c["items_per_sec_min"], c["items_per_sec_max"])])
            rows_json["scopes"].append({"scope": s, "test_workqueue": c, "ctwin_fresh": tf, "rust_fresh": rf,
                                        "ctwin_reused": tr, "rust_reused": rr})
            def pct(x):
                return (x["queue_p50_ns"], x["queue_p90_ns"], x["queue_p95_ns"], x["queue_p99_ns"])
            scope_svg.append({"scope": s, "lines": [
                {"label": "test_workqueue.c", "pct": pct(c), "color": "#228833"},
                {"label": "C twin, new item", "pct": pct(tf), "color": "#4477aa"},
                {"label": "Rust, new item", "pct": pct(rf), "color": "#ee6677"},
                {"label": "C twin, item reused", "pct": pct(tr), "color": "#88aadd"},
                {"label": "Rust, item reused", "pct": pct(rr), "color": "#f4a0aa"},
            ]})
        lines += ["", "queue_work on the unbound sysfs queue, one thread per CPU, per affinity scope: "
                  "lib/test_workqueue.c (INIT_WORK before every round), and Rust and the C twin with a new item "
                  "every round ('fresh') and with one item reused ('reused')"]
        lines += render(t)
        lines.append("reused-fresh: the extra cost of queueing an item that ran before (__queue_work looks up "
                     "its last pool: get_work_pool(), and checks that pool for a running instance); "
                     "test_workqueue items/s are for reference (its finished threads spin)")
        lines.append("With one thread per CPU on one unbound queue the p50 falls on one of a few discrete costs "
                     "(which pool, which CPU, reused or not), and which one moves between runs: the per-scope R/C "
                     "says which mode each side hit, not what the wrapper costs (that is the per-operation table)")

    if "tput" in sets:
        t = [["threads", "C twin instr/item", "Rust instr/item", "Rust/C", "C twin items/s", "Rust items/s"]]
        for th in TPUT_THREADS:
            if th > a.cpus:
                continue
            c = summary(sel.get("ctwin", "tput", "rt", "percpu", None, th))
            rs = summary(sel.get("rust", "tput", "rt", "percpu", None, th))
            t.append([str(th), spread(c["ns_per_item"], c["ns_per_item_min"], c["ns_per_item_max"]),
                      spread(rs["ns_per_item"], rs["ns_per_item_min"], rs["ns_per_item_max"]),
                      r2(ratio(rs["ns_per_item"], c["ns_per_item"])),
                      spread(c["items_per_sec"], c["items_per_sec_min"], c["items_per_sec_max"]),
                      spread(rs["items_per_sec"], rs["items_per_sec_min"], rs["items_per_sec_max"])])
            rows_json["tput"].append({"threads": th, "ctwin": c, "rust": rs})
        lines += ["", "Throughput: queue one item and wait, on the per-CPU queue, N threads on N CPUs; "
                  "guest instructions per completed item = elapsed guest ns / (threads x items) under -icount "
                  "(finished threads sleep, they do not spin)"]
        lines += render(t)

    ok = a.vm_status == 0 and not fails and scan == "ok" and done == "0"
    lines.append("")
    lines.append(f"kernel log scan: {scan or 'missing'}; VM status {a.vm_status}; wall time {a.wall} s "
                 f"(VM {a.vm_wall} s); {'OK' if ok else 'FAILED'}")
    for f in fails:
        lines.append(f"FAIL: {f}")
    if scan is None or done is None:
        lines.append("FAIL: the guest did not finish (no bench.ktap with a log scan result)")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    open(a.out + ".txt", "w").write(text)

    cols = ["impl", "set", "rep", "order", "op", "path", "kbox", "scope", "threads", "items", "elapsed_ns",
            "items_per_sec", "queue_p50_ns", "queue_p90_ns", "queue_p95_ns", "queue_p99_ns"]
    with open(a.out + ".csv", "w") as f:
        f.write(",".join(cols) + "\n")
        for r in recs:
            f.write(",".join("" if r.get(k) is None else str(r.get(k)) for k in cols) + "\n")
    json.dump({"kernel": a.kernel, "kernel_release": kernel_line, "items": a.items, "repeats": a.repeats,
               "cpus": a.cpus, "qemu_opts": a.qemu_opts, "wall_seconds": a.wall, "vm_seconds": a.vm_wall,
               "vm_status": a.vm_status, "kernel_log_scan": scan, "ok": ok, "failures": fails,
               "tables": rows_json, "records": recs}, open(a.out + ".json", "w"), indent=1)
    if op_svg or scope_svg or scale_svg:
        svg(a.out + ".svg", f"rust_wq: Rust vs. C vs. upstream Rust on the {a.kernel} kernel "
            f"({a.cpus} vCPUs, {a.items} items, {a.qemu_opts or 'no icount'})", op_svg, scope_svg, scale_svg)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
