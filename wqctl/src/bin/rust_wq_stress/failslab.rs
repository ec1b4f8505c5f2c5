//! Scenario `failslab`: ENQUEUE, FLUSH, CANCEL (by id, all, queue),
//! MOD_DELAY and STATS while failslab makes this thread's slab allocations
//! fail at random (task-filter=Y plus /proc/thread-self/make-it-fail, so only
//! the allocations made in this thread's system calls fail, not the work
//! items' or other tasks').
//!
//! Checked: each call succeeds or fails with an errno the header gives it
//! (ENQUEUE, FLUSH: ENOMEM; MOD_DELAY: ENOENT or ENOMEM; CANCEL by id:
//! ENOENT only, CANCEL ALL/QUEUE and STATS never fail: they allocate nothing
//! and the header gives CANCEL no ENOMEM, as failnth also requires; the
//! arguments are valid, so EFAULT never is); at least one ENQUEUE failed with
//! ENOMEM; afterwards (failslab off)
//! every id of a successful ENQUEUE ran exactly once or was cancelled (a
//! CANCEL that failed cancelled nothing; a MOD_DELAY that failed with ENOMEM
//! left its item cancelled and counted as cancelled), no id of a failed
//! ENQUEUE ran, STATS agrees, and the module is fully usable.  Leaks:
//! kmemleak_clean at the end.

use crate::common::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;
use wqctl::abi::*;
use wqctl::{Device, EnqueueArgs, Errno, Target};

const DIR: &str = "/sys/kernel/debug/failslab";

/// Saves the failslab settings and restores them on drop.
struct Settings(Vec<(String, String)>);

impl Settings {
    fn save() -> Option<Self> {
        let mut v = Vec::new();
        for k in [
            "probability",
            "interval",
            "times",
            "space",
            "verbose",
            "task-filter",
            "ignore-gfp-wait",
        ] {
            let p = format!("{DIR}/{k}");
            v.push((
                p.clone(),
                std::fs::read_to_string(&p).ok()?.trim().to_string(),
            ));
        }
        Some(Settings(v))
    }
}

impl Drop for Settings {
    fn drop(&mut self) {
        // probability first, so nothing fails while the rest is restored.
        let _ = std::fs::write(format!("{DIR}/probability"), "0");
        for (p, v) in self.0.iter().rev() {
            let _ = std::fs::write(p, v);
        }
    }
}

fn set(k: &str, v: &str) -> Result<(), Outcome> {
    std::fs::write(format!("{DIR}/{k}"), v)
        .map_err(|e| Outcome::Fail(vec![format!("write {v} to {DIR}/{k}: {e}")]))
}

#[derive(Clone, Copy)]
enum Op {
    Enqueue { first: u64, count: u32, err: i32 },
    Cancel { id: u64, n: u64, err: i32 },
    Stats { err: i32 },
    Flush { err: i32 },
    CancelMany { n: u64, err: i32 },
    ModDelay { id: u64, err: i32 },
}

