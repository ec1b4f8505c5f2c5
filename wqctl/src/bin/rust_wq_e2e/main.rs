//! `rust_wq_e2e`: end-to-end tests of the rust_wq module, run as root inside
//! the test VM with the module loaded.  Output is KTAP version 1.
//!
//! Usage: rust_wq_e2e [--device PATH] [--list] [TEST_NAME...]
//!
//! With test names, only those tests run (numbered 1..N in that subset).
//! Environment: RUST_WQ_KO (path of rust_wq.ko) enables `rmmod_refused_while_open`.
//! Exit status: 0 if no test failed, 1 otherwise (or when the device cannot be used).

mod hostile;
mod irq;
mod poll;
mod session;
mod tests;

use clap::Parser;
use std::process::ExitCode;
use wqctl::abi::*;
use wqctl::testing::ktap::{Named, Run, Selection};
use wqctl::Device;

pub use wqctl::testing::{
    diag, fail, panic_message, skip, unavailable, Checker, Must, Outcome, TestResult,
};

/// Shared, read-only facts gathered before the tests run.
pub struct Ctx {
    pub path: String,
    pub info: RustWqInfo,
    /// Online CPUs at start (from INFO; only 0..63 are representable).
    pub online: Vec<u32>,
}

impl Ctx {
    /// Opens a fresh file of the device (a test's own context).
    pub fn open(&self) -> Result<Device, Outcome> {
        wqctl::testing::open(&self.path)
    }
}

type TestFn = fn(&Ctx) -> TestResult;

/// End-to-end tests of the rust_wq module (as root, module loaded); prints
/// KTAP version 1.  Set RUST_WQ_KO=/path/rust_wq.ko to enable
/// rmmod_refused_while_open.  Exit status: 0 if no test failed, else 1.
#[derive(Parser, Debug)]
#[command(name = "rust_wq_e2e")]
struct Cli {
    /// The device file.
    #[arg(long, value_name = "PATH", default_value = RUST_WQ_DEVICE)]
    device: String,
    #[command(flatten)]
    selection: Selection,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut all: Vec<Named<TestFn>> = tests::all();
    all.extend(poll::all());
    all.extend(session::all());
    all.extend(hostile::all());
    let selected = match cli.selection.resolve(&all, |_| true) {
        Ok(Some(s)) => s,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rust_wq_e2e: {e}");
            return ExitCode::from(2);
        }
    };
    let run = Run::start(selected.len());
    let path = cli.device;
    let dev = match Device::open(&path) {
        Ok(d) => d,
        Err(e) => {
            return run.bail_out(&format!(
                "cannot open {path}: {e} (is rust_wq loaded? are we root?)"
            ))
        }
    };
    let info = match dev.info() {
        Ok(i) => i,
        Err(e) => return run.bail_out(&format!("RUST_WQ_IOC_INFO on {path} failed: {e}")),
    };
    drop(dev);
    let online = wqctl::parse::cpus_in_mask(info.online_cpus, info.nr_cpu_ids);
    diag(&format!(
        "rust_wq e2e: device {path}, abi_version {}, nr_cpu_ids {}, online cpus {:?}",
        info.abi_version, info.nr_cpu_ids, online
    ));
    let ctx = Ctx { path, info, online };
    run.tests(&selected, |test, _| test(&ctx))
}
