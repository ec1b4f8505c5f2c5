//! `rust_wq_stress`: reliability tests of the rust_wq module under fire, run
//! as root inside the test VM.  Output is KTAP version 1, one test per
//! scenario, each with its counts as diagnostics.
//!
//! Usage: rust_wq_stress [--long] [--seed N] [--device PATH] [--ko PATH]
//!                       [--kmemleak] [--list] [SCENARIO...]
//!
//! Scenarios (default: all but `reload`, which needs the module unloaded):
//!   fuzz         random ioctls (commands, sizes, fields, pointers), 4 threads
//!   concurrency  threads x files mixing every command; exact accounting
//!   failslab     ENQUEUE under failslab (this task only): ENOMEM, no leak
//!   failnth      every call with its 1st, 2nd, ... allocation failing (fail-nth)
//!   failnth_insmod  the same for the module load (module unloaded before)
//!   hotplug      CPU offline/online with work pinned to it
//!   permissions  a non-root user cannot open the device
//!   reload       insmod / load / close / rmmod cycles (module must be unloaded
//!                before; RUST_WQ_KO or --ko gives the .ko), then kmemleak
//!                (with --kmemleak)
//!
//! --long selects the long versions (make stress); the default is the short
//! ones (make check).  The seed of the pseudo-random choices is printed; pass
//! it back with --seed to replay the same choices.
//! Exit status: 0 if no test failed, 1 otherwise.

mod common;
mod concurrency;
mod failnth;
mod failslab;
mod fuzz;
mod hotplug;
mod perms;
mod reload;

use common::{panic_message, Opts, Outcome, Report};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::time::Instant;

type ScenarioFn = fn(&Opts, &mut Report) -> Result<(), Outcome>;

fn all() -> Vec<(&'static str, ScenarioFn)> {
    vec![
        ("permissions", perms::run),
        ("fuzz", fuzz::run),
        ("concurrency", concurrency::run),
        ("failslab", failslab::run),
        ("failnth", failnth::run),
        ("failnth_insmod", failnth::run_insmod),
        ("hotplug", hotplug::run),
        ("reload", reload::run),
    ]
}

fn usage() -> &'static str {
    "usage: rust_wq_stress [--long] [--seed N] [--device PATH] [--ko PATH] [--kmemleak] [--list] [SCENARIO...]"
}

fn main() -> ExitCode {
    let mut opts = Opts {
        long: false,
        seed: common::time_seed(),
        path: wqctl::abi::RUST_WQ_DEVICE.to_string(),
        ko: std::env::var("RUST_WQ_KO").ok(),
        kmemleak: false,
    };
    let mut names = Vec::new();
    let mut list = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |what: &str| -> Option<String> {
            let v = args.next();
            if v.is_none() {
                eprintln!("rust_wq_stress: {what} needs a value\n{}", usage());
            }
            v
        };
        match a.as_str() {
            "--long" => opts.long = true,
            "--short" => opts.long = false,
            "--kmemleak" => opts.kmemleak = true,
            "--list" => list = true,
            "--seed" => match val("--seed").and_then(|s| s.parse().ok()) {
                Some(s) => opts.seed = s,
                None => return ExitCode::from(2),
            },
            "--device" => match val("--device") {
                Some(p) => opts.path = p,
                None => return ExitCode::from(2),
            },
            "--ko" => match val("--ko") {
                Some(p) => opts.ko = Some(p),
                None => return ExitCode::from(2),
            },
            "-h" | "--help" => {
                println!("{}", usage());
                return ExitCode::SUCCESS;
            }
            _ if a.starts_with('-') => {
                eprintln!("rust_wq_stress: unknown option {a}\n{}", usage());
                return ExitCode::from(2);
            }
            _ => names.push(a),
        }
    }
    let all = all();
    if list {
        for (n, _) in &all {
            println!("{n}");
        }
        return ExitCode::SUCCESS;
    }
    for n in &names {
        if !all.iter().any(|(a, _)| a == n) {
            eprintln!("rust_wq_stress: unknown scenario {n:?} (see --list)");
            return ExitCode::from(2);
        }
    }
    let selected: Vec<_> = if names.is_empty() {
        all.into_iter()
            .filter(|(n, _)| *n != "reload" && *n != "failnth_insmod")
            .collect()
    } else {
        names
            .iter()
            .map(|n| *all.iter().find(|(a, _)| a == n).unwrap())
            .collect()
    };

    println!("KTAP version 1");
    println!("1..{}", selected.len());
    common::diag(&format!(
        "rust_wq_stress: {} run, seed {} (replay: --seed {}), device {}",
        if opts.long { "long" } else { "short" },
        opts.seed,
        opts.seed,
        opts.path
    ));
    let mut failed = 0;
    for (i, (name, f)) in selected.iter().enumerate() {
        let n = i + 1;
        let start = Instant::now();
        let mut rep = Report::new(name);
        let r = catch_unwind(AssertUnwindSafe(|| f(&opts, &mut rep))).unwrap_or_else(|p| {
            Err(Outcome::Fail(vec![format!(
                "panicked: {}",
                panic_message(&*p)
            )]))
        });
        let secs = start.elapsed().as_secs_f64();
        let r = match r {
            Ok(()) if !rep.errs.is_empty() => Err(Outcome::Fail(Vec::new())),
            other => other,
        };
        match r {
            Ok(()) => {
                rep.flush_diags();
                common::diag(&format!("{name}: passed in {secs:.1} s"));
                println!("ok {n} {name}");
            }
            Err(Outcome::Skip(why)) => {
                rep.flush_diags();
                println!("ok {n} {name} # SKIP {}", why.replace('\n', " "));
            }
            Err(Outcome::Fail(lines)) => {
                failed += 1;
                rep.errs.extend(lines);
                rep.flush_diags();
                rep.flush_errs();
                common::diag(&format!("{name}: FAILED in {secs:.1} s"));
                println!("not ok {n} {name}");
            }
        }
    }
    common::diag(&format!(
        "Totals: pass:{} fail:{failed}",
        selected.len() - failed
    ));
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
