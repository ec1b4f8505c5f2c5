// SPDX-License-Identifier: GPL-2.0

//! Running code in hard-interrupt or softirq context: the module's top half, for its tests and
//! its device.
//!
//! A workqueue is a bottom half: an interrupt handler (the top half) must not sleep, so it
//! queues work, and the work runs later in a worker thread, where it may sleep. This file gives
//! the module a real top half to queue from:
//!
//! - [`run_in_hardirq`] runs a closure from a hard-interrupt handler: it raises an `irq_work`
//!   (C's `struct irq_work`, flagged `IRQ_WORK_HARD_IRQ`) on the calling CPU, whose handler
//!   runs the closure from the `IRQ_WORK_VECTOR` interrupt (or the timer tick where the CPU has
//!   no self-interrupt), with interrupts off, and sleeps until it has run.
//! - [`run_in_softirq`] does the same from softirq context: a BH work item on
//!   `system_bh_wq`, which runs in the `TASKLET_SOFTIRQ`/`HI_SOFTIRQ` softirq of the calling CPU.
//!
//! Which context the caller runs in is the workqueue layer's
//! [`Context`](crate::workqueue::context::Context). This file is a helper of the module, not
//! part of the layer, which does not use it; the suite `rust_wq_irq` (`irq_work/layer_tests.rs`)
//! tests the layer with it.
//!
//! # Sleeping in atomic context
//!
//! Both functions are safe and take any `Send` closure: nothing in the types stops the closure
//! from sleeping (Rust for Linux does not track atomic context in types; this is the accepted
//! gap there). A closure that sleeps is a bug of the caller, which the debug kernel reports
//! (`CONFIG_DEBUG_ATOMIC_SLEEP`: "BUG: sleeping function called from invalid context") at the
//! `might_sleep()` of every sleeping operation of the layer and the kernel; on a production
//! kernel it may deadlock or corrupt the scheduler's state.
//!
//! C header: [`include/linux/irq_work.h`](srctree/include/linux/irq_work.h)

use crate::kthread::Completion;
use core::cell::UnsafeCell;
use kernel::{
    bindings,
    error::code::EBUSY,
    prelude::*,
    types::Opaque, //
};

/// One [`run_in_hardirq`] call: the `irq_work`, the closure, its result, and the completion the
/// caller sleeps on.
///
/// # Invariants
///
/// `work` was initialised with `IRQ_WORK_HARD_IRQ` and [`handler::<F, R>`] as its function.
/// `f` and `r` are only touched by the caller before the work is queued and after it has run,
/// and by the handler in between.
#[pin_data]
struct Call<F, R> {
    #[pin]
    work: Opaque<bindings::irq_work>,
    f: UnsafeCell<Option<F>>,
    r: UnsafeCell<Option<R>>,
    #[pin]
    done: Completion,
}

/// The `irq_work` function: runs the closure in hard-interrupt context.
///
/// # Safety
///
/// `work` is the `work` field of a live, pinned `Call<F, R>` queued by [`run_in_hardirq`].
unsafe extern "C" fn handler<F: FnOnce() -> R, R>(work: *mut bindings::irq_work) {
    // SAFETY: `work` is the `work` field of a `Call<F, R>` (the caller's promise); `Opaque` is
    // `repr(transparent)`, so the cast gives the field's address as its own type.
    let call = unsafe {
        kernel::container_of!(work.cast::<Opaque<bindings::irq_work>>(), Call<F, R>, work)
    };
    // SAFETY: `call` is alive until the waiter has seen `done` and `irq_work_sync()` returned;
    // between queueing and `done`, only this handler touches `f` and `r` (type invariant).
    let f = unsafe { (*(*call).f.get()).take() };
    if let Some(f) = f {
        let r = f();
        // SAFETY: As above.
        unsafe { *(*call).r.get() = Some(r) };
    }
    // SAFETY: As above. `complete()` may be called from hard-interrupt context. The waiter does
    // not free `call` before `irq_work_sync()` has seen this handler return.
    unsafe { (*call).done.complete() };
}

