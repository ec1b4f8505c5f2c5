//! Signals on waiting calls: FLUSH restarted under SA_RESTART, and every call
//! waiting for the file's lock failed with EINTR without it, restarted with it.

use super::*;

static SIGNALLED_NS: AtomicU64 = AtomicU64::new(0);
static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

extern "C" fn note_signal(_: i32) {
    if let Some(t0) = EPOCH.get() {
        SIGNALLED_NS.store(t0.elapsed().as_nanos() as u64, Ordering::SeqCst);
    }
}

/// A signal whose handler has SA_RESTART restarts a waiting FLUSH instead of
/// failing it with EINTR, and the restarted FLUSH counts only the items still
/// unfinished: 6 ordered items of 500 ms, the signal 1250 ms in.  By the
/// items' own results: those finished before the signal are not counted,
/// those that finished more than 200 ms after it are.
pub(super) fn flush_restarts_with_sa_restart(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let t0 = *EPOCH.get_or_init(Instant::now);
    SIGNALLED_NS.store(0, Ordering::SeqCst);
    let start = t0.elapsed().as_nanos() as u64;
    dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_ORDERED, 6).sleep_us(500_000))
        .must("ENQUEUE 6 ordered x 500 ms")?;
    let returned = t0.elapsed().as_nanos() as u64;
    // SAFETY: installs a handler (async-signal-safe: one atomic store) with
    // SA_RESTART for SIGALRM; `setitimer` then sends SIGALRM once.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = note_signal as extern "C" fn(i32) as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut());
        let it = libc::itimerval {
            it_interval: libc::timeval {
                tv_sec: 0,
                tv_usec: 0,
            },
            it_value: libc::timeval {
                tv_sec: 1,
                tv_usec: 250_000,
            },
        };
        libc::setitimer(libc::ITIMER_REAL, &it, std::ptr::null_mut());
    }
    let r = dev.flush(Target::All);
    // SAFETY: back to the default action.
    unsafe { libc::signal(libc::SIGALRM, libc::SIG_DFL) };
    let sig = SIGNALLED_NS.load(Ordering::SeqCst);
    let n = r.must("FLUSH ALL with a SA_RESTART handler (must restart, not fail)")?;
    if sig == 0 {
        return crate::fail("the signal never came while FLUSH waited: nothing was tested");
    }
    let (res, _) = dev.drain_results().must("RESULTS")?;
    c.eq("results", res.len(), 6);
    // An item's finish, from t0: after start + latency + runtime, before
    // returned + latency + runtime (its clock starts during the ENQUEUE call).
    let before = res
        .iter()
        .filter(|r| returned + r.latency_ns + r.runtime_ns < sig)
        .count() as u64;
    let after = res
        .iter()
        .filter(|r| start + r.latency_ns + r.runtime_ns > sig + 200_000_000)
        .count() as u64;
    c.check((after..=6 - before).contains(&n), || {
        format!("the restarted FLUSH counted {n} items; {before} had finished before the signal, {after} finished more than 200 ms after it: expected {after}..={}", 6 - before)
    });
    c.check(before > 0 && after > 0, || {
        format!("the signal at {} ms did not fall between two items' ends ({before} before, {after} after): the restart count was not tested", sig / 1_000_000)
    });
    c.done()
}

/// One call of a file, its result as a count.
type FileCall = fn(&Device) -> Result<u64, wqctl::Errno>;

