// SPDX-License-Identifier: GPL-2.0

//! The Rust side of `helpers.c`: C helpers compiled into the module for static inlines and
//! macros that the 7.3 `kernel` crate does not bind.
//!
//! bindgen does not run on an external module's C files, so the declarations are written here
//! by hand, from `helpers.h`; `helpers.c` beside this file defines them, and the two change together. Only this
//! layer calls them, through the safe wrappers in `context.rs` and `raw_spinlock.rs`.

use core::ffi::c_void;
#[cfg(CONFIG_KUNIT)]
use kernel::ffi::c_uint;
use kernel::{
    bindings,
    ffi::{
        c_int,
        c_ulong, //
    },
};

extern "C" {
    /// The caller's context: 0 task, 1 softirq, 2 hard IRQ, 3 NMI (C's `in_nmi()`,
    /// `in_hardirq()`, `in_serving_softirq()`). Callable from any context.
    pub(super) fn rust_wq_context() -> c_int;

    /// C's `raw_spin_lock_init()` with the given name and lock class (used with lock
    /// debugging only). `lock` must be valid for writes; `name` and `key` (a
    /// `struct lock_class_key`, passed untyped: without lockdep it is an empty struct, which
    /// is not FFI-safe) must outlive it.
    pub(super) fn rust_wq_raw_spin_lock_init(
        lock: *mut bindings::raw_spinlock_t,
        name: *const kernel::ffi::c_char,
        key: *mut c_void,
    );

    /// C's `raw_spin_lock()`. The lock must be initialised; interrupts should be off if any
    /// interrupt handler takes the lock.
    pub(super) fn rust_wq_raw_spin_lock(lock: *mut bindings::raw_spinlock_t);

    /// C's `raw_spin_trylock()`: non-zero if the lock was taken.
    pub(super) fn rust_wq_raw_spin_trylock(lock: *mut bindings::raw_spinlock_t) -> c_int;

    /// C's `raw_spin_unlock()`. The caller must hold the lock.
    pub(super) fn rust_wq_raw_spin_unlock(lock: *mut bindings::raw_spinlock_t);

    /// C's `raw_spin_lock_irqsave()`: returns the saved interrupt flags, which the matching
    /// [`rust_wq_raw_spin_unlock_irqrestore`] gets back. The lock must be initialised.
    pub(super) fn rust_wq_raw_spin_lock_irqsave(lock: *mut bindings::raw_spinlock_t) -> c_ulong;

    /// C's `raw_spin_unlock_irqrestore()`. The caller holds the lock, taken by
    /// [`rust_wq_raw_spin_lock_irqsave`], which returned `flags`.
    pub(super) fn rust_wq_raw_spin_unlock_irqrestore(
        lock: *mut bindings::raw_spinlock_t,
        flags: c_ulong,
    );

    /// Locks the armed list `*st` names (see `helpers.c`): the lock, held with interrupts saved
    /// in `*flags`, or null (nothing held) when `*st` is 0. `st` must be an item's `st` word;
    /// every non-zero value it takes is the address of an armed list, which starts with its
    /// lock.
    pub(super) fn rust_wq_lock_st(
        st: *mut usize,
        flags: *mut c_ulong,
    ) -> *mut bindings::raw_spinlock_t;

    /// Releases a lock taken by [`rust_wq_lock_st`], restoring `flags`.
    pub(super) fn rust_wq_unlock_st(lock: *mut bindings::raw_spinlock_t, flags: c_ulong);

    /// C's `local_irq_save()`: turns local interrupts off and returns the previous state.
    pub(super) fn rust_wq_irq_save() -> c_ulong;

    /// C's `local_irq_restore()`: `flags` came from the matching [`rust_wq_irq_save`] (or
    /// [`rust_wq_raw_spin_lock_irqsave`]), restored in the reverse order of saving.
    pub(super) fn rust_wq_irq_restore(flags: c_ulong);

    /// C's `timer_pending()`: whether `timer` (initialised) is armed. A snapshot.
    pub(super) fn rust_wq_timer_pending(timer: *const bindings::timer_list) -> bool;

    /// C's `kvfree_rcu_mightsleep()`: frees `ptr` (from kmalloc, unused by the caller from now
    /// on) after an RCU grace period. Sleeps.
    pub(super) fn rust_wq_kvfree_rcu(ptr: *mut c_void);

    /// C's `lockdep_assert_held()` on the lock (a `WARN` if lockdep is on and it is not held).
    pub(super) fn rust_wq_raw_spin_assert_held(lock: *mut bindings::raw_spinlock_t);

    /// C's `cpus_read_lock()` (for tests: a closure taking the hotplug lock): sleeps; released
    /// with [`rust_wq_cpus_read_unlock`].
    #[cfg(CONFIG_KUNIT)]
    pub(super) fn rust_wq_cpus_read_lock();

    /// C's `cpus_read_unlock()`: the caller holds the read lock.
    #[cfg(CONFIG_KUNIT)]
    pub(super) fn rust_wq_cpus_read_unlock();

    /// C's `remove_cpu()` (for tests): sleeps; 0 or a negative errno (`-EOPNOTSUPP` without
    /// `CONFIG_HOTPLUG_CPU`). `cpu` must be a possible CPU.
    #[cfg(CONFIG_KUNIT)]
    pub(super) fn rust_wq_remove_cpu(cpu: c_uint) -> c_int;

    /// C's `add_cpu()` (for tests): sleeps; 0 or a negative errno. `cpu` must be possible.
    #[cfg(CONFIG_KUNIT)]
    pub(super) fn rust_wq_add_cpu(cpu: c_uint) -> c_int;
}
