//! End-to-end tests of the device under a hostile user (issue 11): every
//! wait a user can cause ends when the user asks, cancel works in two phases,
//! memory stays bounded, errors come before effects, and SLEPT tells the
//! truth.  Tests that kill a process fork a child (the binary is
//! single-threaded between tests) and report the measured time to die as a
//! diagnostic.

use super::{diag, fail, skip, Checker, Ctx, Must, Outcome, TestFn, TestResult};
use libc::{EFAULT, EINTR, EINVAL, ENOMEM};
use std::ffi::c_void;
use std::time::{Duration, Instant};
use wqctl::abi::*;
use wqctl::hostile::{fork_ready, FailNth, FailslabSettings};
use wqctl::{BenchArgs, Device, EnqueueArgs, Target};

pub fn all() -> Vec<(&'static str, TestFn)> {
    vec![
        ("hostile_flush_killable", flush_killable),
        ("hostile_flush_interruptible", flush_interruptible),
        ("hostile_cancel_all_two_phase", cancel_all_two_phase),
        ("hostile_close_two_phase", close_two_phase),
        ("hostile_exit_with_4096_pending", exit_with_4096_pending),
        ("hostile_stats_dropped_since_open", stats_dropped_since_open),
        ("hostile_results_bounded_unread", results_bounded_unread),
        ("hostile_slept_50_rounds", slept_50_rounds),
        ("hostile_results_efault_first", results_efault_first),
        ("hostile_results_copy_unlocked", results_copy_unlocked),
        (
            "hostile_cancel_flush_efault_first",
            cancel_flush_efault_first,
        ),
        (
            "hostile_reset_and_lock_wait_killable",
            reset_and_lock_wait_killable,
        ),
        ("hostile_bench_lock_killable", bench_lock_killable),
        ("hostile_bench_killable", bench_killable),
        ("hostile_bench_total_capped", bench_total_capped),
        ("hostile_bench_alloc_failures", bench_alloc_failures),
        (
            "hostile_enqueue_enomem_runs_nothing",
            enqueue_enomem_runs_nothing,
        ),
    ]
}

/// How long a killed process may take to be gone: the issue asks for 1 s;
/// the process may have to wait for one running item of at most 1 s (its
/// file's close waits for running items), so allow twice that for the
/// emulated VM under load. (Before the fix these took 30 s and more.)
const DIE_WITHIN: Duration = Duration::from_millis(2_000);

fn open(ctx: &Ctx) -> Result<Device, Outcome> {
    ctx.open()
}

/// Opens the device in a child (a fresh file), or exits the child with 100.
fn child_open(path: &str) -> Device {
    match Device::open(path) {
        Ok(d) => d,
        // SAFETY: ends the child.
        Err(_) => unsafe { libc::_exit(100) },
    }
}

fn stats_tuple(dev: &Device) -> Result<(u64, u64, u64, u64), Outcome> {
    let s = dev.stats().must("STATS")?;
    Ok((s.enqueued, s.executed, s.cancelled, s.pending))
}

/// Checks enqueued == executed + cancelled + pending.
fn consistent(c: &mut Checker, what: &str, dev: &Device) {
    match dev.stats() {
        Ok(s) => {
            c.check(s.enqueued == s.executed + s.cancelled + s.pending, || {
                format!(
                    "{what}: STATS inconsistent: enqueued {} != executed {} + cancelled {} + pending {}",
                    s.enqueued, s.executed, s.cancelled, s.pending
                )
            });
        }
        Err(e) => c.fail(format!("{what}: STATS failed: {e}")),
    }
}

// ---------------------------------------------------------------------------
// 1. Waits that end.

