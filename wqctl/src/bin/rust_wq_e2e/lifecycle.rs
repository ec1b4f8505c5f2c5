//! The life of files and of the module: close, CPU offline, rmmod while open.

use crate::util::{
    after_timers, closes_at_once, drain, enq, exactly, ids, probe_seq, qn, ALL_QUEUES,
    LONG_DELAY_US, PENDING_DELAY_US,
};
use crate::{diag, fail, skip, unavailable, Checker, Ctx, Must, TestResult};
use libc::{ENODEV, ENOENT};
use std::time::{Duration, Instant};
use wqctl::abi::*;
use wqctl::{EnqueueArgs, Target};

/// Closing a file cancels its pending items at once (the close takes less
/// than CLOSE_LIMIT, the items were due 2 s later), and none of them runs
/// later: a sentinel armed after the close, due 1 s after all of them, takes
/// the next module-wide seq after a probe.
pub fn close_with_pending(ctx: &Ctx) -> TestResult {
    let mut c = Checker::new();
    let a = ctx.open()?;
    enq(
        &a,
        EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 4).delay_us(PENDING_DELAY_US),
        "ENQUEUE 4 unbound delayed 2s",
    )?;
    let cpu0 = ctx.online.first().copied().unwrap_or(0);
    enq(
        &a,
        EnqueueArgs::new(RUST_WQ_Q_PERCPU, 4)
            .cpu(cpu0)
            .delay_us(PENDING_DELAY_US),
        "ENQUEUE 4 percpu delayed 2s",
    )?;
    enq(
        &a,
        EnqueueArgs::new(RUST_WQ_Q_ORDERED, 2).delay_us(PENDING_DELAY_US),
        "ENQUEUE 2 ordered delayed 2s",
    )?;
    c.stats("before close", &a, (10, 0, 0, 10));
    closes_at_once(&mut c, a);

    let b = ctx.open()?;
    c.stats("fresh file after reopen", &b, (0, 0, 0, 0));
    c.ok("INFO on the new file", b.info());
    let first = b
        .enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1))
        .must("ENQUEUE on the new file")?;
    c.eq("first id of a fresh file", first, 1);
    b.flush(Target::All).must("FLUSH ALL")?;
    drain(&b)?;
    closed_items_never_run(&mut c, &b)?;
    c.done()
}

/// After a file with items due within PENDING_DELAY_US was closed: none of
/// them runs, by module-wide seq (only this test uses the module): a probe,
/// then a sentinel due 1 s after all of them, then a probe take three
/// consecutive numbers.
pub fn closed_items_never_run(c: &mut Checker, b: &wqctl::Device) -> Result<(), crate::Outcome> {
    let s1 = probe_seq(b)?;
    let mut others = Vec::new();
    let sentinel = after_timers(b, PENDING_DELAY_US, &mut others)?;
    let s2 = probe_seq(b)?;
    c.check(others.is_empty() && (sentinel.seq, s2) == (s1 + 1, s1 + 2), || {
        format!("module-wide seq: probe {s1}, sentinel {}, probe {s2} (expected consecutive), other results {}: items of the closed file ran", sentinel.seq, others.len())
    });
    Ok(())
}

/// Brings a CPU back online when dropped.
struct OnlineGuard(String);

impl Drop for OnlineGuard {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::write(&self.0, "1").is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("rust_wq_e2e: could not write 1 to {}", self.0);
    }
}

