//! Scenario `fuzz`: random ioctls from several threads.
//!
//! Commands: random 32-bit values and random other magics (minus the generic
//! VFS ioctl types, which act on the file rather than the driver), magic 0xBC
//! with random nr/dir/size, and the exact encodings with random or mutated
//! structures.  Pointers: valid, unaligned, NULL, unmapped (munmap'd),
//! read-only, kernel-space, crossing into an unmapped page, random.
//! Every call must return 0 or fail with an errno within the watchdog limit;
//! for magic 0xBC the outcome must be the documented one: unknown nr: ENOTTY;
//! known nr, wrong size/dir: EINVAL; exact encoding with a NULL, unmapped,
//! kernel or small-integer pointer, or a struct crossing into an unmapped
//! page: EFAULT; with a read-only struct a command that writes back never
//! succeeds; with a valid pointer, a model of the header's checks (`expect`)
//! says which outcomes are allowed: EINVAL exactly when a field is invalid,
//! otherwise success or the errnos the command's state can give (EBUSY for
//! ENQUEUE, ENOENT for CANCEL by id and MOD_DELAY, EFAULT for a RESULTS
//! buffer that may be too small or invalid, which then returns count 0).
//! At the end every command must have both succeeded and failed at least once
//! (else the fuzzer did not reach it).
//! Valid-looking ENQUEUEs set RUST_WQ_ENQ_F_FROM_IRQ or _FROM_SOFTIRQ 30% of the time.
//! Valid-looking ENQUEUE sleeps and BENCH item counts are bounded so that the
//! run stays short; files are reset, cancelled and reopened often.

mod fields;
mod model;
mod pointers;
mod worker;

use crate::common::*;
use fields::{Cpus, NR_BENCH, NR_RESET};
use std::sync::Arc;
use std::time::{Duration, Instant};
use worker::{describe, nr_name, worker, Worker};
use wqctl::abi::*;
use wqctl::{Errno, Target};

/// nr -> (dir, size) of every command, BENCH included when the module has it.
type Known = Vec<(u32, u32, usize)>;

pub fn run(opts: &Opts, rep: &mut Report) -> Result<(), Outcome> {
    let threads = 4usize;
    let total: u64 = opts.pick(10_000, 100_000);
    let per = total / threads as u64;
    let probe = opts.open()?;
    let info = probe.info().must("INFO")?;
    let mut known: Known = ALL_IOCTLS
        .iter()
        .map(|&(_, c)| (ioc_nr(c), ioc_dir(c), ioc_size(c)))
        .filter(|k| k.0 != NR_BENCH)
        .collect();
    // Does the module know BENCH?  (A wrong version gives EINVAL if so.)
    let mut zero = RustWqBench::default();
    if probe.ioctl_with(RUST_WQ_IOC_BENCH, &mut zero) == Err(Errno(libc::EINVAL)) {
        known.push((
            NR_BENCH,
            ioc_dir(RUST_WQ_IOC_BENCH),
            ioc_size(RUST_WQ_IOC_BENCH),
        ));
    }
    rep.diag(format!(
        "seed {} (per-thread seeds derived from it), {threads} threads x {per} calls, commands known: {}",
        opts.seed,
        known.len()
    ));
    let shared = Arc::new(opts.open()?);
    let errs = Errs::new();
    let wd = Watchdog::new(threads);
    let wdh = wd.spawn("fuzz", Duration::from_secs(60), describe);
    let t0 = Instant::now();
    let results: Vec<Worker> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|i| {
                let (known, shared, errs, wd) = (&known, &shared, &errs, &wd);
                // The CPUs offline now (never online, in make check's second boot) stay so:
                // nothing takes CPUs down or brings them up during the fuzzing.
                let cpus = Cpus {
                    ids: info.nr_cpu_ids,
                    online: info.online_cpus,
                };
                s.spawn(move || worker(i, opts, per, known, shared, cpus, errs, wd))
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("fuzz worker panicked"))
            .collect()
    });
    wd.stop();
    let _ = wdh.join();
    let secs = t0.elapsed().as_secs_f64();
    let mut tally = Tally::default();
    let (mut calls, mut reopen, mut resets) = (0, 0, 0);
    for w in &results {
        tally.merge(&w.tally);
        calls += w.calls;
        reopen += w.reopen;
        resets += w.resets;
    }
    // Still usable afterwards.
    let _ = shared.reset();
    drop(shared);
    let dev = opts.open()?;
    let first = dev
        .enqueue(wqctl::EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 4))
        .must("ENQUEUE after fuzzing")?;
    dev.flush(Target::All).must("FLUSH after fuzzing")?;
    let (res, _) = dev.drain_results().must("RESULTS after fuzzing")?;
    let mut ids: Vec<u64> = res.iter().map(|r| r.id).collect();
    ids.sort();
    rep.check(ids == (first..first + 4).collect::<Vec<_>>(), || {
        format!("after fuzzing: 4 items enqueued (ids from {first}), results {ids:?}")
    });
    let bad = errs.count();
    errs.to_report(rep);
    rep.diag(format!(
        "{calls} calls in {secs:.1} s ({:.0}/s), {reopen} reopens, {resets} resets, {bad} violations",
        calls as f64 / secs
    ));
    let mut by_errno = Tally::default();
    for (k, v) in &tally.0 {
        by_errno.add(k.rsplit(':').next().unwrap_or("?"), *v);
    }
    rep.diag(format!("errnos: {}", by_errno.lines().join(" ")));
    for l in tally.lines() {
        rep.diag(format!("by command: {l}"));
    }
    // Each command must have both succeeded and been refused (else the
    // fuzzer never reached it, or never reached its checks).
    for &(nr, _, _) in &known {
        let n = nr_name(nr).unwrap_or("BENCH");
        let ok = tally.get(&format!("{n}:ok"));
        let refused: u64 = tally
            .0
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{n}:")) && !k.ends_with(":ok"))
            .map(|(_, v)| v)
            .sum();
        rep.check(ok > 0 && (refused > 0 || nr == NR_RESET), || {
            format!(
                "{n}: {ok} calls succeeded, {refused} were refused: the fuzzer did not cover it"
            )
        });
    }
    rep.check(
        tally.get("bc_unknown_nr:ENOTTY") > 0
            && tally.0.keys().any(|k| k.ends_with("_badenc:EINVAL")),
        || "no unknown nr (ENOTTY) or wrong encoding (EINVAL) was tried".into(),
    );
    Ok(())
}
