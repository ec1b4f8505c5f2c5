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