pub fn offline_cpu_enodev(ctx: &Ctx) -> TestResult {
    let mut found = None;
    for n in (1..ctx.info.nr_cpu_ids.min(64)).rev() {
        let p = format!("/sys/devices/system/cpu/cpu{n}/online");
        if std::path::Path::new(&p).exists() && ctx.online.contains(&n) {
            found = Some((n, p));
            break;
        }
    }
    let Some((n, path)) = found else {
        return unavailable(
            "hotplug",
            "no /sys/devices/system/cpu/cpuN/online for an online CPU N > 0 (no CPU hotplug)",
        );
    };
    let dev = ctx.open()?;
    let mut c = Checker::new();
    // A delayed item pinned to N, to be moved by MOD_DELAY while N is offline.
    let pinned = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_PERCPU, 1)
            .cpu(n)
            .delay_us(LONG_DELAY_US),
        &format!("ENQUEUE delayed 5s on percpu cpu {n}"),
    )?;
    if let Err(e) = std::fs::write(&path, "0") {
        dev.cancel(Target::All).must("CANCEL ALL")?;
        return unavailable("hotplug", format!("cannot offline CPU {n} ({path}): {e}"));
    }
    let guard = OnlineGuard(path.clone());
    let i = dev.info().must("INFO")?;
    c.check(i.online_cpus & (1 << n) == 0, || {
        format!(
            "INFO online_cpus {:#x} still has offline CPU {n}",
            i.online_cpus
        )
    });
    for q in ALL_QUEUES {
        c.errno(
            &format!("ENQUEUE on {} cpu {n} (offline)", qn(q)),
            dev.enqueue(EnqueueArgs::new(q, 1).cpu(n)),
            ENODEV,
        );
    }
    c.errno(
        &format!("ENQUEUE delayed on percpu cpu {n} (offline)"),
        dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_PERCPU, 1).cpu(n).delay_us(1_000)),
        ENODEV,
    );
    // The same with the items queued from an interrupt or a softirq: the
    // error, and none of the call's items runs (the STATS below).
    for (how, irq, softirq) in [("FROM_IRQ", true, false), ("FROM_SOFTIRQ", false, true)] {
        for delay in [0, 1_000] {
            c.errno(
                &format!("ENQUEUE {how} 100 items delay {delay} us on percpu cpu {n} (offline)"),
                dev.enqueue(
                    EnqueueArgs::new(RUST_WQ_Q_PERCPU, 100)
                        .cpu(n)
                        .delay_us(delay)
                        .from_irq(irq)
                        .from_softirq(softirq),
                ),
                ENODEV,
            );
        }
    }
    c.stats(
        "nothing enqueued while offline (the pinned delayed item is pending)",
        &dev,
        (1, 0, 0, 1),
    );
    // The header: MOD_DELAY takes the item off its queue; when it cannot be
    // queued again (its CPU is offline: ENODEV) it stays cancelled and is
    // counted as cancelled.
    c.errno(
        &format!("MOD_DELAY of id {pinned}, pinned to offline cpu {n}"),
        dev.mod_delay(pinned, 1_000),
        ENODEV,
    );
    c.stats(
        "after MOD_DELAY failed with ENODEV (the item stays cancelled)",
        &dev,
        (1, 0, 1, 0),
    );
    c.errno(
        "MOD_DELAY again of the item MOD_DELAY left cancelled",
        dev.mod_delay(pinned, 1_000),
        ENOENT,
    );
    drop(guard);
    let t = Instant::now();
    while dev
        .info()
        .map(|i| i.online_cpus & (1 << n) == 0)
        .unwrap_or(true)
        && t.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let i = dev.info().must("INFO")?;
    c.check(i.online_cpus & (1 << n) != 0, || {
        format!(
            "INFO online_cpus {:#x} lacks CPU {n} after onlining it",
            i.online_cpus
        )
    });
    if let Some(first) = c.ok(
        &format!("ENQUEUE on percpu cpu {n} after onlining"),
        dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_PERCPU, 2).cpu(n)),
    ) {
        dev.flush(Target::All).must("FLUSH ALL")?;
        // The item MOD_DELAY left cancelled never runs (FLUSH ALL would
        // otherwise have fired its timer).
        let by_id = exactly(
            &mut c,
            "results after onlining (none of the cancelled pinned item)",
            &drain(&dev)?,
            ids(first, 2),
        );
        for r in by_id.values() {
            c.eq(&format!("id {} ran on cpu", r.id), r.cpu, n);
        }
        c.stats("at end", &dev, (3, 2, 1, 0));
    }
    c.done()
}

