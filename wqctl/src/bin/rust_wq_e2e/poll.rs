//! End-to-end tests of poll(2), select(2) and epoll on `/dev/rust_wq`: `POLLIN`
//! while the file has unread results.

use super::{fail, skip, Checker, Ctx, Must, Outcome, TestFn, TestResult};
use crate::util::PENDING_DELAY_US;
use std::fs::File;
use std::os::fd::RawFd;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use wqctl::abi::*;
use wqctl::{poll_fd, Device, EnqueueArgs, Errno, Target};

pub fn all() -> Vec<(&'static str, TestFn)> {
    vec![
        ("poll_timeout_then_ready", poll_timeout_then_ready),
        ("poll_many_threads", poll_many_threads),
        ("poll_closed_by_other_thread", poll_closed_by_other_thread),
        (
            "select_closed_by_other_thread",
            select_closed_by_other_thread,
        ),
        ("epoll_closed_file_released", epoll_closed_file_released),
    ]
}

/// What a reader waits for.
const READABLE: i16 = libc::POLLIN | libc::POLLRDNORM;
/// What the tests ask for: readable, and also writable/priority, which the device never reports.
const ASKED: i16 = READABLE | libc::POLLOUT | libc::POLLPRI;

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// `poll_fd` that turns an error into a test failure.
fn poll_must(fd: RawFd, timeout: Duration, what: &str) -> Result<(i16, Duration), Outcome> {
    let t = Instant::now();
    let r = poll_fd(fd, ASKED, Some(timeout)).must(what)?;
    Ok((r, t.elapsed()))
}

fn poll_names(r: i16) -> String {
    let names = [
        (libc::POLLIN, "POLLIN"),
        (libc::POLLRDNORM, "POLLRDNORM"),
        (libc::POLLOUT, "POLLOUT"),
        (libc::POLLPRI, "POLLPRI"),
        (libc::POLLERR, "POLLERR"),
        (libc::POLLHUP, "POLLHUP"),
        (libc::POLLNVAL, "POLLNVAL"),
    ];
    let v: Vec<&str> = names
        .iter()
        .filter(|(b, _)| r & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if v.is_empty() {
        "0".into()
    } else {
        format!("{} ({r:#x})", v.join("|"))
    }
}

/// poll with a timeout before any item, then an item that runs later wakes it; level-triggered
/// until the results are read; RESET and reading clear it; results stored before the call count.
fn poll_timeout_then_ready(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let fd = dev.raw_fd();
    let mut c = Checker::new();

    let (r, el) = poll_must(fd, Duration::from_millis(100), "poll before any item")?;
    c.check(r == 0, || {
        format!(
            "poll 100 ms on a fresh file: expected 0 (timeout), got {}",
            poll_names(r)
        )
    });
    // (A margin for clocks of different vCPUs, which can disagree by a few ms under emulation.)
    c.check(el >= Duration::from_millis(90), || {
        format!("poll 100 ms returned after {} ms", ms(el))
    });

    // One item that runs 200 ms from now: poll must sleep until then and wake for it.
    let id = dev
        .enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).delay_us(200_000))
        .must("ENQUEUE 1 unbound delayed 200ms")?;
    // Not readable while the item waits (checked without timestamps: under emulation the
    // delay itself can end a little early, which is not poll's business).
    let (r, _) = poll_must(fd, Duration::ZERO, "poll while the item waits")?;
    c.eq("revents while the item waits", r, 0);
    let (r, el) = poll_must(fd, Duration::from_secs(10), "poll for the item")?;
    c.check(r == READABLE, || {
        format!(
            "poll after the item ran: expected POLLIN|POLLRDNORM, got {}",
            poll_names(r)
        )
    });
    c.check(el < Duration::from_secs(8), || {
        format!("poll took {} ms: the result did not wake it", ms(el))
    });
    // Level-triggered: still readable until the result is read.
    let (r, _) = poll_must(fd, Duration::ZERO, "poll again before reading")?;
    c.eq("revents before reading the result", r, READABLE);
    let (res, _) = dev.results(16).must("RESULTS")?;
    c.eq("results after poll said POLLIN", res.len(), 1);
    if let Some(first) = res.first() {
        c.eq("id of the result", first.id, id);
    }
    let (r, _) = poll_must(fd, Duration::ZERO, "poll after reading")?;
    c.eq("revents after reading every result", r, 0);

    // Results stored before the call are reported at once; partial reads keep it readable.
    let first = dev
        .enqueue(EnqueueArgs::new(RUST_WQ_Q_PERCPU, 3))
        .must("ENQUEUE 3 percpu")?;
    dev.flush(Target::All).must("FLUSH ALL")?;
    let (r, el) = poll_must(fd, Duration::from_secs(10), "poll with 3 results waiting")?;
    c.eq("revents with 3 results waiting", r, READABLE);
    c.check(el < Duration::from_secs(5), || {
        format!("poll with results waiting took {} ms", ms(el))
    });
    let (res, _) = dev.results(1).must("RESULTS capacity 1")?;
    // (In execution order, which need not be id order: the items may run on several CPUs.)
    c.check(
        res.len() == 1 && (first..first + 3).contains(&res[0].id),
        || {
            format!(
                "RESULTS capacity 1: expected one of ids {first}..{}, got {res:?}",
                first + 2
            )
        },
    );
    let (r, _) = poll_must(fd, Duration::ZERO, "poll with 2 results left")?;
    c.eq("revents with 2 results left", r, READABLE);
    dev.reset().must("RESET")?;
    let (r, _) = poll_must(fd, Duration::ZERO, "poll after RESET")?;
    c.eq("revents after RESET dropped the results", r, 0);
    c.done()
}

