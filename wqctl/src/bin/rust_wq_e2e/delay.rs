//! Delayed work: never early, MOD_DELAY, delay 0, sleep rounding.

use crate::util::{
    drain, enq, exactly, flag_names, median, qn, wait_results, ALL_QUEUES, LONG_DELAY_US,
};
use crate::{fail, unavailable, Checker, Ctx, Must, Outcome, TestResult};
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

/// Never early, seen from outside the module: the `workqueue_queue_work`
/// tracepoint fires when an item's timer has expired and the kernel queues
/// it (the work function's own wait for its due time, which the results'
/// latency reflects, plays no part).  With the trace clock set to `mono`
/// (CLOCK_MONOTONIC, the clock of this process), each event must come at
/// least `delay` after the moment just before its ENQUEUE call.  Four calls
/// of two items on the module's unbound queue, due 20, 60, 150 and 300 ms
/// later; the events, sorted, are matched to the due times, sorted.
pub fn delay_never_early_by_trace(ctx: &Ctx) -> TestResult {
    const TRACEFS: &str = "/sys/kernel/tracing";
    let tracefs = |file: &str, v: &str| {
        std::fs::write(format!("{TRACEFS}/{file}"), v)
            .map_err(|e| format!("write {v:?} to {TRACEFS}/{file}: {e}"))
    };
    if !std::path::Path::new(&format!("{TRACEFS}/trace")).exists() {
        let _ = std::process::Command::new("mount")
            .args(["-t", "tracefs", "nodev", TRACEFS])
            .status();
    }
    let setup = tracefs("tracing_on", "0")
        .and_then(|_| tracefs("trace_clock", "mono"))
        .and_then(|_| tracefs("trace", ""))
        .and_then(|_| tracefs("events/workqueue/workqueue_queue_work/enable", "1"));
    struct Restore<F: Fn(&str, &str) -> Result<(), String>>(F);
    impl<F: Fn(&str, &str) -> Result<(), String>> Drop for Restore<F> {
        fn drop(&mut self) {
            let _ = (self.0)("tracing_on", "0");
            let _ = (self.0)("events/workqueue/workqueue_queue_work/enable", "0");
            let _ = (self.0)("trace_clock", "local");
            let _ = (self.0)("trace", "");
        }
    }
    let _restore = Restore(tracefs);
    if let Err(e) = setup {
        return unavailable("tracing", format!("cannot trace workqueue_queue_work: {e}"));
    }
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let mono = || {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    };
    tracefs("tracing_on", "1").map_err(|e| Outcome::Fail(vec![e]))?;
    let mut due = Vec::new();
    let mut ids = Vec::new();
    for delay_ms in [20u64, 60, 150, 300] {
        let t = mono();
        let first = enq(
            &dev,
            EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 2).delay_us(delay_ms * 1000),
            &format!("ENQUEUE 2 unbound delayed {delay_ms} ms"),
        )?;
        due.extend([(t + delay_ms * 1_000_000, delay_ms); 2]);
        ids.extend([first, first + 1]);
    }
    // Wait for the eight results without FLUSH (which would fire the timers).
    let mut got = Vec::new();
    let t = Instant::now();
    while got.len() < ids.len() && t.elapsed() < Duration::from_secs(30) {
        got.extend(drain(&dev)?);
        std::thread::sleep(Duration::from_millis(20));
    }
    tracefs("tracing_on", "0").map_err(|e| Outcome::Fail(vec![e]))?;
    exactly(&mut c, "results", &got, ids.iter().copied());
    let text = std::fs::read_to_string(format!("{TRACEFS}/trace"))
        .map_err(|e| Outcome::Fail(vec![format!("read {TRACEFS}/trace: {e}")]))?;
    let mut events: Vec<u64> = text
        .lines()
        .filter(|l| l.contains("workqueue=rust_wq_unbound "))
        .filter_map(|l| {
            let before = l.split(": workqueue_queue_work:").next()?;
            let ts = before.split_whitespace().last()?;
            let (s, us) = ts.split_once('.')?;
            Some(s.parse::<u64>().ok()? * 1_000_000_000 + us.parse::<u64>().ok()? * 1000)
        })
        .collect();
    events.sort_unstable();
    due.sort_unstable();
    c.eq(
        "workqueue_queue_work events on rust_wq_unbound (one per item)",
        events.len(),
        due.len(),
    );
    for (ev, (at, delay_ms)) in events.iter().zip(&due) {
        c.check(ev >= at, || {
            format!(
                "an item delayed {delay_ms} ms was queued by its timer {} us early (trace clock mono)",
                (at - ev) / 1000
            )
        });
    }
    c.done()
}

/// The timer_start events of delayed work items armed by thread `tid` in
/// `text`: (timestamp ns, hardirq/softirq column, timeout in jiffies).
fn delayed_timer_starts(text: &str, tid: u32) -> Vec<(u64, char, i64)> {
    text.lines()
        .filter_map(crate::util::trace_line)
        .filter(|l| {
            l.event == "timer_start"
                && l.pid == tid
                && l.rest.contains("function=delayed_work_timer_fn ")
        })
        .filter_map(|l| {
            let t = l.rest.split("[timeout=").nth(1)?.split(']').next()?;
            Some((l.ts_ns, l.irq, t.parse().ok()?))
        })
        .collect()
}