/// Runs `f` in hard-interrupt context on the calling CPU and returns its result.
///
/// Raises an `irq_work` flagged `IRQ_WORK_HARD_IRQ` (hard-IRQ context even on `PREEMPT_RT`)
/// whose handler calls `f` with interrupts off, then sleeps until it has run. `f` may borrow
/// from the caller: the call returns only after the handler has finished with it.
///
/// `f` runs where sleeping, sleeping locks and `GFP_KERNEL` allocations are forbidden: the
/// workqueue layer's operations documented as callable from any context (`enqueue`,
/// `enqueue_on`, delayed enqueue and `mod_delayed`, `cancel`, `disable`, `enable`,
/// `is_pending`) are fine; those documented to sleep (`cancel_sync`, `flush`, `disable_sync`,
/// `Workqueue::flush`/`drain`) call `might_sleep()`, and the debug kernel reports a call from
/// here, exactly as for C. Keep `f` short: other interrupts on this CPU wait for it.
///
/// Must be called from task context with interrupts on (it sleeps). [`EBUSY`] if the work could
/// not be raised (never expected: the `irq_work` is fresh).
pub(crate) fn run_in_hardirq<F, R>(f: F) -> Result<R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    kernel::task::might_sleep();
    pin_init::stack_pin_init!(let call = pin_init!(Call::<F, R> {
        work <- Opaque::ffi_init(|slot: *mut bindings::irq_work| {
            // C's `IRQ_WORK_INIT_HARD(handler)`: no list link, flags `IRQ_WORK_HARD_IRQ`, the
            // function, an empty `rcuwait`. Everything else is zero.
            let mut w = bindings::irq_work::default();
            w.node.__bindgen_anon_1.u_flags = bindings::IRQ_WORK_HARD_IRQ;
            w.func = Some(handler::<F, R>);
            // SAFETY: `slot` is valid for writes of an `irq_work`.
            // INVARIANT: `IRQ_WORK_HARD_IRQ` and `handler::<F, R>`.
            unsafe { slot.write(w) };
        }),
        f: UnsafeCell::new(Some(f)),
        r: UnsafeCell::new(None),
        done <- Completion::new(),
    }));
    // SAFETY: `work` is initialised (above) and pinned on this stack frame, which outlives the
    // handler: we wait for it below before returning. `irq_work_queue` may be called from any
    // context; it claims the work and raises the interrupt on this CPU.
    if !unsafe { bindings::irq_work_queue(call.work.get()) } {
        return Err(EBUSY);
    }
    call.done.wait();
    // SAFETY: `work` is initialised; the handler has called `complete()`, so the work is no
    // longer pending; this waits (spinning briefly, or sleeping without a self-interrupt) until
    // the IRQ-work core has stopped touching it. Interrupts are on and we may sleep.
    unsafe { bindings::irq_work_sync(call.work.get()) };
    // SAFETY: The handler has finished (`irq_work_sync` returned), so nothing else touches `r`.
    let r = unsafe { (*call.r.get()).take() };
    // The handler always stores a result: `f` was `Some` and is called once.
    r.ok_or(EBUSY)
}

/// One [`run_in_softirq`] call: an on-stack BH work item, the closure, its result, and the
/// completion the caller sleeps on.
///
/// # Invariants
///
/// `work` was initialised (as an on-stack item) with [`bh_handler::<F, R>`] as its function.
/// `f` and `r` are only touched by the caller before the item is queued and after it has run,
/// and by the handler in between.
#[pin_data]
struct BhCall<F, R> {
    #[pin]
    work: Opaque<bindings::work_struct>,
    f: UnsafeCell<Option<F>>,
    r: UnsafeCell<Option<R>>,
    #[pin]
    done: Completion,
}

