//! Signals other than SIGKILL (the header's "Waits"): a signal whose action is
//! to terminate ends every long wait as SIGKILL does, and a wait for the
//! benchmark lock ends with EINTR on a caught signal, or is restarted under
//! SA_RESTART.  Observed from outside the module: the child's wait status and
//! the time it took to be gone, the errno, and the order of the waiter's return
//! against the moment the lock's holder was killed.

use super::waits::{child_busy_ordered, long_bench, SHORT_BENCH};
use super::{child_open, fork};
use crate::util::CatchUsr1;
use crate::{diag, fail, Checker, Ctx, TestResult};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wqctl::abi::*;
use wqctl::hostile::Child;
use wqctl::{Device, EnqueueArgs, Target};

/// In a child: SIGTERM back to its default action (terminate) and unblocked.
fn default_sigterm() {
    // SAFETY: resets one signal's disposition and unblocks it in this
    // (single-threaded) child; no pointers but to a local set.
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// Sends SIGTERM (no handler: its action is to terminate) to `child`, which
/// is blocked in the module, and checks that it died of it within `limit`.
fn dies_of_sigterm(c: &mut Checker, child: &mut Child, what: &str, limit: Duration) {
    if !child.alive() {
        c.fail(format!(
            "{what}: the child ended before the signal: nothing was tested"
        ));
        return;
    }
    let t = Instant::now();
    child.signal(libc::SIGTERM);
    let st = child.wait_dead(Duration::from_secs(60));
    let el = t.elapsed();
    diag(&format!("SIGTERM {what}: gone after {} ms", el.as_millis()));
    match st {
        None => c.fail(format!(
            "SIGTERM {what}: the process was still there after 60 s"
        )),
        Some(st) => {
            c.check(
                libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGTERM,
                || format!("SIGTERM {what}: wait status {st:#x}, expected death by SIGTERM"),
            );
            c.check(el <= limit, || {
                format!(
                    "SIGTERM {what}: the process took {} ms to die (at most {} ms allowed)",
                    el.as_millis(),
                    limit.as_millis()
                )
            });
        }
    }
}

/// SIGTERM without a handler (a signal whose action is to terminate, not
/// SIGKILL) ends, as SIGKILL does: FLUSH's wait for its items (60 ordered
/// items of 200 ms: 12 s), a wait for the file's lock behind a RESET (30
/// ordered items of 1 s: 30 s if the wait could not end), a wait for the
/// benchmark lock, and a running BENCH (both: as long as the holder's BENCH of
/// 4 x 400000 rounds).  Each child must die of SIGTERM within the limits the
/// SIGKILL tests use.
pub fn sigterm_ends_waits(ctx: &Ctx) -> TestResult {
    let mut c = Checker::new();
    let path = ctx.path.clone();
    let mut flush = fork(Duration::from_secs(10), |ready| {
        default_sigterm();
        let Some(dev) = child_busy_ordered(&path, 60, 200_000) else {
            return 101;
        };
        ready();
        let _ = dev.flush(Target::All);
        102
    })?;
    std::thread::sleep(Duration::from_millis(500));
    dies_of_sigterm(
        &mut c,
        &mut flush,
        "during FLUSH (60 ordered items x 200 ms)",
        Duration::from_secs(2),
    );
    let mut lock = fork(Duration::from_secs(10), |ready| {
        default_sigterm();
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
    dies_of_sigterm(
        &mut c,
        &mut lock,
        "during RESET + a wait for the file's lock",
        Duration::from_secs(5),
    );
    let mut holder = fork(Duration::from_secs(10), |ready| {
        default_sigterm();
        long_bench(&path, ready)
    })?;
    std::thread::sleep(Duration::from_millis(300));
    let mut waiter = fork(Duration::from_secs(10), |ready| {
        default_sigterm();
        let dev = child_open(&path);
        ready();
        let _ = dev.bench(SHORT_BENCH);
        0
    })?;
    std::thread::sleep(Duration::from_millis(300));
    dies_of_sigterm(
        &mut c,
        &mut waiter,
        "while waiting for the bench lock",
        Duration::from_secs(2),
    );
    dies_of_sigterm(
        &mut c,
        &mut holder,
        "during BENCH (4 threads x 400000 rounds)",
        Duration::from_secs(2),
    );
    c.done()
}

/// Runs a short BENCH of `dev` in a thread, sends that thread SIGUSR1 300 ms
/// later, then calls `then` (given the flag the thread sets when BENCH
/// returns); returns BENCH's result.
fn bench_signalled(
    dev: &Device,
    then: impl FnOnce(&AtomicBool),
) -> Result<RustWqBench, wqctl::Errno> {
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel();
        let done = &done;
        let h = s.spawn(move || {
            // SAFETY: the id of this thread, for pthread_kill.
            let _ = tx.send(unsafe { libc::pthread_self() });
            let r = dev.bench(SHORT_BENCH);
            done.store(true, Ordering::SeqCst);
            r
        });
        let tid = rx.recv().ok();
        std::thread::sleep(Duration::from_millis(300));
        if let Some(tid) = tid {
            // SAFETY: the thread is alive until joined below.
            unsafe { libc::pthread_kill(tid, libc::SIGUSR1) };
        }
        then(done);
        h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// A wait for the benchmark lock (held by a child's long BENCH) ends with
/// EINTR on a signal whose handler has no SA_RESTART, while the holder still
/// runs; with SA_RESTART the call is restarted: it is still waiting 300 ms
/// after the signal was handled, and succeeds only once the holder has been
/// killed (the lock released).
pub fn bench_lock_wait_signals(ctx: &Ctx) -> TestResult {
    let mut c = Checker::new();
    let path = ctx.path.clone();
    let mut holder = fork(Duration::from_secs(10), |ready| long_bench(&path, ready))?;
    std::thread::sleep(Duration::from_millis(500));
    if !holder.alive() {
        return fail("the holder's BENCH of 4 x 400000 rounds ended within 0.5 s: nothing tested");
    }
    let dev = ctx.open()?;
    // Without SA_RESTART: EINTR, before the holder is done.
    let usr1 = CatchUsr1::install(false);
    let t = Instant::now();
    let r = bench_signalled(&dev, |_| {});
    let el = t.elapsed();
    c.errno(
        "BENCH waiting for the bench lock, sent SIGUSR1 (no SA_RESTART)",
        r,
        libc::EINTR,
    );
    c.check(el < Duration::from_secs(2), || {
        format!(
            "the interrupted BENCH returned after {} ms (signal after 300 ms)",
            el.as_millis()
        )
    });
    c.eq("signals handled", usr1.taken(), 1);
    c.check(holder.alive(), || {
        "the holder's BENCH ended meanwhile: the EINTR was not decided by the signal".into()
    });
    // With SA_RESTART: still waiting after the handler ran; done once the
    // holder is killed.
    drop(usr1);
    let usr1 = CatchUsr1::install(true);
    // Read just before the SIGKILL: once the holder's BENCH ends (as the kill makes it), the
    // waiter may get the lock and return before the holder's exit is reaped.
    let mut waited = false;
    let mut killed = None;
    let r = bench_signalled(&dev, |done| {
        std::thread::sleep(Duration::from_millis(300));
        waited = !done.load(Ordering::SeqCst) && holder.alive();
        killed = holder.kill_and_time(Duration::from_secs(60));
    });
    let taken = usr1.taken();
    drop(usr1);
    c.eq("signals handled (SA_RESTART)", taken, 1);
    c.check(r.is_ok(), || {
        format!("BENCH restarted under SA_RESTART: {r:?}, expected success once the lock was free")
    });
    c.check(waited, || {
        "under SA_RESTART, BENCH must keep waiting for the lock until its holder is gone: it \
         had returned, or the holder had ended, 300 ms after the signal (before the SIGKILL)"
            .into()
    });
    c.check(killed.is_some(), || {
        "the holder did not die within 60 s of SIGKILL".into()
    });
    c.done()
}
