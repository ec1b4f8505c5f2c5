//! Waits a user can cause end when the user asks (SIGKILL, signals), and cancel works in two phases.

use super::{child_open, consistent, dies_quickly, dies_within, fork};
use crate::{diag, fail, Checker, Ctx, Must, Outcome, TestResult};
use libc::EINTR;
use std::time::{Duration, Instant};
use wqctl::abi::*;
use wqctl::{BenchArgs, Device, EnqueueArgs, Target};

/// SIGKILL 0.5 s into a FLUSH of 60 items of 200 ms on the ordered queue:
/// the process is gone within DIE_WITHIN (an uninterruptible FLUSH: 12 s).
pub fn flush_killable(ctx: &Ctx) -> TestResult {
    let path = ctx.path.clone();
    let mut child = fork(Duration::from_secs(10), |ready| {
        let Some(dev) = child_busy_ordered(&path, 60, 200_000) else {
            return 101;
        };
        ready();
        let _ = dev.flush(Target::All);
        102
    })?;
    std::thread::sleep(Duration::from_millis(500));
    if !child.alive() {
        return fail("the child ended before it was killed: FLUSH of 12 s of work returned early");
    }
    let what = "during FLUSH (60 ordered items x 200 ms)";
    dies_quickly(&mut child, Duration::from_secs(60), what)
}

extern "C" fn on_alarm(_: i32) {}

/// A signal with a handler (no SA_RESTART) ends a FLUSH with EINTR, and the
/// file still works afterwards.
pub fn flush_interruptible(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let first = dev
        .enqueue(EnqueueArgs::new(RUST_WQ_Q_ORDERED, 6).sleep_us(500_000))
        .must("ENQUEUE 6 ordered x 500 ms")?;
    // SAFETY: installs a handler that does nothing, without SA_RESTART, for
    // SIGALRM; `setitimer` then sends SIGALRM to this process once.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_alarm as extern "C" fn(i32) as usize;
        libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut());
        let it = libc::itimerval {
            it_interval: libc::timeval {
                tv_sec: 0,
                tv_usec: 0,
            },
            it_value: libc::timeval {
                tv_sec: 0,
                tv_usec: 300_000,
            },
        };
        libc::setitimer(libc::ITIMER_REAL, &it, std::ptr::null_mut());
    }
    let t = Instant::now();
    let r = dev.flush(Target::All);
    let el = t.elapsed();
    // SAFETY: back to the default action.
    unsafe { libc::signal(libc::SIGALRM, libc::SIG_DFL) };
    c.errno("FLUSH interrupted by SIGALRM after 300 ms", r, EINTR);
    c.check(el < Duration::from_millis(1_500), || {
        format!(
            "FLUSH returned after {} ms; the signal came after 300 ms and 3 s of work was left",
            el.as_millis()
        )
    });
    consistent(&mut c, "after the interrupted FLUSH", &dev);
    // The file still works: a second FLUSH waits for everything.
    c.eq(
        "FLUSH ALL again (no signal) count",
        dev.flush(Target::All).must("FLUSH ALL")? > 0,
        true,
    );
    c.stats("after the second FLUSH", &dev, (6, 6, 0, 0));
    let (res, _) = dev.drain_results().must("RESULTS")?;
    c.eq("results", res.len(), 6);
    c.check(
        res.iter().all(|r| r.id >= first && r.id < first + 6),
        || "results with unexpected ids".into(),
    );
    c.done()
}

/// How long each of the 64 items of `ordered_64_busy` runs.
const ITEM_RUNTIME: Duration = Duration::from_millis(100);

/// A file with 64 items of 100 ms on the ordered queue, the first running.
fn ordered_64_busy(ctx: &Ctx) -> Result<Device, Outcome> {
    let dev = ctx.open()?;
    let sleep_us = ITEM_RUNTIME.as_micros() as u64;
    dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_ORDERED, 64).sleep_us(sleep_us))
        .must("ENQUEUE 64 ordered x 100 ms")?;
    std::thread::sleep(Duration::from_millis(30));
    Ok(dev)
}

