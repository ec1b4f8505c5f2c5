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
//! it back with --seed to replay the same choices.  The runner is the
//! library's `wqctl::testing::ktap`.
//! Exit status: 0 if no test failed, 1 otherwise, 2 for a usage error.

mod common;
mod concurrency;
mod failnth;
mod failslab;
mod fuzz;
mod hotplug;
mod perms;
mod reload;

use clap::Parser;
use common::{Opts, Outcome, Report};
use std::process::ExitCode;
use wqctl::testing::ktap::{Named, Run, Selection};

type ScenarioFn = fn(&Opts, &mut Report) -> Result<(), Outcome>;

fn all() -> Vec<Named<ScenarioFn>> {
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

/// Reliability tests of the rust_wq module under fire (as root, in the test
/// VM); prints KTAP version 1.
#[derive(Parser, Debug)]
#[command(name = "rust_wq_stress")]
struct Cli {
    /// Run the long versions of the scenarios (make stress).
    #[arg(long, overrides_with = "short")]
    long: bool,
    /// Run the short versions of the scenarios (make check; the default).
    #[arg(long, overrides_with = "long")]
    short: bool,
    /// Seed of the pseudo-random choices (default: a new one, printed).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// The device file.
    #[arg(long, value_name = "PATH", default_value = wqctl::abi::RUST_WQ_DEVICE)]
    device: String,
    /// The module's .ko for `reload` and `failnth_insmod` (default: $RUST_WQ_KO).
    #[arg(long, value_name = "PATH")]
    ko: Option<String>,
    /// Scan for leaks with kmemleak after `reload`.
    #[arg(long)]
    kmemleak: bool,
    #[command(flatten)]
    selection: Selection,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let opts = Opts {
        long: cli.long,
        seed: cli.seed.unwrap_or_else(common::time_seed),
        path: cli.device,
        ko: cli.ko.or_else(|| std::env::var("RUST_WQ_KO").ok()),
        kmemleak: cli.kmemleak,
    };
    let all = all();
    // Without names: all but those that need the module unloaded.
    let by_default = |n: &str| n != "reload" && n != "failnth_insmod";
    let selected = match cli.selection.resolve(&all, by_default) {
        Ok(Some(s)) => s,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rust_wq_stress: {e}");
            return ExitCode::from(2);
        }
    };
    let run = Run::start(selected.len());
    common::diag(&format!(
        "rust_wq_stress: {} run, seed {} (replay: --seed {}), device {}",
        if opts.long { "long" } else { "short" },
        opts.seed,
        opts.seed,
        opts.path
    ));
    run.tests(&selected, |scenario, rep| scenario(&opts, rep))
        .exit_code()
}
