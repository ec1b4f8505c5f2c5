//! [`Checker`]: the failed expectations of one test, collected so that a
//! test reports all of them at once; [`open`]: a device file a test needs.

use super::ktap::{Must, Outcome, TestResult};
use crate::{Device, Errno};
use std::fmt::Debug;

/// Opens a file of the device at `path`; failing to is a test failure.
pub fn open(path: &str) -> Result<Device, Outcome> {
    Device::open(path).must(&format!("open {path}"))
}

/// Collects several failed expectations of one test.
#[derive(Default)]
pub struct Checker {
    /// The failures so far, one line each.
    pub errs: Vec<String>,
}

impl Checker {
    /// A checker with no failure yet.
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

    /// Records a failure unless `seen == expected`.
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

    /// Records a failure.
    pub fn fail(&mut self, msg: impl Into<String>) {
        self.errs.push(msg.into());
    }

    /// The test's result: a failure listing every recorded line, if any.
    pub fn done(self) -> TestResult {
        if self.errs.is_empty() {
            Ok(())
        } else {
            Err(Outcome::Fail(self.errs))
        }
    }
}
