// SPDX-License-Identifier: GPL-2.0

//! Suite `rust_wq_edu`: [`run_in_device_irq`]'s paths that userspace cannot force.

// The C side is `src/helpers.c` (declared in `src/helpers.h`); KUnit cases only.
extern "C" {
    /// Gives the calling kernel thread a pending SIGKILL (its next killable wait ends).
    fn rust_wq_test_kill_self();
    /// Takes that SIGKILL back and ignores SIGKILL again.
    fn rust_wq_test_unkill_self();
    /// C's `disable_irq()`: the vector's handler does not run until the matching enable.
    fn rust_wq_test_irq_disable(irq: u32);
    /// C's `enable_irq()`: an interrupt that arrived while disabled is handled now.
    fn rust_wq_test_irq_enable(irq: u32);
}

/// The edu vector disabled while this lives (C's `disable_irq()`/`enable_irq()`).
///
/// # Invariants
///
/// `irq` is the vector of the bound edu device, requested by the driver and disabled once by
/// this value; `_edu` keeps the device (and so its vector) from being freed before the enable.
struct Disabled {
    irq: u32,
    _edu: kernel::sync::Arc<super::Edu>,
}

impl Disabled {
    fn new(edu: kernel::sync::Arc<super::Edu>) -> Self {
        let irq = edu.irq.load(core::sync::atomic::Ordering::Relaxed);
        // SAFETY: `irq` is the vector the driver requested for the bound device (set before
        // the device is published, which `bound()` returned); KUnit runs in a kthread, which
        // may sleep for the wait `disable_irq()` makes.
        unsafe { rust_wq_test_irq_disable(irq) };
        // INVARIANT: disabled once, and `edu` held.
        Self { irq, _edu: edu }
    }
}

impl Drop for Disabled {
    fn drop(&mut self) {
        // SAFETY: Disabled once by `new` (type invariant); the vector is still requested.
        unsafe { rust_wq_test_irq_enable(self.irq) };
    }
}

/// A pending SIGKILL on the calling KUnit thread while this lives.
struct Killed;

impl Killed {
    fn new() -> Self {
        // SAFETY: Only the calling kernel thread's own signal state changes.
        unsafe { rust_wq_test_kill_self() };
        Killed
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        // SAFETY: As in `new`.
        unsafe { rust_wq_test_unkill_self() };
    }
}

#[kernel::prelude::kunit_tests(rust_wq_edu)]
mod cases {
    use super::{
        super::{
            bound,
            info,
            run_in_device_irq, //
        },
        Disabled,
        Killed, //
    };
    use core::sync::atomic::{
        AtomicBool,
        Ordering::Relaxed, //
    };
    use kernel::{
        prelude::*,
        time::{
            delay::fsleep,
            Delta, //
        },
    };

    /// H:202: a call whose caller is killed before the device's interrupt has run its
    /// function fails with `EINTR`, and the function never runs, not even when that interrupt
    /// arrives afterwards. The vector is disabled so that the interrupt cannot come first.
    #[test]
    fn killed_before_the_interrupt_runs_nothing() -> Result {
        // The test VM always has the device (scripts/vm.sh); its absence is a failure.
        let edu = bound()?;
        let before = info().irqs;
        let ran = AtomicBool::new(false);
        let r = {
            let _off = Disabled::new(edu);
            let _killed = Killed::new();
            run_in_device_irq(|_| ran.store(true, Relaxed))
        };
        // The interrupt the call raised is handled now that the vector is enabled again: wait
        // (bounded) until the handler has taken it, then check that it ran nothing.
        let mut waited = 0;
        while info().irqs == before && waited < 5000 {
            fsleep(Delta::from_millis(10));
            waited += 10;
        }
        assert_eq!(r.err(), Some(EINTR));
        // The raised interrupt arrived after the enable...
        assert!(info().irqs > before);
        // ...and the killed call's function did not run in it.
        assert!(!ran.load(Relaxed));
        // The device is usable again: the next call's function runs in its interrupt.
        assert_eq!(run_in_device_irq(|_| 7u32), Ok(7));
        Ok(())
    }
}
