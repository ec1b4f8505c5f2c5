// SPDX-License-Identifier: GPL-2.0

//! Small reads of C workqueue state, and the C initialisers, shared by the layer's modules.

use core::sync::atomic::{
    AtomicUsize,
    Ordering, //
};
use kernel::{
    bindings,
    ffi::c_char, //
};

/// `WORK_CPU_UNBOUND` as the C functions take it.
pub(crate) const CPU_UNBOUND: i32 = bindings::wq_misc_consts_WORK_CPU_UNBOUND as i32;

const PENDING: usize = 1 << bindings::work_bits_WORK_STRUCT_PENDING_BIT;
const PWQ: usize = 1 << bindings::work_bits_WORK_STRUCT_PWQ_BIT;
const DISABLE_MASK: usize = ((1usize << bindings::work_bits_WORK_OFFQ_DISABLE_BITS) - 1)
    << bindings::work_bits_WORK_OFFQ_DISABLE_SHIFT;

/// Reads `work->data` (an `atomic_long_t`) once.
///
/// # Safety
///
/// `work` must point at an initialised `work_struct` that is alive for the call.
unsafe fn data(work: *mut bindings::work_struct) -> usize {
    // SAFETY: `data` is an `atomic_long_t` (one machine word) that the C side only changes with
    // atomic operations; the caller keeps it alive. `AtomicUsize` has the same size and alignment.
    let a = unsafe { &*core::ptr::addr_of!((*work).data).cast::<AtomicUsize>() };
    a.load(Ordering::Acquire)
}

/// C's `work_pending()`: whether the item is queued, or its timer armed, and not started.
///
/// # Safety
///
/// `work` must point at an initialised `work_struct` that is alive for the call.
pub(crate) unsafe fn is_pending(work: *mut bindings::work_struct) -> bool {
    // SAFETY: Guaranteed by the caller.
    (unsafe { data(work) } & PENDING) != 0
}

/// Whether the item is disabled (off queue with a non-zero disable depth).
///
/// # Safety
///
/// `work` must point at an initialised `work_struct` that is alive for the call.
pub(crate) unsafe fn is_disabled(work: *mut bindings::work_struct) -> bool {
    // SAFETY: Guaranteed by the caller.
    let d = unsafe { data(work) };
    d & PWQ == 0 && d & DISABLE_MASK != 0
}

/// Whether a worker is running `work` right now (C's `work_busy() & WORK_BUSY_RUNNING`).
/// Advisory: the answer may change at once. Callable from any context (C takes the pool lock
/// with interrupts saved).
///
/// # Safety
///
/// `work` must point at an initialised `work_struct` that is alive for the call.
pub(crate) unsafe fn is_running(work: *mut bindings::work_struct) -> bool {
    // SAFETY: Guaranteed by the caller.
    let busy = unsafe { bindings::work_busy(work) };
    busy & bindings::wq_misc_consts_WORK_BUSY_RUNNING != 0
}

/// Whether the calling worker thread is running `work` (C's `current_work() == work`).
pub(crate) fn is_current(work: *mut bindings::work_struct) -> bool {
    // SAFETY: `current_work` has no preconditions; it returns NULL outside a worker.
    core::ptr::eq(unsafe { bindings::current_work() }, work)
}

/// Whether the caller is a workqueue worker thread running a work item, in task context: C's
/// `current_work()` is non-NULL only when `in_task()` holds and the task is a worker.
pub(crate) fn in_worker() -> bool {
    // SAFETY: `current_work` has no preconditions; it returns NULL outside a worker.
    !unsafe { bindings::current_work() }.is_null()
}

/// Whether `addr` lies on the calling task's stack (C's `object_is_on_stack()`), so that work
/// items made there are announced to debugobjects as on-stack objects.
pub(crate) fn on_current_stack(addr: *const core::ffi::c_void) -> bool {
    let task = kernel::task::Task::current_raw();
    // SAFETY: `current` is valid for the whole call; `stack` is the base of its stack area,
    // which does not change while the task runs.
    let base = unsafe { (*task).stack } as usize;
    let size = bindings::PAGE_SIZE << bindings::THREAD_SIZE_ORDER;
    let a = addr as usize;
    a >= base && a < base + size
}

/// A C work function.
pub(crate) type WorkFn = unsafe extern "C" fn(*mut bindings::work_struct);

/// C's `INIT_WORK()` with a given lock class, or `INIT_WORK_ONSTACK()` when `on_stack`.
///
/// # Safety
///
/// `work` is valid for writes and not in use by C (not queued, not running, no timer armed);
/// `func` is the work function of what `work` is embedded in; `name` and `key` point at a string
/// and a lock class key that live forever.
pub(crate) unsafe fn init_work(
    work: *mut bindings::work_struct,
    func: WorkFn,
    on_stack: bool,
    name: *const c_char,
    key: *mut bindings::lock_class_key,
) {
    // SAFETY: Guaranteed by the caller.
    unsafe { bindings::init_work_with_key(work, Some(func), on_stack, name, key) }
}

/// Initialises the timer of `dwork` as C's `__INIT_DELAYED_WORK()` does: the function C requires
/// (`delayed_work_timer_fn`, which warns otherwise), `TIMER_IRQSAFE` plus `flags` (e.g.
/// `TIMER_DEFERRABLE`); as an on-stack object for debugobjects when `on_stack`.
///
/// # Safety
///
/// `dwork` is valid for writes and its timer is not armed; `name` and `key` point at a string
/// and a lock class key that live forever.
pub(crate) unsafe fn init_delayed_timer(
    dwork: *mut bindings::delayed_work,
    flags: u32,
    on_stack: bool,
    name: *const c_char,
    key: *mut bindings::lock_class_key,
) {
    // SAFETY: `dwork` is valid (the caller's promise); this only computes a field address.
    let timer = unsafe { core::ptr::addr_of_mut!((*dwork).timer) };
    let f = Some(bindings::delayed_work_timer_fn as unsafe extern "C" fn(_));
    let flags = flags | bindings::TIMER_IRQSAFE;
    #[cfg(CONFIG_DEBUG_OBJECTS_TIMERS)]
    if on_stack {
        // SAFETY: As below; the caller's `on_stack` says the timer is on this stack.
        unsafe { bindings::timer_init_key_on_stack(timer, f, flags, name, key) };
        return;
    }
    let _ = on_stack;
    // SAFETY: `timer` is valid for writes and not armed; `name` and `key` live forever.
    unsafe { bindings::timer_init_key(timer, f, flags, name, key) };
}
