//! RESULTS, RESET and the limits: FIFO, EBUSY at max_pending, dropped results.

use crate::util::{drain, enq, exactly, fill_delayed, LONG_DELAY_US};
use crate::{fail, Checker, Ctx, Must, TestResult};
use libc::{EBUSY, EINVAL};
use std::time::{Duration, Instant};
use wqctl::abi::*;
use wqctl::{EnqueueArgs, Target};

pub fn results_fifo_and_removal(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let a = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_ORDERED, 5),
        "ENQUEUE 5 ordered",
    )?;
    dev.flush(Target::All).must("FLUSH ALL")?;
    let (r1, d1) = dev.results(2).must("RESULTS capacity 2")?;
    c.eq(
        "RESULTS capacity 2: ids (oldest first)",
        r1.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![a, a + 1],
    );
    let (r2, d2) = dev.results(10).must("RESULTS capacity 10")?;
    c.eq(
        "RESULTS capacity 10: ids (the rest)",
        r2.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![a + 2, a + 3, a + 4],
    );
    let (r3, _) = dev.results(10).must("RESULTS again")?;
    c.eq("RESULTS after all were read: count", r3.len(), 0);
    c.eq("dropped", (d1, d2), (0, 0));
    let seqs: Vec<u64> = r1.iter().chain(&r2).map(|r| r.seq).collect();
    c.check(seqs.windows(2).all(|w| w[0] < w[1]), || {
        format!("seq not increasing in result order: {seqs:?}")
    });
    c.stats("at end", &dev, (5, 5, 0, 0));
    c.done()
}

pub fn reset_clears(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 3).delay_us(LONG_DELAY_US),
        "ENQUEUE 3 delayed",
    )?;
    enq(&dev, EnqueueArgs::new(RUST_WQ_Q_PERCPU, 2), "ENQUEUE 2")?;
    dev.flush(Target::Queue(RUST_WQ_Q_PERCPU))
        .must("FLUSH QUEUE percpu")?;
    c.stats("before RESET", &dev, (5, 2, 0, 3));
    dev.reset().must("RESET")?;
    c.stats("after RESET", &dev, (0, 0, 0, 0));
    exactly(&mut c, "results after RESET (dropped)", &drain(&dev)?, []);
    c.eq(
        "FLUSH ALL count after RESET",
        dev.flush(Target::All).must("FLUSH ALL")?,
        0,
    );
    let b = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1),
        "ENQUEUE after RESET",
    )?;
    dev.flush(Target::All).must("FLUSH ALL")?;
    exactly(
        &mut c,
        "results of the item enqueued after RESET",
        &drain(&dev)?,
        [b],
    );
    c.stats("at end", &dev, (1, 1, 0, 0));
    c.done()
}

pub fn max_pending_ebusy(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let (max_pending, max_count) = (ctx.info.max_pending, ctx.info.max_count.max(1));
    let mut left = max_pending;
    while left > 0 {
        let n = left.min(max_count);
        if let Err(e) = dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, n).delay_us(30_000_000)) {
            let pending = dev.stats().map(|s| s.pending).unwrap_or(0);
            let _ = dev.cancel(Target::All);
            return fail(format!("ENQUEUE {n} with {pending} pending (max_pending {max_pending}): expected success, got {e}"));
        }
        left -= n;
    }
    c.eq(
        "stats.pending when full",
        dev.stats().must("STATS")?.pending,
        u64::from(max_pending),
    );
    c.errno(
        "ENQUEUE 1 more with max_pending pending",
        dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1)),
        EBUSY,
    );
    c.errno(
        "ENQUEUE 1 more delayed",
        dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_PERCPU, 1).delay_us(1_000)),
        EBUSY,
    );
    c.eq(
        "CANCEL ALL count",
        dev.cancel(Target::All).must("CANCEL ALL")?,
        u64::from(max_pending),
    );
    c.ok(
        "ENQUEUE after CANCEL ALL",
        dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1)),
    );
    dev.flush(Target::All).must("FLUSH ALL")?;
    let m = u64::from(max_pending);
    c.stats("at end", &dev, (m + 1, 1, m, 0));
    c.done()
}