/// SIGKILL 0.5 s into a FLUSH of 30 items of 1 s on the ordered queue: the
/// process is gone within about a second (was 30 s: FLUSH was not
/// interruptible).
fn flush_killable(ctx: &Ctx) -> TestResult {
    let path = ctx.path.clone();
    let mut child = fork_ready(Duration::from_secs(10), |ready| {
        let dev = child_open(&path);
        if dev
            .enqueue(EnqueueArgs::new(RUST_WQ_Q_ORDERED, 30).sleep_us(1_000_000))
            .is_err()
        {
            return 101;
        }
        ready();
        let _ = dev.flush(Target::All);
        102
    })
    .map_err(|e| Outcome::Fail(vec![e]))?;
    std::thread::sleep(Duration::from_millis(500));
    if !child.alive() {
        return fail("the child ended before it was killed: FLUSH of 30 s of work returned early");
    }
    match child.kill_and_time(Duration::from_secs(60)) {
        Some(t) => {
            diag(&format!(
                "SIGKILL during FLUSH (30 ordered items x 1 s): gone after {} ms",
                t.as_millis()
            ));
            if t > DIE_WITHIN {
                return fail(format!(
                    "SIGKILL during FLUSH: the process took {} ms to die (at most {} ms allowed)",
                    t.as_millis(),
                    DIE_WITHIN.as_millis()
                ));
            }
            Ok(())
        }
        None => fail("SIGKILL during FLUSH: the process was still there after 60 s"),
    }
}

extern "C" fn on_alarm(_: i32) {}

/// A signal with a handler (no SA_RESTART) ends a FLUSH with EINTR, and the
/// file still works afterwards.
fn flush_interruptible(ctx: &Ctx) -> TestResult {
    let dev = open(ctx)?;
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

/// CANCEL ALL of 64 items of 100 ms on the ordered queue: returns within
/// about one item's runtime and cancels at least 62 (was: about 64 x 100 ms,
/// cancelling almost none, because each cancel waited for the running item
/// while the next one started).
fn cancel_all_two_phase(ctx: &Ctx) -> TestResult {
    let dev = open(ctx)?;
    let mut c = Checker::new();
    let sleep = Duration::from_millis(100);
    dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_ORDERED, 64).sleep_us(100_000))
        .must("ENQUEUE 64 ordered x 100 ms")?;
    std::thread::sleep(Duration::from_millis(30));
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
fn close_two_phase(ctx: &Ctx) -> TestResult {
    let dev = open(ctx)?;
    let mut c = Checker::new();
    let sleep = Duration::from_millis(100);
    dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_ORDERED, 64).sleep_us(100_000))
        .must("ENQUEUE 64 ordered x 100 ms")?;
    std::thread::sleep(Duration::from_millis(30));
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
    let d2 = open(ctx)?;
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

/// A process killed with 4096 items of 1 s pending (4 x 1024 on the ordered
/// queue) is gone within about a second (was: 4096 s).
fn exit_with_4096_pending(ctx: &Ctx) -> TestResult {
    let path = ctx.path.clone();
    let mut child = fork_ready(Duration::from_secs(30), |ready| {
        let dev = child_open(&path);
        for _ in 0..4 {
            if dev
                .enqueue(EnqueueArgs::new(RUST_WQ_Q_ORDERED, 1024).sleep_us(1_000_000))
                .is_err()
            {
                return 101;
            }
        }
        ready();
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    })
    .map_err(|e| Outcome::Fail(vec![e]))?;
    std::thread::sleep(Duration::from_millis(300));
    match child.kill_and_time(Duration::from_secs(60)) {
        Some(t) => {
            diag(&format!(
                "SIGKILL with 4096 ordered items x 1 s pending: gone after {} ms",
                t.as_millis()
            ));
            if t > DIE_WITHIN {
                return fail(format!(
                    "the process took {} ms to die (at most {} ms allowed)",
                    t.as_millis(),
                    DIE_WITHIN.as_millis()
                ));
            }
            Ok(())
        }
        None => fail("the killed process with 4096 pending items was still there after 60 s"),
    }
}

// ---------------------------------------------------------------------------
// 3. Bounded memory, and counters since open.

/// Runs `rounds` x 1024 immediate items on the unbound queue, each round
/// flushed, reading no result.
fn produce(dev: &Device, rounds: u32) -> Result<(), Outcome> {
    for _ in 0..rounds {
        dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1024))
            .must("ENQUEUE 1024")?;
        dev.flush(Target::All).must("FLUSH ALL")?;
    }
    Ok(())
}

