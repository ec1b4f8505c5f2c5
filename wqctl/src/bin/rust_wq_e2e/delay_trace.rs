//! Delayed work seen from outside the module: the timer and workqueue tracepoints (never
//! early, whole jiffies, MOD_DELAY never early).

use crate::util::{drain, enq, exactly, flag_names};
use crate::{fail, unavailable, Checker, Ctx, Must, Outcome, TestResult};
use libc::ENOENT;
use std::time::{Duration, Instant};
use wqctl::abi::*;
use wqctl::{EnqueueArgs, Target};

/// Never early, seen from outside the module: the `workqueue_queue_work`
/// tracepoint fires when an item's timer has expired and the kernel queues
/// it (the work function's own wait for its due time, which the results'
/// latency reflects, plays no part).  With the trace clock set to `mono`
/// (CLOCK_MONOTONIC, the clock of this process), each event must come at
/// least `delay` after the moment just before its ENQUEUE call.  Four calls
/// of two items on the module's unbound queue, due 20, 60, 150 and 300 ms
/// later; the events, sorted, are matched to the due times, sorted.
///
/// The timers count in jiffies, which lag CLOCK_MONOTONIC while a tick is late
/// (see `jiffies.rs`): each timer must expire at or after the jiffy it was set
/// for (`timer_start` and `timer_expire_entry`), and by CLOCK_MONOTONIC no
/// earlier than `jiffies` was stale when the ENQUEUE armed it (0 with an
/// on-time tick, so then the check is exact).
pub fn delay_never_early_by_trace(ctx: &Ctx) -> TestResult {
    let tid = crate::util::gettid();
    let pid = format!("common_pid == {tid}");
    let trace = match crate::util::Trace::start_filtered_mono(&[
        (
            "workqueue/workqueue_queue_work",
            "workqueue == \"rust_wq_unbound\"",
        ),
        ("timer/timer_start", &pid),
        ("timer/timer_expire_entry", ""),
    ]) {
        Ok(t) => t,
        Err(e) => return unavailable("tracing", format!("cannot trace: {e}")),
    };
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let mut due = Vec::new();
    let mut ids = Vec::new();
    for delay_ms in [20u64, 60, 150, 300] {
        let t = crate::util::mono_ns();
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
    let text = trace.stop().map_err(|e| Outcome::Fail(vec![e]))?;
    drop(trace);
    exactly(&mut c, "results", &got, ids.iter().copied());
    let lag = timers_on_time(&mut c, &text, tid, ids.len());
    let events = unbound_queued(&text);
    due.sort_unstable();
    c.eq(
        "workqueue_queue_work events on rust_wq_unbound (one per item)",
        events.len(),
        due.len(),
    );
    for (ev, (at, delay_ms)) in events.iter().zip(&due) {
        c.check(ev + lag >= *at, || {
            format!(
                "an item delayed {delay_ms} ms was queued by its timer {} us early (trace clock \
                 mono; jiffies were at most {} us stale when the timers were armed)",
                (at - ev) / 1000,
                lag / 1000
            )
        });
    }
    c.done()
}

/// The times (trace clock) of the `workqueue_queue_work` events on rust_wq_unbound, sorted.
fn unbound_queued(text: &str) -> Vec<u64> {
    let mut events: Vec<u64> = text
        .lines()
        .filter_map(crate::util::trace_line)
        .filter(|l| {
            l.event == "workqueue_queue_work" && l.rest.contains("workqueue=rust_wq_unbound ")
        })
        .map(|l| l.ts_ns)
        .collect();
    events.sort_unstable();
    events
}

/// Checks the `n` delayed-work timers this thread (`tid`) armed in `text`: each expired
/// (`timer_expire_entry`) at or after the jiffy it was set for. Returns the most `jiffies`
/// was stale when one of them was armed (see `jiffies.rs`), which is how much earlier than
/// its delay a timer may expire by CLOCK_MONOTONIC, plus the trace clock's 1 us resolution.
fn timers_on_time(c: &mut Checker, text: &str, tid: u32, n: usize) -> u64 {
    use crate::jiffies::{delayed_starts, expiries};
    let starts: Vec<_> = delayed_starts(text)
        .into_iter()
        .filter(|s| s.pid == tid)
        .collect();
    let ends = expiries(text);
    c.eq("delayed-work timers armed by this thread", starts.len(), n);
    for s in &starts {
        let end = ends
            .iter()
            .find(|e| e.timer == s.timer && e.at.ts_ns >= s.at.ts_ns);
        match end {
            Some(e) => {
                c.check(e.at.jiffies.wrapping_sub(s.expires) as i64 >= 0, || {
                    format!(
                        "timer {} armed at jiffy {} for jiffy {} ran at jiffy {} (early)",
                        s.timer, s.at.jiffies, s.expires, e.at.jiffies
                    )
                });
            }
            None => c.fail(format!(
                "timer {} armed at jiffy {}: no expiry traced",
                s.timer, s.at.jiffies
            )),
        }
    }
    let armed: Vec<_> = starts.iter().map(|s| s.at).collect();
    let (hz, lag) = match crate::jiffies::lag_at(text, &armed) {
        Ok(v) => v,
        Err(e) => {
            c.fail(e);
            return 0;
        }
    };
    crate::diag(&format!(
        "jiffies at HZ {hz}: at most {} us stale when this thread armed its timers",
        lag / 1000
    ));
    lag + 1000
}

/// The timer_start events of delayed work items armed by thread `tid` in
/// `text`: (timestamp ns, hardirq/softirq column, timeout in jiffies).
fn delayed_timer_starts(text: &str, tid: u32) -> Vec<(u64, char, i64)> {
    crate::jiffies::delayed_starts(text)
        .into_iter()
        .filter(|s| s.pid == tid)
        .map(|s| {
            (
                s.at.ts_ns,
                s.irq,
                s.expires.wrapping_sub(s.at.jiffies) as i64,
            )
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
    let starts: Vec<_> = crate::jiffies::delayed_starts(&text)
        .into_iter()
        .filter(|s| s.pid == tid)
        .collect();
    // Each re-arm's own time on the trace clock: the item is due 1200 ms after it. (Measured
    // on the trace clock alone, like the queueing it is compared with; the call's window,
    // read with CLOCK_MONOTONIC, only finds the event. The trace clock has microsecond
    // resolution: the window opens 1 us early.)
    let mut armed_at = Vec::new();
    let mut rearms = Vec::new();
    for (i, (t0, t1)) in windows.iter().enumerate() {
        let seen: Vec<_> = starts
            .iter()
            .filter(|s| s.at.ts_ns + 1000 >= *t0 && s.at.ts_ns <= *t1)
            .collect();
        let contexts: Vec<char> = seen.iter().map(|s| s.irq).collect();
        c.check(contexts == ['.'], || {
            format!("MOD_DELAY of item {}: timer_start contexts {contexts:?} by this thread during the call, expected one in task context ('.')", ids[i])
        });
        if let [s] = seen[..] {
            armed_at.push(s.at.ts_ns + 1_200_000_000);
        }
        rearms.extend(seen.iter().map(|s| s.at));
    }
    // How stale `jiffies` was at the re-arms (see `jiffies.rs`): how much earlier than 1200 ms
    // by CLOCK_MONOTONIC a timer may expire when a tick came late.
    let lag = match crate::jiffies::lag_at(&text, &rearms) {
        Ok((hz, lag)) => {
            crate::diag(&format!(
                "jiffies at HZ {hz}: at most {} us stale at the re-arms",
                lag / 1000
            ));
            lag
        }
        Err(e) => return fail(e),
    };
    // The re-arm of every moved item was seen: compare with it rather than with the moment
    // before the call (`due`), which is read from another clock.
    if armed_at.len() == due.len() {
        due = armed_at;
    }
    let events = unbound_queued(&text);
    c.eq(
        "workqueue_queue_work events on rust_wq_unbound (one per item)",
        events.len(),
        got.len(),
    );
    // The moved items are the last queued: each of their due times, sorted,
    // against the latest events.
    due.sort_unstable();
    let moved = &events[events.len().saturating_sub(due.len())..];
    if moved.iter().zip(&due).any(|(ev, at)| ev + 1000 + lag < *at) {
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
        c.check(ev + 1000 + lag >= *at, || {
            format!(
                "an item moved to 1200 ms by MOD_DELAY was queued {} us early (trace clock \
                 mono; jiffies were at most {} us stale at the re-arms)",
                (at - ev) / 1000,
                lag / 1000
            )
        });
    }
    c.done()
}
