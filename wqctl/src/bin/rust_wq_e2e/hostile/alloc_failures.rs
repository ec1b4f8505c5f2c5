//! Fault injection on single calls: BENCH and ENQUEUE with failing allocations.

use super::{child_open, fork, stats_tuple};
use crate::util::sentinel;
use crate::{diag, fail, unavailable, Checker, Ctx, Must, Outcome, TestResult};
use libc::ENOMEM;
use std::time::Duration;
use wqctl::abi::*;
use wqctl::hostile::{FailNth, FailslabSettings};
use wqctl::{BenchArgs, EnqueueArgs, Target};

fn failslab() -> Result<(FailslabSettings, FailNth), Outcome> {
    let s = match FailslabSettings::apply() {
        Some(s) => s,
        None => return unavailable("failslab", "failslab not available"),
    };
    let f = FailNth::open()
        .map_err(|e| Outcome::Fail(vec![format!("open /proc/thread-self/fail-nth: {e}")]))?;
    Ok((s, f))
}

/// BENCH with its 1st, 2nd, ... allocation failing: each returns ENOMEM (or
/// succeeds), never hangs, and the next BENCH works (was: a failed
/// `kthreads.push` left a thread that could never be stopped, the bench lock
/// held for ever and the module impossible to unload). Each call runs in a
/// child so that a hang is seen.
pub fn bench_alloc_failures(ctx: &Ctx) -> TestResult {
    // Probed here first: a child that finds no failslab exits before it is
    // ready, which fork() reports as a failure, not as a skip.
    drop(failslab()?);
    let mut c = Checker::new();
    let mut reached = 0;
    let mut enomem = 0;
    for n in 1..400u32 {
        let path = ctx.path.clone();
        let mut child = fork(Duration::from_secs(10), |ready| {
            let dev = child_open(&path);
            let (_s, f) = match failslab() {
                Ok(v) => v,
                Err(_) => return 104,
            };
            ready();
            let args = BenchArgs {
                op: RUST_WQ_BENCH_OP_RT,
                path: RUST_WQ_BENCH_PERCPU,
                items: 20,
                threads: 0,
                start_latency: true,
            }
            .to_raw();
            let Ok((r, hit)) = f.call(n, || dev.bench_raw(args)) else {
                return 105;
            };
            match (r, hit) {
                (Ok(_), false) => 0,
                (Ok(_), true) => 1,
                (Err(e), true) if e.0 == ENOMEM => 2,
                (Err(e), _) => 10 + e.0.min(100),
            }
        })?;
        let st = match child.wait_dead(Duration::from_secs(30)) {
            Some(st) => st,
            None => {
                return fail(format!(
                    "BENCH with allocation {n} failing did not return within 30 s"
                ))
            }
        };
        let code = libc::WEXITSTATUS(st);
        match code {
            0 => break,
            1 => reached += 1,
            2 => {
                reached += 1;
                enomem += 1
            }
            104 => return unavailable("failslab", "failslab not available"),
            _ => {
                c.fail(format!(
                    "BENCH with allocation {n} failing: unexpected outcome (code {code}: 10 + errno)"
                ));
                break;
            }
        }
    }
    diag(&format!(
        "BENCH: {reached} allocation points reached, {enomem} returned ENOMEM, the rest succeeded"
    ));
    // The bench lock is free and the module usable.
    let dev = ctx.open()?;
    c.ok(
        "BENCH after the sweep",
        dev.bench(BenchArgs {
            op: RUST_WQ_BENCH_OP_RT,
            path: RUST_WQ_BENCH_UNBOUND_SYSFS,
            items: 10,
            threads: 0,
            start_latency: false,
        }),
    );
    c.done()
}