/// The kernel's tick rate, from the `jiffies` line of /proc/timer_list read
/// 1 s apart (by this process's clock), rounded to the nearest of the rates
/// Kconfig offers; `None` if no rate is within 10 %.
fn measured_hz() -> Result<u64, Outcome> {
    let read = || -> Result<(u64, u64), Outcome> {
        let t = crate::util::mono_ns();
        let text = std::fs::read_to_string("/proc/timer_list")
            .map_err(|e| Outcome::Fail(vec![format!("read /proc/timer_list: {e}")]))?;
        let j = text
            .lines()
            .find_map(|l| l.strip_prefix("jiffies: ")?.trim().parse::<u64>().ok());
        match j {
            Some(j) => Ok((t, j)),
            None => fail("/proc/timer_list has no line 'jiffies: N'"),
        }
    };
    let (t0, j0) = read()?;
    std::thread::sleep(Duration::from_secs(1));
    let (t1, j1) = read()?;
    let est = (j1.wrapping_sub(j0)) as f64 * 1e9 / (t1 - t0) as f64;
    match [100u64, 250, 300, 1000]
        .into_iter()
        .find(|&hz| (est - hz as f64).abs() < hz as f64 / 10.0)
    {
        Some(hz) => Ok(hz),
        None => fail(format!(
            "jiffies advanced at {est:.0}/s: not a Kconfig HZ (100, 250, 300, 1000)"
        )),
    }
}

/// Delays are rounded up to whole jiffies, seen from outside the module: the
/// `timer_start` tracepoint of each item's timer (armed by this thread,
/// function delayed_work_timer_fn) gives its timeout in jiffies.  For delays
/// just below, at and just above a jiffy boundary (HZ measured from
/// /proc/timer_list), the timeout must cover the delay in whole jiffies:
/// ceil(delay / jiffy) at least, and at most one jiffy more (the layer adds
/// one so that a timer armed late in the current jiffy is not early; the
/// event reads the tick counter again, so either may show).
pub fn delays_whole_jiffies_by_trace(ctx: &Ctx) -> TestResult {
    let hz = measured_hz()?;
    let jiffy_us = 1_000_000 / hz;
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let trace = match crate::util::Trace::start_mono(&["timer/timer_start"]) {
        Ok(t) => t,
        Err(e) => return unavailable("tracing", format!("cannot trace timer_start: {e}")),
    };
    let tid = crate::util::gettid();
    let delays = [
        1,
        jiffy_us - 1,
        jiffy_us,
        jiffy_us + 1,
        2 * jiffy_us + 1,
        10 * jiffy_us - 1,
    ];
    let mut windows = Vec::new();
    for d in delays {
        let t0 = crate::util::mono_ns();
        enq(
            &dev,
            EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).delay_us(d),
            &format!("ENQUEUE 1 delayed {d} us"),
        )?;
        windows.push((d, t0, crate::util::mono_ns()));
        // Taken off again at once (the timer is what is observed).
        dev.cancel(Target::All).must("CANCEL ALL")?;
    }
    let text = trace.stop().map_err(|e| Outcome::Fail(vec![e]))?;
    drop(trace);
    let starts = delayed_timer_starts(&text, tid);
    crate::diag(&format!("HZ {hz} (jiffy {jiffy_us} us)"));
    for (d, t0, t1) in windows {
        let seen: Vec<i64> = starts
            .iter()
            .filter(|(ts, _, _)| (t0..=t1).contains(ts))
            .map(|&(_, _, t)| t)
            .collect();
        let need = d.div_ceil(jiffy_us) as i64;
        c.check(seen.len() == 1 && (need..=need + 1).contains(&seen[0]), || {
            format!("delay {d} us (HZ {hz}): timer_start timeouts {seen:?} jiffies during the ENQUEUE, expected one of {need}..={} (whole jiffies covering the delay)", need + 1)
        });
    }
    c.done()
}

