//! The KTAP runner of the test binaries (`rust_wq_e2e`, `rust_wq_stress`):
//! test selection (`--list`, names), plan, one `ok`/`not ok` line a test with
//! its diagnostics, skips and timing, and the outcomes a test returns.
//!
//! The output is KTAP version 1 on stdout; scripts/guest.sh (`ktap_leaves`)
//! and scripts/stress-guest.sh read it.

use crate::Errno;
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::time::Instant;

/// Why a test did not pass.
pub enum Outcome {
    /// Failure, with diagnostic lines (expected vs seen).
    Fail(Vec<String>),
    /// Skipped, with the reason.
    Skip(String),
}

/// What a test returns.
pub type TestResult = Result<(), Outcome>;

/// A failed test with one diagnostic line.
pub fn fail<T>(msg: impl Into<String>) -> Result<T, Outcome> {
    Err(Outcome::Fail(vec![msg.into()]))
}

/// A skipped test with its reason.
pub fn skip<T>(msg: impl Into<String>) -> Result<T, Outcome> {
    Err(Outcome::Skip(msg.into()))
}

/// Whether the debug feature `feature` (`hotplug`, `failslab`, `kmemleak`, ...) is
/// required: the harness sets `RUST_WQ_REQUIRE` to the features the kernel is
/// configured with (scripts/lib.sh `required_features`).
pub fn required(feature: &str) -> bool {
    required_in(std::env::var("RUST_WQ_REQUIRE").ok().as_deref(), feature)
}

fn required_in(list: Option<&str>, feature: &str) -> bool {
    list.is_some_and(|v| v.split_whitespace().any(|w| w == feature))
}

/// Something the test needs is not available here: a skip, or a failure when
/// the kernel is configured with `feature` (then its absence is a regression).
pub fn unavailable<T>(feature: &str, msg: impl Into<String>) -> Result<T, Outcome> {
    unavailable_in(
        std::env::var("RUST_WQ_REQUIRE").ok().as_deref(),
        feature,
        msg,
    )
}

fn unavailable_in<T>(
    list: Option<&str>,
    feature: &str,
    msg: impl Into<String>,
) -> Result<T, Outcome> {
    let msg = msg.into();
    if required_in(list, feature) {
        Err(Outcome::Fail(vec![format!(
            "{msg}, but the kernel is configured with {feature} (RUST_WQ_REQUIRE)"
        )]))
    } else {
        skip(msg)
    }
}

/// `?`-friendly context for calls that must succeed.
pub trait Must<T> {
    /// Turns an errno into a test failure naming `what`.
    fn must(self, what: &str) -> Result<T, Outcome>;
}

impl<T> Must<T> for Result<T, Errno> {
    fn must(self, what: &str) -> Result<T, Outcome> {
        self.map_err(|e| Outcome::Fail(vec![format!("{what}: expected success, got {e}")]))
    }
}

/// Prints `line` as KTAP diagnostic lines (`# ...`).
pub fn diag(line: &str) {
    for l in line.lines() {
        println!("# {l}");
    }
}

/// The message of a caught panic.
pub fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// A test: its name and what runs it (a function pointer of the binary's shape).
pub type Named<T> = (&'static str, T);

/// Which tests to run: the arguments every test binary takes.
#[derive(clap::Args, Debug, Default)]
pub struct Selection {
    /// Print the test names, one a line, and run nothing.
    #[arg(long)]
    pub list: bool,
    /// Run only these tests (numbered 1..N in that subset, in the order of --list).
    #[arg(value_name = "TEST_NAME")]
    pub names: Vec<String>,
}

impl Selection {
    /// The tests of `all` to run: those named, or without names those that
    /// `by_default` accepts.  With `--list`, prints every name and returns
    /// `Ok(None)`; an unknown name is an error.
    pub fn resolve<'a, T>(
        &self,
        all: &'a [Named<T>],
        by_default: impl Fn(&str) -> bool,
    ) -> Result<Option<Vec<&'a Named<T>>>, String> {
        if self.list {
            for (name, _) in all {
                println!("{name}");
            }
            return Ok(None);
        }
        if let Some(unknown) = self.names.iter().find(|n| !all.iter().any(|(a, _)| a == n)) {
            return Err(format!("unknown test {unknown:?} (see --list)"));
        }
        let chosen = all
            .iter()
            .filter(|(n, _)| {
                if self.names.is_empty() {
                    by_default(n)
                } else {
                    self.names.iter().any(|w| w == n)
                }
            })
            .collect();
        Ok(Some(chosen))
    }
}

/// What one test prints besides its result line: diagnostics (always) and
/// failures (which make the test fail even if it returns `Ok`).
pub struct Report {
    /// The name of the test (prefix of every line).
    pub name: String,
    /// Diagnostic lines, printed whatever the result.
    pub diags: Vec<String>,
    /// Failed expectations.
    pub errs: Vec<String>,
}