/// ENQUEUE of 1024 items due after 2 jiffies, from the task and with
/// FROM_IRQ, with each of its last allocations failing (those made while
/// queueing): on ENOMEM none of the call's items runs (was: items whose timer
/// fired while the call was still queueing ran, although the call failed).
/// "None runs" is decided by order, not by a window: a sentinel due 60 ms
/// after the call (its items were due after 2 jiffies, 8 ms) must be the
/// only result when it has run.
pub fn enqueue_enomem_runs_nothing(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let (_s, f) = failslab()?;
    for from_irq in [false, true] {
        let how = if from_irq { "FROM_IRQ" } else { "task" };
        let args = EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1024)
            .delay_us(1)
            .from_irq(from_irq)
            .to_raw();
        let (r, total) = f
            .count(|| dev.enqueue_raw(args))
            .map_err(|e| Outcome::Fail(vec![format!("fail-nth: {e}")]))?;
        r.must("ENQUEUE 1024 (no failure)")?;
        dev.flush(Target::All).must("FLUSH")?;
        dev.reset().must("RESET")?;
        diag(&format!(
            "ENQUEUE ({how}) of 1024 delayed items: {total} allocation points"
        ));
        // Points spread over the whole call, the last ones included. The layer's queueing
        // allocates nothing (its bookkeeping is intrusive), so the ENOMEMs come from making the
        // items; optional allocations (debug objects, ...) fail without an ENOMEM. Either way a
        // call that returns ENOMEM must leave nothing that ran.
        let mut failures = 0;
        let mut tried = 0;
        let step = (total / 30).max(1);
        let points: Vec<u32> = (1..=total)
            .rev()
            .take(10)
            .chain((1..=total).step_by(step as usize))
            .collect();
        for n in points {
            tried += 1;
            let (r, hit) = f
                .call(n, || dev.enqueue_raw(args))
                .map_err(|e| Outcome::Fail(vec![format!("fail-nth: {e}")]))?;
            match r {
                Ok(_) => {
                    dev.flush(Target::All).must("FLUSH")?;
                }
                Err(e) if e.0 == ENOMEM && hit => {
                    failures += 1;
                    let mut others = Vec::new();
                    sentinel(
                        &dev,
                        EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).delay_us(60_000),
                        &mut others,
                    )?;
                    c.check(others.is_empty(), || {
                        format!(
                            "allocation {n} of {total} failed ({how}): ENQUEUE returned ENOMEM but {} of its items ran",
                            others.len()
                        )
                    });
                    let st = stats_tuple(&dev)?;
                    c.check(st == (1, 1, 0, 0), || {
                        format!("allocation {n} ({how}): STATS after ENOMEM and the sentinel {st:?}, expected (1, 1, 0, 0)")
                    });
                }
                Err(e) => c.fail(format!(
                    "allocation {n} failing ({how}): ENQUEUE returned {e}"
                )),
            }
            dev.reset().must("RESET")?;
        }
        diag(&format!(
            "ENQUEUE 1024 delayed ({how}): {failures} ENOMEM among {tried} allocation points tried"
        ));
        c.check(failures > 0, || format!("no ENOMEM was injected ({how})"));
    }
    // The file works.
    dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 2))
        .must("ENQUEUE after the sweep")?;
    dev.flush(Target::All).must("FLUSH")?;
    c.stats("after the sweep", &dev, (2, 2, 0, 0));
    c.done()
}

/// FLUSH with its allocations failing one by one: an ENOMEM flushed nothing.
/// Four items due in 2 s on the ordered queue; after the failed FLUSH a
/// sentinel queued at once on the same queue must run alone (had FLUSH fired
/// their timers early, they would be ahead of it), and they are still pending.
pub fn flush_enomem_flushes_nothing(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let (_s, f) = failslab()?;
    dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_ORDERED, 4).delay_us(2_000_000))
        .must("ENQUEUE 4 ordered delayed 2 s")?;
    let (mut enomem, mut sentinels) = (0u64, 0u64);
    for n in 1..=20u32 {
        let (r, hit) = f
            .call(n, || dev.flush(Target::All))
            .map_err(|e| Outcome::Fail(vec![format!("fail-nth: {e}")]))?;
        match r {
            Err(e) if e.0 == ENOMEM && hit => {
                enomem += 1;
                let mut others = Vec::new();
                sentinel(&dev, EnqueueArgs::new(RUST_WQ_Q_ORDERED, 1), &mut others)?;
                sentinels += 1;
                c.check(others.is_empty(), || {
                    format!("FLUSH with allocation {n} failing returned ENOMEM, but {} delayed items ran before a sentinel queued after it: it fired their timers", others.len())
                });
                let st = stats_tuple(&dev)?;
                c.check(st == (4 + sentinels, sentinels, 0, 4), || {
                    format!("allocation {n}: STATS after the failed FLUSH and the sentinel {st:?}, expected 4 still pending")
                });
            }
            Ok(count) => {
                c.eq("FLUSH count once no allocation fails", count, 4);
                break;
            }
            Err(e) => {
                c.fail(format!("FLUSH with allocation {n} failing returned {e}"));
                break;
            }
        }
    }
    c.check(enomem > 0, || {
        "no FLUSH failed with ENOMEM: nothing was tested".into()
    });
    c.done()
}