/// How a waiter waits.
#[derive(Clone, Copy, Debug)]
enum Waiter {
    Poll,
    Select,
    Epoll,
}

/// Waits on `fd` the way `how` does, for at most `timeout`; returns whether it became readable.
fn wait_one(how: Waiter, fd: RawFd, timeout: Duration) -> Result<bool, Errno> {
    match how {
        Waiter::Poll => Ok(poll_fd(fd, libc::POLLIN, Some(timeout))? & libc::POLLIN != 0),
        Waiter::Select => {
            let mut tv = libc::timeval {
                tv_sec: timeout.as_secs() as libc::time_t,
                tv_usec: timeout.subsec_micros() as libc::suseconds_t,
            };
            // SAFETY: `set` is a valid fd_set, `fd` < FD_SETSIZE (a test's few open files), and
            // `tv` a valid timeval; all live across the call.
            unsafe {
                let mut set: libc::fd_set = std::mem::zeroed();
                libc::FD_ZERO(&mut set);
                libc::FD_SET(fd, &mut set);
                let r = libc::select(
                    fd + 1,
                    &mut set,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    &mut tv,
                );
                if r < 0 {
                    return Err(Errno::last());
                }
                Ok(r == 1 && libc::FD_ISSET(fd, &set))
            }
        }
        Waiter::Epoll => {
            let ep = Epoll::new()?;
            ep.add(fd)?;
            Ok(ep
                .wait(timeout)?
                .is_some_and(|ev| ev & libc::EPOLLIN as u32 != 0))
        }
    }
}

/// An epoll instance, closed on drop.
struct Epoll(RawFd);

impl Epoll {
    fn new() -> Result<Epoll, Errno> {
        // SAFETY: no pointers involved.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            Err(Errno::last())
        } else {
            Ok(Epoll(fd))
        }
    }

    fn add(&self, fd: RawFd) -> Result<(), Errno> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: fd as u64,
        };
        // SAFETY: `ev` is a valid epoll_event for the call.
        if unsafe { libc::epoll_ctl(self.0, libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
            return Err(Errno::last());
        }
        Ok(())
    }

    /// The events of the first ready file, or None on timeout.
    fn wait(&self, timeout: Duration) -> Result<Option<u32>, Errno> {
        let mut ev = [libc::epoll_event { events: 0, u64: 0 }; 4];
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: `ev` has room for 4 events.
        let n = unsafe { libc::epoll_wait(self.0, ev.as_mut_ptr(), 4, ms) };
        match n {
            n if n < 0 => Err(Errno::last()),
            0 => Ok(None),
            _ => Ok(Some(ev[0].events)),
        }
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: our descriptor, closed once.
        unsafe { libc::close(self.0) };
    }
}