impl Report {
    /// An empty report of test `name`.
    pub fn new(name: &str) -> Self {
        Report {
            name: name.into(),
            diags: Vec::new(),
            errs: Vec::new(),
        }
    }

    /// Adds a diagnostic line.
    pub fn diag(&mut self, s: impl Into<String>) {
        self.diags.push(s.into());
    }

    /// Records a failure.
    pub fn fail(&mut self, s: impl Into<String>) {
        self.errs.push(s.into());
    }

    /// Records `msg` if `cond` is false; returns `cond`.
    pub fn check(&mut self, cond: bool, msg: impl FnOnce() -> String) -> bool {
        if !cond {
            self.errs.push(msg());
        }
        cond
    }

    /// Prints the diagnostics (`# name: line`).
    fn print_diags(&mut self) {
        for d in self.diags.drain(..) {
            diag(&format!("{}: {d}", self.name));
        }
    }

    /// Prints the failures (`# name: FAIL: line`).
    fn print_errs(&mut self) {
        for d in self.errs.drain(..) {
            diag(&format!("{}: FAIL: {d}", self.name));
        }
    }
}

/// A KTAP run whose header and plan are printed.
pub struct Run {
    planned: usize,
}

impl Run {
    /// Prints the header and the plan of `planned` tests.
    pub fn start(planned: usize) -> Self {
        println!("KTAP version 1");
        println!("1..{planned}");
        Run { planned }
    }

    /// Gives up before the tests: a `Bail out!` line, exit status 1.
    pub fn bail_out(self, why: &str) -> ExitCode {
        println!("Bail out! {why}");
        ExitCode::from(1)
    }

    /// Runs `tests` in order through `body` (which catches no panic: a panic
    /// is a failure), prints a result line for each and the totals.  Exit
    /// status 0 iff no test failed.
    pub fn tests<T>(
        self,
        tests: &[&Named<T>],
        mut body: impl FnMut(&T, &mut Report) -> TestResult,
    ) -> ExitCode {
        assert_eq!(tests.len(), self.planned, "the plan counts every test");
        let (mut passed, mut failed, mut skipped) = (0, 0, 0);
        for (i, (name, test)) in tests.iter().enumerate() {
            let n = i + 1;
            let mut rep = Report::new(name);
            let start = Instant::now();
            let r = catch_unwind(AssertUnwindSafe(|| body(test, &mut rep))).unwrap_or_else(|p| {
                Err(Outcome::Fail(vec![format!(
                    "panicked: {}",
                    panic_message(&*p)
                )]))
            });
            let ms = start.elapsed().as_millis();
            rep.print_diags();
            match r {
                Ok(()) if rep.errs.is_empty() => {
                    passed += 1;
                    diag(&format!("{name}: {ms} ms"));
                    println!("ok {n} {name}");
                }
                Err(Outcome::Skip(reason)) if rep.errs.is_empty() => {
                    skipped += 1;
                    println!("ok {n} {name} # SKIP {}", reason.replace('\n', " "));
                }
                other => {
                    failed += 1;
                    if let Err(Outcome::Fail(lines)) = other {
                        rep.errs.extend(lines);
                    }
                    rep.print_errs();
                    diag(&format!("{name}: {ms} ms"));
                    println!("not ok {n} {name}");
                }
            }
        }
        diag(&format!(
            "Totals: pass:{passed} fail:{failed} skip:{skipped}"
        ));
        if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nop() {}

    #[test]
    fn selection_keeps_the_order_of_the_list_and_rejects_unknown_names() {
        let all: Vec<Named<fn()>> = vec![("a", nop), ("b", nop), ("c", nop)];
        let names = |s: &Selection| -> Vec<&str> {
            s.resolve(&all, |n| n != "c")
                .ok()
                .flatten()
                .unwrap_or_default()
                .iter()
                .map(|(n, _)| *n)
                .collect()
        };
        let mut s = Selection::default();
        assert_eq!(names(&s), ["a", "b"]);
        s.names = vec!["c".into(), "a".into()];
        assert_eq!(names(&s), ["a", "c"]);
        s.names = vec!["d".into()];
        assert!(s.resolve(&all, |_| true).is_err());
    }

    #[test]
    fn a_missing_required_feature_fails() {
        let r: Result<(), Outcome> = unavailable_in(Some("kmemleak hotplug"), "hotplug", "no CPU");
        assert!(matches!(r, Err(Outcome::Fail(ref l)) if l[0].contains("configured with hotplug")));
        let r: Result<(), Outcome> = unavailable_in(Some("kmemleak"), "hotplug", "no CPU");
        assert!(matches!(r, Err(Outcome::Skip(ref m)) if m == "no CPU"));
        let r: Result<(), Outcome> = unavailable_in(None, "hotplug", "no CPU");
        assert!(matches!(r, Err(Outcome::Skip(_))));
        assert!(!required_in(Some("hotplugs"), "hotplug"));
    }
}