/// The header: EBUSY when the unfinished items plus `count` would exceed
/// max_pending, with nothing enqueued, even when part of the call would fit.
pub fn ebusy_partial_room(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let max = ctx.info.max_pending;
    fill_delayed(ctx, &dev, max - 5)?;
    let m = u64::from(max);
    c.errno(
        "ENQUEUE 10 with room for 5",
        dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_PERCPU, 10)),
        EBUSY,
    );
    c.stats(
        "nothing of the refused call was enqueued",
        &dev,
        (m - 5, 0, 0, m - 5),
    );
    c.ok(
        "ENQUEUE 5 delayed with room for exactly 5",
        dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_PERCPU, 5).delay_us(30_000_000)),
    );
    c.errno(
        "ENQUEUE 1 when full",
        dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_ORDERED, 1)),
        EBUSY,
    );
    c.eq(
        "CANCEL ALL count",
        dev.cancel(Target::All).must("CANCEL ALL")?,
        m,
    );
    c.stats("at end", &dev, (m, 0, m, 0));
    c.done()
}

/// The header: a running item is unfinished, so it counts against max_pending.
/// max_pending - 2 delayed items, one sleeping item that has started, one more
/// delayed item (now max_pending unfinished, one of them running): ENQUEUE 1
/// more must fail with EBUSY.  Whether the sleeping item had started by then
/// is read from its result afterwards; if it had not, the test tries again
/// with a longer wait (an item that never starts fails it).
pub fn ebusy_counts_running(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let max = ctx.info.max_pending;
    let m = u64::from(max);
    fill_delayed(ctx, &dev, max - 2)?;
    let waits = [200u64, 400, 800];
    let (mut sleepers, mut lasts) = (0u64, 0u64);
    let mut conclusive = false;
    for wait_ms in waits {
        let t0 = Instant::now();
        let running = enq(
            &dev,
            EnqueueArgs::new(RUST_WQ_Q_ORDERED, 1).sleep_us(ctx.info.max_sleep_us),
            "ENQUEUE 1 sleeping max_sleep_us",
        )?;
        sleepers += 1;
        std::thread::sleep(Duration::from_millis(wait_ms));
        let last = c
            .ok(
                "ENQUEUE 1 delayed, the last one that fits",
                dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).delay_us(30_000_000)),
            )
            .unwrap_or(0);
        let busy_at = t0.elapsed();
        c.errno(
            "ENQUEUE 1 with max_pending unfinished (one of them sleeping)",
            dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1)),
            EBUSY,
        );
        // Make room again for the next attempt, and collect the sleeper.
        if last != 0 {
            lasts += 1;
            c.eq(
                "CANCEL of the last delayed item",
                dev.cancel(Target::Id(last)).must("CANCEL id")?,
                1,
            );
        }
        dev.flush(Target::Id(running)).must("FLUSH id")?;
        let by_id = exactly(&mut c, "results", &drain(&dev)?, [running]);
        if let Some(r) = by_id.get(&running) {
            let (start, end) = (
                Duration::from_nanos(r.latency_ns),
                Duration::from_nanos(r.latency_ns + r.runtime_ns),
            );
            if start < busy_at {
                // It had started: it was running at the EBUSY call.
                c.check(end > busy_at, || {
                    format!(
                        "the sleeping item ran from {} to {} ms, the EBUSY call was at {} ms",
                        start.as_millis(),
                        end.as_millis(),
                        busy_at.as_millis()
                    )
                });
                conclusive = true;
                break;
            }
        }
        if !c.errs.is_empty() {
            break;
        }
    }
    c.check(conclusive, || {
        format!("the sleeping item never started before the EBUSY call (waits of {waits:?} ms)")
    });
    let cancelled = dev.cancel(Target::All).must("CANCEL ALL")?;
    c.eq("CANCEL ALL count (the filling items)", cancelled, m - 2);
    c.stats(
        "at end",
        &dev,
        (m - 2 + sleepers + lasts, sleepers, m - 2 + lasts, 0),
    );
    c.done()
}