/// Several threads wait on one file (poll, select, epoll); one result wakes them all.
fn poll_many_threads(ctx: &Ctx) -> TestResult {
    let dev = Arc::new(ctx.open()?);
    let kinds = [
        Waiter::Poll,
        Waiter::Poll,
        Waiter::Poll,
        Waiter::Poll,
        Waiter::Select,
        Waiter::Epoll,
    ];
    let start = Arc::new(Barrier::new(kinds.len() + 1));
    let returned = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for how in kinds {
        let (dev, start, returned) = (dev.clone(), start.clone(), returned.clone());
        threads.push(std::thread::spawn(move || {
            start.wait();
            let r = wait_one(how, dev.raw_fd(), Duration::from_secs(10));
            returned.fetch_add(1, Ordering::SeqCst);
            (how, r, Instant::now())
        }));
    }
    start.wait();
    // Let them block first; had they not, they would still see the result when it comes.
    std::thread::sleep(Duration::from_millis(50));
    // Nothing is readable yet, so nobody may have returned.  (Compared with a counter, not
    // with timestamps: under emulation the vCPUs' clocks can disagree by a few ms.)
    let early = returned.load(Ordering::SeqCst);
    let t = Instant::now();
    let id = dev
        .enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).delay_us(100_000))
        .must("ENQUEUE 1 unbound delayed 100ms")?;
    let mut c = Checker::new();
    c.eq("waiters returned before anything was enqueued", early, 0);
    for th in threads {
        let (how, r, end) = th
            .join()
            .map_err(|_| Outcome::Fail(vec!["a waiter thread panicked".into()]))?;
        let el = end.saturating_duration_since(t);
        match r {
            Ok(true) => {}
            Ok(false) => c.fail(format!(
                "{how:?} waiter: timed out ({} ms after the enqueue; the result did not wake it)",
                ms(el)
            )),
            Err(e) => c.fail(format!("{how:?} waiter: {e}")),
        }
    }
    let since = t.elapsed();
    c.check(since < Duration::from_secs(8), || {
        format!("waking the waiters took {} ms", ms(since))
    });
    let (res, _) = dev.results(16).must("RESULTS")?;
    c.check(res.len() == 1 && res[0].id == id, || {
        format!("expected the one result of id {id}, got {res:?}")
    });
    c.done()
}

/// The module's reference count, read through a file opened up front (so that reading it
/// allocates no file descriptor while a test has a closed descriptor number in flight).
struct Refcnt(File);

impl Refcnt {
    fn open() -> Option<Refcnt> {
        File::open("/sys/module/rust_wq/refcnt").ok().map(Refcnt)
    }

    fn get(&self) -> Option<i64> {
        let mut b = [0u8; 32];
        let n = self.0.read_at(&mut b, 0).ok()?;
        std::str::from_utf8(&b[..n]).ok()?.trim().parse().ok()
    }