/// The BH work function: runs the closure in softirq context.
///
/// # Safety
///
/// `work` is the `work` field of a live, pinned `BhCall<F, R>` queued by [`run_in_softirq`].
unsafe extern "C" fn bh_handler<F: FnOnce() -> R, R>(work: *mut bindings::work_struct) {
    // SAFETY: `work` is the `work` field of a `BhCall<F, R>` (the caller's promise); `Opaque` is
    // `repr(transparent)`.
    let call = unsafe {
        kernel::container_of!(work.cast::<Opaque<bindings::work_struct>>(), BhCall<F, R>, work)
    };
    // SAFETY: `call` is alive until the waiter has seen `done` and `flush_work()` returned;
    // between queueing and `done`, only this function touches `f` and `r` (type invariant).
    let f = unsafe { (*(*call).f.get()).take() };
    if let Some(f) = f {
        let r = f();
        // SAFETY: As above.
        unsafe { *(*call).r.get() = Some(r) };
    }
    // SAFETY: As above. `complete()` may be called from softirq context; the waiter does not
    // free `call` before `flush_work()` has seen this function return.
    unsafe { (*call).done.complete() };
}

/// Runs `f` in softirq context on the calling CPU and returns its result.
///
/// Queues an on-stack work item on `system_bh_wq` (a bottom-half queue: its items run in
/// softirq context on the CPU that queued them), whose function calls `f`, then sleeps until it
/// has run. `f` may borrow from the caller. The same rules as for [`run_in_hardirq`] apply to
/// `f`: it must not sleep. Must be called from task context (it sleeps). [`EBUSY`] if the item
/// could not be queued (never expected: it is fresh).
pub(crate) fn run_in_softirq<F, R>(f: F) -> Result<R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    kernel::task::might_sleep();
    pin_init::stack_pin_init!(let call = pin_init!(BhCall::<F, R> {
        work <- Opaque::ffi_init(|slot: *mut bindings::work_struct| {
            // SAFETY: `slot` is valid for writes; `bh_handler::<F, R>` is this item's function;
            // the name and the lock class key are static. The item is on this stack frame
            // (`INIT_WORK_ONSTACK`), which is ended with `destroy_work_on_stack()` below.
            // INVARIANT: On-stack, with `bh_handler::<F, R>`.
            unsafe {
                bindings::init_work_with_key(
                    slot,
                    Some(bh_handler::<F, R>),
                    true,
                    c"run_in_softirq".as_char_ptr(),
                    kernel::static_lock_class!().as_ptr(),
                )
            }
        }),
        f: UnsafeCell::new(Some(f)),
        r: UnsafeCell::new(None),
        done <- Completion::new(),
    }));
    let cpu = bindings::wq_misc_consts_WORK_CPU_UNBOUND as i32;
    // SAFETY: `work` is initialised and pinned on this stack frame, which outlives its run (we
    // wait for it below); `system_bh_wq` is a BH queue that lives forever; `WORK_CPU_UNBOUND`
    // queues on the local CPU's BH pool.
    let queued = unsafe { bindings::queue_work_on(cpu, bindings::system_bh_wq, call.work.get()) };
    if queued {
        call.done.wait();
        // SAFETY: `work` is initialised; we may sleep. It has run (`done`), so this only waits
        // until the BH worker has stopped touching it.
        unsafe { bindings::flush_work(call.work.get()) };
    }
    #[cfg(CONFIG_DEBUG_OBJECTS_WORK)]
    // SAFETY: The item was initialised on this stack and is idle (never queued, or run and
    // flushed); this ends its life for debugobjects.
    unsafe {
        bindings::destroy_work_on_stack(call.work.get())
    };
    if !queued {
        return Err(EBUSY);
    }
    // SAFETY: The function has finished (`flush_work` returned), so nothing else touches `r`.
    let r = unsafe { (*call.r.get()).take() };
    r.ok_or(EBUSY)
}

#[cfg(CONFIG_KUNIT)]
#[path = "irq_work/layer_tests.rs"]
mod layer_tests;
