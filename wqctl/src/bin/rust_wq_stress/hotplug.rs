//! Scenario `hotplug`: CPU N (> 0) goes offline while delayed and sleeping
//! items pinned to it are pending and another thread keeps enqueueing to it,
//! then comes back; a few cycles over the hot-pluggable CPUs.
//!
//! Checked: while N is offline (after the offline write returned and before
//! the online write started) every ENQUEUE pinned to it fails with ENODEV;
//! otherwise it succeeds or fails with ENODEV (the transition); every item
//! accepted ran exactly once or was cancelled (none lost, none twice; items
//! pinned to the dying CPU still run, somewhere); STATS agrees; every cycle
//! really took its CPU offline (a CPU that cannot be offlined fails the
//! scenario, or skips it when the kernel is not configured for hotplug), and
//! brought it back (the online write succeeded; sysfs and INFO say online).

use crate::common::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use wqctl::abi::*;
use wqctl::testing::ALL_QUEUES;
use wqctl::{EnqueueArgs, Errno, Target};

/// Brings the CPU whose `online` file it names back online when dropped (a
/// test that failed half-way); [`OnlineGuard::online`] does it with the error.
struct OnlineGuard(String);

impl OnlineGuard {
    /// Writes 1 to the `online` file now; the drop then does nothing.
    fn online(mut self) -> std::io::Result<()> {
        let path = std::mem::take(&mut self.0);
        std::fs::write(path, "1")
    }
}

impl Drop for OnlineGuard {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            // Best effort on the way out of a failed test: the cycle's own
            // check (the CPU came back) has already failed or will.
            let _ = std::fs::write(&self.0, "1");
        }
    }
}

struct Call {
    start: f64,
    end: f64,
    res: Result<(u64, u32), Errno>,
}

