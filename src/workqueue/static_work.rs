// SPDX-License-Identifier: GPL-2.0

//! [`StaticWork`] and [`declare_work!`]: a work item in a `static` (C's `DECLARE_WORK()`).

use super::{
    queue::Queue,
    raw,
    system::system_percpu, //
};
use core::sync::atomic::{
    AtomicU8,
    Ordering, //
};
use kernel::{bindings, prelude::*, sync::LockClassKey, types::Opaque};

/// A work item that lives in a `static`, the Rust form of C's `DECLARE_WORK()`.
///
/// It needs no allocation. The `work_struct` is initialised on first use (C initialises it at
/// compile time; Rust cannot build a self-referential `work_struct` in a constant). The first
/// use initialises it with interrupts off, so an interrupt on the same CPU cannot find it half
/// made and spin; other CPUs wait for at most that short, interrupt-free section. Each static
/// item has its own lock class, named after the static.
///
/// A module that queues a `StaticWork` must cancel or flush it before it unloads, as in C.
///
/// # Invariants
///
/// Once `state` is [`READY`], `work` is an initialised `work_struct` whose function is
/// [`StaticWork::run`].
pub(crate) struct StaticWork {
    work: Opaque<bindings::work_struct>,
    state: AtomicU8,
    func: fn(),
    name: &'static CStr,
    key: LockClassKey,
}

// SAFETY: The `work_struct` is used through the C workqueue API, which may be called from any
// thread; initialisation is serialised by `state`.
unsafe impl Sync for StaticWork {}

impl StaticWork {
    /// Makes a static work item that calls `func`. Use [`declare_work!`].
    ///
    /// # Safety
    ///
    /// The value must be placed in a `static` (its lock-class key must have static storage).
    #[doc(hidden)]
    pub(crate) const unsafe fn new(name: &'static CStr, func: fn()) -> Self {
        Self {
            work: Opaque::uninit(),
            state: AtomicU8::new(UNINIT),
            func,
            name,
            // SAFETY: The caller places `Self` in a `static`.
            key: unsafe { LockClassKey::new_static() },
        }
    }

    /// The C work function of every [`StaticWork`].
    ///
    /// # Safety
    ///
    /// `ptr` must point at the `work` field of a [`StaticWork`] (the only `work_struct`s that are
    /// initialised with this function).
    unsafe extern "C" fn run(ptr: *mut bindings::work_struct) {
        // SAFETY: Only `StaticWork::work` fields are initialised with this function, so `ptr`
        // points at the `work` field of a `StaticWork` (which lives forever).
        let this = unsafe {
            &*kernel::container_of!(
                ptr.cast::<Opaque<bindings::work_struct>>(),
                StaticWork,
                work
            )
        };
        (this.func)()
    }

    /// The initialised `work_struct`.
    fn raw(&'static self) -> *mut bindings::work_struct {
        if self.state.load(Ordering::Acquire) != READY {
            self.init();
        }
        self.work.get()
    }

    #[cold]
    fn init(&'static self) {
        init_once(&self.state, || {
            // SAFETY: `init_once` runs this once, before anybody else touches `work`; `name`
            // and `key` are static.
            unsafe {
                let (name, key) = (self.name.as_char_ptr(), self.key.as_ptr());
                raw::init_work(self.work.get(), Self::run, false, name, key)
            };
        });
    }

    /// Queues the item (C's `queue_work()`); returns `false` if it was already pending.
    /// Callable from any context.
    pub(crate) fn enqueue(&'static self, queue: &Queue) -> bool {
        // SAFETY: `raw()` returns an initialised `work_struct` that lives forever; the queue is
        // valid for the call. The module flushes or cancels the item before it unloads.
        unsafe { bindings::queue_work_on(raw::CPU_UNBOUND, queue.as_raw(), self.raw()) }
    }

    /// Queues the item on the system per-CPU queue (C's `schedule_work()`).
    pub(crate) fn schedule(&'static self) -> bool {
        self.enqueue(system_percpu())
    }

    /// Cancels the item if pending and waits if running (C's `cancel_work_sync()`). Sleeps.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn cancel_sync(&'static self) -> bool {
        // C's `cancel_work_sync()` checks `might_sleep()` itself.
        // SAFETY: `raw()` returns an initialised, static `work_struct`; we may sleep.
        unsafe { bindings::cancel_work_sync(self.raw()) }
    }

    /// Cancels the item if pending, without waiting (C's `cancel_work()`). Any context.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn cancel(&'static self) -> bool {
        // SAFETY: `raw()` returns an initialised, static `work_struct`.
        unsafe { bindings::cancel_work(self.raw()) }
    }

    /// Waits until the item has finished, if queued or running (C's `flush_work()`). Sleeps.
    pub(crate) fn flush(&'static self) -> bool {
        // C's `flush_work()` checks `might_sleep()` itself.
        // SAFETY: `raw()` returns an initialised, static `work_struct`; we may sleep.
        unsafe { bindings::flush_work(self.raw()) }
    }

    /// Returns whether the item is pending right now.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn is_pending(&'static self) -> bool {
        // SAFETY: `raw()` returns an initialised, static `work_struct`.
        unsafe { raw::is_pending(self.raw()) }
    }

    /// Returns whether a worker is running the item right now (`work_busy()`). Advisory.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn is_running(&'static self) -> bool {
        // SAFETY: `raw()` returns an initialised, static `work_struct`.
        unsafe { raw::is_running(self.raw()) }
    }
}

/// The states of a static item's one-time initialisation (see [`init_once`]).
pub(super) const UNINIT: u8 = 0;
const INITIALISING: u8 = 1;
pub(super) const READY: u8 = 2;

/// Runs `init` once for the item whose state is `state`, then marks it [`READY`].
///
/// Interrupts are off during the whole section: an interrupt handler on this CPU never finds
/// the item half made (it would spin forever). A caller on another CPU spins for at most that
/// short, interrupt-free section.
#[cold]
pub(super) fn init_once(state: &AtomicU8, init: impl FnOnce()) {
    let _irq = kernel::interrupt::local_interrupt_disable();
    match state.compare_exchange(UNINIT, INITIALISING, Ordering::Acquire, Ordering::Acquire) {
        Ok(_) => {
            init();
            state.store(READY, Ordering::Release);
        }
        Err(_) => {
            // Another CPU is initialising with its interrupts off: a short, bounded wait.
            while state.load(Ordering::Acquire) != READY {
                core::hint::spin_loop();
            }
        }
    }
}

/// Declares a [`StaticWork`] that calls a function: the Rust form of C's `DECLARE_WORK()`.
///
/// The example below is `src/workqueue/examples/static_work.rs`, which the KUnit case
/// `rust_wq_examples::example_static_work` compiles and runs:
///
#[doc = concat!("```\n", include_str!("examples/static_work.rs"), "```")]
macro_rules! declare_work {
    ($vis:vis static $name:ident = $func:path) => {
        $vis static $name: $crate::workqueue::StaticWork =
            // SAFETY: This value is placed in a `static`.
            unsafe {
                $crate::workqueue::StaticWork::new(
                    ::kernel::c_str!(::core::stringify!($name)),
                    $func,
                )
            };
    };
}
pub(crate) use declare_work;
