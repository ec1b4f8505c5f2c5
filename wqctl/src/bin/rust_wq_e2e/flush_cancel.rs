//! FLUSH and CANCEL: waiting, by id and queue, items that started already.

use crate::util::{
    after_timers, drain, enq, exactly, flag_names, ids, qn, ALL_QUEUES, LONG_DELAY_US,
};
use crate::{Checker, Ctx, Must, TestResult};
use libc::ENOENT;
use std::time::{Duration, Instant};
use wqctl::abi::*;
use wqctl::{EnqueueArgs, Target};

pub fn flush_waits(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let a = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_ORDERED, 4)
            .delay_us(LONG_DELAY_US)
            .sleep_us(20_000),
        "ENQUEUE 4 ordered",
    )?;
    let b = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 4)
            .delay_us(LONG_DELAY_US)
            .sleep_us(20_000),
        "ENQUEUE 4 unbound",
    )?;
    let t = Instant::now();
    let n = dev.flush(Target::All).must("FLUSH ALL")?;
    let el = t.elapsed();
    c.eq("FLUSH ALL count (all 8 delayed items were pending)", n, 8);
    c.check(el >= Duration::from_millis(80), || {
        format!(
            "FLUSH ALL returned after {} ms; 4 ordered items sleeping 20 ms each need >= 80 ms",
            el.as_millis()
        )
    });
    c.check(el < Duration::from_millis(4_500), || {
        format!(
            "FLUSH ALL took {} ms: the 5 s timers were not fired early",
            el.as_millis()
        )
    });
    // Immediately after FLUSH, every result must be there (no polling).
    let res = drain(&dev)?;
    let by_id = exactly(
        &mut c,
        "results right after FLUSH",
        &res,
        ids(a, 4).chain(ids(b, 4)),
    );
    for r in by_id.values() {
        c.check(r.runtime_ns >= 20_000_000, || {
            format!("id {}: runtime {} ns < sleep 20 ms", r.id, r.runtime_ns)
        });
        c.check(r.flags & RUST_WQ_RES_SLEPT != 0, || {
            format!("id {}: flags {} lack SLEPT", r.id, flag_names(r.flags))
        });
    }
    c.stats("after flush", &dev, (8, 8, 0, 0));
    c.eq(
        "second FLUSH ALL count",
        dev.flush(Target::All).must("FLUSH ALL")?,
        0,
    );
    c.done()
}

pub fn flush_by_id(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let a = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 3).delay_us(LONG_DELAY_US),
        "ENQUEUE 3 delayed 5s",
    )?;
    let t = Instant::now();
    c.eq(
        "FLUSH id (middle) count",
        dev.flush(Target::Id(a + 1)).must("FLUSH ID")?,
        1,
    );
    c.check(t.elapsed() < Duration::from_secs(4), || {
        "FLUSH ID did not fire the timer early".into()
    });
    let res = drain(&dev)?;
    exactly(&mut c, "results after FLUSH ID", &res, [a + 1]);
    c.stats("after FLUSH ID", &dev, (3, 1, 0, 2));
    c.eq(
        "FLUSH of the same id again (not pending) count",
        dev.flush(Target::Id(a + 1)).must("FLUSH ID again")?,
        0,
    );
    c.eq(
        "FLUSH of a never-used id count",
        dev.flush(Target::Id(a + 1000)).must("FLUSH unknown ID")?,
        0,
    );
    c.eq(
        "CANCEL ALL count (the other two)",
        dev.cancel(Target::All).must("CANCEL ALL")?,
        2,
    );
    let res = drain(&dev)?;
    exactly(&mut c, "results after CANCEL ALL", &res, []);
    c.stats("at end", &dev, (3, 1, 2, 0));
    c.done()
}

