//! The KTAP runner of the test binaries (`rust_wq_e2e`, `rust_wq_stress`):
//! test selection (`--list`, names), plan, one `ok`/`not ok` line a test with
//! its diagnostics, skips and timing, and the outcomes a test returns.
//!
//! The output is KTAP version 1 on stdout; scripts/guest.sh nests it verbatim
//! in its stage's document and scripts/harness.py checks it (plan, results).

use crate::Errno;
use std::any::Any;
use std::io::{self, Write};
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
    /// Run only lane K of N (`K/N`, 1 <= K <= N): the selection split into N lanes of about
    /// equal expected duration, by the binary's table of its slow tests (with equal weights:
    /// the tests at positions K, K + N, ...); make check runs the lanes in separate VMs.
    #[arg(long, value_name = "K/N", value_parser = parse_lane)]
    pub lane: Option<(usize, usize)>,
    /// With --lane K/N: what each of the N lanes has to do before its tests (W1,W2,...,WN,
    /// in the unit of the binary's table: make check's second VM runs two stress scenarios
    /// first), so that the lanes end at about the same time. Every lane must be given the
    /// same list (each computes the whole split). Default: 0 for each.
    #[arg(
        long,
        value_name = "W1,...,WN",
        value_delimiter = ',',
        requires = "lane"
    )]
    pub lane_start: Vec<u64>,
}

/// `K/N` with 1 <= K <= N.
fn parse_lane(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("expected K/N with 1 <= K <= N, got {s:?}");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n) = (
        k.parse::<usize>().map_err(|_| bad())?,
        n.parse::<usize>().map_err(|_| bad())?,
    );
    if k == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

impl Selection {
    /// The tests of `all` to run: those named, or without names those that
    /// `by_default` accepts.  With `--list`, prints every name and returns
    /// `Ok(None)`; an unknown name is an error.  A lane is every Nth test (see
    /// [`Selection::resolve_weighted`]).
    pub fn resolve<'a, T>(
        &self,
        all: &'a [Named<T>],
        by_default: impl Fn(&str) -> bool,
    ) -> Result<Option<Vec<&'a Named<T>>>, String> {
        self.resolve_weighted(all, by_default, |_| 1)
    }

    /// [`Selection::resolve`], with `--lane K/N` taking lane K of N lanes of about equal
    /// total `weight` (a test's expected duration, any unit): the tests from the heaviest
    /// down (ties in list order) each go to the lane with the least weight so far (ties:
    /// the first), and a lane runs its tests in list order. With equal weights, lane K is
    /// the Kth, K+Nth, ... test. The split depends only on the selection and the weights.
    pub fn resolve_weighted<'a, T>(
        &self,
        all: &'a [Named<T>],
        by_default: impl Fn(&str) -> bool,
        weight: impl Fn(&str) -> u64,
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
        let chosen: Vec<&Named<T>> = all
            .iter()
            .filter(|(n, _)| {
                if self.names.is_empty() {
                    by_default(n)
                } else {
                    self.names.iter().any(|w| w == n)
                }
            })
            .collect();
        let Some((k, n)) = self.lane else {
            return Ok(Some(chosen));
        };
        let mut order: Vec<usize> = (0..chosen.len()).collect();
        // Stable: equal weights keep list order.
        order.sort_by_key(|&i| std::cmp::Reverse(weight(chosen[i].0)));
        let mut load = match self.lane_start.len() {
            0 => vec![0u64; n],
            m if m == n => self.lane_start.clone(),
            m => return Err(format!("--lane-start has {m} values for {n} lanes")),
        };
        let mut lane_of = vec![0usize; chosen.len()];
        for i in order {
            let l = (0..n).min_by_key(|&l| (load[l], l)).unwrap_or(0);
            load[l] += weight(chosen[i].0);
            lane_of[i] = l;
        }
        Ok(Some(
            chosen
                .into_iter()
                .enumerate()
                .filter(|&(i, _)| lane_of[i] == k - 1)
                .map(|(_, t)| t)
                .collect(),
        ))
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
}

/// A KTAP run whose header and plan are printed, on stdout or (for tests of
/// the runner) another writer.
pub struct Run<W: Write = io::Stdout> {
    planned: usize,
    out: W,
}

/// How many tests passed, failed and were skipped.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Totals {
    /// Exit status 0 iff no test failed, else 1.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(u8::from(self.failed != 0))
    }
}

impl Run {
    /// Prints the header and the plan of `planned` tests on stdout.
    pub fn start(planned: usize) -> Self {
        Run::start_on(io::stdout(), planned)
    }
}

impl<W: Write> Run<W> {
    /// Prints the header and the plan of `planned` tests on `out`.
    pub fn start_on(out: W, planned: usize) -> Self {
        let mut run = Run { planned, out };
        run.line("KTAP version 1");
        run.line(&format!("1..{planned}"));
        run
    }

    /// Prints one line; a lost stdout ends the run as println! would.
    fn line(&mut self, s: &str) {
        writeln!(self.out, "{s}").expect("writing the KTAP output");
    }

    /// Prints `text` as diagnostic lines (`# ...`).
    fn diag(&mut self, text: &str) {
        for l in text.lines() {
            self.line(&format!("# {l}"));
        }
    }

    /// Gives up before the tests: a `Bail out!` line, exit status 1.
    pub fn bail_out(mut self, why: &str) -> ExitCode {
        self.line(&format!("Bail out! {why}"));
        ExitCode::from(1)
    }