pub fn refcnt() -> Option<i64> {
    std::fs::read_to_string("/sys/module/rust_wq/refcnt")
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub fn rmmod_refused_while_open(ctx: &Ctx) -> TestResult {
    let Some(ko) = std::env::var_os("RUST_WQ_KO") else {
        return skip("RUST_WQ_KO is not set");
    };
    let mut c = Checker::new();
    let before = refcnt();
    let dev = ctx.open()?;
    let during = refcnt();
    if let (Some(b), Some(d)) = (before, during) {
        c.check(d > b, || format!("/sys/module/rust_wq/refcnt: {b} before open, {d} with the file open (expected more)"));
    }
    let out = match std::process::Command::new("rmmod").arg("rust_wq").output() {
        Ok(o) => o,
        Err(e) => return fail(format!("cannot run rmmod: {e}")),
    };
    if out.status.success() {
        c.fail(
            "rmmod rust_wq succeeded while /dev/rust_wq was open (expected EBUSY / non-zero exit)",
        );
        drop(dev);
        let re = std::process::Command::new("insmod").arg(&ko).status();
        c.fail(format!(
            "re-inserted {} to continue: {re:?}",
            ko.to_string_lossy()
        ));
        return c.done();
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    super::diag(&format!("rmmod refused as expected: {}", stderr.trim()));
    c.ok("INFO after the refused rmmod", dev.info());
    drop(dev);
    if let Some(b) = before {
        let t = Instant::now();
        while refcnt() != Some(b) && t.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(10));
        }
        c.eq(
            "/sys/module/rust_wq/refcnt after close (unload allowed again)",
            refcnt(),
            Some(b),
        );
    }
    c.check(std::path::Path::new("/sys/module/rust_wq").exists(), || {
        "module vanished".into()
    });
    c.done()
}

/// The header: closing the file waits for what is running.  Seen through the
/// module-wide seq (taken when an item finishes): a probe in another file
/// right after the close must come after the running item of the closed file.
pub fn close_waits_for_running(ctx: &Ctx) -> TestResult {
    let mut c = Checker::new();
    let b = ctx.open()?;
    // By ordering, not by duration: the item sleeps 1 s; a close that starts
    // at most 600 ms after ENQUEUE returned finds it (if it started) with at
    // least 400 ms to go, so a close that did not wait for it lets a probe
    // enqueued right after the close finish first (seq steps 1, 2); one that
    // waited gives 2, 1.  A later close (the test thread overslept) decides
    // nothing and is retried, as is an item cancelled before it started.
    const SLEEP_MS: u64 = 1000;
    const DECISIVE_MS: u128 = 600;
    let waits = [150u64, 300, 150, 300];
    let mut tries = Vec::new();
    for wait_ms in waits {
        let s1 = probe_seq(&b)?;
        let a = ctx.open()?;
        enq(
            &a,
            EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).sleep_us(SLEEP_MS * 1000),
            "ENQUEUE 1 sleeping 1 s",
        )?;
        let te = Instant::now();
        std::thread::sleep(Duration::from_millis(wait_ms));
        let t = Instant::now();
        let gap = t.duration_since(te).as_millis();
        drop(a);
        let el = t.elapsed();
        let s2 = probe_seq(&b)?;
        std::thread::sleep(Duration::from_millis(SLEEP_MS + 200));
        let s3 = probe_seq(&b)?;
        match (s2 - s1, s3 - s2) {
            // The item ran, and had finished when close returned.
            (2, 1) if gap <= DECISIVE_MS => {
                diag(&format!(
                    "close_waits_for_running: close waited {} ms for the running item",
                    el.as_millis()
                ));
                return c.done();
            }
            // It finished only after close had returned.
            (1, 2) => {
                c.fail(format!(
                    "close returned after {} ms while the file's item was still running (it finished later: module-wide seq {s1} -> {s2} -> {s3})",
                    el.as_millis()
                ));
                return c.done();
            }
            (2, 1) => tries.push(format!("close {gap} ms after ENQUEUE: too late to decide")),
            // Cancelled before it started: try again with a longer wait.
            (1, 1) => tries.push(format!("{wait_ms} ms: cancelled before it started")),
            (d1, d2) => {
                c.fail(format!(
                    "unexpected module-wide seq steps {d1}, {d2} ({s1} -> {s2} -> {s3}): is something else using the module?"
                ));
                return c.done();
            }
        }
    }
    c.fail(format!("no decisive attempt: {tries:?}"));
    c.done()
}