/// STATS results_dropped counts since open: RESULTS does not reset it (was:
/// back to 0 after RESULTS), while RESULTS' own `dropped` counts since the
/// last RESULTS.
fn stats_dropped_since_open(ctx: &Ctx) -> TestResult {
    let dev = open(ctx)?;
    let mut c = Checker::new();
    let max = u64::from(ctx.info.max_results);
    produce(&dev, 9)?; // 9216 results, max_results 8192 kept
    let over = 9 * 1024 - max;
    let (res, dropped) = dev.results(16).must("RESULTS 16")?;
    c.eq("RESULTS count", res.len() as u64, 16);
    c.eq(
        "RESULTS dropped (since open: the first call)",
        dropped,
        over,
    );
    let s = dev.stats().must("STATS")?;
    c.eq(
        "STATS results_dropped after RESULTS",
        s.results_dropped,
        over,
    );
    let (_, dropped2) = dev.results(16).must("RESULTS 16 again")?;
    c.eq("RESULTS dropped of the second call", dropped2, 0);
    c.eq(
        "STATS results_dropped after two RESULTS",
        dev.stats().must("STATS")?.results_dropped,
        over,
    );
    dev.reset().must("RESET")?;
    c.eq(
        "STATS results_dropped after RESET",
        dev.stats().must("STATS")?.results_dropped,
        0,
    );
    c.done()
}

/// A file that never reads its results keeps at most max_results of them at
/// every moment: the oldest are dropped as items finish (was: kept until the
/// next RESULTS, growing without bound until ENQUEUE failed with ENOMEM).
fn results_bounded_unread(ctx: &Ctx) -> TestResult {
    let dev = open(ctx)?;
    let mut c = Checker::new();
    let max = u64::from(ctx.info.max_results);
    produce(&dev, 10)?;
    let s = dev.stats().must("STATS")?;
    c.eq(
        "STATS results_dropped before any RESULTS",
        s.results_dropped,
        10 * 1024 - max,
    );
    // Rounds are flushed one by one, so the results kept are those of the last rounds.
    let (res, dropped) = dev.drain_results().must("RESULTS")?;
    c.eq("results kept", res.len() as u64, max);
    c.eq("RESULTS dropped", dropped, 10 * 1024 - max);
    let ids: std::collections::BTreeSet<u64> = res.iter().map(|r| r.id).collect();
    let want: std::collections::BTreeSet<u64> = (10 * 1024 - max + 1..=10 * 1024).collect();
    c.check(ids == want, || {
        format!(
            "results kept: ids {:?}..{:?} ({} distinct), expected {}..={}",
            ids.first(),
            ids.last(),
            ids.len(),
            10 * 1024 - max + 1,
            10 * 1024
        )
    });
    c.done()
}

/// The pattern of e2e.flush_waits, 50 times in one boot: every result of an
/// item that sleeps 20 ms reports at least 20 ms of runtime and SLEPT (was:
/// about one run in three had an item measured at 19.5 ms without SLEPT).
fn slept_50_rounds(ctx: &Ctx) -> TestResult {
    let dev = open(ctx)?;
    let mut c = Checker::new();
    let mut bad = 0;
    for round in 0..50 {
        for (q, sleep) in [
            (RUST_WQ_Q_ORDERED, 20_000u64),
            (RUST_WQ_Q_UNBOUND, 20_000),
            (RUST_WQ_Q_SYSTEM_DFL, 25_000),
            (RUST_WQ_Q_UNBOUND, 15),
        ] {
            dev.enqueue(
                EnqueueArgs::new(q, 2)
                    .delay_us(5_000_000)
                    .sleep_us(sleep)
                    .tag(sleep),
            )
            .must("ENQUEUE")?;
        }
        dev.flush(Target::All).must("FLUSH ALL")?;
        let (res, _) = dev.drain_results().must("RESULTS")?;
        c.eq(&format!("round {round}: results"), res.len(), 8);
        for r in &res {
            let want = r.tag * 1000;
            if r.runtime_ns < want || r.flags & RUST_WQ_RES_SLEPT == 0 {
                bad += 1;
                if bad <= 5 {
                    c.fail(format!(
                        "round {round}: id {}: runtime {} ns for a sleep of {} us, flags {}",
                        r.id,
                        r.runtime_ns,
                        r.tag,
                        wqctl::format_flags(r.flags)
                    ));
                }
            }
        }
    }
    c.check(bad == 0, || {
        format!("{bad} of 400 results broke the promise")
    });
    c.done()
}

// ---------------------------------------------------------------------------
// 4. Errors before effects.

/// An anonymous mapping of one page, made read-only after filling it.
struct RoPage(*mut u8);