/// Every call waiting for the file's lock (held by a RESET that waits for a
/// running item) ends with EINTR on a signal whose handler has no
/// SA_RESTART, before the RESET returns, and did nothing: ENQUEUE, FLUSH,
/// CANCEL, MOD_DELAY, RESULTS and RESET, each in its own thread, each sent
/// SIGUSR1 (pthread_kill) 300 ms after it started waiting.
pub(super) fn lock_waits_interruptible(ctx: &Ctx) -> TestResult {
    let mut c = Checker::new();
    let _usr1 = crate::util::CatchUsr1::install(false);
    for attempt in 1..=3 {
        let dev = busy_file(ctx)?;
        // "Nothing was done", seen by the kernel's tracepoint: the
        // interrupted ENQUEUE (delay 0) would have queued its item on
        // rust_wq_unbound at once; the busy item was queued before this.
        let trace = match crate::util::Trace::start(&["workqueue/workqueue_queue_work"]) {
            Ok(t) => t,
            Err(e) => return crate::unavailable("tracing", format!("cannot trace: {e}")),
        };
        let done = AtomicBool::new(false);
        let calls: [(&str, FileCall); 6] = [
            ("ENQUEUE", |d| {
                d.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1))
            }),
            ("FLUSH", |d| d.flush(Target::All)),
            ("CANCEL", |d| d.cancel(Target::All)),
            ("MOD_DELAY", |d| d.mod_delay(1, 1000).map(|()| 0)),
            ("RESULTS", |d| d.results(4).map(|(r, _)| r.len() as u64)),
            ("RESET", |d| d.reset().map(|()| 0)),
        ];
        let (reset_el, seen) = std::thread::scope(|s| {
            let (d, done) = (&dev, &done);
            let reset = s.spawn(move || {
                let t = Instant::now();
                let r = d.reset();
                done.store(true, Ordering::SeqCst);
                (r, t.elapsed())
            });
            std::thread::sleep(Duration::from_millis(100));
            let waiters: Vec<_> = calls
                .iter()
                .map(|&(name, call)| {
                    let (tx, rx) = std::sync::mpsc::channel();
                    let h = s.spawn(move || {
                        // SAFETY: the id of this thread, for pthread_kill.
                        let _ = tx.send(unsafe { libc::pthread_self() });
                        let r = call(d);
                        (name, r, done.load(Ordering::SeqCst))
                    });
                    (rx.recv().ok(), h)
                })
                .collect();
            std::thread::sleep(Duration::from_millis(300));
            for (tid, _) in &waiters {
                if let Some(tid) = tid {
                    // SAFETY: the thread is alive until joined below.
                    unsafe { libc::pthread_kill(*tid, libc::SIGUSR1) };
                }
            }
            let seen: Vec<_> = waiters
                .into_iter()
                .filter_map(|(_, h)| h.join().ok())
                .collect();
            let (r, el) = reset.join().unwrap_or((Ok(()), Duration::ZERO));
            (r.map(|()| el), seen)
        });
        let text = trace.stop().map_err(|e| crate::Outcome::Fail(vec![e]))?;
        drop(trace);
        let reset_el = reset_el.must("the RESET holding the lock")?;
        if reset_el < Duration::from_millis(600) {
            crate::diag(&format!("file_lock_waits_interruptible: attempt {attempt}: RESET took {} ms (the item had not started)", reset_el.as_millis()));
            continue;
        }
        let queued = text
            .lines()
            .filter(|l| {
                l.contains("workqueue_queue_work") && l.contains("workqueue=rust_wq_unbound ")
            })
            .count();
        c.eq(
            "workqueue_queue_work events on rust_wq_unbound while the interrupted calls ran (an ENQUEUE that did something would have queued)",
            queued,
            0,
        );
        for (name, r, after) in &seen {
            c.check(matches!(r, Err(e) if e.0 == libc::EINTR) && !after, || {
                format!("{name} waiting for the file's lock (held by RESET), sent SIGUSR1: {r:?}, returned {} RESET (expected EINTR, before)", if *after { "after" } else { "before" })
            });
        }
        c.eq("calls that waited", seen.len(), 6);
        // Nothing was done: the interrupted ENQUEUE enqueued nothing.
        c.stats("after RESET and the interrupted calls", &dev, (0, 0, 0, 0));
        return c.done();
    }
    crate::fail("the 1 s item never started within 100 ms in 3 attempts: nothing decided")
}

