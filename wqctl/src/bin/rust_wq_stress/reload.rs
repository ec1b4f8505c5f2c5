//! Scenario `reload`: N cycles of insmod, several files (from several
//! threads) enqueue long-sleeping and long-delayed work on every queue,
//! close while it is pending or running, rmmod (must succeed and remove the
//! module).  With --kmemleak, a kmemleak scan afterwards must show nothing
//! of rust_wq (in make check, kmemleak_clean right after covers it).
//! The module must not be loaded when this starts; it is not loaded after.
//! The module's KUnit suite is not re-run at each insmod (kunit.filter_glob
//! excludes it during the cycles; it ran at the first load).

use crate::common::*;
use std::process::Command;
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
        ins_ms += t0.elapsed().as_millis();
        let t1 = Instant::now();
        while !std::path::Path::new(&opts.path).exists() && t1.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
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
                                        .delay_us(rng.range(10_000_000, RUST_WQ_MAX_DELAY_US)),
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
                            if let Ok(s) = dev.stats() {
                                errs.check(
                                    s.pending == s.enqueued - s.executed - s.cancelled,
                                    || format!("cycle {cycle}: STATS inconsistent {s:?}"),
                                );
                            }
                            std::thread::sleep(Duration::from_millis(
                                rng.range(0, 20 + max_close_wait),
                            ));
                            let tc = Instant::now();
                            drop(dev);
                            slowest = slowest.max(tc.elapsed().as_millis());
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
            None => rep.diag("kmemleak not available: not checked"),
            Some(blocks) => {
                let ours: Vec<&String> = blocks.iter().filter(|b| b.contains("rust_wq")).collect();
                rep.diag(format!(
                    "kmemleak: {} unreferenced objects reported, {} from rust_wq",
                    blocks.len(),
                    ours.len()
                ));
                for b in ours.iter().take(3) {
                    for l in b.lines().take(20) {
                        rep.fail(format!("kmemleak: {l}"));
                    }
                }
                if !ours.is_empty() {
                    rep.fail(format!(
                        "kmemleak: {} objects of rust_wq leaked",
                        ours.len()
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