/// The header: more than max_results results waiting: the oldest are
/// dropped; RESULTS says how many in `dropped` (once), STATS counts them in
/// `results_dropped` (since open), and the newest max_results are kept.
pub fn results_dropped_beyond_max(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let (max_results, max_pending, max_count) = (
        u64::from(ctx.info.max_results),
        ctx.info.max_pending,
        ctx.info.max_count,
    );
    let extra = u64::from(max_pending);
    let total = max_results + extra;
    let mut left = total;
    let mut first = None;
    while left > 0 {
        let mut batch = left.min(u64::from(max_pending));
        while batch > 0 {
            let k = batch.min(u64::from(max_count)) as u32;
            let f = enq(&dev, EnqueueArgs::new(RUST_WQ_Q_UNBOUND, k), "ENQUEUE")?;
            first.get_or_insert(f);
            batch -= u64::from(k);
            left -= u64::from(k);
        }
        dev.flush(Target::All).must("FLUSH ALL")?;
    }
    let first = first.unwrap_or(1);
    let s = dev.stats().must("STATS")?;
    c.eq(
        "STATS (enqueued, executed, pending)",
        (s.enqueued, s.executed, s.pending),
        (total, total, 0),
    );
    c.eq(
        "STATS results_dropped with max_results + max_pending results waiting",
        s.results_dropped,
        extra,
    );
    let mut kept = Vec::new();
    let (r, d) = dev.results(4096).must("RESULTS")?;
    c.eq("first RESULTS: dropped", d, extra);
    kept.extend(r);
    loop {
        let (r, d) = dev.results(4096).must("RESULTS")?;
        c.eq("later RESULTS: dropped", d, 0);
        if r.is_empty() {
            break;
        }
        kept.extend(r);
    }
    c.eq("results kept", kept.len() as u64, max_results);
    // Each batch ran completely before the next was enqueued, so the newest
    // max_results results are those of the ids after the first `extra`
    // (within a batch, the unbound queue may run them in any order).
    let mut ids: Vec<u64> = kept.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    let newest: Vec<u64> = (first + extra..first + total).collect();
    c.check(ids == newest, || {
        format!(
            "the kept results are not those of the newest ids {}..{} (lowest ids seen {:?})",
            first + extra,
            first + total - 1,
            &ids[..ids.len().min(5)]
        )
    });
    c.eq(
        "STATS results_dropped after reading (counts since open)",
        dev.stats().must("STATS")?.results_dropped,
        extra,
    );
    c.done()
}