impl RoPage {
    fn with<T: Copy>(v: &T) -> RoPage {
        // SAFETY: a fresh anonymous mapping; `v` fits in one page.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert!(p != libc::MAP_FAILED);
            std::ptr::write_unaligned(p as *mut T, *v);
            libc::mprotect(p, 4096, libc::PROT_READ);
            RoPage(p as *mut u8)
        }
    }
}

impl Drop for RoPage {
    fn drop(&mut self) {
        // SAFETY: our mapping.
        unsafe { libc::munmap(self.0 as *mut c_void, 4096) };
    }
}

/// RESULTS whose argument struct is read-only fails with EFAULT and consumes
/// nothing (was: the results were removed, then EFAULT).
fn results_efault_first(ctx: &Ctx) -> TestResult {
    let dev = open(ctx)?;
    let mut c = Checker::new();
    dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 4))
        .must("ENQUEUE 4")?;
    dev.flush(Target::All).must("FLUSH")?;
    let mut buf = vec![RustWqResult::default(); 16];
    let arg = RustWqResults {
        version: RUST_WQ_ABI_VERSION,
        capacity: 16,
        buf: buf.as_mut_ptr() as u64,
        ..Default::default()
    };
    let page = RoPage::with(&arg);
    // SAFETY: the kernel may only read the page (it is read-only) and write
    // `buf`, which has room for 16 results.
    let r = unsafe { dev.ioctl_raw(RUST_WQ_IOC_RESULTS, page.0 as *mut c_void) };
    c.errno("RESULTS with a read-only argument", r, EFAULT);
    let (res, _) = dev.drain_results().must("RESULTS")?;
    c.eq("results still there after the EFAULT", res.len(), 4);
    c.done()
}

/// `struct uffdio_api`, `struct uffdio_register`, `struct uffdio_zeropage`
/// (linux/userfaultfd.h) and their ioctls.
#[repr(C)]
struct UffdApi {
    api: u64,
    features: u64,
    ioctls: u64,
}
#[repr(C)]
struct UffdRange {
    start: u64,
    len: u64,
}
#[repr(C)]
struct UffdRegister {
    range: UffdRange,
    mode: u64,
    ioctls: u64,
}
#[repr(C)]
struct UffdZeropage {
    range: UffdRange,
    mode: u64,
    zeropage: i64,
}
const UFFD_API: u64 = 0xAA;
const UFFDIO_API: u64 = 0xc018_aa3f;
const UFFDIO_REGISTER: u64 = 0xc020_aa00;
const UFFDIO_ZEROPAGE: u64 = 0xc020_aa04;
const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;

/// A page whose first touch blocks until [`BlockingPage::release`]
/// (userfaultfd, missing mode; kernel accesses included).
struct BlockingPage {
    uffd: i32,
    page: *mut c_void,
}

impl BlockingPage {
    fn new() -> Result<BlockingPage, String> {
        // SAFETY: plain system calls on memory and descriptors we own.
        unsafe {
            let uffd = libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC) as i32;
            if uffd < 0 {
                return Err(format!("userfaultfd: {}", wqctl::Errno::last()));
            }
            let mut api = UffdApi {
                api: UFFD_API,
                features: 0,
                ioctls: 0,
            };
            if libc::ioctl(uffd, UFFDIO_API as _, &mut api) != 0 {
                libc::close(uffd);
                return Err(format!("UFFDIO_API: {}", wqctl::Errno::last()));
            }
            let page = libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            let mut reg = UffdRegister {
                range: UffdRange {
                    start: page as u64,
                    len: 4096,
                },
                mode: UFFDIO_REGISTER_MODE_MISSING,
                ioctls: 0,
            };
            if page == libc::MAP_FAILED || libc::ioctl(uffd, UFFDIO_REGISTER as _, &mut reg) != 0 {
                libc::close(uffd);
                return Err(format!("UFFDIO_REGISTER: {}", wqctl::Errno::last()));
            }
            Ok(BlockingPage { uffd, page })
        }
    }

    /// Maps a zero page, which lets a blocked access go on.
    fn release(&self) {
        let mut z = UffdZeropage {
            range: UffdRange {
                start: self.page as u64,
                len: 4096,
            },
            mode: 0,
            zeropage: 0,
        };
        // SAFETY: our userfaultfd and registered range.
        unsafe { libc::ioctl(self.uffd, UFFDIO_ZEROPAGE as _, &mut z) };
    }
}