    /// Waits up to 2 s for the count to become `want`.
    fn settle(&self, want: i64) -> Option<i64> {
        let t = Instant::now();
        loop {
            let v = self.get();
            if v == Some(want) || t.elapsed() > Duration::from_secs(2) {
                return v;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A second descriptor of a fresh file of the device, with `prep` done on it first; the
/// original descriptor is closed, so closing the returned one drops the last file reference.
fn lone_fd(ctx: &Ctx, prep: impl FnOnce(&Device) -> Result<(), Outcome>) -> Result<RawFd, Outcome> {
    let dev = ctx.open()?;
    prep(&dev)?;
    // SAFETY: duplicates a descriptor we own; no pointers.
    let fd = unsafe { libc::dup(dev.raw_fd()) };
    if fd < 0 {
        return fail(format!("dup: {}", Errno::last()));
    }
    Ok(fd)
}

/// A thread that polls `fd` for POLLIN for at most `timeout`; returns once it is about to.
fn spawn_poller(
    fd: RawFd,
    timeout: Duration,
) -> std::thread::JoinHandle<(Result<i16, Errno>, Duration)> {
    let start = Arc::new(Barrier::new(2));
    let th = {
        let start = start.clone();
        std::thread::spawn(move || {
            start.wait();
            let t = Instant::now();
            (poll_fd(fd, libc::POLLIN, Some(timeout)), t.elapsed())
        })
    };
    start.wait();
    th
}

fn close_fd(fd: RawFd) {
    // SAFETY: a descriptor this test owns, closed once.
    unsafe { libc::close(fd) };
}

/// One thread polls a file while another closes its descriptor: poll keeps the file (and its
/// work) alive until it returns, a result still wakes it, and the file is released after.
fn poll_closed_by_other_thread(ctx: &Ctx) -> TestResult {
    let Some(refcnt) = Refcnt::open() else {
        return skip("no /sys/module/rust_wq/refcnt");
    };
    let Some(base) = refcnt.get() else {
        return skip("cannot read /sys/module/rust_wq/refcnt");
    };
    let mut c = Checker::new();

    // (a) Nothing to wake it: close does not end the wait; at its timeout poll finds the
    // descriptor closed (POLLNVAL), lets go of the file, and the file is released.
    let fd = lone_fd(ctx, |_| Ok(()))?;
    let waiter = spawn_poller(fd, Duration::from_millis(1500));
    std::thread::sleep(Duration::from_millis(200));
    close_fd(fd);
    std::thread::sleep(Duration::from_millis(100));
    let during = refcnt.get();
    let (r, el) = waiter
        .join()
        .map_err(|_| Outcome::Fail(vec!["the polling thread panicked".into()]))?;
    c.check(during.is_some_and(|d| d > base), || {
        format!("(a) module refcnt {during:?} after close while polled: expected more than {base} (poll holds the file)")
    });
    c.check(r == Ok(libc::POLLNVAL), || {
        format!(
            "(a) poll on a descriptor closed meanwhile: expected POLLNVAL at the timeout, got {}",
            r.map_or_else(|e| e.to_string(), poll_names)
        )
    });
    c.check(el >= Duration::from_millis(1400), || {
        format!(
            "(a) poll returned after {} ms, before its 1500 ms timeout",
            ms(el)
        )
    });
    let after = refcnt.settle(base);
    c.check(after == Some(base), || {
        format!("(a) module refcnt {after:?} after poll returned: expected {base} (file released)")
    });

    // (b) An item still pending at the close runs (the file lives while polled) and its
    // result wakes the poller, which then finds the descriptor closed.  (1.5 s: far enough
    // after the close that a stalled VM does not run it before.)
    let fd = lone_fd(ctx, |dev| {
        dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).delay_us(1_500_000))
            .must("ENQUEUE 1 unbound delayed 1.5s")
            .map(|_| ())
    })?;
    let waiter = spawn_poller(fd, Duration::from_secs(8));
    std::thread::sleep(Duration::from_millis(100));
    close_fd(fd);
    let (r, el) = waiter
        .join()
        .map_err(|_| Outcome::Fail(vec!["the polling thread panicked".into()]))?;
    c.check(r == Ok(libc::POLLNVAL), || {
        format!(
            "(b) expected POLLNVAL once the item ran, got {}",
            r.map_or_else(|e| e.to_string(), poll_names)
        )
    });
    c.check(
        el >= Duration::from_millis(300) && el < Duration::from_secs(7),
        || {
            format!(
                "(b) poll returned after {} ms: expected when the 1.5 s item ran (its result wakes it)",
                ms(el)
            )
        },
    );
    let after = refcnt.settle(base);
    c.check(after == Some(base), || {
        format!("(b) module refcnt {after:?} after poll returned: expected {base}")
    });
    c.done()
}

/// epoll holds no reference: closing the only descriptor releases the file at once (its
/// pending items are cancelled: they never run) while another thread waits in epoll_wait, which
/// then just times out.  The file's wait queue goes away with waiters removed first (no warning in dmesg).
fn epoll_closed_file_released(ctx: &Ctx) -> TestResult {
    let Some(refcnt) = Refcnt::open() else {
        return skip("no /sys/module/rust_wq/refcnt");
    };
    let Some(base) = refcnt.get() else {
        return skip("cannot read /sys/module/rust_wq/refcnt");
    };
    let mut c = Checker::new();
    let fd = lone_fd(ctx, |dev| {
        // Pending work at the release (due 2 s later; the release comes ~100 ms after).
        dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 2).delay_us(PENDING_DELAY_US))
            .must("ENQUEUE 2 unbound delayed 2s")
            .map(|_| ())
    })?;
    let ep = Epoll::new().must("epoll_create1")?;
    ep.add(fd).must("EPOLL_CTL_ADD")?;
    let ep = Arc::new(ep);
    let start = Arc::new(Barrier::new(2));
    let waiter = {
        let (ep, start) = (ep.clone(), start.clone());
        std::thread::spawn(move || {
            start.wait();
            let t = Instant::now();
            (ep.wait(Duration::from_millis(1000)), t.elapsed())
        })
    };
    start.wait();
    std::thread::sleep(Duration::from_millis(100));
    let held = refcnt.get();
    close_fd(fd);
    let after_close = refcnt.settle(base);
    let (r, el) = waiter
        .join()
        .map_err(|_| Outcome::Fail(vec!["the epoll thread panicked".into()]))?;
    c.check(held.is_some_and(|h| h > base), || {
        format!("module refcnt {held:?} with the file open: expected more than {base}")
    });
    c.check(after_close == Some(base), || {
        format!("module refcnt {after_close:?} after closing the only descriptor: expected {base} (released at once)")
    });
    c.check(matches!(r, Ok(None)), || {
        format!("epoll_wait after the file was released: expected a timeout (no event), got {r:?}")
    });
    c.check(el >= Duration::from_millis(900), || {
        format!(
            "epoll_wait returned after {} ms, before its timeout",
            ms(el)
        )
    });
    // The release cancelled the two items: they never run.
    let b = ctx.open()?;
    crate::lifecycle::closed_items_never_run(&mut c, &b)?;
    c.done()
}

