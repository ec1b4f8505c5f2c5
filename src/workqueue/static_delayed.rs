// SPDX-License-Identifier: GPL-2.0

//! [`StaticDelayedWork`] and [`declare_delayed_work!`]: a delayed work item in a `static` (C's
//! `DECLARE_DELAYED_WORK()` and `DECLARE_DEFERRABLE_WORK()`).

use super::{
    cpu::{
        self,
        CpuId, //
    },
    queue::Queue,
    raw,
    static_work::{
        init_once,
        READY,
        UNINIT, //
    },
    system::system_percpu,
    Delay, //
};
use core::sync::atomic::{
    AtomicU8,
    Ordering, //
};
use kernel::{
    bindings,
    error::code::*,
    prelude::*,
    sync::LockClassKey,
    types::Opaque, //
};

/// A delayed work item that lives in a `static`: C's `DECLARE_DELAYED_WORK()`.
///
/// Like [`StaticWork`](super::StaticWork) it needs no allocation, is initialised on first use
/// with interrupts off, and has lock classes of its own (the work and the timer), named after
/// the static. Its timer may only be aimed at queues that live forever (`&'static Queue`: the
/// system queues), so no timer can fire into a destroyed queue; owned queues take the tracked
/// [`DelayedWork`](super::DelayedWork) instead.
///
/// A module that arms a `StaticDelayedWork` must cancel it ([`StaticDelayedWork::cancel_sync`])
/// before it unloads, as in C.
///
/// # Invariants
///
/// Once `state` is [`READY`], `dwork` is an initialised `delayed_work` whose work function is
/// [`StaticDelayedWork::run`] and whose timer is `delayed_work_timer_fn`, IRQ-safe, deferrable
/// if `deferrable`.
pub(crate) struct StaticDelayedWork {
    dwork: Opaque<bindings::delayed_work>,
    state: AtomicU8,
    func: fn(),
    deferrable: bool,
    name: &'static CStr,
    timer_name: &'static CStr,
    key: LockClassKey,
    timer_key: LockClassKey,
}

// SAFETY: The `delayed_work` is used through the C workqueue API, which may be called from any
// thread; initialisation is serialised by `state`.
unsafe impl Sync for StaticDelayedWork {}

