// SPDX-License-Identifier: GPL-2.0

//! [`Queue`]: a borrowed C workqueue, and queueing on it.

use super::{
    arm::{
        ArmError,
        Retimed,
        Target, //
    },
    cpu::CpuId,
    delay::Delay,
    delayed::{
        DelayedWork,
        DelayedWorkItem,
        HasDelayedWork, //
    },
    pointer::WorkPointer,
    raw,
    work::{
        HasWork,
        Work,
        WorkItem, //
    },
    EnqueueError, //
};
use kernel::{
    bindings,
    prelude::*,
    types::Opaque, //
};

/// A kernel workqueue that is borrowed, not owned.
///
/// Wraps the C `struct workqueue_struct`. The system queues are `&'static Queue` values; an
/// [`Workqueue`](super::Workqueue) dereferences to a `Queue` for immediate queueing.
/// Delayed queueing through a plain `Queue` needs `&'static self`, so that no timer can outlive
/// its queue; owned queues offer their own delayed calls.
///
/// # Invariants
///
/// The wrapped `workqueue_struct` is valid for as long as the `&Queue` is.
///
/// # Examples
///
/// The example below is `src/workqueue/examples/queue.rs`, which the KUnit case
/// `rust_wq_examples::example_queue` compiles and runs:
///
#[doc = concat!("```\n", include_str!("examples/queue.rs"), "```")]
#[repr(transparent)]
pub(crate) struct Queue(Opaque<bindings::workqueue_struct>);

// SAFETY: The C workqueue API may be used on one queue from any thread.
unsafe impl Send for Queue {}
// SAFETY: Every `&self` method calls C workqueue functions that do their own locking.
unsafe impl Sync for Queue {}