/// select(2) keeps a file open as poll does: one thread selects a file (its
/// read set only) with an item due 1.5 s later while another closes the
/// descriptor.  The module's refcnt stays raised (the file is held), the item
/// still runs and its result ends the wait (well before the 8 s timeout), the
/// closed descriptor is then reported in the read set (select's form of
/// POLLNVAL), and the file is released after.
fn select_closed_by_other_thread(ctx: &Ctx) -> TestResult {
    let Some(refcnt) = Refcnt::open() else {
        return skip("no /sys/module/rust_wq/refcnt");
    };
    let Some(base) = refcnt.get() else {
        return skip("cannot read /sys/module/rust_wq/refcnt");
    };
    let mut c = Checker::new();
    let fd = lone_fd(ctx, |dev| {
        dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).delay_us(1_500_000))
            .must("ENQUEUE 1 unbound delayed 1.5s")
            .map(|_| ())
    })?;
    let start = Arc::new(Barrier::new(2));
    let waiter = {
        let start = start.clone();
        std::thread::spawn(move || {
            // SAFETY: an fd_set with one descriptor below FD_SETSIZE, and a
            // timeval; select only reads and writes them.
            unsafe {
                let mut rd: libc::fd_set = std::mem::zeroed();
                libc::FD_ZERO(&mut rd);
                libc::FD_SET(fd, &mut rd);
                let mut tv = libc::timeval {
                    tv_sec: 8,
                    tv_usec: 0,
                };
                start.wait();
                let t = Instant::now();
                let n = libc::select(
                    fd + 1,
                    &mut rd,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    &mut tv,
                );
                let r = if n < 0 {
                    Err(Errno::last())
                } else {
                    Ok((n, libc::FD_ISSET(fd, &rd)))
                };
                (r, t.elapsed())
            }
        })
    };
    start.wait();
    std::thread::sleep(Duration::from_millis(100));
    close_fd(fd);
    std::thread::sleep(Duration::from_millis(100));
    let during = refcnt.get();
    let (r, el) = waiter
        .join()
        .map_err(|_| Outcome::Fail(vec!["the selecting thread panicked".into()]))?;
    c.check(during.is_some_and(|d| d > base), || {
        format!("module refcnt {during:?} after close while selected: expected more than {base} (select holds the file)")
    });
    c.eq(
        "select on a descriptor closed meanwhile (ready count, in the read set)",
        r,
        Ok((1, true)),
    );
    c.check(
        el >= Duration::from_millis(300) && el < Duration::from_secs(7),
        || {
            format!(
                "select returned after {} ms: expected when the 1.5 s item ran (its result wakes it)",
                ms(el)
            )
        },
    );
    let after = refcnt.settle(base);
    c.check(after == Some(base), || {
        format!("module refcnt {after:?} after select returned: expected {base}")
    });
    c.done()
}
