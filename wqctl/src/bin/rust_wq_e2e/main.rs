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

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use wqctl::abi::*;
use wqctl::{Device, Errno};

pub use wqctl::ktap::{diag, fail, panic_message, skip, unavailable, Must, Outcome, TestResult};

/// Collects several failed expectations of one test.
#[derive(Default)]
pub struct Checker {
    pub errs: Vec<String>,
}

impl Checker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `msg` if `cond` is false; returns `cond`.
    pub fn check(&mut self, cond: bool, msg: impl FnOnce() -> String) -> bool {
        if !cond {
            self.errs.push(msg());
        }
        cond
    }

    /// Records a failure unless `a == b`.
    pub fn eq<V: PartialEq + Debug>(&mut self, what: &str, seen: V, expected: V) -> bool {
        let ok = seen == expected;
        if !ok {
            self.errs
                .push(format!("{what}: expected {expected:?}, seen {seen:?}"));
        }
        ok
    }

    /// Records a failure unless `r` failed with exactly `errno`.
    pub fn errno<T: Debug>(&mut self, what: &str, r: Result<T, Errno>, errno: i32) -> bool {
        match r {
            Err(e) if e.0 == errno => true,
            Err(e) => {
                self.errs
                    .push(format!("{what}: expected {}, got {e}", Errno(errno)));
                false
            }
            Ok(v) => {
                self.errs.push(format!(
                    "{what}: expected {}, got success ({v:?})",
                    Errno(errno)
                ));
                false
            }
        }
    }

    /// Records a failure if `r` failed; returns the value.
    pub fn ok<T>(&mut self, what: &str, r: Result<T, Errno>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.errs.push(format!("{what}: expected success, got {e}"));
                None
            }
        }
    }

    /// Records a failure unless the stats are (enqueued, executed, cancelled, pending)
    /// and nothing was dropped.
    pub fn stats(&mut self, what: &str, dev: &Device, want: (u64, u64, u64, u64)) {
        match dev.stats() {
            Ok(s) => {
                let seen = (s.enqueued, s.executed, s.cancelled, s.pending);
                self.check(seen == want, || {
                    format!(
                        "{what}: stats (enqueued, executed, cancelled, pending): expected {want:?}, seen {seen:?}"
                    )
                });
                self.check(s.results_dropped == 0, || {
                    format!(
                        "{what}: stats.results_dropped: expected 0, seen {}",
                        s.results_dropped
                    )
                });
            }
            Err(e) => self.errs.push(format!("{what}: STATS failed: {e}")),
        }
    }

    pub fn fail(&mut self, msg: impl Into<String>) {
        self.errs.push(msg.into());
    }

    pub fn done(self) -> TestResult {
        if self.errs.is_empty() {
            Ok(())
        } else {
            Err(Outcome::Fail(self.errs))
        }
    }
}

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
        Device::open(&self.path).must(&format!("open {}", self.path))
    }
}

type TestFn = fn(&Ctx) -> TestResult;

fn main() -> ExitCode {
    let mut path = RUST_WQ_DEVICE.to_string();
    let mut filters = Vec::new();
    let mut list = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--device" => match args.next() {
                Some(p) => path = p,
                None => {
                    eprintln!("rust_wq_e2e: --device needs a path");
                    return ExitCode::from(1);
                }
            },
            "--list" => list = true,
            "-h" | "--help" => {
                println!(
                    "usage: rust_wq_e2e [--device PATH] [--list] [TEST_NAME...]\n\
                     Runs the rust_wq end-to-end tests against the loaded module (as root) and\n\
                     prints KTAP version 1.  Set RUST_WQ_KO=/path/rust_wq.ko to enable\n\
                     rmmod_refused_while_open.  Exit status: 0 if no test failed, else 1."
                );
                return ExitCode::SUCCESS;
            }
            _ => filters.push(a),
        }
    }
    let mut all = tests::all();
    all.extend(poll::all());
    all.extend(session::all());
    all.extend(hostile::all());
    if list {
        for (name, _) in &all {
            println!("{name}");
        }
        return ExitCode::SUCCESS;
    }
    let known: BTreeMap<&str, TestFn> = all.iter().copied().collect();
    for f in &filters {
        if !known.contains_key(f.as_str()) {
            eprintln!("rust_wq_e2e: unknown test {f:?} (see --list)");
            return ExitCode::from(1);
        }
    }
    let selected: Vec<(&str, TestFn)> = all
        .into_iter()
        .filter(|(n, _)| filters.is_empty() || filters.iter().any(|f| f == n))
        .collect();

    println!("KTAP version 1");
    println!("1..{}", selected.len());
    let dev = match Device::open(&path) {
        Ok(d) => d,
        Err(e) => {
            println!("Bail out! cannot open {path}: {e} (is rust_wq loaded? are we root?)");
            return ExitCode::from(1);
        }
    };
    let info = match dev.info() {
        Ok(i) => i,
        Err(e) => {
            println!("Bail out! RUST_WQ_IOC_INFO on {path} failed: {e}");
            return ExitCode::from(1);
        }
    };
    drop(dev);
    let online = wqctl::parse::cpus_in_mask(info.online_cpus, info.nr_cpu_ids);
    diag(&format!(
        "rust_wq e2e: device {path}, abi_version {}, nr_cpu_ids {}, online cpus {:?}",
        info.abi_version, info.nr_cpu_ids, online
    ));
    let ctx = Ctx { path, info, online };

    let (mut pass, mut failed, mut skipped) = (0, 0, 0);
    for (i, (name, f)) in selected.iter().enumerate() {
        let n = i + 1;
        let start = std::time::Instant::now();
        let r = catch_unwind(AssertUnwindSafe(|| f(&ctx))).unwrap_or_else(|p| {
            Err(Outcome::Fail(vec![format!(
                "panicked: {}",
                panic_message(&*p)
            )]))
        });
        let ms = start.elapsed().as_millis();
        match r {
            Ok(()) => {
                pass += 1;
                diag(&format!("{name}: {ms} ms"));
                println!("ok {n} {name}");
            }
            Err(Outcome::Skip(reason)) => {
                skipped += 1;
                println!("ok {n} {name} # SKIP {}", reason.replace('\n', " "));
            }
            Err(Outcome::Fail(lines)) => {
                failed += 1;
                for l in &lines {
                    diag(l);
                }
                diag(&format!("{name}: {ms} ms"));
                println!("not ok {n} {name}");
            }
        }
    }
    diag(&format!("Totals: pass:{pass} fail:{failed} skip:{skipped}"));
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