/// The design's "read results in dmesg": the per-item kernel-log lines say
/// what RESULTS says of the same items (id, tag, queue, requested CPU, CPU,
/// seq, the context that queued it: task, hard IRQ, or the edu device's IRQ
/// as "queued_from=device_irq irq=N" with INFO's N; process context), for the first
/// LOG_ITEMS_PER_BATCH (4) items of each call (and a batch line for a longer
/// call), and lines over the module's limit (20 a second) are counted in one
/// "suppressed" line the next second: printed + suppressed = every line due.  Starts just after a whole second
/// of CLOCK_MONOTONIC (the module's window) so that the budget is fresh.
pub fn dmesg_lines_match_results(ctx: &Ctx) -> TestResult {
    const PER_CALL: u64 = 4;
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let mono_ns = || {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    };
    let now = mono_ns();
    std::thread::sleep(Duration::from_nanos(
        1_000_000_000 - now % 1_000_000_000 + 50_000_000,
    ));
    // A first line of the new second prints what earlier tests had
    // suppressed; only then the marker.
    dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1))
        .must("ENQUEUE 1 (before the marker)")?;
    dev.flush(Target::All).must("FLUSH ALL")?;
    drain(&dev)?;
    let marker = format!("rust_wq_e2e dmesg_lines_match_results {}", mono_ns());
    std::fs::write("/dev/kmsg", &marker)
        .map_err(|e| crate::Outcome::Fail(vec![format!("write the marker to /dev/kmsg: {e}")]))?;
    let tag = 0x5eed_0000 + now % 0xffff;
    let cpu = *ctx.online.last().unwrap_or(&0);
    // 3 from the task on unbound, 2 from a hard IRQ on percpu pinned, 2 from
    // the device's IRQ, then five calls of 6 (5 lines each): 32 lines due, 19
    // left in the second.
    let mut calls = vec![
        EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 3).tag(tag),
        EnqueueArgs::new(RUST_WQ_Q_PERCPU, 2)
            .cpu(cpu)
            .from_irq(true)
            .tag(tag),
    ];
    // 2 from the edu device's interrupt, when one is bound (its lines say
    // "queued_from=device_irq irq=N", N being INFO's device_irq).
    let device_irq = dev.info().must("INFO")?.device_irq;
    if device_irq != 0 {
        calls.push(
            EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 2)
                .from_device_irq(true)
                .tag(tag),
        );
    }
    calls.extend((0..5).map(|_| EnqueueArgs::new(RUST_WQ_Q_ORDERED, 6).tag(tag)));
    // A line per item for the first four of a call, and a batch line for a
    // call of more: all under the limit.
    let due: u64 = calls
        .iter()
        .map(|a| u64::from(a.count).min(PER_CALL) + u64::from(u64::from(a.count) > PER_CALL))
        .sum();
    for a in &calls {
        dev.enqueue(*a).must("ENQUEUE")?;
        dev.flush(Target::All).must("FLUSH ALL")?;
    }
    let res = drain(&dev)?;
    // The next second: one more line, so that the suppressed count is printed.
    std::thread::sleep(Duration::from_millis(1_100));
    dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).tag(tag + 1))
        .must("ENQUEUE 1")?;
    dev.flush(Target::All).must("FLUSH ALL")?;
    let out = std::process::Command::new("dmesg")
        .output()
        .map_err(|e| crate::Outcome::Fail(vec![format!("dmesg: {e}")]))?;
    let log = String::from_utf8_lossy(&out.stdout);
    let after: Vec<&str> = log.lines().skip_while(|l| !l.contains(&marker)).collect();
    c.check(!after.is_empty(), || {
        "the marker is not in the kernel log".into()
    });
    let field = |l: &str, k: &str| -> Option<String> {
        l.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")).map(str::to_string))
    };
    let lines: Vec<&str> = after
        .iter()
        .copied()
        .filter(|l| l.contains("work id=") && field(l, "tag") == Some(tag.to_string()))
        .collect();
    let suppressed: u64 = after
        .iter()
        .filter_map(|l| {
            l.split(" per-item work lines suppressed")
                .next()
                .filter(|_| l.contains("per-item work lines suppressed"))
                .and_then(|h| h.split_whitespace().last())
                .and_then(|n| n.parse::<u64>().ok())
        })
        .sum();
    let batch = after
        .iter()
        .filter(|l| l.contains(&format!("work batch tag={tag} ")))
        .count() as u64;
    c.eq(
        "per-item and batch lines printed + suppressed (4 items and a batch line a call)",
        lines.len() as u64 + batch + suppressed,
        due,
    );
    c.check(suppressed > 0, || {
        format!("{due} lines due within a second, none suppressed: the limit of 20 a second did not act")
    });
    let mut matched = 0;
    let mut device_lines = 0;
    for l in &lines {
        let Some(id) = field(l, "id").and_then(|v| v.parse::<u64>().ok()) else {
            c.fail(format!("a work line without an id: {l}"));
            continue;
        };
        let Some(r) = res.iter().find(|r| r.id == id) else {
            c.fail(format!(
                "a work line for id {id}, which RESULTS did not return: {l}"
            ));
            continue;
        };
        matched += 1;
        if r.flags & RUST_WQ_RES_FROM_DEVICE_IRQ != 0 {
            device_lines += 1;
            c.check(l.contains(&format!(" queued_from=device_irq irq={device_irq} ")), || {
                format!("id {id} (from the device IRQ {device_irq}): the kernel log line does not say \"queued_from=device_irq irq={device_irq}\": {l}")
            });
        }
        let from = if r.flags & RUST_WQ_RES_FROM_DEVICE_IRQ != 0 {
            "device_irq"
        } else if r.flags & RUST_WQ_RES_FROM_HARDIRQ != 0 {
            "hardirq"
        } else if r.flags & RUST_WQ_RES_FROM_SOFTIRQ != 0 {
            "softirq"
        } else {
            "task"
        };
        let req = if r.requested_cpu == RUST_WQ_CPU_ANY {
            "-1".to_string()
        } else {
            r.requested_cpu.to_string()
        };
        let want = [
            (
                "queue",
                wqctl::parse::format_queue(r.queue).replace('-', "_"),
            ),
            ("req_cpu", req),
            ("cpu", r.cpu.to_string()),
            ("seq", r.seq.to_string()),
            ("queued_from", from.to_string()),
            (
                "process_ctx",
                (r.flags & RUST_WQ_RES_PROCESS_CTX != 0).to_string(),
            ),
        ];
        for (k, v) in want {
            c.check(field(l, k).as_deref() == Some(v.as_str()), || {
                format!(
                    "id {id}: the kernel log says {k}={:?}, RESULTS says {v}: {l}",
                    field(l, k)
                )
            });
        }
    }
    c.check(matched > 0, || {
        "no work line of this test in the kernel log".into()
    });
    if device_irq != 0 {
        c.eq("work lines of the device IRQ's items", device_lines, 2);
    }
    c.done()
}

