//! What one file's calls wait for: the header's sentence on the file's lock,
//! tested call by call, by order (a flag set when the long call returns), not
//! by durations; and FLUSH restarted under SA_RESTART, EPOLLET edges.
//!
//! The header: ENQUEUE, MOD_DELAY, RESULTS and RESET hold the file's lock for
//! the whole call; FLUSH holds it only while it picks its items (and fires
//! their timers), CANCEL only while it takes its items off their queues: the
//! waits that follow run without it.  STATS and INFO take no lock.

use crate::{Checker, Ctx, Must, TestFn, TestResult};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wqctl::abi::*;
use wqctl::{Device, EnqueueArgs, Target};

mod signals;

use signals::{flush_restarts_with_sa_restart, lock_waits_interruptible, lock_waits_restart};

pub fn all() -> Vec<(&'static str, TestFn)> {
    vec![
        ("file_lock_free_during_flush_wait", free_during_flush_wait),
        ("file_lock_free_during_cancel_wait", free_during_cancel_wait),
        ("file_lock_held_by_reset", held_by_reset),
        (
            "flush_restarts_with_sa_restart",
            flush_restarts_with_sa_restart,
        ),
        ("epoll_edge_per_result", epoll_edge_per_result),
        ("file_lock_waits_interruptible", lock_waits_interruptible),
        ("file_lock_waits_restart", lock_waits_restart),
        (
            "other_files_and_bench_unlocked",
            other_files_and_bench_unlocked,
        ),
    ]
}

/// The running item the long calls below wait for: 1 s, on the unbound queue.
const RUNNING_US: u64 = 1_000_000;

/// Runs `long` (FLUSH, CANCEL or RESET of `dev`, which has an item sleeping
/// 1 s) in a thread; once it is in its wait (200 ms later), `during` runs in
/// this thread, given the flag `long` sets when it returns.  Returns whether
/// `long` had returned when `during` returned, `long`'s result and how long
/// it took.
fn while_waiting<T: Send>(
    dev: &Arc<Device>,
    long: impl FnOnce(&Device) -> T + Send,
    during: impl FnOnce(&Device, &AtomicBool),
) -> (bool, T, Duration) {
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let t = Instant::now();
            let r = long(dev);
            let el = t.elapsed();
            done.store(true, Ordering::SeqCst);
            (r, el)
        });
        std::thread::sleep(Duration::from_millis(200));
        during(dev, &done);
        let after = done.load(Ordering::SeqCst);
        let (r, el) = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        (after, r, el)
    })
}

/// A file with an item sleeping 1 s, enqueued 100 ms ago (so normally running).
fn busy_file(ctx: &Ctx) -> Result<Arc<Device>, crate::Outcome> {
    let dev = Arc::new(ctx.open()?);
    dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).sleep_us(RUNNING_US))
        .must("ENQUEUE 1 sleeping 1 s")?;
    std::thread::sleep(Duration::from_millis(100));
    Ok(dev)
}

/// While a FLUSH ALL of the file waits for its running item, ENQUEUE,
/// CANCEL, MOD_DELAY, RESULTS and STATS of the same file return before it
/// does; and the FLUSH waits only for what was enqueued before it (count 1:
/// not the items enqueued during its wait, due 4 s later).
fn free_during_flush_wait(ctx: &Ctx) -> TestResult {
    let mut c = Checker::new();
    let dev = busy_file(ctx)?;
    let mut seen = Vec::new();
    let mut pending = Ok(0);
    let (after, r, _) = while_waiting(
        &dev,
        |d| d.flush(Target::All),
        |d, _| {
            let id = d.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 2).delay_us(5_000_000));
            seen.push(format!("ENQUEUE: {id:?}"));
            if let Ok(id) = id {
                seen.push(format!("MOD_DELAY: {:?}", d.mod_delay(id, 4_000_000)));
                seen.push(format!("CANCEL id: {:?}", d.cancel(Target::Id(id + 1))));
            }
            seen.push(format!("RESULTS: {:?}", d.results(4).map(|(r, _)| r.len())));
            pending = d.stats().map(|s| s.pending);
            seen.push(format!("STATS: {pending:?}"));
        },
    );
    // The FLUSH's running item is still pending for the other calls (it had
    // not finished: FLUSH had not returned), beside the MOD_DELAYed one.
    if !after {
        c.eq(
            "STATS pending during the FLUSH's wait (its running item + the MOD_DELAYed one)",
            pending,
            Ok(2),
        );
    }
    c.check(!after, || {
        format!("the calls made while FLUSH waited for a running item returned only after it ({seen:?}): FLUSH must not hold the file's lock while it waits")
    });
    c.eq(
        "FLUSH ALL count (the item enqueued before it)",
        r.must("FLUSH ALL")?,
        1,
    );
    c.check(seen.iter().all(|s| s.contains("Ok")), || {
        format!("a call during the FLUSH failed: {seen:?}")
    });
    c.eq(
        "CANCEL ALL count (the MOD_DELAYed item)",
        dev.cancel(Target::All).must("CANCEL ALL")?,
        1,
    );
    c.done()
}

