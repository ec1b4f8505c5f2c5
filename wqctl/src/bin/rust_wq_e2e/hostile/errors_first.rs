//! Errors before effects: a bad user buffer fails a call before it changes anything, and copies to user memory happen without the lock held.

use crate::{diag, unavailable, Checker, Ctx, Must, TestResult};
use libc::EFAULT;
use std::ffi::c_void;
use std::time::{Duration, Instant};
use wqctl::abi::*;
use wqctl::{EnqueueArgs, Target};

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
pub fn results_efault_first(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
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

/// A RESULTS of capacity 1 into `bp`'s page, on a thread of its own: once a result is waiting
/// it blocks in its copy, holding the file's lock, until [`BlockingPage::release`].
fn results_into(
    dev: &std::sync::Arc<wqctl::Device>,
    bp: &BlockingPage,
) -> std::thread::JoinHandle<Result<u32, wqctl::Errno>> {
    let mut a = RustWqResults {
        version: RUST_WQ_ABI_VERSION,
        capacity: 1,
        buf: bp.page as u64,
        ..Default::default()
    };
    let d = dev.clone();
    std::thread::spawn(move || d.ioctl_with(RUST_WQ_IOC_RESULTS, &mut a).map(|_| a.count))
}

/// While RESULTS is blocked copying to a buffer whose page fault does not
/// end (userfaultfd), the file's items still finish and STATS answers (was:
/// RESULTS held the lock every finishing item needs across the copy, stalling
/// the shared queues); INFO answers too (it takes no lock), while an ENQUEUE
/// of the same file waits until RESULTS returns (RESULTS holds the file's
/// lock for the whole call).  Skipped without CONFIG_USERFAULTFD; a failure when the
/// kernel is configured with it (RUST_WQ_REQUIRE userfaultfd).
pub fn results_copy_unlocked(ctx: &Ctx) -> TestResult {
    let bp = match BlockingPage::new() {
        Ok(b) => b,
        Err(e) => return unavailable("userfaultfd", format!("no userfaultfd ({e})")),
    };
    let dev = std::sync::Arc::new(ctx.open()?);
    let mut c = Checker::new();
    dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1))
        .must("ENQUEUE 1")?;
    dev.flush(Target::All).must("FLUSH")?;
    dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_SYSTEM_PERCPU, 4).delay_us(300_000))
        .must("ENQUEUE 4 delayed 300 ms")?;
    let reader = results_into(&dev, &bp);
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
    // INFO takes no lock either: it answers while RESULTS is still blocked.
    let (tx, rx) = std::sync::mpsc::channel();
    let d4 = dev.clone();
    std::thread::spawn(move || {
        let _ = tx.send(d4.info().map(|i| i.abi_version));
    });
    match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(r) => {
            c.eq(
                "INFO while RESULTS was blocked in its copy",
                r.ok(),
                Some(RUST_WQ_ABI_VERSION),
            );
        }
        Err(_) => c.fail("INFO did not answer within 5 s while RESULTS was blocked in its copy"),
    }
    // RESULTS holds the file's lock for the whole call, its copy included:
    // an ENQUEUE of the same file waits until it has returned.
    let enqueued = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (d5, flag) = (dev.clone(), enqueued.clone());
    let enqueuer = std::thread::spawn(move || {
        let r = d5.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1));
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        r
    });
    std::thread::sleep(Duration::from_millis(300));
    c.check(
        !enqueued.load(std::sync::atomic::Ordering::SeqCst),
        || "an ENQUEUE of the same file returned while RESULTS was blocked in its copy: RESULTS must hold the file's lock for the whole call".into(),
    );
    c.check(!reader.is_finished(), || {
        "the RESULTS call ended before the page was provided: STATS, INFO and ENQUEUE were not tested against a held lock".into()
    });
    bp.release();
    match enqueuer.join() {
        Ok(r) => {
            c.check(r.is_ok(), || {
                format!("the ENQUEUE that waited for RESULTS: {r:?}")
            });
        }
        Err(_) => c.fail("the ENQUEUE thread panicked"),
    }
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
pub fn cancel_flush_efault_first(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
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

/// H:37-38, "nothing was done", for CANCEL, MOD_DELAY and RESULTS interrupted while they wait
/// for the file's lock. The lock is held by a RESULTS blocked in its copy to user memory (a
/// holder that changes no item, unlike the RESET of `file_lock_waits_interruptible`, which
/// would mask an effect). Observed: the kernel's timer tracepoints for the item's own timer in
/// the interrupted threads (a CANCEL or MOD_DELAY that did something stops or restarts it
/// there; other timers a thread may touch do not count), the
/// result the interrupted RESULTS would have taken still there, and the armed item still
/// armed (a later CANCEL takes it, stopping its timer in the trace).
pub fn interrupted_calls_change_nothing(ctx: &Ctx) -> TestResult {
    let bp = match BlockingPage::new() {
        Ok(b) => b,
        Err(e) => return unavailable("userfaultfd", format!("no userfaultfd ({e})")),
    };
    let dev = std::sync::Arc::new(ctx.open()?);
    let mut c = Checker::new();
    dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 2))
        .must("ENQUEUE 2")?;
    dev.flush(Target::All).must("FLUSH")?;
    // Traced from the arm of the 30 s item on: its `timer_start` names its timer.
    let trace = match crate::util::Trace::start(&["timer/timer_start", "timer/timer_cancel"]) {
        Ok(t) => t,
        Err(e) => return unavailable("tracing", format!("cannot trace: {e}")),
    };
    let armed = dev
        .enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).delay_us(30_000_000))
        .must("ENQUEUE 1 delayed 30 s")?;
    let usr1 = crate::util::CatchUsr1::install(false);
    let holder = results_into(&dev, &bp);
    std::thread::sleep(Duration::from_millis(100));
    type Call = fn(&wqctl::Device, u64) -> Result<u64, wqctl::Errno>;
    let calls: [(&str, Call); 3] = [
        ("CANCEL", |d, id| d.cancel(Target::Id(id))),
        ("MOD_DELAY", |d, id| d.mod_delay(id, 1000).map(|()| 0)),
        ("RESULTS", |d, _| d.results(8).map(|(r, _)| r.len() as u64)),
    ];
    let waiters: Vec<_> = calls
        .iter()
        .map(|&(name, call)| {
            let (tx, rx) = std::sync::mpsc::channel();
            let d = dev.clone();
            let h = std::thread::spawn(move || {
                // SAFETY: the id of this thread, for pthread_kill.
                let _ = tx.send((unsafe { libc::pthread_self() }, crate::util::gettid()));
                (name, call(&d, armed))
            });
            (rx.recv().ok(), h)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    c.check(!holder.is_finished(), || {
        "the RESULTS holding the lock ended before the page was provided: nothing was interrupted"
            .into()
    });
    let mut tids = Vec::new();
    for (ids, _) in &waiters {
        if let Some((pt, tid)) = ids {
            tids.push(*tid);
            // SAFETY: the thread is alive until joined below.
            unsafe { libc::pthread_kill(*pt, libc::SIGUSR1) };
        }
    }
    for (_, h) in waiters {
        match h.join() {
            Ok((name, r)) => {
                c.check(matches!(r, Err(e) if e.0 == libc::EINTR), || {
                    format!("{name} waiting for the lock held by a blocked RESULTS, sent SIGUSR1: {r:?} (expected EINTR)")
                });
            }
            Err(_) => c.fail("a waiting thread panicked"),
        }
    }
    bp.release();
    match holder.join() {
        Ok(r) => {
            c.eq("RESULTS count once the page was there", r.ok(), Some(1));
        }
        Err(_) => c.fail("the RESULTS thread panicked"),
    }
    // The interrupted RESULTS took nothing: the second result is still there.
    if let Some((r, _)) = c.ok("RESULTS after the interrupted calls", dev.results(8)) {
        c.eq(
            "results left for a RESULTS after the interrupted one",
            r.len(),
            1,
        );
    }
    // The interrupted CANCEL and MOD_DELAY left the item armed: this CANCEL takes it.
    c.eq(
        "CANCEL of the 30 s item after the interrupted calls",
        dev.cancel(Target::Id(armed)).ok(),
        Some(1),
    );
    let text = trace.stop().map_err(|e| crate::Outcome::Fail(vec![e]));
    drop(trace);
    drop(usr1);
    let text = text?;
    let me = crate::util::gettid();
    let lines: Vec<_> = text
        .lines()
        .filter_map(crate::util::trace_line)
        .filter(|l| l.irq == '.')
        .collect();
    let timer = |rest: &str| {
        rest.split_whitespace()
            .find_map(|w| w.strip_prefix("timer="))
            .map(str::to_string)
    };
    // The 30 s item's timer: the first delayed-work timer this thread started.
    let Some(item_timer) = lines
        .iter()
        .find(|l| {
            l.pid == me
                && l.event == "timer_start"
                && l.rest.contains("function=delayed_work_timer_fn")
        })
        .and_then(|l| timer(l.rest))
    else {
        return crate::fail("the trace shows no timer_start for the 30 s item's ENQUEUE");
    };
    let (mut theirs, mut mine) = (0, 0);
    for l in &lines {
        if timer(l.rest).as_deref() != Some(item_timer.as_str()) {
            continue;
        }
        if tids.contains(&l.pid) {
            theirs += 1;
        } else if l.pid == me && l.event == "timer_cancel" {
            mine += 1;
        }
    }
    c.eq(
        "events of the item's timer in the interrupted threads",
        theirs,
        0,
    );
    // The observation works: the CANCEL that did something stopped the item's timer.
    c.check(mine >= 1, || {
        "the CANCEL that took the armed item shows no timer_cancel in the trace".into()
    });
    c.done()
}