/// Every call waiting for the file's lock (held by a RESET that waits for a
/// running item) is restarted, not failed, on a signal whose handler has
/// SA_RESTART: ENQUEUE, FLUSH, CANCEL and RESULTS, each in its own thread,
/// each sent SIGUSR1 300 ms after it started waiting, while the RESET still
/// waits.  Each handler ran, each call succeeds, and returns only after the
/// RESET (it kept waiting for the lock); the restarted ENQUEUE enqueued its
/// item exactly once (STATS after the RESET zeroed them, and the results).
pub(super) fn lock_waits_restart(ctx: &Ctx) -> TestResult {
    let mut c = Checker::new();
    let usr1 = crate::util::CatchUsr1::install(true);
    for attempt in 1..=3 {
        let dev = busy_file(ctx)?;
        usr1.reset();
        let done = AtomicBool::new(false);
        let calls: [(&str, FileCall); 4] = [
            ("ENQUEUE", |d| {
                d.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1))
            }),
            ("FLUSH", |d| d.flush(Target::All)),
            ("CANCEL", |d| d.cancel(Target::Queue(RUST_WQ_Q_ORDERED))),
            ("RESULTS", |d| d.results(4).map(|(r, _)| r.len() as u64)),
        ];
        let (reset_el, sent_during_reset, seen) = std::thread::scope(|s| {
            let (d, done) = (&dev, &done);
            let reset = s.spawn(move || {
                let t = Instant::now();
                let r = d.reset();
                done.store(true, Ordering::SeqCst);
                (r, t.elapsed())
            });
            std::thread::sleep(Duration::from_millis(100));
            let waiters: Vec<_> = calls
                .iter()
                .map(|&(name, call)| {
                    let (tx, rx) = std::sync::mpsc::channel();
                    let h = s.spawn(move || {
                        // SAFETY: the id of this thread, for pthread_kill.
                        let _ = tx.send(unsafe { libc::pthread_self() });
                        let r = call(d);
                        (name, r, Instant::now())
                    });
                    (rx.recv().ok(), h)
                })
                .collect();
            std::thread::sleep(Duration::from_millis(300));
            for (tid, _) in &waiters {
                if let Some(tid) = tid {
                    // SAFETY: the thread is alive until joined below.
                    unsafe { libc::pthread_kill(*tid, libc::SIGUSR1) };
                }
            }
            // Give the handlers time to run while the RESET still waits.
            std::thread::sleep(Duration::from_millis(100));
            let checked = Instant::now();
            let during = !done.load(Ordering::SeqCst);
            let seen: Vec<_> = waiters
                .into_iter()
                .filter_map(|(_, h)| h.join().ok())
                .collect();
            let (r, el) = reset.join().unwrap_or((Ok(()), Duration::ZERO));
            (r.map(|()| el), during, (checked, seen))
        });
        let (checked, seen) = seen;
        let reset_el = reset_el.must("the RESET holding the lock")?;
        if reset_el < Duration::from_millis(600) || !sent_during_reset {
            crate::diag(&format!("file_lock_waits_restart: attempt {attempt}: RESET took {} ms (the item had not started, or the RESET ended before the signals were handled)", reset_el.as_millis()));
            continue;
        }
        let taken = usr1.taken();
        drop(usr1);
        c.eq("signals handled", taken, 4);
        c.eq("calls that waited", seen.len(), 4);
        let mut read = 0;
        let mut id = 0;
        for (name, r, at) in &seen {
            // Still waiting once its handler had run and while the RESET
            // still held the lock (`checked`), then successful: restarted.
            let after = *at > checked;
            c.check(r.is_ok() && after, || {
                format!("{name} waiting for the file's lock (held by RESET), sent SIGUSR1 with SA_RESTART: {r:?}, returned {} the RESET was seen still waiting after the handlers ran (expected success, after: restarted)", if after { "after" } else { "before" })
            });
            match (*name, r) {
                ("RESULTS", Ok(n)) => read = *n,
                ("ENQUEUE", Ok(first)) => id = *first,
                _ => {}
            }
        }
        dev.flush(Target::All).must("FLUSH ALL")?;
        c.stats(
            "after RESET and the restarted calls (the ENQUEUE once)",
            &dev,
            (1, 1, 0, 0),
        );
        let (res, _) = dev.drain_results().must("RESULTS")?;
        c.check(read + res.len() as u64 == 1, || {
            format!("results: {read} read by the restarted RESULTS, then {:?} (ids); expected the one item (id {id}) of the restarted ENQUEUE", res.iter().map(|r| r.id).collect::<Vec<_>>())
        });
        return c.done();
    }
    drop(usr1);
    crate::fail(
        "the 1 s item never started, or RESET ended too soon, in 3 attempts: nothing decided",
    )
}
