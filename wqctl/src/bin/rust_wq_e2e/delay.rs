//! Delayed work: never early, MOD_DELAY, delay 0, sleep rounding.

use crate::util::{
    drain, enq, exactly, flag_names, median, qn, wait_results, ALL_QUEUES, LONG_DELAY_US,
};
use crate::{fail, Checker, Ctx, Must, TestResult};
use libc::ENOENT;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use wqctl::abi::*;
use wqctl::{EnqueueArgs, Target};

pub fn delay_never_early(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let plan = [
        (10_000u64, RUST_WQ_Q_PERCPU),
        (30_000, RUST_WQ_Q_PERCPU),
        (50_000, RUST_WQ_Q_PERCPU),
        (20_000, RUST_WQ_Q_UNBOUND),
        (40_000, RUST_WQ_Q_SYSTEM_DFL),
        (25_000, RUST_WQ_Q_ORDERED),
        (15_000, RUST_WQ_Q_SYSTEM_PERCPU),
    ];
    let mut sent: HashMap<u64, (u64, Instant)> = HashMap::new();
    for (delay, q) in plan {
        let t0 = Instant::now();
        let id = enq(
            &dev,
            EnqueueArgs::new(q, 1).delay_us(delay),
            &format!("ENQUEUE {} delay {delay}us", qn(q)),
        )?;
        sent.insert(id, (delay, t0));
    }
    // No FLUSH here: it would fire the timers early.
    let got = wait_results(&dev, plan.len(), Duration::from_secs(5))?;
    let res: Vec<RustWqResult> = got.iter().map(|(r, _)| *r).collect();
    exactly(&mut c, "results within 5s", &res, sent.keys().copied());
    for (r, seen_at) in &got {
        if let Some(&(delay, t0)) = sent.get(&r.id) {
            c.check(r.latency_ns >= delay * 1000, || {
                format!(
                    "id {} ({}): delay {} us but latency_ns {} (early)",
                    r.id,
                    qn(r.queue),
                    delay,
                    r.latency_ns
                )
            });
            let wall = seen_at.duration_since(t0);
            c.check(wall >= Duration::from_micros(delay), || {
                format!("id {}: delay {delay} us but its result was visible {} us after the ENQUEUE call started", r.id, wall.as_micros())
            });
        }
    }
    c.done()
}

pub fn mod_delay(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();

    // Longer to shorter: 5 s -> 10 ms; must run well before 5 s.
    let id = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_PERCPU, 1)
            .delay_us(LONG_DELAY_US)
            .tag(1),
        "ENQUEUE delayed 5s",
    )?;
    let t_mod = Instant::now();
    dev.mod_delay(id, 10_000).must("MOD_DELAY 5s -> 10ms")?;
    let got = wait_results(&dev, 1, Duration::from_millis(2_500))?;
    match got.first() {
        None => c.fail(format!(
            "MOD_DELAY to 10 ms: id {id} had not run {} ms later (original delay 5 s)",
            t_mod.elapsed().as_millis()
        )),
        Some((r, at)) => {
            c.eq("result id", r.id, id);
            c.check(r.latency_ns < 4_000_000_000, || {
                format!("latency {} ns: ran at the old 5 s delay", r.latency_ns)
            });
            c.check(r.latency_ns >= 10_000_000, || {
                format!("latency {} ns < new delay 10 ms", r.latency_ns)
            });
            let wall = at.duration_since(t_mod);
            c.check(wall >= Duration::from_millis(10), || {
                format!(
                    "result visible {} us after MOD_DELAY 10 ms (early)",
                    wall.as_micros()
                )
            });
        }
    }

    // Shorter to longer: 10 ms -> 300 ms; must not run before 300 ms from the change.
    let mut attempt = 0;
    let (id2, t_mod2) = loop {
        attempt += 1;
        let initial = if attempt == 1 { 10_000 } else { 100_000 };
        let id2 = enq(
            &dev,
            EnqueueArgs::new(RUST_WQ_Q_PERCPU, 1)
                .delay_us(initial)
                .tag(2),
            "ENQUEUE delayed 10ms",
        )?;
        let t = Instant::now();
        match dev.mod_delay(id2, 300_000) {
            Ok(()) => break (id2, t),
            Err(e) if e.0 == ENOENT && attempt == 1 => {
                // Already ran (slow machine): it must then have a result.
                dev.flush(Target::All).must("FLUSH ALL")?;
                let res = drain(&dev)?;
                exactly(
                    &mut c,
                    "ENOENT from MOD_DELAY means it ran: results",
                    &res,
                    [id2],
                );
            }
            Err(e) => {
                return fail(format!(
                    "MOD_DELAY 10ms -> 300ms of pending id {id2}: expected success, got {e}"
                ))
            }
        }
    };
    std::thread::sleep(Duration::from_millis(150).saturating_sub(t_mod2.elapsed()));
    let (early, _) = dev.results(8).must("RESULTS")?;
    c.check(early.is_empty(), || {
        format!("id {id2} ran within 150 ms of MOD_DELAY to 300 ms: {early:?}")
    });
    c.eq(
        "stats.pending 150 ms after MOD_DELAY to 300 ms",
        dev.stats().must("STATS")?.pending,
        1,
    );
    let got = wait_results(&dev, 1, Duration::from_secs(3))?;
    match got.first() {
        None => c.fail(format!(
            "id {id2} had not run 3 s after MOD_DELAY to 300 ms"
        )),
        Some((r, at)) => {
            c.eq("result id", r.id, id2);
            c.check(r.latency_ns >= 300_000_000, || {
                format!(
                    "latency {} ns < 300 ms after MOD_DELAY 10ms -> 300ms",
                    r.latency_ns
                )
            });
            let wall = at.duration_since(t_mod2);
            c.check(wall >= Duration::from_millis(300), || {
                format!(
                    "result visible {} ms after MOD_DELAY to 300 ms (early)",
                    wall.as_millis()
                )
            });
        }
    }

    // Delay 0: runs at once.
    let id3 = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1)
            .delay_us(LONG_DELAY_US)
            .tag(3),
        "ENQUEUE delayed 5s",
    )?;
    dev.mod_delay(id3, 0).must("MOD_DELAY 5s -> 0")?;
    let got = wait_results(&dev, 1, Duration::from_millis(2_500))?;
    c.check(got.iter().any(|(r, _)| r.id == id3), || {
        format!("MOD_DELAY to 0: id {id3} had not run 2.5 s later")
    });
    c.errno(
        "MOD_DELAY of the id that ran",
        dev.mod_delay(id3, 1_000),
        ENOENT,
    );
    c.done()
}

