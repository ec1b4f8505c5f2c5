// SPDX-License-Identifier: GPL-2.0

//! [`RawSpinLockIrq`]: C's `raw_spinlock_t` taken with interrupts off, for data that
//! hard-interrupt handlers use.
//!
//! The 7.3 `kernel` crate's spinlocks wrap `spinlock_t`, which `PREEMPT_RT` turns into a
//! sleeping lock: taking one in a hard-interrupt handler is invalid there, and lockdep reports
//! it on every kernel with `CONFIG_PROVE_RAW_LOCK_NESTING` ("BUG: Invalid wait context"). A
//! `raw_spinlock_t` always spins, so the workqueue layer's locks that hard-IRQ callers take
//! (a delayed item's lock, an owned queue's armed list) are this type, as C's own
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
use core::{
    cell::UnsafeCell,
    marker::PhantomData, //
};
use kernel::{
    bindings,
    interrupt::{
        local_interrupt_disable,
        LocalInterruptDisabled, //
    },
    prelude::*,
    sync::lock::{
        Backend,
        Lock, //
    },
    sync::LockClassKey,
    types::Opaque,
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

/// Runs `f` with local interrupts off (C's `local_irq_save()` before it and
/// `local_irq_restore()` after it), and returns its value. Nests: the caller's interrupt state is
/// restored on return. Callable from any context.
///
/// With interrupts off the section is also an RCU read-side critical section (since Linux 5.0
/// every `synchronize_rcu()`/`call_rcu()` grace period waits for interrupts-off regions), which
/// the armed lists use to keep a list alive while an item's `st` is followed to it.
#[inline]
pub(crate) fn irqs_off<R>(f: impl FnOnce(&IrqsOff) -> R) -> R {
    // SAFETY: No precondition; the flags are restored below.
    let flags = unsafe { helpers::rust_wq_irq_save() };
    // INVARIANT: Interrupts are off until the closure returns.
    let r = f(&IrqsOff(PhantomData));
    // SAFETY: `flags` came from the save above. Sections are closures, so they end in the
    // reverse order of their starts, and this restores what the caller had.
    unsafe { helpers::rust_wq_irq_restore(flags) };
    r
}

/// Proof that local interrupts are off: only [`irqs_off`] makes one, for the length of its
/// closure.
///
/// # Invariants
///
/// Local interrupts are off while a reference to this value exists; it cannot leave its thread.
pub(crate) struct IrqsOff(PhantomData<*mut ()>);

/// A `raw_spinlock_t` and the data it protects, used through closures that run with the lock
/// held and interrupts off ([`IrqSpinLock::with`]): the sections nest only properly (unlike
/// guards, which could be dropped out of order and turn interrupts on under another lock).
///
/// The cheapest lock the layer can take in every context: one call to C's
/// `raw_spin_lock_irqsave()` and one to `raw_spin_unlock_irqrestore()`, with lockdep tracking
/// on debug kernels. Made with [`new_irq_spinlock!`].
///
/// # Invariants
///
/// `lock` is an initialised `raw_spinlock_t`; `data` is only accessed with it held. `lock` is
/// at offset 0 (`#[repr(C)]`), so a pointer to the value is one to its lock.
#[repr(C)]
#[pin_data]
pub(crate) struct IrqSpinLock<T> {
    #[pin]
    lock: Opaque<bindings::raw_spinlock_t>,
    data: UnsafeCell<T>,
}

// SAFETY: The data moves with the lock only as a whole (`T: Send`); the lock itself is a C
// object that any thread may take.
unsafe impl<T: Send> Send for IrqSpinLock<T> {}
// SAFETY: `&IrqSpinLock<T>` gives access to `T` only with the lock held, one thread at a time.
unsafe impl<T: Send> Sync for IrqSpinLock<T> {}

/// Creates an [`IrqSpinLock`] initialiser named `$name`, with a lock class for the call site.
macro_rules! new_irq_spinlock {
    ($inner:expr, $name:literal $(,)?) => {
        $crate::workqueue::raw_spinlock::IrqSpinLock::new(
            $inner,
            ::kernel::c_str!($name),
            ::kernel::static_lock_class!(),
        )
    };
}
pub(crate) use new_irq_spinlock;

impl<T> IrqSpinLock<T> {
    /// Creates the lock; use [`new_irq_spinlock!`].
    pub(crate) fn new(
        data: T,
        name: &'static CStr,
        key: Pin<&'static LockClassKey>,
    ) -> impl PinInit<Self> {
        pin_init!(Self {
            lock <- Opaque::ffi_init(move |slot: *mut bindings::raw_spinlock_t| {
                // SAFETY: `slot` is valid for writes; the name and class are static.
                unsafe {
                    helpers::rust_wq_raw_spin_lock_init(
                        slot,
                        name.as_char_ptr(),
                        key.as_ptr().cast(),
                    )
                }
            }),
            data: UnsafeCell::new(data),
        })
        // INVARIANT: The lock is initialised, and nobody has the data yet.
    }

    /// Runs `f` on the data with the lock held and local interrupts off (the token says so).
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T, &IrqsOff) -> R) -> R {
        // SAFETY: The lock is initialised (type invariant).
        let flags = unsafe { helpers::rust_wq_raw_spin_lock_irqsave(self.lock.get()) };
        // SAFETY: We hold the lock, so nobody else has the data (type invariant); a nested
        // `with` on the same lock would spin before making a second reference.
        let r = f(unsafe { &mut *self.data.get() }, &IrqsOff(PhantomData));
        // SAFETY: We hold the lock, taken above with these flags.
        unsafe { helpers::rust_wq_raw_spin_unlock_irqrestore(self.lock.get(), flags) };
        r
    }

    /// The data, for a caller that holds the lock (taken through its address, see `armed.rs`).
    /// Dereferencing it is sound while the lock is held and no other reference to the data
    /// exists.
    #[inline]
    pub(crate) fn data_ptr(&self) -> *mut T {
        self.data.get()
    }

    /// A token for a caller that holds the lock (so interrupts are off).
    ///
    /// # Safety
    ///
    /// The caller holds the lock, taken with interrupts saved, while it uses the token.
    #[inline]
    pub(crate) unsafe fn irqs_off_token<'a>() -> &'a IrqsOff {
        &IrqsOff(PhantomData)
    }
}