pub fn flush_by_queue(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let d = LONG_DELAY_US;
    let u = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 2).delay_us(d),
        "ENQUEUE 2 unbound",
    )?;
    enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_PERCPU, 2).delay_us(d),
        "ENQUEUE 2 percpu",
    )?;
    enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_ORDERED, 1).delay_us(d),
        "ENQUEUE 1 ordered",
    )?;
    c.eq(
        "FLUSH QUEUE unbound count",
        dev.flush(Target::Queue(RUST_WQ_Q_UNBOUND))
            .must("FLUSH QUEUE unbound")?,
        2,
    );
    let res = drain(&dev)?;
    exactly(&mut c, "results after FLUSH QUEUE unbound", &res, ids(u, 2));
    c.eq(
        "FLUSH QUEUE system-dfl (none there) count",
        dev.flush(Target::Queue(RUST_WQ_Q_SYSTEM_DFL))
            .must("FLUSH QUEUE system-dfl")?,
        0,
    );
    c.stats("after FLUSH QUEUE", &dev, (5, 2, 0, 3));
    c.eq(
        "CANCEL QUEUE percpu count",
        dev.cancel(Target::Queue(RUST_WQ_Q_PERCPU))
            .must("CANCEL QUEUE percpu")?,
        2,
    );
    c.eq(
        "CANCEL ALL count",
        dev.cancel(Target::All).must("CANCEL ALL")?,
        1,
    );
    exactly(&mut c, "results at end", &drain(&dev)?, []);
    c.stats("at end", &dev, (5, 2, 3, 0));
    c.done()
}

pub fn cancel_prevents_execution(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    for q in ALL_QUEUES {
        enq(
            &dev,
            EnqueueArgs::new(q, 2).delay_us(2_000_000),
            &format!("ENQUEUE 2 on {} delayed 2s", qn(q)),
        )?;
    }
    c.eq(
        "CANCEL ALL count",
        dev.cancel(Target::All).must("CANCEL ALL")?,
        10,
    );
    c.eq(
        "FLUSH ALL count after CANCEL ALL",
        dev.flush(Target::All).must("FLUSH ALL")?,
        0,
    );
    exactly(&mut c, "results after cancel", &drain(&dev)?, []);
    c.stats("after cancel", &dev, (10, 0, 10, 0));
    // Past the original delay (by ordering, not by a sleep): a sentinel due
    // 1 s after them has run, and the cancelled items still have not.
    let mut others = Vec::new();
    after_timers(&dev, 2_000_000, &mut others)?;
    exactly(&mut c, "results before the sentinel's", &others, []);
    c.stats("after the sentinel", &dev, (11, 1, 10, 0));
    c.done()
}

pub fn cancel_by_id(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let a = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_PERCPU, 3).delay_us(2_000_000),
        "ENQUEUE 3 delayed 2s",
    )?;
    c.eq(
        "CANCEL id (middle) count",
        dev.cancel(Target::Id(a + 1)).must("CANCEL ID")?,
        1,
    );
    c.errno(
        "second CANCEL of the same id",
        dev.cancel(Target::Id(a + 1)),
        ENOENT,
    );
    // Sleeps 200 ms: still unfinished when FLUSH picks it, so counted.
    let b = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).sleep_us(200_000),
        "ENQUEUE 1 immediate, sleeping 200 ms",
    )?;
    let n = dev
        .flush(Target::Id(b))
        .must("FLUSH ID of the immediate item")?;
    c.eq("FLUSH ID count", n, 1);
    exactly(&mut c, "results after FLUSH ID", &drain(&dev)?, [b]);
    c.errno(
        "CANCEL of an id that ran",
        dev.cancel(Target::Id(b)),
        ENOENT,
    );
    c.errno(
        "CANCEL of an id never issued",
        dev.cancel(Target::Id(b + 1000)),
        ENOENT,
    );
    c.errno("CANCEL of id 0", dev.cancel(Target::Id(0)), ENOENT);
    c.eq(
        "FLUSH ALL count (the two others)",
        dev.flush(Target::All).must("FLUSH ALL")?,
        2,
    );
    exactly(&mut c, "results at end", &drain(&dev)?, [a, a + 2]);
    c.stats("at end", &dev, (4, 3, 1, 0));
    c.done()
}