pub fn run(opts: &Opts, rep: &mut Report) -> Result<(), Outcome> {
    mount_debugfs();
    if !std::path::Path::new(DIR).exists() {
        return unavailable(
            "failslab",
            format!("{DIR} missing (CONFIG_FAILSLAB / FAULT_INJECTION_DEBUG_FS)"),
        );
    }
    let rounds = opts.pick(3usize, 30);
    let per_round = opts.pick(600usize, 1000);
    let prob = 10;
    let mut rng = Rng::new(opts.seed_for("failslab", 0));
    let dev = opts.open()?;
    let saved =
        Settings::save().ok_or_else(|| Outcome::Fail(vec![format!("cannot read {DIR}")]))?;
    set("probability", "0")?;
    set("interval", "1")?;
    set("times", "-1")?;
    set("space", "0")?;
    set("verbose", "0")?;
    set("task-filter", "Y")?;
    set("ignore-gfp-wait", "N")?;
    rep.diag(format!(
        "seed {}, {rounds} rounds x {per_round} calls, probability {prob}% per slab allocation of this thread",
        opts.seed
    ));

    // RUST_WQ_FAILSLAB_OPS=enqueue|cancel|stats|flush|mod_delay: only that
    // command (to narrow a failure down); default a mix, mostly ENQUEUE.
    // Kinds: ENQUEUE, CANCEL id, STATS, FLUSH, CANCEL ALL/QUEUE, MOD_DELAY.
    let weights: [u64; 6] = match std::env::var("RUST_WQ_FAILSLAB_OPS").as_deref() {
        Ok("enqueue") => [1, 0, 0, 0, 0, 0],
        Ok("cancel") => [1, 10, 0, 0, 10, 0],
        Ok("stats") => [0, 0, 1, 0, 0, 0],
        Ok("flush") => [1, 0, 0, 2, 0, 0],
        Ok("mod_delay") => [1, 0, 0, 0, 0, 2],
        _ => [66, 5, 5, 8, 6, 10],
    };
    let mut ops: Vec<Op> = Vec::with_capacity(rounds * per_round);
    let mut plan: Vec<(u32, u32, u64, u64, u8, u64)> = Vec::with_capacity(per_round);
    let t0 = Instant::now();
    let mut fail_file = std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/thread-self/make-it-fail")
        .map_err(|e| Outcome::Fail(vec![format!("open /proc/thread-self/make-it-fail: {e}")]))?;
    let mut buf = [0u8; 1];
    let mut res: Vec<RustWqResult> = Vec::new();
    let mut dropped = 0u64;
    let mut last_ok = 0u64;
    for round in 0..rounds {
        // Everything this thread needs is allocated and touched beforehand:
        // with make-it-fail set, any slab allocation of its system calls
        // (page faults included) may fail.
        plan.clear();
        for _ in 0..per_round {
            let q = rng.below(u64::from(RUST_WQ_Q_COUNT)) as u32;
            let count = rng.range(1, 8) as u32;
            let delay = if rng.pct(30) {
                rng.range(1_000, 50_000)
            } else {
                0
            };
            let kind = rng.weighted(&weights) as u8;
            plan.push((q, count, delay, rng.below(200), kind, rng.u64()));
        }
        let start_len = ops.len();
        // Warm-up (make-it-fail 0) of the very code path, then set 1.
        let _ = dev.stats();
        let _ = dev.cancel(Target::Id(u64::MAX >> 1));
        std::fs::write(format!("{DIR}/probability"), prob.to_string())
            .map_err(|e| Outcome::Fail(vec![format!("probability: {e}")]))?;
        let _ = fail_file.write(b"1");
        for &(q, count, delay, sleep, kind, x) in &plan {
            let op = match kind {
                0 => {
                    let a = EnqueueArgs::new(q, count)
                        .delay_us(delay)
                        .sleep_us(sleep)
                        .tag(round as u64);
                    match dev.enqueue(a) {
                        Ok(first) => {
                            last_ok = first;
                            Op::Enqueue {
                                first,
                                count,
                                err: 0,
                            }
                        }
                        Err(Errno(e)) => Op::Enqueue {
                            first: 0,
                            count,
                            err: e,
                        },
                    }
                }
                1 => match dev.cancel(Target::Id(last_ok)) {
                    Ok(n) => Op::Cancel {
                        id: last_ok,
                        n,
                        err: 0,
                    },
                    Err(Errno(e)) => Op::Cancel {
                        id: last_ok,
                        n: 0,
                        err: e,
                    },
                },
                2 => match dev.stats() {
                    Ok(_) => Op::Stats { err: 0 },
                    Err(Errno(e)) => Op::Stats { err: e },
                },
                3 => {
                    let t = match x % 3 {
                        0 => Target::All,
                        1 => Target::Queue(q),
                        _ => Target::Id(last_ok),
                    };
                    match dev.flush(t) {
                        Ok(_) => Op::Flush { err: 0 },
                        Err(Errno(e)) => Op::Flush { err: e },
                    }
                }
                4 => {
                    let t = if x % 2 == 0 {
                        Target::All
                    } else {
                        Target::Queue(q)
                    };
                    match dev.cancel(t) {
                        Ok(n) => Op::CancelMany { n, err: 0 },
                        Err(Errno(e)) => Op::CancelMany { n: 0, err: e },
                    }
                }
                _ => {
                    let id = last_ok + (x >> 8) % 4;
                    match dev.mod_delay(id, (x & 0xff) * 100) {
                        Ok(()) => Op::ModDelay { id, err: 0 },
                        Err(Errno(e)) => Op::ModDelay { id, err: e },
                    }
                }
            };
            if ops.len() < ops.capacity() {
                ops.push(op);
            }
        }
        // Off again: retry, the write itself may be refused.
        let mut off = false;
        for _ in 0..1000 {
            if let Ok(1) = fail_file.write(b"0") {
                off = true;
                break;
            }
        }
        let _ = std::fs::write(format!("{DIR}/probability"), "0");
        let _ = &mut buf;
        if !off {
            rep.fail("could not clear make-it-fail");
        }
        let _ = start_len;
        // Failslab off: let this round's items run and collect their results
        // (at most max_results are kept per file).
        dev.flush(Target::All)
            .must("FLUSH ALL after a failslab round")?;
        let (r, d) = dev.drain_results().must("RESULTS after a failslab round")?;
        res.extend(r);
        dropped += d;
    }
    drop(fail_file);
    drop(saved);
    let fail_secs = t0.elapsed().as_secs_f64();

    // Tally and check the errnos.
    let mut t = Tally::default();
    let mut enq_ok: BTreeMap<u64, u32> = BTreeMap::new();
    let mut enq_items = 0u64;
    let mut cancelled = 0u64;
    let mut cancelled_ids = Vec::new();
    let name = |err: i32| {
        if err == 0 {
            "ok".to_string()
        } else {
            Errno(err).name()
        }
    };
    for op in &ops {
        match *op {
            Op::Enqueue { first, count, err } => {
                t.add(
                    format!(
                        "ENQUEUE:{}",
                        if err == 0 {
                            "ok".into()
                        } else {
                            Errno(err).name()
                        }
                    ),
                    1,
                );
                if err == 0 {
                    enq_ok.insert(first, count);
                    enq_items += u64::from(count);
                } else if err != libc::ENOMEM {
                    rep.fail(format!(
                        "ENQUEUE under failslab failed with {}, expected ENOMEM",
                        Errno(err)
                    ));
                }
            }
            Op::Cancel { id, n, err } => {
                t.add(
                    format!(
                        "CANCEL:{}",
                        if err == 0 {
                            "ok".into()
                        } else {
                            Errno(err).name()
                        }
                    ),
                    1,
                );
                if err == 0 {
                    cancelled += n;
                    cancelled_ids.push(id);
                } else if err != libc::ENOENT {
                    rep.fail(format!(
                        "CANCEL id {id} under failslab failed with {} (the header gives CANCEL no ENOMEM)",
                        Errno(err)
                    ));
                }
            }
            Op::Stats { err } => {
                t.add(
                    format!(
                        "STATS:{}",
                        if err == 0 {
                            "ok".into()
                        } else {
                            Errno(err).name()
                        }
                    ),
                    1,
                );
                if err != 0 {
                    rep.fail(format!(
                        "STATS under failslab failed with {} (it allocates nothing)",
                        Errno(err)
                    ));
                }
            }
            Op::Flush { err } => {
                t.add(format!("FLUSH:{}", name(err)), 1);
                if err != 0 && err != libc::ENOMEM {
                    rep.fail(format!("FLUSH under failslab failed with {}", Errno(err)));
                }
            }
            Op::CancelMany { n, err } => {
                t.add(format!("CANCEL_MANY:{}", name(err)), 1);
                if err == 0 {
                    cancelled += n;
                } else {
                    rep.fail(format!(
                        "CANCEL ALL/QUEUE under failslab failed with {} (it allocates nothing; the header gives CANCEL no ENOMEM)",
                        Errno(err)
                    ));
                }
            }
            Op::ModDelay { id, err } => {
                t.add(format!("MOD_DELAY:{}", name(err)), 1);
                if err == libc::ENOMEM {
                    // The header: it stays cancelled and is counted as cancelled.
                    cancelled += 1;
                    cancelled_ids.push(id);
                } else if err != 0 && err != libc::ENOENT {
                    rep.fail(format!(
                        "MOD_DELAY id {id} under failslab failed with {}",
                        Errno(err)
                    ));
                }
            }
        }
    }
    let enomem = t.get("ENQUEUE:ENOMEM");
    rep.diag(format!(
        "{} calls with failslab on in {fail_secs:.1} s",
        ops.len()
    ));
    for l in t.lines() {
        rep.diag(format!("errnos: {l}"));
    }
    rep.check(enomem > 0 || weights[0] < 2, || {
        "no ENQUEUE failed with ENOMEM: failslab did not reach the module (the test proves nothing)"
            .into()
    });
    rep.check(t.get("ENQUEUE:ok") > 0 || weights[0] == 0, || {
        "no ENQUEUE succeeded under failslab".into()
    });

    // Failslab off: everything accepted runs once or was cancelled.
    dev.flush(Target::All).must("FLUSH ALL after failslab")?;
    let (r, d) = dev.drain_results().must("RESULTS after failslab")?;
    res.extend(r);
    dropped += d;
    rep.check(dropped == 0, || format!("RESULTS dropped {dropped}"));
    let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
    for r in &res {
        *seen.entry(r.id).or_insert(0) += 1;
    }
    let mut bad = Vec::new();
    for (&id, &n) in &seen {
        let owner = enq_ok
            .range(..=id)
            .next_back()
            .filter(|(&f, &c)| id < f + u64::from(c));
        if owner.is_none() {
            bad.push(format!("id {id} ran but no successful ENQUEUE returned it"));
        }
        if n > 1 {
            bad.push(format!("id {id} ran {n} times"));
        }
        if cancelled_ids.contains(&id) {
            bad.push(format!("id {id} was cancelled and ran"));
        }
    }
    rep.check(enq_items == res.len() as u64 + cancelled, || {
        format!(
            "accepted items {enq_items} != ran {} + cancelled {cancelled}",
            res.len()
        )
    });
    for b in bad.iter().take(10) {
        rep.fail(b.clone());
    }
    match dev.stats() {
        Ok(s) => {
            let want = (enq_items, res.len() as u64, cancelled, 0);
            let got = (s.enqueued, s.executed, s.cancelled, s.pending);
            rep.check(got == want, || {
                format!("STATS (enq, exec, canc, pending) {got:?}, userspace saw {want:?}")
            });
        }
        Err(e) => rep.fail(format!("STATS: {e}")),
    }
    rep.diag(format!(
        "{} items accepted, {} ran, {cancelled} cancelled, {enomem} ENQUEUE ENOMEM",
        enq_items,
        res.len()
    ));

    // Fully usable afterwards, on this file and a fresh one.
    for d in [&dev, &Device::open(&opts.path).must("open")?] {
        d.reset().must("RESET")?;
        let mut firsts = Vec::new();
        for q in 0..RUST_WQ_Q_COUNT {
            firsts.push(
                d.enqueue(EnqueueArgs::new(q, 4))
                    .must("ENQUEUE after failslab")?,
            );
        }
        d.flush(Target::All).must("FLUSH")?;
        let (res, _) = d.drain_results().must("RESULTS")?;
        rep.check(res.len() == 20, || {
            format!("after failslab: 20 items enqueued, {} results", res.len())
        });
        let s = d.stats().must("STATS")?;
        rep.check(
            (s.enqueued, s.executed, s.cancelled, s.pending) == (20, 20, 0, 0),
            || format!("after failslab: STATS {s:?}, expected 20 enqueued and executed"),
        );
    }
    Ok(())
}
