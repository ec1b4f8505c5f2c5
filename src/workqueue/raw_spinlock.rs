// SPDX-License-Identifier: GPL-2.0

//! [`RawSpinLockIrq`]: C's `raw_spinlock_t` taken with interrupts off, for data that
//! hard-interrupt handlers use.
//!
//! The 7.3 `kernel` crate's spinlocks wrap `spinlock_t`, which `PREEMPT_RT` turns into a
//! sleeping lock: taking one in a hard-interrupt handler is invalid there, and lockdep reports
//! it on every kernel with `CONFIG_PROVE_RAW_LOCK_NESTING` ("BUG: Invalid wait context"). A
//! `raw_spinlock_t` always spins, so the workqueue layer's locks that hard-IRQ callers take
//! (a delayed item's lock, an owned queue's armed lists) are this type, as C's own
//! `worker_pool::lock` and timer-base locks are. Keep the sections short: they run with
//! interrupts off even on `PREEMPT_RT`.
//!
//! It is a backend for the `kernel` crate's generic [`Lock`], so guards work as usual. The lock
//! operations are C's macros (`raw_spin_lock()` etc., through `helpers.c`), which pick the
//! exported or the inlined implementation as the kernel is configured: `_raw_spin_unlock()`
//! itself is exported only with `CONFIG_UNINLINE_SPIN_UNLOCK`.
//!
//! C header: [`include/linux/spinlock.h`](srctree/include/linux/spinlock.h)

use super::helpers;
use kernel::{
    bindings,
    interrupt::{
        local_interrupt_disable,
        LocalInterruptDisabled, //
    },
    sync::lock::{
        Backend,
        Lock, //
    },
};

/// A `raw_spinlock_t` whose critical sections run with local interrupts off.
///
/// Made with [`new_raw_spinlock_irq!`]. Callable from any context, hard interrupts included.
pub(crate) type RawSpinLockIrq<T> = Lock<T, RawSpinLockIrqBackend>;

/// The [`Backend`] of [`RawSpinLockIrq`].
pub(crate) struct RawSpinLockIrqBackend;

/// Creates a [`RawSpinLockIrq`] initialiser named `$name`, with a lock class for the call site.
macro_rules! new_raw_spinlock_irq {
    ($inner:expr, $name:literal $(,)?) => {
        $crate::workqueue::raw_spinlock::RawSpinLockIrq::new(
            $inner,
            ::kernel::c_str!($name),
            ::kernel::static_lock_class!(),
        )
    };
}
pub(crate) use new_raw_spinlock_irq;

// SAFETY: `raw_spinlock_t` gives mutual exclusion between every context, interrupts included;
// the guard state keeps local interrupts off (nesting-aware `local_interrupt_disable()`) from
// before the lock is taken until after it is released, so an interrupt on this CPU cannot try
// to take it while it is held here. `relock` uses the default implementation.
unsafe impl Backend for RawSpinLockIrqBackend {
    type State = bindings::raw_spinlock_t;
    type GuardState = LocalInterruptDisabled;

    unsafe fn init(
        ptr: *mut Self::State,
        name: *const kernel::ffi::c_char,
        key: *mut bindings::lock_class_key,
    ) {
        // SAFETY: `ptr` is valid for writes (the caller's promise); `name` and `key` are valid
        // for the life of the lock (static, see `Lock::new`). C's `raw_spin_lock_init()`.
        unsafe { helpers::rust_wq_raw_spin_lock_init(ptr, name, key.cast()) };
    }

    unsafe fn lock(ptr: *mut Self::State) -> Self::GuardState {
        let irq = local_interrupt_disable();
        // SAFETY: `ptr` is an initialised lock (the caller's promise); interrupts are off.
        unsafe { helpers::rust_wq_raw_spin_lock(ptr) };
        irq
    }

    unsafe fn try_lock(ptr: *mut Self::State) -> Option<Self::GuardState> {
        let irq = local_interrupt_disable();
        // SAFETY: As in `lock`. On failure `irq` is dropped, turning interrupts back on.
        (unsafe { helpers::rust_wq_raw_spin_trylock(ptr) } != 0).then_some(irq)
    }

    unsafe fn unlock(ptr: *mut Self::State, _irq: &Self::GuardState) {
        // SAFETY: The caller holds the lock. Interrupts go back on when the guard state is
        // dropped, after this.
        unsafe { helpers::rust_wq_raw_spin_unlock(ptr) }
    }

    unsafe fn assert_is_held(ptr: *mut Self::State) {
        // SAFETY: `ptr` is an initialised lock (the caller's promise). C's
        // `lockdep_assert_held()`: it looks at `dep_map` only when that field exists
        // (`CONFIG_DEBUG_LOCK_ALLOC`) and lockdep is on.
        unsafe { helpers::rust_wq_raw_spin_assert_held(ptr) };
    }
}