/// CANCEL of a running item does not count it, and returns only after it has
/// finished.  The item must have started by the time CANCEL is called: if
/// CANCEL counts it as cancelled (it had not started), it must then never run,
/// and the test tries again with a longer wait; an item that never starts
/// within the waits fails the test.
pub fn cancel_waits_for_running(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    const SLEEP_MS: u64 = 300;
    let (mut enqueued, mut cancelled, mut ran) = (0u64, 0u64, 0u64);
    let waits = [100u64, 200, 400, 800];
    for wait_ms in waits {
        let t0 = Instant::now();
        let id = enq(
            &dev,
            EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).sleep_us(SLEEP_MS * 1000),
            "ENQUEUE 1 sleeping 300ms",
        )?;
        enqueued += 1;
        std::thread::sleep(Duration::from_millis(wait_ms));
        let called = t0.elapsed();
        let n = dev.cancel(Target::All).must("CANCEL ALL")?;
        let returned = t0.elapsed();
        if n == 1 {
            // Counted as cancelled: it had not started, so it must never run.
            cancelled += 1;
            std::thread::sleep(Duration::from_millis(SLEEP_MS + 100));
            exactly(
                &mut c,
                &format!("results of id {id}, which CANCEL ALL counted as cancelled"),
                &drain(&dev)?,
                [],
            );
            continue;
        }
        c.eq("CANCEL ALL count (the only item is running)", n, 0);
        // CANCEL waited for the running item, so its result is there at once.
        let by_id = exactly(
            &mut c,
            "results right after CANCEL ALL",
            &drain(&dev)?,
            [id],
        );
        ran += 1;
        if let Some(r) = by_id.get(&id) {
            // latency_ns counts from inside the ENQUEUE call, after t0.
            let started = Duration::from_nanos(r.latency_ns);
            let finished = Duration::from_nanos(r.latency_ns + r.runtime_ns);
            c.check(started < called, || {
                format!(
                    "CANCEL ALL returned 0 (running) but the item started {} ms after ENQUEUE, after CANCEL was called at {} ms",
                    started.as_millis(),
                    called.as_millis()
                )
            });
            c.check(finished <= returned, || {
                format!(
                    "CANCEL ALL returned {} ms after ENQUEUE, before the running item finished (at >= {} ms)",
                    returned.as_millis(),
                    finished.as_millis()
                )
            });
        }
        break;
    }
    c.check(ran == 1, || {
        format!(
            "the item never started before CANCEL: {cancelled} attempts with waits of {waits:?} ms all cancelled it"
        )
    });
    c.stats("at end", &dev, (enqueued, ran, cancelled, 0));
    c.done()
}

/// What `started_enoent` exercises: CANCEL by id or MOD_DELAY.
#[derive(Clone, Copy, PartialEq)]
enum NotPendingCall {
    Cancel,
    ModDelay,
}

