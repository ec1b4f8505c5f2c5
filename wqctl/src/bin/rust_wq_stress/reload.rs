//! Scenario `reload`: N cycles of insmod, several files (from several
//! threads) enqueue long-sleeping and delayed work on every queue, close
//! while it is pending or running, rmmod (must succeed and remove the
//! module).  Checked at each cycle: the first item run after insmod has seq 1
//! (the module-wide sequence starts at 1); STATS works and is consistent; a
//! close returns within the sleep of what was running plus a margin, below
//! the delays of what was pending (it cancels those).  The margin scales with
//! the machine's speed at the time: it is at least twice that cycle's insmod,
//! but never more than 3/4 of the shortest pending delay; in the short run the
//! close must also end before that delay, counted from before its first item
//! was armed, has passed (so it cannot have waited for one).  Delays are at
//! most MAX_DELAY_US (3 s), so that no timer of a cycle can outlive the run
//! by more than that (scripts/guest.sh scans the kernel log after it).  With
//! --kmemleak, the objects kmemleak reports after the cycles (any, not only
//! those naming rust_wq: after rmmod the module's symbols may not resolve)
//! fail the scenario (in make check, kmemleak_clean right after covers it).
//! The module must not be loaded when this starts; it is not loaded after.
//! The module's KUnit suite is not re-run at each insmod (kunit.filter_glob
//! excludes it during the cycles; it ran at the first load).

use crate::common::*;
use std::process::Command;

/// The longest delay armed by a cycle (scripts/guest.sh relies on it).
const MAX_DELAY_US: u64 = 3_000_000;
/// The shortest delay of the items that are pending at close.
const MIN_LONG_DELAY_US: u64 = 2_000_000;
use std::time::{Duration, Instant};
use wqctl::abi::*;
use wqctl::{Device, EnqueueArgs};

const FILTER: &str = "/sys/module/kunit/parameters/filter_glob";

struct FilterGuard(Option<String>);

impl Drop for FilterGuard {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            // "(null)" (no filter) cannot be written back: "*.*" is the
            // same filter for module loads.
            let v = if old == "(null)" || old.is_empty() {
                "*.*"
            } else {
                old.as_str()
            };
            let _ = std::fs::write(FILTER, v);
        }
    }
}

fn loaded() -> bool {
    std::path::Path::new("/sys/module/rust_wq").exists()
}

