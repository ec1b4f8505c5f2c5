//! Small helpers shared by the KTAP test binaries (`rust_wq_e2e`, `rust_wq_stress`).

use crate::Errno;
use std::any::Any;

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
    std::env::var("RUST_WQ_REQUIRE")
        .map(|v| v.split_whitespace().any(|w| w == feature))
        .unwrap_or(false)
}

/// Something the test needs is not available here: a skip, or a failure when
/// the kernel is configured with `feature` (then its absence is a regression).
pub fn unavailable<T>(feature: &str, msg: impl Into<String>) -> Result<T, Outcome> {
    let msg = msg.into();
    if required(feature) {
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
