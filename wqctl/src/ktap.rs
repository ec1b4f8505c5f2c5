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

#[cfg(test)]
mod tests {
    use super::*;

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