/// The header: delay_us 0 queues at once, while any other delay waits for a
/// timer (at least one jiffy).  No FLUSH here: it would fire the timers early.
/// Compared as a ratio of the medians, each item enqueued alone.
pub fn delay_zero_queues_at_once(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    const ROUNDS: usize = 15;
    let mut lat = [Vec::new(), Vec::new()];
    for round in 0..ROUNDS {
        for (k, delay) in [0u64, 1].into_iter().enumerate() {
            let q = ALL_QUEUES[round % ALL_QUEUES.len()];
            let id = enq(
                &dev,
                EnqueueArgs::new(q, 1).delay_us(delay),
                &format!("ENQUEUE on {} delay {delay} us", qn(q)),
            )?;
            let got = wait_results(&dev, 1, Duration::from_secs(2))?;
            match got.first() {
                Some((r, _)) if r.id == id => lat[k].push(r.latency_ns),
                _ => {
                    c.fail(format!(
                        "id {id} (delay {delay} us on {}): no result within 2 s without FLUSH",
                        qn(q)
                    ));
                    return c.done();
                }
            }
        }
    }
    let (m0, m1) = (median(&mut lat[0]), median(&mut lat[1]));
    crate::diag(&format!(
        "delay_zero_queues_at_once: median latency {m0} ns with delay 0, {m1} ns with delay 1 us"
    ));
    c.check(m0.saturating_mul(3) < m1, || {
        format!(
            "median latency with delay_us 0 is {m0} ns, with delay_us 1 {m1} ns: delay 0 must queue at once, not after a timer (expected < 1/3)"
        )
    });
    c.done()
}

/// The header: sleep_us 1..10 sleep 11 us (the kernel busy-waits below
/// that), and the item really slept (SLEPT); sleep_us 0 does not sleep.
pub fn short_sleeps_round_up(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let mut want = BTreeMap::new();
    for sleep in [0u64, 1, 5, 10, 11] {
        let id = enq(
            &dev,
            EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 2)
                .sleep_us(sleep)
                .tag(sleep),
            &format!("ENQUEUE 2 sleeping {sleep} us"),
        )?;
        want.insert(id, sleep);
        want.insert(id + 1, sleep);
    }
    dev.flush(Target::All).must("FLUSH ALL")?;
    let by_id = exactly(&mut c, "results", &drain(&dev)?, want.keys().copied());
    for (id, r) in &by_id {
        let sleep = want[id];
        if sleep == 0 {
            c.check(r.flags & RUST_WQ_RES_SLEPT == 0, || {
                format!(
                    "id {id} (sleep_us 0): flags {} has SLEPT",
                    flag_names(r.flags)
                )
            });
        } else {
            c.check(r.runtime_ns >= 11_000, || {
                format!(
                    "id {id} (sleep_us {sleep}): runtime {} ns < 11 us",
                    r.runtime_ns
                )
            });
            c.check(r.flags & RUST_WQ_RES_SLEPT != 0, || {
                format!(
                    "id {id} (sleep_us {sleep}): flags {} lack SLEPT",
                    flag_names(r.flags)
                )
            });
        }
    }
    c.done()
}