fn sh(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {}: {} {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The module's WQ_SYSFS queues still registered (they must go with rmmod).
fn leftover_queues() -> String {
    std::fs::read_dir("/sys/bus/workqueue/devices")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("rust_wq"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

pub fn run(opts: &Opts, rep: &mut Report) -> Result<(), Outcome> {
    let cycles = opts.pick(10usize, 50);
    let Some(ko) = opts.ko.clone() else {
        return skip("no module file (RUST_WQ_KO or --ko)");
    };
    if loaded() {
        return fail("rust_wq is loaded: the reload scenario must start with it unloaded");
    }
    let left = leftover_queues();
    if !left.is_empty() {
        return fail(format!(
            "rust_wq is not loaded but its workqueues are still registered ({left}): an earlier rmmod left the module's queues alive (leaked reference); insmod cannot succeed"
        ));
    }
    let old = std::fs::read_to_string(FILTER)
        .ok()
        .map(|s| s.trim().to_string());
    let _guard = FilterGuard(old.clone());
    if old.is_some() {
        let _ = std::fs::write(FILTER, "rust_wq_reload_skips_kunit");
    }
    let threads = 3usize;
    let (max_sleep, max_close_wait) = opts.pick((200_000u64, 0u64), (1_000_000, 100));
    // A close waits for the running items (up to max_sleep each, on several
    // queues at once), never for the delayed ones (>= 2 s).  On a loaded
    // host everything slows down: the limit is also at least twice the time
    // the cycle's insmod took.
    let base_close_limit_ms = (max_sleep / 1000 + 800) as u128;
    if opts.kmemleak {
        // Forget what was reported before: only leaks of the cycles count.
        mount_debugfs();
        let _ = std::fs::write(KMEMLEAK, "clear");
    }
    rep.diag(format!(
        "seed {}, {cycles} cycles, {threads} threads x 2 files each",
        opts.seed
    ));
    let mut t = Tally::default();
    let (mut ins_ms, mut rm_ms, mut close_max) = (0u128, 0u128, 0u128);
    for cycle in 0..cycles {
        let t0 = Instant::now();
        sh("insmod", &[&ko]).map_err(|e| {
            let mut v = vec![format!("cycle {cycle}: {e}")];
            let left = leftover_queues();
            if !left.is_empty() {
                v.push(format!(
                    "workqueues of an earlier instance are still registered ({left}): an earlier rmmod left the module's queues alive (leaked reference)"
                ));
            }
            Outcome::Fail(v)
        })?;
        let this_insmod = t0.elapsed().as_millis();
        ins_ms += this_insmod;
        // Never as long as the shortest pending delay: a close that waited
        // for the pending items must fail whatever the machine's speed.
        let close_limit_ms = base_close_limit_ms
            .max(2 * this_insmod)
            .min(u128::from(MIN_LONG_DELAY_US / 1000) * 3 / 4);
        let t1 = Instant::now();
        while !std::path::Path::new(&opts.path).exists() && t1.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        // The module-wide sequence starts at 1 with each load.
        match first_seq(&opts.path) {
            Ok(1) => {}
            Ok(seq) => rep.fail(format!(
                "cycle {cycle}: the first item run after insmod has seq {seq}, expected 1"
            )),
            Err(e) => rep.fail(format!("cycle {cycle}: {e}")),
        }
        let errs = Errs::new();
        let closes: Vec<(u64, u128)> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads)
                .map(|i| {
                    let errs = &errs;
                    let seed = opts.seed_for("reload", (cycle * threads + i) as u64);
                    s.spawn(move || {
                        let mut rng = Rng::new(seed);
                        let mut items = 0u64;
                        let mut slowest = 0u128;
                        for _ in 0..2 {
                            let dev = match Device::open(&opts.path) {
                                Ok(d) => d,
                                Err(e) => {
                                    errs.fail(format!("cycle {cycle}: open: {e}"));
                                    return (items, slowest);
                                }
                            };
                            let cpus = online_cpus();
                            // Before the first long delay is armed: no pending
                            // item's timer can fire before t_long + MIN_LONG_DELAY_US.
                            let t_long = Instant::now();
                            for q in 0..RUST_WQ_Q_COUNT {
                                let cpu = if rng.pct(50) {
                                    RUST_WQ_CPU_ANY
                                } else {
                                    rng.pick(&cpus)
                                };
                                let batches = [
                                    EnqueueArgs::new(q, 2)
                                        .cpu(cpu)
                                        .sleep_us(rng.range(max_sleep / 4, max_sleep)),
                                    EnqueueArgs::new(q, 8)
                                        .cpu(cpu)
                                        .delay_us(rng.range(MIN_LONG_DELAY_US, MAX_DELAY_US)),
                                    EnqueueArgs::new(q, 4)
                                        .delay_us(rng.range(1_000, 50_000))
                                        .sleep_us(rng.below(5_000)),
                                ];
                                for a in batches {
                                    match dev.enqueue(a) {
                                        Ok(_) => items += u64::from(a.count),
                                        Err(e) => {
                                            errs.fail(format!("cycle {cycle}: ENQUEUE {a:?}: {e}"))
                                        }
                                    }
                                }
                            }
                            match dev.stats() {
                                Ok(s) => errs.check(
                                    s.pending
                                        == s.enqueued.wrapping_sub(s.executed).wrapping_sub(s.cancelled),
                                    || format!("cycle {cycle}: STATS inconsistent {s:?}"),
                                ),
                                Err(e) => errs.check(false, || format!("cycle {cycle}: STATS: {e}")),
                            };
                            std::thread::sleep(Duration::from_millis(
                                rng.range(0, 20 + max_close_wait),
                            ));
                            let tc = Instant::now();
                            drop(dev);
                            let ms = tc.elapsed().as_millis();
                            errs.check(ms < close_limit_ms, || {
                                format!("cycle {cycle}: close took {ms} ms (limit {close_limit_ms} ms: the running items sleep at most {} ms, the pending ones must be cancelled, not waited for)", max_sleep / 1000)
                            });
                            slowest = slowest.max(ms);
                            // The decisive check (make check's short run, where
                            // the running items sleep at most 200 ms): the close
                            // ended before any pending timer could have fired, so
                            // it cannot have waited for one.
                            let since = t_long.elapsed().as_millis();
                            errs.check(opts.long || since < u128::from(MIN_LONG_DELAY_US / 1000), || {
                                format!("cycle {cycle}: close ended {since} ms after the first {} ms delay was armed: it waited for pending items", MIN_LONG_DELAY_US / 1000)
                            });
                        }
                        (items, slowest)
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("reload thread panicked"))
                .collect()
        });
        for (n, c) in closes {
            t.add("items", n);
            close_max = close_max.max(c);
        }
        errs.to_report(rep);
        let t2 = Instant::now();
        if let Err(e) = sh("rmmod", &["rust_wq"]) {
            rep.fail(format!("cycle {cycle}: {e}"));
            return Ok(());
        }
        rm_ms += t2.elapsed().as_millis();
        if loaded() {
            rep.fail(format!(
                "cycle {cycle}: /sys/module/rust_wq still exists after rmmod"
            ));
            return Ok(());
        }
        let left = leftover_queues();
        if !left.is_empty() {
            rep.fail(format!("cycle {cycle}: rmmod succeeded but the module's workqueues are still registered: {left}"));
            return Ok(());
        }
        t.add("cycles", 1);
    }
    drop(_guard);
    let n = cycles as u128;
    rep.diag(format!(
        "{} cycles, {} items enqueued (then closed while pending/running); insmod avg {} ms, rmmod avg {} ms, slowest close {close_max} ms",
        t.get("cycles"),
        t.get("items"),
        ins_ms / n,
        rm_ms / n
    ));
    if opts.kmemleak {
        match kmemleak_report() {
            None if wqctl::testing::required("kmemleak") => {
                rep.fail("kmemleak not available, but the kernel is configured with it")
            }
            None => rep.diag("kmemleak not available: not checked"),
            Some(blocks) => {
                // Every object counts: after rmmod the module's frames in a
                // backtrace may no longer resolve to rust_wq symbols.
                rep.diag(format!(
                    "kmemleak: {} unreferenced objects reported after the cycles",
                    blocks.len(),
                ));
                for b in blocks.iter().take(3) {
                    for l in b.lines().take(20) {
                        rep.fail(format!("kmemleak: {l}"));
                    }
                }
                if !blocks.is_empty() {
                    rep.fail(format!(
                        "kmemleak: {} objects leaked during the reload cycles",
                        blocks.len()
                    ));
                }
            }
        }
    } else {
        rep.diag(
            "kmemleak: checked by kmemleak_clean after this test (use --kmemleak to scan here)",
        );
    }
    Ok(())
}

/// Runs one item in a fresh file of the just-loaded module; returns its seq.
fn first_seq(path: &str) -> Result<u64, String> {
    let dev = Device::open(path).map_err(|e| format!("open: {e}"))?;
    let first = dev
        .enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1))
        .map_err(|e| format!("ENQUEUE: {e}"))?;
    dev.flush(wqctl::Target::All)
        .map_err(|e| format!("FLUSH: {e}"))?;
    let (res, _) = dev.drain_results().map_err(|e| format!("RESULTS: {e}"))?;
    match res.iter().find(|r| r.id == first) {
        Some(r) => Ok(r.seq),
        None => Err(format!("no result for id {first} after FLUSH")),
    }
}