/// Makes a valid ENQUEUE argument invalid in one way (given INFO's limits).
type Spoil = fn(&mut RustWqEnqueue, &RustWqInfo);

/// Arguments are checked first: with the file full (max_pending items
/// pending), every invalid ENQUEUE is EINVAL, not EBUSY; a valid one is EBUSY
/// (the file is full); nothing is enqueued.
pub fn einval_before_ebusy(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let max_pending = ctx.info.max_pending;
    fill_delayed(ctx, &dev, max_pending)?;
    let valid = EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).to_raw();
    c.errno(
        "a valid ENQUEUE of 1 with the file full",
        dev.enqueue_raw(valid),
        EBUSY,
    );
    let bad: [(&str, Spoil); 9] = [
        ("version 2", |e, _| e.version = 2),
        ("reserved[0] 1", |e, _| e.reserved[0] = 1),
        ("an unknown flag bit", |e, _| e.flags = 1 << 63),
        ("two FROM_ flags", |e, _| {
            e.flags = RUST_WQ_ENQ_F_FROM_IRQ | RUST_WQ_ENQ_F_FROM_SOFTIRQ
        }),
        ("an unknown queue", |e, _| e.queue = RUST_WQ_Q_COUNT),
        ("count 0", |e, _| e.count = 0),
        ("count max_count + 1", |e, i| e.count = i.max_count + 1),
        ("delay max_delay_us + 1", |e, i| {
            e.delay_us = i.max_delay_us + 1
        }),
        ("cpu nr_cpu_ids", |e, i| e.cpu = i.nr_cpu_ids),
    ];
    for (what, spoil) in bad {
        let mut e = valid;
        spoil(&mut e, &ctx.info);
        c.errno(
            &format!("ENQUEUE with {what}, the file full"),
            dev.enqueue_raw(e),
            EINVAL,
        );
    }
    let mut e = valid;
    e.sleep_us = ctx.info.max_sleep_us + 1;
    c.errno(
        "ENQUEUE with sleep max_sleep_us + 1, the file full",
        dev.enqueue_raw(e),
        EINVAL,
    );
    let p = u64::from(max_pending);
    c.stats("nothing enqueued", &dev, (p, 0, 0, p));
    c.eq(
        "CANCEL ALL count",
        dev.cancel(Target::All).must("CANCEL ALL")?,
        p,
    );
    c.done()
}