    /// Runs `tests` in order through `body` (a panic in it is a failure),
    /// prints the test's diagnostics (`# name: ...`), its failures
    /// (`# name: FAIL: ...`), its time and its result line, then the totals.
    pub fn tests<T>(
        mut self,
        tests: &[&Named<T>],
        mut body: impl FnMut(&T, &mut Report) -> TestResult,
    ) -> Totals {
        assert_eq!(tests.len(), self.planned, "the plan counts every test");
        let mut totals = Totals::default();
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
            for d in std::mem::take(&mut rep.diags) {
                self.diag(&format!("{name}: {d}"));
            }
            match r {
                Ok(()) if rep.errs.is_empty() => {
                    totals.passed += 1;
                    self.diag(&format!("{name}: {ms} ms"));
                    self.line(&format!("ok {n} {name}"));
                }
                Err(Outcome::Skip(reason)) if rep.errs.is_empty() => {
                    totals.skipped += 1;
                    let reason = reason.replace('\n', " ");
                    self.line(&format!("ok {n} {name} # SKIP {reason}"));
                }
                other => {
                    totals.failed += 1;
                    if let Err(Outcome::Fail(lines)) = other {
                        rep.errs.extend(lines);
                    }
                    for e in &rep.errs {
                        self.diag(&format!("{name}: FAIL: {e}"));
                    }
                    self.diag(&format!("{name}: {ms} ms"));
                    self.line(&format!("not ok {n} {name}"));
                }
            }
        }
        let Totals {
            passed,
            failed,
            skipped,
        } = totals;
        self.diag(&format!(
            "Totals: pass:{passed} fail:{failed} skip:{skipped}"
        ));
        totals
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
    fn lanes_split_the_selection_and_cover_it_once() {
        let all: Vec<Named<fn()>> =
            vec![("a", nop), ("b", nop), ("c", nop), ("d", nop), ("e", nop)];
        let lane = |k, n, weight: fn(&str) -> u64| -> Vec<&str> {
            let s = Selection {
                lane: Some((k, n)),
                ..Selection::default()
            };
            s.resolve_weighted(&all, |_| true, weight)
                .ok()
                .flatten()
                .unwrap_or_default()
                .iter()
                .map(|(n, _)| *n)
                .collect()
        };
        let even = |_: &str| 1;
        assert_eq!(lane(1, 2, even), ["a", "c", "e"]);
        assert_eq!(lane(2, 2, even), ["b", "d"]);
        assert_eq!(lane(1, 1, even), ["a", "b", "c", "d", "e"]);
        // Weighted: "d" (5) alone balances "a", "b", "c", "e" (1 + 1 + 2 + 1).
        let w = |n: &str| match n {
            "d" => 5,
            "c" => 2,
            _ => 1,
        };
        assert_eq!(lane(1, 2, w), ["d"]);
        assert_eq!(lane(2, 2, w), ["a", "b", "c", "e"]);
        // A head start of lane 1 moves the light tests to lane 2.
        let started = |k, start: Vec<u64>| -> Result<Vec<&str>, String> {
            let s = Selection {
                lane: Some((k, 2)),
                lane_start: start,
                ..Default::default()
            };
            Ok(s.resolve_weighted(&all, |_| true, even)?
                .unwrap_or_default()
                .iter()
                .map(|t| t.0)
                .collect())
        };
        assert_eq!(started(1, vec![3, 0]), Ok(vec!["d"]));
        assert_eq!(started(2, vec![3, 0]), Ok(vec!["a", "b", "c", "e"]));
        assert!(started(1, vec![1]).is_err());
        assert_eq!(parse_lane("2/2"), Ok((2, 2)));
        for bad in ["0/2", "3/2", "1", "a/2", "1/0"] {
            assert!(parse_lane(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_runner_prints_ktap_and_counts() {
        type T = fn(&mut Report) -> TestResult;
        let all: Vec<Named<T>> = vec![
            ("passes", |r| {
                r.diag("a figure");
                Ok(())
            }),
            ("skips", |_| skip("no such thing\nhere")),
            ("fails", |_| fail("expected 1, seen 2")),
            ("records", |r| {
                r.fail("a recorded failure");
                Ok(())
            }),
            ("panics", |_| panic!("boom")),
        ];
        let chosen: Vec<&Named<T>> = all.iter().collect();
        let mut out = Vec::new();
        let run = Run::start_on(&mut out, chosen.len());
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let totals = run.tests(&chosen, |t, rep| t(rep));
        std::panic::set_hook(hook);
        let want = Totals {
            passed: 1,
            failed: 3,
            skipped: 1,
        };
        assert_eq!(totals, want);
        let text = String::from_utf8(out).unwrap();
        let results: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            results,
            [
                "KTAP version 1",
                "1..5",
                "ok 1 passes",
                "ok 2 skips # SKIP no such thing here",
                "not ok 3 fails",
                "not ok 4 records",
                "not ok 5 panics",
            ]
        );
        for l in [
            "# passes: a figure",
            "# fails: FAIL: expected 1, seen 2",
            "# records: FAIL: a recorded failure",
            "# panics: FAIL: panicked: boom",
            "# Totals: pass:1 fail:3 skip:1",
        ] {
            assert!(text.lines().any(|t| t == l), "{l:?} missing in {text}");
        }
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