/// While a CANCEL of the file's queue waits for its running item (phase
/// two), ENQUEUE and CANCEL of the same file return before it does.  An
/// attempt where the item had not started yet (CANCEL took it: count 1)
/// decides nothing and is repeated.
fn free_during_cancel_wait(ctx: &Ctx) -> TestResult {
    let mut c = Checker::new();
    for attempt in 1..=3 {
        let dev = busy_file(ctx)?;
        let mut seen = Vec::new();
        let (after, r, _) = while_waiting(
            &dev,
            |d| d.cancel(Target::Queue(RUST_WQ_Q_UNBOUND)),
            |d, _| {
                let id = d.enqueue(EnqueueArgs::new(RUST_WQ_Q_ORDERED, 1).delay_us(5_000_000));
                seen.push(format!("ENQUEUE: {id:?}"));
                if let Ok(id) = id {
                    seen.push(format!("CANCEL id: {:?}", d.cancel(Target::Id(id))));
                }
            },
        );
        if r.must("CANCEL queue")? == 1 {
            crate::diag(&format!(
                "file_lock_free_during_cancel_wait: attempt {attempt}: the item had not started"
            ));
            dev.cancel(Target::All).must("CANCEL ALL")?;
            continue;
        }
        c.check(!after, || {
            format!("the calls made while CANCEL waited for a running item returned only after it ({seen:?}): its second phase must not hold the file's lock")
        });
        c.check(seen.iter().all(|s| s.contains("Ok")), || {
            format!("a call during the CANCEL failed: {seen:?}")
        });
        c.stats("at end", &dev, (2, 1, 1, 0));
        return c.done();
    }
    crate::fail("the 1 s item never started within 300 ms in 3 attempts: nothing decided")
}

/// RESET holds the file's lock while it waits for the running item: an
/// ENQUEUE of the same file made during that wait goes in only after RESET
/// has finished.  Decided by the kernel's own state, not by which thread
/// noticed first: had the ENQUEUE gone in during the wait, its item (queued
/// at once) would have been wiped by the RESET (its result dropped, the
/// counters zeroed); after it, the item's result and counters are there.  An
/// attempt where RESET took less than 500 ms (the item had not started)
/// decides nothing and is repeated.
fn held_by_reset(ctx: &Ctx) -> TestResult {
    let mut c = Checker::new();
    for attempt in 1..=3 {
        let dev = busy_file(ctx)?;
        let mut same = None;
        let (_, r, el) = while_waiting(
            &dev,
            |d| d.reset(),
            |d, _| same = Some(d.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1))),
        );
        r.must("RESET")?;
        if el < Duration::from_millis(500) {
            crate::diag(&format!("file_lock_held_by_reset: attempt {attempt}: RESET took {} ms (the item had not started)", el.as_millis()));
            continue;
        }
        let id = same.unwrap_or(Ok(0)).must("ENQUEUE during RESET")?;
        dev.flush(Target::All).must("FLUSH ALL")?;
        c.stats(
            "after RESET, then the ENQUEUE that waited for it (wiped if it had not waited)",
            &dev,
            (1, 1, 0, 0),
        );
        let (res, _) = dev.drain_results().must("RESULTS")?;
        c.check(res.len() == 1 && res[0].id == id, || {
            format!("results after RESET: {:?}, expected the one item (id {id}) of the ENQUEUE that waited for it", res.iter().map(|r| r.id).collect::<Vec<_>>())
        });
        return c.done();
    }
    crate::fail("the 1 s item never started within 300 ms in 3 attempts: nothing decided")
}