impl StaticDelayedWork {
    /// Makes a static delayed item that calls `func`. Use [`declare_delayed_work!`].
    ///
    /// # Safety
    ///
    /// The value must be placed in a `static` (its lock-class keys must have static storage).
    #[doc(hidden)]
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) const unsafe fn new(
        name: &'static CStr,
        timer_name: &'static CStr,
        func: fn(),
        deferrable: bool,
    ) -> Self {
        Self {
            dwork: Opaque::uninit(),
            state: AtomicU8::new(UNINIT),
            func,
            deferrable,
            name,
            timer_name,
            // SAFETY: The caller places `Self` in a `static`.
            key: unsafe { LockClassKey::new_static() },
            // SAFETY: As above.
            timer_key: unsafe { LockClassKey::new_static() },
        }
    }

    /// The C work function of every [`StaticDelayedWork`].
    ///
    /// # Safety
    ///
    /// `ptr` must be the `work` of the `dwork` field of a [`StaticDelayedWork`] (the only
    /// `work_struct`s initialised with this function).
    unsafe extern "C" fn run(ptr: *mut bindings::work_struct) {
        // SAFETY: `ptr` is the `work` field of a `delayed_work` (the caller's promise).
        let dwork = unsafe { kernel::container_of!(ptr, bindings::delayed_work, work) };
        // SAFETY: That `delayed_work` is the `dwork` field (an `Opaque`, `#[repr(transparent)]`)
        // of a `StaticDelayedWork`, which lives forever.
        let this = unsafe {
            &*kernel::container_of!(
                dwork.cast::<Opaque<bindings::delayed_work>>(),
                StaticDelayedWork,
                dwork
            )
        };
        (this.func)()
    }

    /// The initialised `delayed_work`.
    fn raw(&'static self) -> *mut bindings::delayed_work {
        if self.state.load(Ordering::Acquire) != READY {
            self.init();
        }
        self.dwork.get()
    }

    #[cold]
    fn init(&'static self) {
        let flags = if self.deferrable {
            bindings::TIMER_DEFERRABLE
        } else {
            0
        };
        init_once(&self.state, || {
            let d = self.dwork.get();
            // SAFETY: `init_once` runs this once, before anybody else touches `dwork`; the
            // names and keys are static. C requires `delayed_work_timer_fn`, IRQ-safe, as the
            // timer function of a `delayed_work` (what `__DELAYED_WORK_INITIALIZER` sets up).
            // INVARIANT: Initialised with `run` and that timer.
            unsafe {
                let (name, key) = (self.name.as_char_ptr(), self.key.as_ptr());
                raw::init_work(
                    core::ptr::addr_of_mut!((*d).work),
                    Self::run,
                    false,
                    name,
                    key,
                );
                let (name, key) = (self.timer_name.as_char_ptr(), self.timer_key.as_ptr());
                raw::init_delayed_timer(d, flags, false, name, key);
            }
        });
    }

    /// The C `work_struct` inside.
    fn work(&'static self) -> *mut bindings::work_struct {
        // SAFETY: `raw()` is a valid `delayed_work`; this only computes a field address.
        unsafe { core::ptr::addr_of_mut!((*self.raw()).work) }
    }

    /// Queues the item on `queue` after `delay` (C's `queue_delayed_work()`); `false` if it was
    /// already pending. Callable from any context.
    pub(crate) fn enqueue(&'static self, queue: &'static Queue, delay: Delay) -> bool {
        // SAFETY: `raw()` is an initialised, static `delayed_work`; the queue lives forever, so
        // the timer can never fire into a destroyed queue.
        unsafe {
            bindings::queue_delayed_work_on(
                raw::CPU_UNBOUND,
                queue.as_raw(),
                self.raw(),
                delay.jiffies(),
            )
        }
    }

    /// Queues the item on `cpu` of `queue` after `delay` (C's `queue_delayed_work_on()`);
    /// `Ok(false)` if it was already pending. [`ENODEV`] if `cpu` is offline (C would warn).
    /// Callable from any context.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn enqueue_on(
        &'static self,
        cpu: CpuId,
        queue: &'static Queue,
        delay: Delay,
    ) -> Result<bool> {
        let d = self.raw();
        // Interrupts off: an online CPU cannot go offline until they are on again (taking a
        // CPU down runs a stop-machine step on every CPU); see `cpu.rs`.
        let _irq = kernel::interrupt::local_interrupt_disable();
        if !cpu::is_online(cpu) {
            return Err(ENODEV);
        }
        // SAFETY: As in `enqueue`; `cpu` is online for the whole call.
        Ok(unsafe {
            bindings::queue_delayed_work_on(cpu.as_u32() as i32, queue.as_raw(), d, delay.jiffies())
        })
    }

    /// Queues the item on the system per-CPU queue after `delay` (C's
    /// `schedule_delayed_work()`).
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn schedule(&'static self, delay: Delay) -> bool {
        self.enqueue(system_percpu(), delay)
    }

    /// Re-times the item to run `delay` from now on `queue`, queueing it if idle (C's
    /// `mod_delayed_work()`); returns whether it was pending. Callable from any context.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn mod_delayed(&'static self, queue: &'static Queue, delay: Delay) -> bool {
        // SAFETY: As in `enqueue`.
        unsafe {
            bindings::mod_delayed_work_on(
                raw::CPU_UNBOUND,
                queue.as_raw(),
                self.raw(),
                delay.jiffies(),
            )
        }
    }

    /// Cancels the item if pending, without waiting (C's `cancel_delayed_work()`). Any context.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn cancel(&'static self) -> bool {
        // SAFETY: `raw()` is an initialised, static `delayed_work`.
        unsafe { bindings::cancel_delayed_work(self.raw()) }
    }

    /// Cancels the item if pending and waits if it runs (C's `cancel_delayed_work_sync()`).
    /// Sleeps.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn cancel_sync(&'static self) -> bool {
        kernel::task::might_sleep();
        // SAFETY: `raw()` is an initialised, static `delayed_work`; we may sleep.
        unsafe { bindings::cancel_delayed_work_sync(self.raw()) }
    }

    /// Fires a pending timer now and waits until the item has run (C's
    /// `flush_delayed_work()`); returns whether there was anything to wait for. Sleeps.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn flush(&'static self) -> bool {
        kernel::task::might_sleep();
        // SAFETY: `raw()` is an initialised, static `delayed_work`; we may sleep.
        unsafe { bindings::flush_delayed_work(self.raw()) }
    }

    /// Returns whether the item is pending (timer armed, or queued and not started).
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn is_pending(&'static self) -> bool {
        // SAFETY: `work()` is an initialised, static `work_struct`.
        unsafe { raw::is_pending(self.work()) }
    }

    /// Returns whether a worker is running the item right now (`work_busy()`). Advisory.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn is_running(&'static self) -> bool {
        // SAFETY: `work()` is an initialised, static `work_struct`.
        unsafe { raw::is_running(self.work()) }
    }

    /// Returns whether the timer is deferrable (`TIMER_DEFERRABLE`).
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn is_deferrable(&'static self) -> bool {
        let d = self.raw();
        // SAFETY: `d` is an initialised, static `delayed_work`. C changes the CPU bits of
        // `timer.flags` while the timer migrates (single word stores); `AtomicU32` has the
        // layout of the `u32` field, and the `TIMER_DEFERRABLE` bit is set once, at init.
        let flags = unsafe {
            &*core::ptr::addr_of!((*d).timer.flags).cast::<core::sync::atomic::AtomicU32>()
        };
        flags.load(Ordering::Relaxed) & bindings::TIMER_DEFERRABLE != 0
    }
}

/// Declares a [`StaticDelayedWork`] that calls a function: C's `DECLARE_DELAYED_WORK()`, or
/// with `, deferrable` C's `DECLARE_DEFERRABLE_WORK()` (`TIMER_DEFERRABLE`: an idle CPU is not
/// woken for the timer).
///
/// The example below is `src/workqueue/examples/static_delayed.rs`, which the KUnit case
/// `rust_wq_examples::example_static_delayed` compiles and runs:
///
#[doc = concat!("```\n", include_str!("examples/static_delayed.rs"), "```")]
#[cfg_attr(
    not(CONFIG_KUNIT),
    expect(unused_macros, reason = "used by KUnit only")
)]
macro_rules! declare_delayed_work {
    ($vis:vis static $name:ident = $func:path) => {
        $crate::workqueue::declare_delayed_work!(@ $vis $name, $func, false);
    };
    ($vis:vis static $name:ident = $func:path, deferrable) => {
        $crate::workqueue::declare_delayed_work!(@ $vis $name, $func, true);
    };
    (@ $vis:vis $name:ident, $func:path, $deferrable:literal) => {
        $vis static $name: $crate::workqueue::StaticDelayedWork =
            // SAFETY: This value is placed in a `static`.
            unsafe {
                $crate::workqueue::StaticDelayedWork::new(
                    ::kernel::c_str!(::core::stringify!($name)),
                    ::kernel::c_str!(::core::concat!(::core::stringify!($name), "(timer)")),
                    $func,
                    $deferrable,
                )
            };
    };
}
pub(crate) use declare_delayed_work;