pub fn run(opts: &Opts, rep: &mut Report) -> Result<(), Outcome> {
    let cycles = opts.pick(3usize, 15);
    let cpus: Vec<u32> = online_cpus()
        .into_iter()
        .filter(|&n| {
            n > 0
                && std::path::Path::new(&format!("/sys/devices/system/cpu/cpu{n}/online")).exists()
        })
        .collect();
    if cpus.is_empty() {
        return unavailable("hotplug", "no hot-pluggable online CPU N > 0");
    }
    let mut rng = Rng::new(opts.seed_for("hotplug", 0));
    let dev = opts.open()?;
    let mut t = Tally::default();
    let mut accepted: Vec<(u64, u32)> = Vec::new();
    let mut migrated = 0u64;
    let mut pinned_ids: HashMap<u64, u32> = HashMap::new();
    rep.diag(format!(
        "seed {}, {cycles} cycles over CPUs {cpus:?}",
        opts.seed
    ));
    for cycle in 0..cycles {
        let n = cpus[cycle % cpus.len()];
        let path = format!("/sys/devices/system/cpu/cpu{n}/online");
        // Pending work pinned to N: delayed items (percpu queue mostly) and
        // sleeping ones.
        for _ in 0..4 {
            let d = rng.range(50_000, 1_500_000);
            let q = if rng.pct(70) {
                RUST_WQ_Q_PERCPU
            } else {
                rng.pick(&ALL_QUEUES)
            };
            let a = EnqueueArgs::new(q, 8).cpu(n).delay_us(d).tag(1);
            let first = dev
                .enqueue(a)
                .must(&format!("ENQUEUE delayed on cpu {n}"))?;
            accepted.push((first, 8));
            for id in first..first + 8 {
                pinned_ids.insert(id, n);
            }
            t.add("pinned_delayed", 8);
        }
        let a = EnqueueArgs::new(RUST_WQ_Q_PERCPU, 4)
            .cpu(n)
            .sleep_us(20_000)
            .tag(2);
        let first = dev
            .enqueue(a)
            .must(&format!("ENQUEUE sleeping on cpu {n}"))?;
        accepted.push((first, 4));
        t.add("pinned_sleeping", 4);

        let t0 = Instant::now();
        let stop = AtomicBool::new(false);
        let calls: Mutex<Vec<Call>> = Mutex::new(Vec::new());
        let mut off_done = 0.0;
        let mut on_start = f64::MAX;
        let offline_ok = std::thread::scope(|s| -> Result<bool, Outcome> {
            let seed = opts.seed_for("hotplug", cycle as u64 + 1);
            let (dev, stop, calls) = (&dev, &stop, &calls);
            s.spawn(move || {
                let mut rng = Rng::new(seed);
                while !stop.load(Ordering::Relaxed) {
                    let q = if rng.pct(60) {
                        RUST_WQ_Q_PERCPU
                    } else {
                        rng.pick(&ALL_QUEUES)
                    };
                    let count = rng.range(1, 4) as u32;
                    let delay = if rng.pct(50) {
                        0
                    } else {
                        rng.range(1, 100_000)
                    };
                    let a = EnqueueArgs::new(q, count)
                        .cpu(n)
                        .delay_us(delay)
                        .sleep_us(rng.below(500))
                        .tag(3);
                    let start = now_ms(t0);
                    let r = dev.enqueue(a);
                    let end = now_ms(t0);
                    calls.lock().unwrap().push(Call {
                        start,
                        end,
                        res: r.map(|f| (f, count)),
                    });
                    std::thread::sleep(Duration::from_millis(2));
                }
            });
            std::thread::sleep(Duration::from_millis(50));
            let guard = OnlineGuard(path.clone());
            if let Err(e) = std::fs::write(&path, "0") {
                stop.store(true, Ordering::Relaxed);
                std::mem::forget(guard);
                rep.diag(format!("cannot offline cpu {n}: {e}"));
                return Ok(false);
            }
            off_done = now_ms(t0);
            // Offline: refused on every queue, delayed or not.
            for q in ALL_QUEUES {
                for delay in [0, 1_000] {
                    let r = dev.enqueue(EnqueueArgs::new(q, 1).cpu(n).delay_us(delay));
                    match r {
                        Err(e) if e.0 == libc::ENODEV => t.add("offline_enodev", 1),
                        Err(e) => rep.fail(format!("cycle {cycle}: ENQUEUE q{q} cpu {n} (offline) delay {delay}: {e}, expected ENODEV")),
                        Ok(f) => {
                            rep.fail(format!("cycle {cycle}: ENQUEUE q{q} cpu {n} (offline) delay {delay} succeeded (id {f}), expected ENODEV"));
                            accepted.push((f, 1));
                        }
                    }
                }
            }
            match dev.info() {
                Ok(i) => rep.check(i.online_cpus & (1 << n) == 0, || {
                    format!(
                        "INFO online_cpus {:#x} still has offline cpu {n}",
                        i.online_cpus
                    )
                }),
                Err(e) => rep.check(false, || format!("INFO: {e}")),
            };
            std::thread::sleep(Duration::from_millis(rng.range(100, 300)));
            on_start = now_ms(t0);
            if let Err(e) = guard.online() {
                rep.fail(format!("cycle {cycle}: writing 1 to {path}: {e}"));
            }
            std::thread::sleep(Duration::from_millis(60));
            stop.store(true, Ordering::Relaxed);
            Ok(true)
        })?;
        if !offline_ok {
            if cycle == 0 {
                dev.cancel(Target::All).must("CANCEL ALL")?;
                return unavailable("hotplug", format!("cannot offline cpu {n}"));
            }
            // It worked in cycle 0: failing now is a regression.
            rep.fail(format!("cycle {cycle}: cannot offline cpu {n}"));
            continue;
        }
        t.add("offline_cycles", 1);
        for c in calls.into_inner().unwrap() {
            let inside = c.start > off_done && c.end < on_start;
            match c.res {
                Ok((f, count)) => {
                    if inside {
                        rep.fail(format!(
                            "cycle {cycle}: ENQUEUE pinned to cpu {n} succeeded while it was offline ({:.1}..{:.1} ms, offline {off_done:.1}..{on_start:.1})",
                            c.start, c.end
                        ));
                    }
                    accepted.push((f, count));
                    t.add("racing_accepted", u64::from(count));
                }
                Err(e) if e.0 == libc::ENODEV => t.add(
                    if inside {
                        "racing_enodev_offline"
                    } else {
                        "racing_enodev_transition"
                    },
                    1,
                ),
                Err(e) => rep.fail(format!("cycle {cycle}: racing ENQUEUE on cpu {n}: {e}")),
            }
        }
        // Wait until the CPU is usable again, then a few cancels by id.
        let t1 = Instant::now();
        while t1.elapsed() < Duration::from_secs(5)
            && dev
                .info()
                .map(|i| i.online_cpus & (1 << n) == 0)
                .unwrap_or(true)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        // It came back: a CPU left offline would go unnoticed, and every later
        // scenario would run on fewer CPUs.
        let sysfs = std::fs::read_to_string(&path).map(|v| v.trim() == "1");
        let info = dev.info().map(|i| i.online_cpus & (1 << n) != 0);
        if !matches!((&sysfs, &info), (Ok(true), Ok(true))) {
            rep.fail(format!(
                "cycle {cycle}: cpu {n} is not back online 5 s after the online write (sysfs online: {sysfs:?}, INFO: {info:?})"
            ));
        }
    }
    // Cancel a few by id, then wait for everything.
    let mut cancelled = 0u64;
    let mut cancelled_ids = Vec::new();
    for _ in 0..10 {
        if accepted.is_empty() {
            break;
        }
        let (f, c) = accepted[rng.below(accepted.len() as u64) as usize];
        let id = f + rng.below(u64::from(c));
        match dev.cancel(Target::Id(id)) {
            Ok(k) => {
                cancelled += k;
                cancelled_ids.push(id);
            }
            Err(e) if e.0 == libc::ENOENT => {}
            Err(e) => rep.fail(format!("CANCEL id {id}: {e}")),
        }
    }
    dev.flush(Target::All).must("FLUSH ALL")?;
    let (res, dropped) = dev.drain_results().must("RESULTS")?;
    rep.check(dropped == 0, || format!("RESULTS dropped {dropped}"));
    let mut seen: HashMap<u64, u32> = HashMap::new();
    for r in &res {
        *seen.entry(r.id).or_insert(0) += 1;
        if let Some(&cpu) = pinned_ids.get(&r.id) {
            if r.cpu != cpu {
                migrated += 1;
            }
        }
    }
    let mut total = 0u64;
    let (mut lost, mut twice) = (Vec::new(), Vec::new());
    for &(f, c) in &accepted {
        for id in f..f + u64::from(c) {
            total += 1;
            match seen.get(&id).copied().unwrap_or(0) {
                0 if !cancelled_ids.contains(&id) => lost.push(id),
                0 => {}
                1 if cancelled_ids.contains(&id) => twice.push(id),
                1 => {}
                _ => twice.push(id),
            }
        }
    }
    rep.check(lost.is_empty(), || {
        format!(
            "{} accepted items never ran and were not cancelled: {:?}",
            lost.len(),
            &lost[..lost.len().min(20)]
        )
    });
    rep.check(twice.is_empty(), || {
        format!(
            "{} items ran twice or ran after being cancelled: {:?}",
            twice.len(),
            &twice[..twice.len().min(20)]
        )
    });
    rep.check(res.len() as u64 + cancelled == total, || {
        format!(
            "accepted {total} != ran {} + cancelled {cancelled}",
            res.len()
        )
    });
    let s = dev.stats().must("STATS")?;
    let want = (total, res.len() as u64, cancelled, 0);
    let got = (s.enqueued, s.executed, s.cancelled, s.pending);
    rep.check(got == want, || {
        format!("STATS (enq, exec, canc, pending) {got:?}, userspace saw {want:?}")
    });
    rep.check(t.get("offline_cycles") == cycles as u64, || {
        format!(
            "{} of {cycles} cycles took their CPU offline",
            t.get("offline_cycles")
        )
    });
    t.add("items_accepted", total);
    t.add("items_ran", res.len() as u64);
    t.add("items_cancelled", cancelled);
    t.add("pinned_ran_elsewhere", migrated);
    for l in t.lines() {
        rep.diag(l);
    }
    Ok(())
}
