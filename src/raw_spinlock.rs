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
//! It is a backend for the `kernel` crate's generic [`Lock`], so guards work as usual.
//!
//! C header: [`include/linux/spinlock.h`](srctree/include/linux/spinlock.h)

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
        $crate::raw_spinlock::RawSpinLockIrq::new(
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
        // C's `raw_spin_lock_init()`: with spinlock debugging, the debug fields and a lockdep
        // class whose wait type is "spin" (allowed in hard-IRQ context).
        #[cfg(CONFIG_DEBUG_SPINLOCK)]
        // SAFETY: `ptr` is valid for writes (the caller's promise); `name` and `key` are valid
        // for the life of the lock (static, see `Lock::new`).
        unsafe {
            bindings::__raw_spin_lock_init(
                ptr,
                name,
                key,
                bindings::lockdep_wait_type_LD_WAIT_SPIN as kernel::ffi::c_short,
            )
        };
        // Without it, an unlocked `raw_spinlock_t` is all zeroes (`__RAW_SPIN_LOCK_UNLOCKED`).
        #[cfg(not(CONFIG_DEBUG_SPINLOCK))]
        {
            let _ = (name, key);
            // SAFETY: `ptr` is valid for writes (the caller's promise).
            unsafe { ptr.write(bindings::raw_spinlock_t::default()) };
        }
    }

    unsafe fn lock(ptr: *mut Self::State) -> Self::GuardState {
        let irq = local_interrupt_disable();
        // SAFETY: `ptr` is an initialised lock (the caller's promise); interrupts are off.
        unsafe { bindings::_raw_spin_lock(ptr) };
        irq
    }

    unsafe fn try_lock(ptr: *mut Self::State) -> Option<Self::GuardState> {
        let irq = local_interrupt_disable();
        // SAFETY: As in `lock`. On failure `irq` is dropped, turning interrupts back on.
        (unsafe { bindings::_raw_spin_trylock(ptr) } != 0).then_some(irq)
    }

    unsafe fn unlock(ptr: *mut Self::State, _irq: &Self::GuardState) {
        // SAFETY: The caller holds the lock. Interrupts go back on when the guard state is
        // dropped, after this.
        unsafe { bindings::_raw_spin_unlock(ptr) }
    }

    unsafe fn assert_is_held(ptr: *mut Self::State) {
        // C's `lockdep_assert_held()`: only checked when lockdep is on.
        #[cfg(CONFIG_LOCKDEP)]
        {
            // SAFETY: `ptr` is an initialised lock, whose `dep_map` lockdep knows; `-1` asks
            // for any kind of hold.
            let held =
                unsafe { bindings::lock_is_held_type(core::ptr::addr_of!((*ptr).dep_map), -1) };
            kernel::warn_on!(held == 0);
        }
        #[cfg(not(CONFIG_LOCKDEP))]
        let _ = ptr;
    }
}