/// EPOLLET: every stored result is a new edge, whether or not the earlier
/// ones were read; without a new result there is no new event.
fn epoll_edge_per_result(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    // SAFETY: no pointers.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return crate::fail(format!("epoll_create1: {}", wqctl::Errno::last()));
    }
    let _close = CloseFd(ep);
    let mut ev = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLET) as u32,
        u64: 7,
    };
    // SAFETY: `ev` is a valid epoll_event for the call.
    if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, dev.raw_fd(), &mut ev) } < 0 {
        return crate::fail(format!("epoll_ctl: {}", wqctl::Errno::last()));
    }
    let wait = |ms: i32| -> Result<u32, String> {
        let mut out = [libc::epoll_event { events: 0, u64: 0 }; 2];
        // SAFETY: `out` has room for 2 events.
        let n = unsafe { libc::epoll_wait(ep, out.as_mut_ptr(), 2, ms) };
        match n {
            n if n < 0 => Err(format!("epoll_wait: {}", wqctl::Errno::last())),
            0 => Ok(0),
            _ => Ok(out[0].events),
        }
    };
    c.eq("events before any result (100 ms)", wait(100), Ok(0));
    for round in 1..=3 {
        dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1))
            .must("ENQUEUE 1")?;
        dev.flush(Target::All).must("FLUSH ALL")?;
        // The result is stored before FLUSH returns: the edge is there
        // (waited for up to 2 s, in case the wake-up trails the FLUSH).
        c.eq(
            &format!("round {round}: events after a new result (unread ones left)"),
            wait(2000).map(|e| e & libc::EPOLLIN as u32),
            Ok(libc::EPOLLIN as u32),
        );
        c.eq(
            &format!("round {round}: events again with no new result (200 ms)"),
            wait(200),
            Ok(0),
        );
    }
    let (res, _) = dev.drain_results().must("RESULTS")?;
    c.eq("unread results at the end", res.len(), 3);
    c.done()
}

struct CloseFd(i32);

impl Drop for CloseFd {
    fn drop(&mut self) {
        // SAFETY: our descriptor, closed once.
        unsafe { libc::close(self.0) };
    }
}

/// A benchmark of 10 rounds a CPU.
const SHORT_BENCH: wqctl::BenchArgs = wqctl::BenchArgs {
    op: RUST_WQ_BENCH_OP_RT,
    path: RUST_WQ_BENCH_PERCPU,
    items: 10,
    threads: 0,
    start_latency: false,
};

/// Calls on different files share no lock but the benchmark's, and BENCH
/// takes no file's lock: while a RESET of one file holds that file's lock
/// (waiting for its running item), every call of another file (ENQUEUE,
/// MOD_DELAY, CANCEL, FLUSH, RESULTS, STATS, RESET) and a BENCH of the same
/// file return before the RESET does.  An attempt where RESET took less than
/// 500 ms (the item had not started) decides nothing and is repeated.
fn other_files_and_bench_unlocked(ctx: &Ctx) -> TestResult {
    let mut c = Checker::new();
    for attempt in 1..=3 {
        let dev = busy_file(ctx)?;
        let other = ctx.open()?;
        let mut seen = Vec::new();
        let (after, r, el) = while_waiting(
            &dev,
            |d| d.reset(),
            |d, _| {
                let o = &other;
                let id = o.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 2).delay_us(5_000_000));
                seen.push(format!("other file's ENQUEUE: {id:?}"));
                if let Ok(id) = id {
                    seen.push(format!(
                        "other file's MOD_DELAY: {:?}",
                        o.mod_delay(id, 4_000_000)
                    ));
                    seen.push(format!(
                        "other file's CANCEL id: {:?}",
                        o.cancel(Target::Id(id + 1))
                    ));
                    seen.push(format!(
                        "other file's FLUSH id: {:?}",
                        o.flush(Target::Id(id))
                    ));
                }
                seen.push(format!(
                    "other file's RESULTS: {:?}",
                    o.results(4).map(|(r, _)| r.len())
                ));
                seen.push(format!(
                    "other file's STATS: {:?}",
                    o.stats().map(|s| s.enqueued)
                ));
                seen.push(format!("other file's RESET: {:?}", o.reset()));
                seen.push(format!(
                    "BENCH of the RESET's file: {:?}",
                    d.bench(SHORT_BENCH).map(|b| b.threads_run)
                ));
            },
        );
        r.must("RESET")?;
        if el < Duration::from_millis(500) {
            crate::diag(&format!("other_files_and_bench_unlocked: attempt {attempt}: RESET took {} ms (the item had not started)", el.as_millis()));
            continue;
        }
        c.check(!after, || {
            format!("calls of another file, and a BENCH, made while a RESET held its file's lock, returned only after it ({seen:?}): they must not take that lock")
        });
        c.check(seen.iter().all(|s| s.contains("Ok")), || {
            format!("a call during the RESET failed: {seen:?}")
        });
        c.eq("calls made", seen.len(), 8);
        return c.done();
    }
    crate::fail("the 1 s item never started within 300 ms in 3 attempts: nothing decided")
}