/// In a child: opens the device and enqueues `n` items of `sleep_us` on the
/// ordered queue; `None` if the ENQUEUE failed.
pub(super) fn child_busy_ordered(path: &str, n: u32, sleep_us: u64) -> Option<Device> {
    let dev = child_open(path);
    dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_ORDERED, n).sleep_us(sleep_us))
        .ok()
        .map(|_| dev)
}

/// A benchmark of 10 rounds: the lock is free if it returns.
pub(super) const SHORT_BENCH: BenchArgs = BenchArgs {
    op: RUST_WQ_BENCH_OP_RT,
    path: RUST_WQ_BENCH_PERCPU,
    items: 10,
    threads: 0,
    start_latency: false,
};

/// CANCEL ALL of 64 items of 100 ms on the ordered queue: returns within
/// about one item's runtime and cancels at least 62 (was: about 64 x 100 ms,
/// cancelling almost none, because each cancel waited for the running item
/// while the next one started).
pub fn cancel_all_two_phase(ctx: &Ctx) -> TestResult {
    let dev = ordered_64_busy(ctx)?;
    let mut c = Checker::new();
    let sleep = ITEM_RUNTIME;
    let t = Instant::now();
    let n = dev.cancel(Target::All).must("CANCEL ALL")?;
    let el = t.elapsed();
    diag(&format!(
        "CANCEL ALL of 64 ordered items x 100 ms: {} ms, {n} cancelled",
        el.as_millis()
    ));
    c.check(n >= 62, || {
        format!("CANCEL ALL cancelled {n} of 64 items (at least 62 expected)")
    });
    c.check(el < sleep * 5, || {
        format!(
            "CANCEL ALL took {} ms: more than 5 item runtimes ({} ms each)",
            el.as_millis(),
            sleep.as_millis()
        )
    });
    let s = dev.stats().must("STATS")?;
    c.eq("pending after CANCEL ALL", s.pending, 0);
    c.eq("executed + cancelled", s.executed + s.cancelled, 64);
    c.eq("cancelled in STATS", s.cancelled, n);
    c.done()
}

/// Close with 64 items of 100 ms on the ordered queue (one running): close
/// returns within about one item's runtime.
pub fn close_two_phase(ctx: &Ctx) -> TestResult {
    let dev = ordered_64_busy(ctx)?;
    let mut c = Checker::new();
    let sleep = ITEM_RUNTIME;
    let t = Instant::now();
    drop(dev);
    let el = t.elapsed();
    diag(&format!(
        "close with 64 ordered items x 100 ms: {} ms",
        el.as_millis()
    ));
    c.check(el < sleep * 5, || {
        format!(
            "close took {} ms: more than 5 item runtimes ({} ms each)",
            el.as_millis(),
            sleep.as_millis()
        )
    });
    // The ordered queue is free again at once: a new item runs promptly.
    let d2 = ctx.open()?;
    let t = Instant::now();
    d2.enqueue(EnqueueArgs::new(RUST_WQ_Q_ORDERED, 1))
        .must("ENQUEUE 1 ordered")?;
    d2.flush(Target::All).must("FLUSH")?;
    c.check(t.elapsed() < sleep * 5, || {
        format!(
            "an ordered item after the close took {} ms: the closed file's items still run",
            t.elapsed().as_millis()
        )
    });
    c.done()
}

/// A process killed with 4096 items of 200 ms pending (4 x 1024 on the
/// ordered queue) is gone within DIE_WITHIN (waiting for them: 800 s).
pub fn exit_with_4096_pending(ctx: &Ctx) -> TestResult {
    let path = ctx.path.clone();
    let mut child = fork(Duration::from_secs(30), |ready| {
        let dev = child_open(&path);
        for _ in 0..4 {
            if dev
                .enqueue(EnqueueArgs::new(RUST_WQ_Q_ORDERED, 1024).sleep_us(200_000))
                .is_err()
            {
                return 101;
            }
        }
        ready();
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    })?;
    std::thread::sleep(Duration::from_millis(300));
    let what = "with 4096 ordered items x 200 ms pending";
    dies_quickly(&mut child, Duration::from_secs(60), what)
}

