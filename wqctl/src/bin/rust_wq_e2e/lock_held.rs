//! What the file's lock covers, seen by the kernel's tracepoints rather than by return order.

use crate::util::{gettid, mono_ns, trace_line, Trace};
use crate::{Checker, Ctx, Must, Outcome, TestResult};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use wqctl::abi::*;
use wqctl::EnqueueArgs;

/// H:18-21: an ENQUEUE holds the file's lock for the whole call. One thread ENQUEUEs batches of
/// delayed items while another issues RESULTS (which takes the same lock) back to back; the
/// `timer_start` tracepoint (clock `mono`) shows when, inside each ENQUEUE, the first and the
/// last of its timers were started. A RESULTS that began after the first and returned before
/// the last (both read with CLOCK_MONOTONIC) would have taken the lock in the middle of the
/// ENQUEUE. RESULTS calls in progress during a window (they wait for the lock) show that the
/// lock was contended.
pub fn enqueue_holds_the_lock_by_trace(ctx: &Ctx) -> TestResult {
    let dev = Arc::new(ctx.open()?);
    let mut c = Checker::new();
    let n = ctx.info.max_count.clamp(2, 256);
    let calls = (ctx.info.max_pending / n).clamp(1, 8);
    let me = gettid();
    let t = Trace::start_filtered_mono(&[("timer/timer_start", &format!("common_pid == {me}"))])
        .map_err(|e| Outcome::Fail(vec![format!("cannot trace: {e}")]))?;
    let stop = Arc::new(AtomicBool::new(false));
    let (d2, s2) = (dev.clone(), stop.clone());
    let reader = std::thread::spawn(move || {
        let mut spans = Vec::new();
        while !s2.load(Ordering::SeqCst) {
            let before = mono_ns();
            let r = d2.results(1);
            let after = mono_ns();
            if r.is_err() {
                return Err(format!("RESULTS: {r:?}"));
            }
            spans.push((before, after));
        }
        Ok(spans)
    });
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mut enq = Vec::new();
    for _ in 0..calls {
        let before = mono_ns();
        let r = dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, n).delay_us(30_000_000));
        enq.push((before, mono_ns()));
        if c.ok(&format!("ENQUEUE {n} delayed 30 s"), r).is_none() {
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let spans = reader
        .join()
        .unwrap_or_else(|_| Err("RESULTS thread panicked".into()));
    let text = t.stop().map_err(|e| Outcome::Fail(vec![e]));
    drop(t);
    let (text, spans) = (text?, spans.map_err(|e| Outcome::Fail(vec![e]))?);
    dev.reset().must("RESET")?;
    let starts: Vec<u64> = text
        .lines()
        .filter_map(trace_line)
        .filter(|l| l.event == "timer_start" && l.rest.contains("delayed_work_timer_fn"))
        .map(|l| l.ts_ns)
        .collect();
    let (mut inside, mut waited) = (0, 0);
    for (i, &(b, a)) in enq.iter().enumerate() {
        // The trace clock has microsecond resolution: widen the call by 1 us each way.
        let ts: Vec<u64> = starts
            .iter()
            .copied()
            .filter(|&s| s + 1000 >= b && s <= a + 1000)
            .collect();
        c.check(ts.len() >= n as usize, || {
            format!(
                "ENQUEUE {i} of {n} delayed items: {} timer_start events in the call",
                ts.len()
            )
        });
        let (Some(&first), Some(&last)) = (ts.iter().min(), ts.iter().max()) else {
            continue;
        };
        for &(rb, ra) in &spans {
            if rb > first && ra < last {
                inside += 1;
            }
            if rb < last && ra > first {
                waited += 1;
            }
        }
    }
    crate::diag(&format!(
        "enqueue_holds_the_lock_by_trace: {calls} ENQUEUEs of {n}, {} RESULTS; {waited} were in the call during an ENQUEUE's timer window",
        spans.len()
    ));
    c.eq(
        "RESULTS calls begun and returned between an ENQUEUE's first and last timer_start",
        inside,
        0,
    );
    c.check(waited >= 1, || {
        "no RESULTS was in the call during an ENQUEUE's timer window: the lock was never contended"
            .into()
    });
    c.done()
}

/// H:18-21: a MOD_DELAY holds the file's lock for the whole call, from taking its item off
/// its queue to arming it again, so that a CANCEL of the same id (which takes the lock while
/// it takes its items off their queues) sees the item either still armed or armed again, never
/// in between. One thread moves one item again and again (to 1 s) until MOD_DELAY says
/// ENOENT; the main thread CANCELs the item meanwhile. Each CANCEL must take exactly that item
/// (count 1), at once, and no MOD_DELAY begun after the CANCEL returned may succeed. (A CANCEL
/// that found the item between the two would take it for a running item, cancel nothing and
/// wait for it, while the MOD_DELAY armed it again.)
pub fn mod_delay_holds_the_lock(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    const TRIALS: u64 = 200;
    let (mut overlapped, mut slow) = (0, 0u32);
    for trial in 0..TRIALS {
        let id = dev
            .enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).delay_us(1_000_000))
            .must("ENQUEUE 1 delayed 1 s")?;
        let started = AtomicBool::new(false);
        let (cancel, (cancel_began, cancelled_at), moves) = std::thread::scope(|s| {
            let mover = s.spawn(|| {
                // (began, succeeded) of each MOD_DELAY, until the first ENOENT or 1 s.
                let mut moves = Vec::new();
                started.store(true, Ordering::SeqCst);
                let t = mono_ns();
                while mono_ns() - t < 1_000_000_000 {
                    let began = mono_ns();
                    let r = dev.mod_delay(id, 1_000_000);
                    moves.push((began, r.is_ok()));
                    if r.is_err() {
                        break;
                    }
                }
                moves
            });
            // 0.2 to 2 ms of the mover's calls first (spun: a sleep would be coarse).
            while !started.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
            let t = mono_ns();
            while mono_ns() - t < 200_000 + (trial % 10) * 200_000 {
                std::hint::spin_loop();
            }
            let began = mono_ns();
            let cancel = dev.cancel(wqctl::Target::Id(id));
            let at = mono_ns();
            let moves = mover.join().unwrap_or_default();
            (cancel, (began, at), moves)
        });
        if moves.iter().any(|&(b, ok)| ok && b < cancel_began) {
            overlapped += 1;
        }
        if cancelled_at - cancel_began >= 100_000_000 {
            slow += 1;
        }
        let late = moves
            .iter()
            .filter(|&&(b, ok)| ok && b > cancelled_at)
            .count();
        let ok = c.check(matches!(cancel, Ok(1)), || {
            format!("trial {trial}: CANCEL of item {id} while another thread moved it: {cancel:?}, expected 1")
        }) & c.check(late == 0, || {
            format!("trial {trial}: {late} MOD_DELAYs of item {id} begun after its CANCEL returned succeeded")
        });
        if !ok {
            break;
        }
    }
    crate::diag(&format!(
        "mod_delay_holds_the_lock: {TRIALS} trials; in {overlapped} the item had been moved before the CANCEL; {slow} CANCELs took 100 ms or more"
    ));
    c.check(overlapped >= TRIALS / 2, || {
        format!("only {overlapped} of {TRIALS} CANCELs came after a MOD_DELAY of their item: the calls did not race")
    });
    c.stats("after the trials", &dev, (TRIALS, 0, TRIALS, 0));
    c.done()
}