/// MOD_DELAY with its allocations failing one by one (fail-nth): an ENOMEM
/// leaves the item cancelled and counted as cancelled.  An item due in 5 s on
/// the module's unbound queue is moved to 10 ms; after each ENOMEM, STATS
/// counts it cancelled and not pending, a second MOD_DELAY of it is ENOENT,
/// and a sentinel due 60 ms later runs alone (the item, had it been queued
/// again, would have run first).  If MOD_DELAY passes no fault-injection
/// point at all (fail-nth counts them), it cannot fail with ENOMEM, and the
/// test says so.
pub fn mod_delay_enomem_stays_cancelled(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let (_s, f) = failslab()?;
    let id = crate::util::enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).delay_us(5_000_000),
        "ENQUEUE 1 unbound delayed 5 s",
    )?;
    let (r, points) = f
        .count(|| dev.mod_delay(id, 5_000_000))
        .map_err(|e| Outcome::Fail(vec![format!("fail-nth: {e}")]))?;
    r.must("MOD_DELAY (counting its fault-injection points)")?;
    dev.cancel(Target::All).must("CANCEL ALL")?;
    diag(&format!("MOD_DELAY passes {points} fault-injection points"));
    let mut enomem = 0u64;
    for n in 1..=20u32 {
        let id = crate::util::enq(
            &dev,
            EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).delay_us(5_000_000),
            "ENQUEUE 1 unbound delayed 5 s",
        )?;
        let before = stats_tuple(&dev)?;
        let (r, hit) = f
            .call(n, || dev.mod_delay(id, 10_000))
            .map_err(|e| Outcome::Fail(vec![format!("fail-nth: {e}")]))?;
        match r {
            Err(e) if e.0 == ENOMEM && hit => {
                enomem += 1;
                let st = stats_tuple(&dev)?;
                let want = (before.0, before.1, before.2 + 1, before.3 - 1);
                c.check(st == want, || {
                    format!("MOD_DELAY with allocation {n} failing returned ENOMEM: STATS {st:?}, expected {want:?} (the item cancelled)")
                });
                c.errno(
                    &format!("MOD_DELAY again after the ENOMEM (allocation {n})"),
                    dev.mod_delay(id, 10_000),
                    libc::ENOENT,
                );
                let mut others = Vec::new();
                sentinel(
                    &dev,
                    EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).delay_us(60_000),
                    &mut others,
                )?;
                c.check(others.is_empty(), || {
                    format!("allocation {n}: after MOD_DELAY's ENOMEM, {} results came before the sentinel: the item ran", others.len())
                });
            }
            Ok(()) => {
                // Nothing failed any more: the item runs 10 ms later.
                dev.flush(Target::All).must("FLUSH ALL")?;
                let (res, _) = dev.drain_results().must("RESULTS")?;
                c.check(res.iter().any(|r| r.id == id), || {
                    format!("MOD_DELAY that succeeded: item {id} left no result")
                });
                break;
            }
            Err(e) => {
                c.fail(format!(
                    "MOD_DELAY with allocation {n} failing returned {e}"
                ));
                break;
            }
        }
    }
    diag(&format!("{enomem} MOD_DELAY calls failed with ENOMEM"));
    c.check(enomem > 0 || points == 0, || {
        format!(
            "MOD_DELAY passes {points} fault-injection points, but none made it fail with ENOMEM"
        )
    });
    c.done()
}