/// MOD_DELAY to a longer delay, never early, seen from outside the module:
/// items due 400 ms after their ENQUEUE are moved at once to 1200 ms after the
/// MOD_DELAY call; the `workqueue_queue_work` tracepoint (trace clock mono)
/// must show exactly one queueing per item, each at least 1200 ms after its
/// re-arm (the `timer_start` its MOD_DELAY made, same clock; a timer left at
/// 400 ms would queue the item early, whatever the work function then waits
/// for).  Half the items
/// were armed from a hard interrupt (FROM_IRQ): the MOD_DELAY re-arms them
/// from this task, which the `timer_start` tracepoint shows (this thread, not
/// in interrupt context), and their results say FROM_TASK.
pub fn mod_delay_never_early_by_trace(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let trace = match crate::util::Trace::start_mono(&[
        "workqueue/workqueue_queue_work",
        "timer/timer_start",
        "timer/timer_expire_entry",
    ]) {
        Ok(t) => t,
        Err(e) => return unavailable("tracing", format!("cannot trace: {e}")),
    };
    let tid = crate::util::gettid();
    let mut due = Vec::new();
    let mut ids = Vec::new();
    let mut windows = Vec::new();
    for k in 0..6u64 {
        let irq = k % 2 == 1;
        let id = enq(
            &dev,
            EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1)
                .delay_us(400_000)
                .from_irq(irq),
            "ENQUEUE 1 unbound delayed 400 ms",
        )?;
        let t0 = crate::util::mono_ns();
        match dev.mod_delay(id, 1_200_000) {
            Ok(()) => {
                due.push(t0 + 1_200_000_000);
                ids.push(id);
                windows.push((t0, crate::util::mono_ns()));
            }
            // It started before the MOD_DELAY (400 ms between two calls):
            // its queueing is not checked.
            Err(e) if e.0 == ENOENT => {
                crate::diag(&format!("item {id} started before its MOD_DELAY"));
            }
            Err(e) => return fail(format!("MOD_DELAY {id} to 1200 ms: {e}")),
        }
    }
    if ids.len() < 4 {
        return fail(format!(
            "only {} of 6 MOD_DELAYs came within 400 ms of their ENQUEUE: nothing decided",
            ids.len()
        ));
    }
    let mut got = Vec::new();
    let t = Instant::now();
    while got.len() < 6 && t.elapsed() < Duration::from_secs(30) {
        got.extend(drain(&dev)?);
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = trace.stop().map_err(|e| Outcome::Fail(vec![e]))?;
    drop(trace);
    for r in got.iter().filter(|r| ids.contains(&r.id)) {
        c.check(
            r.flags & (RUST_WQ_RES_FROM_TASK | RUST_WQ_RES_FROM_HARDIRQ) == RUST_WQ_RES_FROM_TASK,
            || {
                format!(
                    "item {} re-queued by MOD_DELAY: flags {}, expected FROM_TASK",
                    r.id,
                    flag_names(r.flags)
                )
            },
        );
    }
    c.eq(
        "results of the moved items",
        got.iter().filter(|r| ids.contains(&r.id)).count(),
        ids.len(),
    );
    // The re-arm: one timer_start in this thread's task context per MOD_DELAY.
    let starts = delayed_timer_starts(&text, tid);
    // Each re-arm's own time on the trace clock: the item is due 1200 ms after it. (Measured
    // on the trace clock alone, like the queueing it is compared with; the call's window,
    // read with CLOCK_MONOTONIC, only finds the event. The trace clock has microsecond
    // resolution: the window opens 1 us early.)
    let mut armed_at = Vec::new();
    for (i, (t0, t1)) in windows.iter().enumerate() {
        let seen: Vec<(u64, char)> = starts
            .iter()
            .filter(|(ts, _, _)| ts + 1000 >= *t0 && ts <= t1)
            .map(|&(ts, irq, _)| (ts, irq))
            .collect();
        let contexts: Vec<char> = seen.iter().map(|&(_, irq)| irq).collect();
        c.check(contexts == ['.'], || {
            format!("MOD_DELAY of item {}: timer_start contexts {contexts:?} by this thread during the call, expected one in task context ('.')", ids[i])
        });
        if let [(ts, _)] = seen[..] {
            armed_at.push(ts + 1_200_000_000);
        }
    }
    // The re-arm of every moved item was seen: compare with it rather than with the moment
    // before the call (`due`), which is read from another clock.
    if armed_at.len() == due.len() {
        due = armed_at;
    }
    let mut events: Vec<u64> = text
        .lines()
        .filter_map(crate::util::trace_line)
        .filter(|l| {
            l.event == "workqueue_queue_work" && l.rest.contains("workqueue=rust_wq_unbound ")
        })
        .map(|l| l.ts_ns)
        .collect();
    events.sort_unstable();
    c.eq(
        "workqueue_queue_work events on rust_wq_unbound (one per item)",
        events.len(),
        got.len(),
    );
    // The moved items are the last queued: each of their due times, sorted,
    // against the latest events.
    due.sort_unstable();
    let moved = &events[events.len().saturating_sub(due.len())..];
    if moved.iter().zip(&due).any(|(ev, at)| ev + 1000 < *at) {
        // What the timers said (timeouts and expiries in jiffies, against
        // the trace clock), to tell a fast tick from an early timer.
        crate::diag(&format!("due (mono ns): {due:?}"));
        for l in text.lines().filter(|l| {
            l.contains("delayed_work_timer_fn") || l.contains("workqueue=rust_wq_unbound ")
        }) {
            crate::diag(l.trim());
        }
    }
    for (ev, at) in moved.iter().zip(&due) {
        c.check(ev + 1000 >= *at, || {
            format!(
                "an item moved to 1200 ms by MOD_DELAY was queued {} us early (trace clock mono)",
                (at - ev) / 1000
            )
        });
    }
    c.done()
}