/// The header: CANCEL by id / MOD_DELAY of an item that has started fails
/// with ENOENT; CANCEL returns only after the item has finished, MOD_DELAY
/// does not wait for it.  The item sleeps 1 s; an attempt counts only if the
/// call found it running with at least 300 ms of its sleep left (by its own
/// result), so both orders are decided with a wide margin: CANCEL returned
/// after the item finished, MOD_DELAY before it did.  An attempt that found
/// the item still pending (undone) or already finished is tried again; five
/// without a decisive one fail the test.
fn started_enoent(ctx: &Ctx, call: NotPendingCall) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    const SLEEP_MS: u64 = 1000;
    const LEFT_MS: u128 = 300;
    let name = match call {
        NotPendingCall::Cancel => "CANCEL id",
        NotPendingCall::ModDelay => "MOD_DELAY",
    };
    let (mut enqueued, mut cancelled, mut ran) = (0u64, 0u64, 0u64);
    let mut decided = false;
    let mut tries = Vec::new();
    let waits = [150u64, 300, 150, 300, 600];
    for wait_ms in waits {
        let t0 = Instant::now();
        let id = enq(
            &dev,
            EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).sleep_us(SLEEP_MS * 1000),
            "ENQUEUE 1 sleeping 1 s",
        )?;
        enqueued += 1;
        std::thread::sleep(Duration::from_millis(wait_ms));
        let called = t0.elapsed();
        let r = match call {
            NotPendingCall::Cancel => dev.cancel(Target::Id(id)).map(Some),
            NotPendingCall::ModDelay => dev.mod_delay(id, LONG_DELAY_US).map(|()| None),
        };
        let returned = t0.elapsed();
        match r {
            Ok(Some(n)) if n != 1 => {
                c.fail(format!(
                    "CANCEL of id {id} (sleeping, probably running) succeeded with count {n}: expected count 1 (it had not started) or ENOENT (it had)"
                ));
                dev.flush(Target::All).must("FLUSH ALL")?;
                return c.done();
            }
            Ok(_) => {
                // Still pending: it had not started.  Undo and retry.
                if call == NotPendingCall::ModDelay {
                    c.eq(
                        "CANCEL of the item MOD_DELAY delayed by 5 s",
                        dev.cancel(Target::Id(id)).must("CANCEL id")?,
                        1,
                    );
                }
                cancelled += 1;
                tries.push(format!("{wait_ms} ms: still pending"));
                continue;
            }
            Err(e) if e.0 == ENOENT => {}
            Err(e) => {
                c.fail(format!(
                    "{name} of running id {id}: expected ENOENT, got {e}"
                ));
                dev.flush(Target::All).must("FLUSH ALL")?;
                return c.done();
            }
        }
        ran += 1;
        if call == NotPendingCall::ModDelay {
            // MOD_DELAY does not wait for a running item: wait for it here.
            // (After CANCEL its result must be there at once.)
            dev.flush(Target::All).must("FLUSH ALL")?;
        }
        let by_id = exactly(
            &mut c,
            &format!("results after {name} failed with ENOENT"),
            &drain(&dev)?,
            [id],
        );
        let Some(r) = by_id.get(&id) else {
            return c.done();
        };
        // Times from t0 (before ENQUEUE; the item's clock starts after it:
        // these are lower bounds of the real start and end).
        let started = Duration::from_nanos(r.latency_ns);
        let finished = Duration::from_nanos(r.latency_ns + r.runtime_ns);
        c.check(started < called, || {
            format!(
                "{name} failed with ENOENT at {} ms, but the item started only at {} ms (it was pending)",
                called.as_millis(),
                started.as_millis()
            )
        });
        if finished.saturating_sub(called).as_millis() < LEFT_MS {
            tries.push(format!(
                "{wait_ms} ms: found it with less than {LEFT_MS} ms left (finished at {} ms)",
                finished.as_millis()
            ));
            continue;
        }
        decided = true;
        match call {
            NotPendingCall::Cancel => c.check(finished <= returned, || {
                format!(
                    "CANCEL id returned at {} ms, before the running item finished (>= {} ms)",
                    returned.as_millis(),
                    finished.as_millis()
                )
            }),
            NotPendingCall::ModDelay => c.check(returned < finished, || {
                format!(
                    "MOD_DELAY returned at {} ms, after the running item finished ({} ms): it waited for it",
                    returned.as_millis(),
                    finished.as_millis()
                )
            }),
        };
        break;
    }
    c.check(decided, || {
        format!("no attempt found the item running with {LEFT_MS} ms left: {tries:?}")
    });
    c.stats("at end", &dev, (enqueued, ran, cancelled, 0));
    c.done()
}

pub fn cancel_started_enoent_waits(ctx: &Ctx) -> TestResult {
    started_enoent(ctx, NotPendingCall::Cancel)
}

pub fn mod_delay_started_enoent(ctx: &Ctx) -> TestResult {
    started_enoent(ctx, NotPendingCall::ModDelay)
}