impl Drop for BlockingPage {
    fn drop(&mut self) {
        self.release();
        // SAFETY: our descriptor and mapping.
        unsafe {
            libc::close(self.uffd);
            libc::munmap(self.page, 4096);
        }
    }
}

/// While RESULTS is blocked copying to a buffer whose page fault does not
/// end (userfaultfd), the file's items still finish and STATS answers (was:
/// RESULTS held the lock every finishing item needs across the copy, stalling
/// the shared queues).  Skipped without CONFIG_USERFAULTFD.
fn results_copy_unlocked(ctx: &Ctx) -> TestResult {
    let bp = match BlockingPage::new() {
        Ok(b) => b,
        Err(e) => return skip(format!("no userfaultfd ({e})")),
    };
    let dev = std::sync::Arc::new(open(ctx)?);
    let mut c = Checker::new();
    dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1))
        .must("ENQUEUE 1")?;
    dev.flush(Target::All).must("FLUSH")?;
    dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_SYSTEM_PERCPU, 4).delay_us(300_000))
        .must("ENQUEUE 4 delayed 300 ms")?;
    let arg = RustWqResults {
        version: RUST_WQ_ABI_VERSION,
        capacity: 1,
        buf: bp.page as u64,
        ..Default::default()
    };
    let d2 = dev.clone();
    let reader = std::thread::spawn(move || {
        let mut a = arg;
        d2.ioctl_with(RUST_WQ_IOC_RESULTS, &mut a).map(|_| a.count)
    });
    std::thread::sleep(Duration::from_millis(100));
    let (tx, rx) = std::sync::mpsc::channel();
    let d3 = dev.clone();
    std::thread::spawn(move || {
        let t = Instant::now();
        loop {
            match d3.stats() {
                Ok(s) if s.executed >= 5 => {
                    let _ = tx.send(Ok(t.elapsed()));
                    return;
                }
                Ok(_) if t.elapsed() < Duration::from_secs(3) => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Ok(s) => {
                    let _ = tx.send(Err(format!("executed {} of 5 after 3 s", s.executed)));
                    return;
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("STATS: {e}")));
                    return;
                }
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(Ok(t)) => diag(&format!(
            "items finished while RESULTS was blocked in its copy: after {} ms",
            t.as_millis()
        )),
        Ok(Err(e)) => c.fail(format!("while RESULTS was blocked in its copy: {e}")),
        Err(_) => c.fail("STATS did not answer within 5 s while RESULTS was blocked in its copy"),
    }
    bp.release();
    match reader.join() {
        Ok(r) => {
            c.eq("RESULTS count once the page was there", r.ok(), Some(1));
        }
        Err(_) => c.fail("the RESULTS thread panicked"),
    }
    c.done()
}

/// CANCEL and FLUSH whose argument struct is read-only fail with EFAULT
/// before acting: nothing is cancelled, no timer is fired early (was: CANCEL
/// cancelled and then failed with EFAULT).
fn cancel_flush_efault_first(ctx: &Ctx) -> TestResult {
    let dev = open(ctx)?;
    let mut c = Checker::new();
    dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 3).delay_us(5_000_000))
        .must("ENQUEUE 3 delayed 5 s")?;
    let t = Target::All.to_raw();
    for (cmd, what) in [(RUST_WQ_IOC_CANCEL, "CANCEL"), (RUST_WQ_IOC_FLUSH, "FLUSH")] {
        let page = RoPage::with(&t);
        let t0 = Instant::now();
        // SAFETY: the kernel can only read the read-only page.
        let r = unsafe { dev.ioctl_raw(cmd, page.0 as *mut c_void) };
        c.errno(&format!("{what} ALL with a read-only argument"), r, EFAULT);
        c.check(t0.elapsed() < Duration::from_secs(2), || {
            format!("{what} with a read-only argument waited for the 5 s items")
        });
        c.stats(&format!("after {what} EFAULT"), &dev, (3, 0, 0, 3));
    }
    std::thread::sleep(Duration::from_millis(100));
    c.stats("100 ms later (no timer fired early)", &dev, (3, 0, 0, 3));
    c.eq("CANCEL ALL", dev.cancel(Target::All).must("CANCEL ALL")?, 3);
    c.done()
}