impl Queue {
    /// Uses a C `struct workqueue_struct` from Rust.
    ///
    /// # Safety
    ///
    /// `ptr` must point at a valid workqueue that stays valid (is not destroyed) for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *const bindings::workqueue_struct) -> &'a Queue {
        // SAFETY: `Queue` is `#[repr(transparent)]` over the C struct; the caller promises that
        // it is valid for `'a`.
        // INVARIANT: The caller promises validity for `'a`.
        unsafe { &*ptr.cast::<Queue>() }
    }

    /// Returns the raw C pointer.
    pub(crate) fn as_raw(&self) -> *mut bindings::workqueue_struct {
        self.0.get()
    }

    /// Queues a plain work item on any CPU the queue chooses (C's `queue_work()`).
    ///
    /// Callable from any context (hard interrupts included). When the item is already pending
    /// or is disabled, the pointer comes back in the error and nothing is queued.
    #[inline]
    pub(crate) fn enqueue<P, T, const ID: u64>(&self, p: P) -> Result<(), EnqueueError<P>>
    where
        T: WorkItem<ID, Pointer = P> + HasWork<T, ID>,
        P: WorkPointer<T> + Send + 'static,
    {
        self.enqueue_raw::<P, T, ID>(raw::CPU_UNBOUND, p)
    }

    /// Queues a plain work item on `cpu` (C's `queue_work_on()`).
    ///
    /// On a per-CPU queue the item runs on `cpu`; on an unbound queue `cpu` selects the pool.
    /// An offline CPU is [`ArmError::Offline`] (`ENODEV`), with the pointer back, as for the
    /// delayed `_on` calls: C accepts a CPU that went offline (the item then runs elsewhere),
    /// but an item queued on a CPU that was never online never runs at all (no worker exists
    /// there; C's comment above `queue_work_on()` says so), and the two cannot be told apart
    /// cheaply. The check is made with interrupts off, which keeps an online CPU online until
    /// the item is queued (see `cpu.rs`). Callable from any context.
    #[inline]
    pub(crate) fn enqueue_on<P, T, const ID: u64>(
        &self,
        cpu: CpuId,
        p: P,
    ) -> Result<(), ArmError<P>>
    where
        T: WorkItem<ID, Pointer = P> + HasWork<T, ID>,
        P: WorkPointer<T> + Send + 'static,
    {
        // A CPU that was never online has no worker: refuse it. One that goes offline after
        // this check is not a problem for a plain item (C's per-CPU pool of an offline CPU
        // still runs what it holds, on another CPU), so no interrupts-off section is needed
        // here, unlike for a timer (`arm.rs`).
        if !super::cpu::is_online(cpu) {
            return Err(ArmError::Offline(p));
        }
        self.enqueue_raw::<P, T, ID>(cpu.as_u32() as i32, p)
            .map_err(ArmError::Refused)
    }

    #[inline]
    fn enqueue_raw<P, T, const ID: u64>(&self, cpu: i32, p: P) -> Result<(), EnqueueError<P>>
    where
        T: WorkItem<ID, Pointer = P> + HasWork<T, ID>,
        P: WorkPointer<T> + Send + 'static,
    {
        let item = p.into_raw();
        // SAFETY: `item` is alive (we own its pointer); `raw_get_work` gives its `Work` field.
        let work = unsafe { Work::raw_get(T::raw_get_work(item)) };
        // SAFETY: `work` was initialised by `Work::new` with `T`'s work function, which takes
        // back the pointer made by `into_raw` (`WorkPointer`'s contract); the queue is valid
        // (type invariant); `cpu` is `WORK_CPU_UNBOUND`, or a CPU that is online and stays
        // online for the call (`enqueue_on`). The pointer is `Send + 'static`, so running it
        // later on another thread is fine. `true` means the queue took the pointer: it cannot
        // be dropped by a draining queue, because `drain()` takes the queue by `&mut`, so
        // nothing else can queue on it meanwhile, and chained work from its own items is
        // accepted by C.
        if unsafe { bindings::queue_work_on(cpu, self.as_raw(), work) } {
            return Ok(());
        }
        // SAFETY: `work` is alive (we still own the pointer).
        let disabled = unsafe { raw::is_disabled(work) };
        // SAFETY: Not queued: the pointer is still ours.
        let p = unsafe { P::from_raw(item) };
        Err(if disabled {
            EnqueueError::Disabled(p)
        } else {
            EnqueueError::Pending(p)
        })
    }

    /// Queues a delayed item after `delay` (C's `queue_delayed_work()`), on a queue that lives
    /// forever (a system queue). Callable from any context.
    #[inline(always)]
    pub(crate) fn enqueue_delayed<P, T, const ID: u64>(
        &'static self,
        p: P,
        delay: Delay,
    ) -> Result<(), EnqueueError<P>>
    where
        T: DelayedWorkItem<ID, Pointer = P> + HasDelayedWork<T, ID>,
        P: WorkPointer<T> + Send + 'static,
    {
        let target = Target {
            wq: self.as_raw(),
            list: None,
            cpu: None,
        };
        // SAFETY: `self` lives forever.
        unsafe { DelayedWork::<T, ID>::arm(p, target, delay) }.map_err(|e| match e {
            ArmError::Refused(e) => e,
            // No CPU was given.
            ArmError::Offline(p) => EnqueueError::Pending(p),
        })
    }

    /// Queues a delayed item on `cpu` after `delay` (C's `queue_delayed_work_on()`), on a queue
    /// that lives forever. An offline CPU is [`ArmError::Offline`] (`ENODEV`).
    pub(crate) fn enqueue_delayed_on<P, T, const ID: u64>(
        &'static self,
        cpu: CpuId,
        p: P,
        delay: Delay,
    ) -> Result<(), ArmError<P>>
    where
        T: DelayedWorkItem<ID, Pointer = P> + HasDelayedWork<T, ID>,
        P: WorkPointer<T> + Send + 'static,
    {
        let target = Target {
            wq: self.as_raw(),
            list: None,
            cpu: Some(cpu),
        };
        // SAFETY: `self` lives forever.
        unsafe { DelayedWork::<T, ID>::arm(p, target, delay) }
    }

    /// Changes the delay of the item `p` points at, queueing it on this queue with `p` if idle
    /// (C's `mod_delayed_work()`), on a queue that lives forever.
    ///
    /// [`Retimed::Queued`]: it was idle and is now queued (the queue took `p`);
    /// [`Retimed::Pending`]: it was pending and only the timer changed (`p` comes back, the
    /// queue already held a pointer); [`EnqueueError::Disabled`] (`EPERM`): it is disabled,
    /// nothing changed. Callable from any context; no reference count is touched.
    #[inline(always)]
    pub(crate) fn mod_delayed<P, T, const ID: u64>(
        &'static self,
        p: P,
        delay: Delay,
    ) -> Result<Retimed<P>, EnqueueError<P>>
    where
        T: DelayedWorkItem<ID, Pointer = P> + HasDelayedWork<T, ID>,
        P: WorkPointer<T> + Send + 'static,
    {
        let target = Target {
            wq: self.as_raw(),
            list: None,
            cpu: None,
        };
        // SAFETY: `self` lives forever.
        unsafe { DelayedWork::<T, ID>::modify(p, target, delay) }.map_err(|e| match e {
            ArmError::Refused(e) => e,
            // No CPU was given.
            ArmError::Offline(p) => EnqueueError::Disabled(p),
        })
    }

    /// [`Queue::mod_delayed`] with a clone of `p`, for callers that keep theirs: `Ok(true)` if
    /// the item was pending, `Ok(false)` if it was idle and is now queued, `EPERM` if disabled.
    /// Takes and drops a reference besides what `mod_delayed` does.
    pub(crate) fn mod_delayed_cloned<P, T, const ID: u64>(
        &'static self,
        p: &P,
        delay: Delay,
    ) -> Result<bool>
    where
        T: DelayedWorkItem<ID, Pointer = P> + HasDelayedWork<T, ID>,
        P: WorkPointer<T> + Clone + Send + 'static,
    {
        self.mod_delayed(p.clone(), delay)
            .map(|r| r.was_pending())
            .map_err(|e| e.to_errno())
    }
}
