// SPDX-License-Identifier: GPL-2.0

//! The layer's KUnit suites, one file per area under `tests/`, and what they share.
//!
//! Work functions run on worker threads, where a failed assertion would not be counted, so they
//! only record what they saw (atomics); the test thread waits (bounded) and asserts.
//!
//! A failed KUnit assertion ends the case at once, without running destructors (KUnit's abort
//! is a `kthread_exit`-like jump; review 2026-12, L12): a queue or item still armed then leaks,
//! and its timers may later run module code. So a case puts what it must clean up (cancel,
//! drop the queue) *before* its assertions where it can, and keeps its timers short; a failed
//! case is a failed run anyway, and the log scan after `rmmod` reports the leak.
//!
//! The suites use nothing outside the layer. Suites of the module that test the layer with the
//! module's own helpers (`rust_wq_irq` in `src/irq_work/layer_tests.rs`) reuse the shared items here,
//! which are `pub(crate)` for them.

#[path = "tests/api.rs"]
mod api;
#[path = "tests/capi.rs"]
mod capi;
#[path = "tests/control.rs"]
mod control;
#[path = "tests/delayed.rs"]
mod delayed;
#[path = "tests/examples.rs"]
mod examples;
#[path = "tests/misc.rs"]
mod misc;
#[path = "tests/owned.rs"]
mod owned;
#[path = "tests/pointers.rs"]
mod pointers;
#[path = "tests/races.rs"]
mod races;
#[path = "tests/scoped.rs"]
mod scoped;

use crate::workqueue::{
    impl_has_work,
    new_work,
    Work,
    WorkItem, //
};
use core::sync::atomic::{
    AtomicU32,
    Ordering::SeqCst, //
};
use kernel::{
    prelude::*,
    sync::Arc,
    time::{
        delay::fsleep,
        Delta, //
    },
};

/// Polls `cond` every millisecond for up to `ms` milliseconds.
pub(crate) fn wait_until(ms: u32, cond: impl Fn() -> bool) -> bool {
    for _ in 0..ms {
        if cond() {
            return true;
        }
        fsleep(Delta::from_millis(1));
    }
    cond()
}

/// Counts drops of the values that hold one (to prove a pointer was given back, not leaked).
pub(crate) struct DropCount(pub(crate) &'static AtomicU32);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// A plain item that sleeps `ms` milliseconds when it runs, counting its runs.
#[pin_data]
pub(crate) struct Slow {
    #[pin]
    work: Work<Slow>,
    ms: u32,
    pub(crate) runs: AtomicU32,
}

impl_has_work! { impl HasWork<Self> for Slow { self.work } }

impl WorkItem for Slow {
    type Pointer = Arc<Slow>;

    fn run(this: Arc<Slow>) {
        fsleep(Delta::from_millis(i64::from(this.ms)));
        this.runs.fetch_add(1, SeqCst);
    }
}

/// Makes a [`Slow`] item.
pub(crate) fn slow_item(ms: u32) -> Result<Arc<Slow>> {
    Arc::pin_init(
        pin_init!(Slow { work <- new_work!("Slow::work"), ms, runs: AtomicU32::new(0) }),
        GFP_KERNEL,
    )
}