/// A process with 30 items of 1 s on the ordered queue, one thread in RESET
/// and one waiting for the file's lock behind it, is gone within about a
/// second of SIGKILL (was: 30 s; RESET waited for the items one at a time
/// and the lock wait could not be interrupted).
fn reset_and_lock_wait_killable(ctx: &Ctx) -> TestResult {
    let path = ctx.path.clone();
    let mut child = fork_ready(Duration::from_secs(10), |ready| {
        let dev = child_open(&path);
        if dev
            .enqueue(EnqueueArgs::new(RUST_WQ_Q_ORDERED, 30).sleep_us(1_000_000))
            .is_err()
        {
            return 101;
        }
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
    })
    .map_err(|e| Outcome::Fail(vec![e]))?;
    std::thread::sleep(Duration::from_millis(100));
    match child.kill_and_time(Duration::from_secs(60)) {
        Some(t) => {
            diag(&format!(
                "SIGKILL during RESET + a wait for the file's lock: gone after {} ms",
                t.as_millis()
            ));
            if t > DIE_WITHIN {
                return fail(format!("the process took {} ms to die", t.as_millis()));
            }
            Ok(())
        }
        None => fail("the killed process was still there after 60 s"),
    }
}

/// A long BENCH (threads x items near the cap) in a child.
fn long_bench(path: &str, ready: &dyn Fn()) -> i32 {
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
fn bench_killable(ctx: &Ctx) -> TestResult {
    let path = ctx.path.clone();
    let mut child = fork_ready(Duration::from_secs(10), |ready| long_bench(&path, ready))
        .map_err(|e| Outcome::Fail(vec![e]))?;
    std::thread::sleep(Duration::from_millis(700));
    if !child.alive() {
        return fail("BENCH of 4 x 400000 rounds ended within 0.7 s: cannot test the kill");
    }
    match child.kill_and_time(Duration::from_secs(300)) {
        Some(t) => {
            diag(&format!(
                "SIGKILL during BENCH (4 threads x 400000 rounds): gone after {} ms",
                t.as_millis()
            ));
            if t > DIE_WITHIN {
                return fail(format!("the process took {} ms to die", t.as_millis()));
            }
        }
        None => return fail("the process killed during BENCH was still there after 300 s"),
    }
    // The benchmark lock is free again.
    let dev = open(ctx)?;
    dev.bench(BenchArgs {
        op: RUST_WQ_BENCH_OP_RT,
        path: RUST_WQ_BENCH_PERCPU,
        items: 10,
        threads: 0,
        start_latency: false,
    })
    .must("BENCH after the killed one")?;
    Ok(())
}

/// A process waiting for the benchmark lock is gone soon after SIGKILL.
fn bench_lock_killable(ctx: &Ctx) -> TestResult {
    let path = ctx.path.clone();
    let holder = fork_ready(Duration::from_secs(10), |ready| long_bench(&path, ready))
        .map_err(|e| Outcome::Fail(vec![e]))?;
    std::thread::sleep(Duration::from_millis(300));
    let path = ctx.path.clone();
    let mut waiter = fork_ready(Duration::from_secs(10), |ready| {
        let dev = child_open(&path);
        ready();
        let _ = dev.bench(BenchArgs {
            op: RUST_WQ_BENCH_OP_RT,
            path: RUST_WQ_BENCH_PERCPU,
            items: 10,
            threads: 0,
            start_latency: false,
        });
        0
    })
    .map_err(|e| Outcome::Fail(vec![e]))?;
    std::thread::sleep(Duration::from_millis(300));
    let r = match waiter.kill_and_time(Duration::from_secs(300)) {
        Some(t) => {
            diag(&format!(
                "SIGKILL while waiting for the bench lock: gone after {} ms",
                t.as_millis()
            ));
            if t > DIE_WITHIN {
                fail(format!("the waiter took {} ms to die", t.as_millis()))
            } else {
                Ok(())
            }
        }
        None => fail("the killed waiter was still there after 300 s"),
    };
    drop(holder);
    r
}

/// BENCH whose threads x items exceed RUST_WQ_BENCH_MAX_TOTAL fails with
/// EINVAL before allocating (was: CPUs x items x 32 bytes, no cap).
fn bench_total_capped(ctx: &Ctx) -> TestResult {
    let dev = open(ctx)?;
    let mut c = Checker::new();
    let online = ctx.online.len() as u64;
    let per = (RUST_WQ_BENCH_MAX_TOTAL / online.max(1)) as u32;
    if per >= RUST_WQ_BENCH_MAX_ITEMS {
        return skip(format!(
            "{online} CPUs x RUST_WQ_BENCH_MAX_ITEMS fit in RUST_WQ_BENCH_MAX_TOTAL"
        ));
    }
    c.errno(
        "BENCH items over MAX_TOTAL / online CPUs",
        dev.bench(BenchArgs {
            op: RUST_WQ_BENCH_OP_RT,
            path: RUST_WQ_BENCH_PERCPU,
            items: per + 1,
            threads: 0,
            start_latency: true,
        }),
        EINVAL,
    );
    // An explicit thread count is checked the same way (threads that would run).
    if online >= 2 {
        c.errno(
            "BENCH 2 threads x (MAX_TOTAL / 2 + 1) items",
            dev.bench(BenchArgs {
                op: RUST_WQ_BENCH_OP_RT,
                path: RUST_WQ_BENCH_PERCPU,
                items: (RUST_WQ_BENCH_MAX_TOTAL / 2) as u32 + 1,
                threads: 2,
                start_latency: false,
            }),
            EINVAL,
        );
    }
    c.done()
}

// ---------------------------------------------------------------------------
// Fault injection on single calls.

fn failslab() -> Result<(FailslabSettings, FailNth), Outcome> {
    let s = match FailslabSettings::apply() {
        Some(s) => s,
        None => return skip("failslab not available"),
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
fn bench_alloc_failures(ctx: &Ctx) -> TestResult {
    let mut c = Checker::new();
    let mut reached = 0;
    let mut enomem = 0;
    for n in 1..400u32 {
        let path = ctx.path.clone();
        let mut child = fork_ready(Duration::from_secs(10), |ready| {
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
        })
        .map_err(|e| Outcome::Fail(vec![e]))?;
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
            104 => return skip("failslab not available"),
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
    let dev = open(ctx)?;
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

/// ENQUEUE of 1024 items due after 2 jiffies, with each of its last
/// allocations failing (those made while queueing): on ENOMEM none of the
/// call's items runs (was: items whose timer fired while the call was still
/// queueing ran, although the call failed).
fn enqueue_enomem_runs_nothing(ctx: &Ctx) -> TestResult {
    let dev = open(ctx)?;
    let mut c = Checker::new();
    let (_s, f) = failslab()?;
    let args = EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1024)
        .delay_us(1)
        .to_raw();
    let (r, total) = f
        .count(|| dev.enqueue_raw(args))
        .map_err(|e| Outcome::Fail(vec![format!("fail-nth: {e}")]))?;
    r.must("ENQUEUE 1024 (no failure)")?;
    dev.flush(Target::All).must("FLUSH")?;
    dev.reset().must("RESET")?;
    diag(&format!(
        "ENQUEUE of 1024 delayed items: {total} allocation points"
    ));
    // Points spread over the whole call, the last ones included. The layer's queueing
    // allocates nothing (its bookkeeping is intrusive), so the ENOMEMs come from making the
    // items; optional allocations (debug objects, ...) fail without an ENOMEM. Either way a
    // call that returns ENOMEM must leave nothing that ran.
    let mut failures = 0;
    let mut tried = 0;
    let step = (total / 60).max(1);
    let points: Vec<u32> = (1..=total)
        .rev()
        .take(20)
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
                std::thread::sleep(Duration::from_millis(30));
                let (res, _) = dev.drain_results().must("RESULTS")?;
                c.check(res.is_empty(), || {
                    format!(
                        "allocation {n} of {total} failed: ENQUEUE returned ENOMEM but {} of its items ran",
                        res.len()
                    )
                });
                let st = stats_tuple(&dev)?;
                c.check(st == (0, 0, 0, 0), || {
                    format!("allocation {n}: STATS after ENOMEM {st:?}, expected all 0")
                });
            }
            Err(e) => c.fail(format!("allocation {n} failing: ENQUEUE returned {e}")),
        }
        dev.reset().must("RESET")?;
    }
    diag(&format!(
        "ENQUEUE 1024 delayed: {failures} ENOMEM among {tried} allocation points tried"
    ));
    c.check(failures > 0, || "no ENOMEM was injected".into());
    // The file works.
    dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 2))
        .must("ENQUEUE after the sweep")?;
    dev.flush(Target::All).must("FLUSH")?;
    c.stats("after the sweep", &dev, (2, 2, 0, 0));
    c.done()
}