/// A process with 30 items of 1 s on the ordered queue, one thread in RESET
/// (waiting for the running item: it must still be waiting when the kill
/// comes, hence 1 s items) and one waiting for the file's lock behind it, is
/// gone within 5 s of SIGKILL: a correct exit waits for the running item's
/// last 0.7 s or so; a RESET that waited for the items one at a time, or a
/// lock wait that could not be interrupted, takes 30 s.
pub fn reset_and_lock_wait_killable(ctx: &Ctx) -> TestResult {
    let path = ctx.path.clone();
    let mut child = fork(Duration::from_secs(10), |ready| {
        let Some(dev) = child_busy_ordered(&path, 30, 1_000_000) else {
            return 101;
        };
        std::thread::sleep(Duration::from_millis(100));
        let fd = dev.raw_fd();
        std::thread::spawn(move || {
            // SAFETY: RESET takes no argument.
            unsafe { libc::ioctl(fd, RUST_WQ_IOC_RESET as _, 0) };
        });
        std::thread::sleep(Duration::from_millis(100));
        ready();
        // Waits for the file's lock, which the RESET holds.
        let _ = dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1));
        102
    })?;
    std::thread::sleep(Duration::from_millis(100));
    let what = "during RESET + a wait for the file's lock";
    dies_within(
        &mut child,
        Duration::from_secs(60),
        what,
        Duration::from_secs(5),
    )
}

/// A long BENCH (threads x items near the cap) in a child.
pub(super) fn long_bench(path: &str, ready: &dyn Fn()) -> i32 {
    let dev = child_open(path);
    ready();
    let r = dev.bench(BenchArgs {
        op: RUST_WQ_BENCH_OP_RT,
        path: RUST_WQ_BENCH_SYSTEM_PERCPU,
        items: 400_000,
        threads: 4,
        start_latency: false,
    });
    if r.is_ok() {
        0
    } else {
        103
    }
}

/// SIGKILL during a long BENCH: the process is gone within about a second
/// (was: BENCH could not be interrupted).
pub fn bench_killable(ctx: &Ctx) -> TestResult {
    let path = ctx.path.clone();
    let mut child = fork(Duration::from_secs(10), |ready| long_bench(&path, ready))?;
    std::thread::sleep(Duration::from_millis(700));
    if !child.alive() {
        return fail("BENCH of 4 x 400000 rounds ended within 0.7 s: cannot test the kill");
    }
    let what = "during BENCH (4 threads x 400000 rounds)";
    dies_quickly(&mut child, Duration::from_secs(300), what)?;
    // The benchmark lock is free again.
    let dev = ctx.open()?;
    dev.bench(SHORT_BENCH).must("BENCH after the killed one")?;
    Ok(())
}

/// A process waiting for the benchmark lock is gone soon after SIGKILL.
pub fn bench_lock_killable(ctx: &Ctx) -> TestResult {
    let path = ctx.path.clone();
    let holder = fork(Duration::from_secs(10), |ready| long_bench(&path, ready))?;
    std::thread::sleep(Duration::from_millis(300));
    let path = ctx.path.clone();
    let mut waiter = fork(Duration::from_secs(10), |ready| {
        let dev = child_open(&path);
        ready();
        let _ = dev.bench(SHORT_BENCH);
        0
    })?;
    std::thread::sleep(Duration::from_millis(300));
    let what = "while waiting for the bench lock";
    let r = dies_quickly(&mut waiter, Duration::from_secs(300), what);
    drop(holder);
    r
}
