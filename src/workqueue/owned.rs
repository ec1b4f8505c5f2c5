// SPDX-License-Identifier: GPL-2.0

//! [`Workqueue`]: a workqueue made with `alloc_workqueue()` and destroyed when dropped.

use super::static_work::declare_work;
use super::{
    arm::{
        ArmError,
        Retimed,
        Target, //
    },
    armed::{
        Registry,
        Taken, //
    },
    cpu::CpuId,
    delay::Delay,
    delayed::{
        DelayedWork,
        DelayedWorkItem,
        HasDelayedWork, //
    },
    pointer::WorkPointer,
    queue::Queue,
    raw, //
};
use core::{
    ops::Deref,
    ptr::NonNull,
    sync::atomic::{
        AtomicBool,
        AtomicPtr,
        Ordering, //
    },
};
use kernel::{
    bindings,
    prelude::*, //
};

/// An owned workqueue, made with `alloc_workqueue()` and destroyed when dropped.
///
/// Build one with [`Workqueue::builder`](super::Builder). It dereferences to [`Queue`] for
/// immediate queueing, and offers delayed queueing itself ([`Workqueue::enqueue_delayed`],
/// [`Workqueue::mod_delayed`]), which C does not make safe: `destroy_workqueue()` leaves armed
/// timers to fire into the freed queue. This queue keeps, linked through the items' own
/// [`DelayedWork`] fields, a list of the items armed on it (see `armed.rs`): no allocation, no
/// reference, IRQ-safe, and no lock on an arm but an item's first on the queue. The value may be
/// moved (the C queue and the list are on the heap).
///
/// Dropping it cancels every item whose timer is still aimed at it and gives their pointers
/// back, then `destroy_workqueue()` runs every queued item and waits for the running ones.
/// Items armed on it earlier and since queued elsewhere are not touched. Dropped from inside a
/// work item (for example an item that owns its own queue and drops the last reference in its
/// `run`), or in interrupt context (the last reference dropped in an interrupt handler), the
/// destruction is handed to `system_dfl_wq` instead of waiting for itself or sleeping there.
///
/// # Invariants
///
/// `inner` holds a valid queue owned by this value, and the armed list of that queue.
///
/// # Examples
///
/// The example below is `src/workqueue/examples/owned.rs`, which the KUnit case
/// `rust_wq_examples::example_owned` compiles and runs:
///
#[doc = concat!("```\n", include_str!("examples/owned.rs"), "```")]
pub(crate) struct Workqueue {
    inner: NonNull<Inner>,
}

/// The heap part of an [`Workqueue`]: everything that must not move.
pub(crate) struct Inner {
    wq: NonNull<bindings::workqueue_struct>,
    /// The flags the queue was allocated with (C keeps them in its private `wq->flags`).
    flags: u32,
    /// Whether RCU work was ever queued on it (its drop then waits for RCU callbacks).
    rcu_used: AtomicBool,
    armed: Registry,
    /// The next queue waiting for [`REAPER`], when this one is dropped inside a work item.
    next_reap: AtomicPtr<Inner>,
}

/// Queues dropped inside work items, waiting to be destroyed by [`REAPER`] (a lock-free stack
/// linked through `Inner::next_reap`; each entry is owned by the stack).
static TO_REAP: AtomicPtr<Inner> = AtomicPtr::new(core::ptr::null_mut());

declare_work!(static REAPER = reap_all);

/// Destroys every queue on [`TO_REAP`]; runs on `system_dfl_wq`.
fn reap_all() {
    let mut p = TO_REAP.swap(core::ptr::null_mut(), Ordering::AcqRel);
    while let Some(inner) = NonNull::new(p) {
        // SAFETY: Entries of the stack are valid and owned by it; we took the whole stack.
        p = unsafe { inner.as_ref() }.next_reap.load(Ordering::Acquire);
        // SAFETY: The entry came from a dropped `Workqueue` whose armed items were cancelled;
        // nobody else uses it.
        unsafe { destroy(inner) };
    }
}

/// Calls [`Workqueue::wait_reaped`] when dropped.
///
/// A queue dropped inside a work item is destroyed later by `REAPER`, a static item of this
/// module queued on `system_dfl_wq`: a module that unloaded meanwhile would leave module text
/// queued or running. A module that uses owned queues holds one of these as the *last* field of
/// its module struct (fields drop in declaration order), so that its unload waits for them.
pub(crate) struct ReapOnDrop(());

impl ReapOnDrop {
    /// The guard; creating it does nothing.
    pub(crate) fn new() -> Self {
        Self(())
    }
}

impl Drop for ReapOnDrop {
    fn drop(&mut self) {
        Workqueue::wait_reaped();
    }
}

// SAFETY: The queue may be used and destroyed from any thread; the list locks internally.
unsafe impl Send for Workqueue {}
// SAFETY: All `&self` methods call C functions that lock internally, or lock the list.
unsafe impl Sync for Workqueue {}

impl Workqueue {
    /// Takes ownership of a queue just returned by `alloc_workqueue()`.
    ///
    /// # Safety
    ///
    /// `wq` is a valid queue that nobody else destroys, allocated with `flags`; nothing has been
    /// queued on it yet.
    pub(crate) unsafe fn from_new(
        wq: NonNull<bindings::workqueue_struct>,
        flags: u32,
    ) -> Result<Self> {
        let armed = match Registry::new(wq.as_ptr()) {
            Ok(a) => a,
            Err(e) => {
                // SAFETY: We own `wq` (the caller's promise) and nothing is on it.
                unsafe { bindings::destroy_workqueue(wq.as_ptr()) };
                return Err(e);
            }
        };
        let inner = Inner {
            wq,
            flags,
            rcu_used: AtomicBool::new(false),
            armed,
            next_reap: AtomicPtr::new(core::ptr::null_mut()),
        };
        match KBox::new(inner, GFP_KERNEL) {
            // INVARIANT: A valid queue, owned, with its list.
            Ok(b) => Ok(Self {
                inner: NonNull::from(KBox::leak(b)),
            }),
            Err(e) => {
                // `armed` was moved into the failed initialiser and dropped there.
                // SAFETY: As above.
                unsafe { bindings::destroy_workqueue(wq.as_ptr()) };
                Err(e.into())
            }
        }
    }

    fn inner(&self) -> &Inner {
        // SAFETY: `inner` is valid while `self` exists (type invariant).
        unsafe { self.inner.as_ref() }
    }

    /// The `WQ_*` flags the queue was allocated with.
    pub(crate) fn flags(&self) -> u32 {
        self.inner().flags
    }

    /// Records that RCU work is being queued on this queue: its drop then waits for every RCU
    /// callback in flight (`rcu_barrier()`) before destroying it, so that no callback queues an
    /// item into a freed queue. Call before `queue_rcu_work()`.
    pub(crate) fn note_rcu_use(&self) {
        self.inner().rcu_used.store(true, Ordering::Release);
    }

    fn target(&self, cpu: Option<CpuId>) -> Target<'_> {
        Target {
            wq: self.inner().wq.as_ptr(),
            list: Some(self.inner().armed.list()),
            cpu,
        }
    }

    /// Waits until every item queued before the call has finished (C's `flush_workqueue()`).
    /// Items whose timers have not fired are not waited for. Sleeps.
    pub(crate) fn flush(&self) {
        kernel::task::might_sleep();
        // SAFETY: The queue is valid (type invariant); we may sleep.
        unsafe { bindings::__flush_workqueue(self.inner().wq.as_ptr()) };
    }

    /// Fires every armed timer now (and waits for the grace period of RCU work queued on it),
    /// then waits until the queue is empty, including work that
    /// its items queue on it meanwhile (C's `drain_workqueue()`). Sleeps.
    ///
    /// While C drains a queue it refuses every item that does not come from the queue's own
    /// items (`WARN_ONCE("cannot queue .. on wq ..")`), drops it, and still reports success
    /// to the caller of `queue_work_on()`: the pointer would leak and the item never run. So
    /// `drain` takes the queue by `&mut`: nothing else can queue on it meanwhile (every way to
    /// queue needs `&self` or a `&Queue` borrowed from it, scoped items included), and C
    /// accepts what the queue's own items queue on it. A timer armed earlier is the other way
    /// in: firing every armed timer first means none fires during the drain.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn drain(&mut self) {
        kernel::task::might_sleep();
        let inner = self.inner();
        if inner.rcu_used.load(Ordering::Acquire) {
            // Likewise for RCU work waiting for its grace period: C warns when an RCU callback
            // queues into a draining queue. Afterwards those items are queued and drained.
            kernel::sync::rcu::rcu_barrier();
        }
        let wq = inner.wq.as_ptr();
        inner.armed.list().drain_with(
            |node| {
                // Fire each timer aimed here now, as C's `flush_delayed_work()` does (without
                // its wait): only a successful timer delete makes the timer's pending state
                // ours, and then the item is queued as its timer would have queued it. Reading
                // `is_pending()` and then re-timing with `mod_delayed_work_on()` raced with a
                // timer that fired in between: the item started (C clears PENDING), and the
                // re-timing queued it once more with no pointer behind it.
                //
                // The delete waits for a timer function that is running (`timer_delete_sync()`,
                // as `flush_delayed_work()`): a timer that had fired but whose function had not
                // queued the item yet (its CPU preempted, as a vCPU can be) was left alone by
                // `timer_delete()`, `drain_workqueue()` found nothing queued and returned, and the
                // function then queued the item after the drain, or into the destroyed queue
                // once the owner dropped it (an oops in `__queue_work()`, found by the KUnit case
                // `drain_while_timers_fire_runs_each_item_once` with 5 vCPUs on 2 host cores).
                if node.aimed_at() != wq {
                    // Registered here, aimed elsewhere (armed.rs): nothing of ours.
                    return Taken::Nothing;
                }
                // With the timer deleted its period is ours until it is queued or the timer
                // re-added, so `wq` cannot change: if a system-queue arm re-aimed the item after
                // the check above, its timer is put back as it was. A timer that was not pending
                // had fired and its function has returned: the item is queued (or ran), and
                // `drain_workqueue` waits for it. (`node` is registered on this queue's list,
                // which we hold locked with interrupts off: it is alive.)
                if node.delete_timer_sync() {
                    if node.aimed_at() == wq {
                        // SAFETY: Deleted just above, not re-added; the list lock keeps
                        // interrupts off; `wq` is valid (type invariant) and not destroyed
                        // before the drain below.
                        unsafe { node.fire_deleted_timer() };
                    } else {
                        // SAFETY: Deleted just above, not re-added.
                        unsafe { node.readd_timer() };
                    }
                }
                Taken::Nothing
            },
            |_, _| {},
        );
        // SAFETY: The queue is valid (type invariant); we may sleep.
        unsafe { bindings::drain_workqueue(inner.wq.as_ptr()) };
    }

    /// Queues a delayed item after `delay` (C's `queue_delayed_work()`). Callable from any
    /// context, with spinlocks held and interrupts off; allocates nothing.
    #[inline(always)]
    pub(crate) fn enqueue_delayed<P, T, const ID: u64>(
        &self,
        p: P,
        delay: Delay,
    ) -> Result<(), super::EnqueueError<P>>
    where
        T: DelayedWorkItem<ID, Pointer = P> + HasDelayedWork<T, ID>,
        P: WorkPointer<T> + Send + 'static,
    {
        // SAFETY: The queue is valid; its drop cancels what its list holds before destroying it.
        unsafe { DelayedWork::<T, ID>::arm(p, self.target(None), delay) }.map_err(|e| match e {
            ArmError::Refused(e) => e,
            // No CPU was given.
            ArmError::Offline(p) => super::EnqueueError::Pending(p),
        })
    }

    /// Queues a delayed item on `cpu` after `delay` (C's `queue_delayed_work_on()`). An offline
    /// CPU is [`ArmError::Offline`]. Callable from any context; allocates nothing.
    pub(crate) fn enqueue_delayed_on<P, T, const ID: u64>(
        &self,
        cpu: CpuId,
        p: P,
        delay: Delay,
    ) -> Result<(), ArmError<P>>
    where
        T: DelayedWorkItem<ID, Pointer = P> + HasDelayedWork<T, ID>,
        P: WorkPointer<T> + Send + 'static,
    {
        // SAFETY: As in `enqueue_delayed`.
        unsafe { DelayedWork::<T, ID>::arm(p, self.target(Some(cpu)), delay) }
    }

    /// Changes the delay of the item `p` points at, moving it to this queue, queueing it with
    /// `p` if idle (C's `mod_delayed_work()`). [`Retimed::Queued`]: it was idle and is now
    /// queued; [`Retimed::Pending`]: it was pending (`p` comes back, the queue already held a
    /// pointer); [`EnqueueError::Disabled`] (`EPERM`): nothing changed. Callable from any
    /// context; no reference count is touched.
    #[inline(always)]
    pub(crate) fn mod_delayed<P, T, const ID: u64>(
        &self,
        p: P,
        delay: Delay,
    ) -> Result<Retimed<P>, super::EnqueueError<P>>
    where
        T: DelayedWorkItem<ID, Pointer = P> + HasDelayedWork<T, ID>,
        P: WorkPointer<T> + Send + 'static,
    {
        // SAFETY: As in `enqueue_delayed`.
        unsafe { DelayedWork::<T, ID>::modify(p, self.target(None), delay) }.map_err(|e| match e {
            ArmError::Refused(e) => e,
            // No CPU was given.
            ArmError::Offline(p) => super::EnqueueError::Disabled(p),
        })
    }

    /// As [`Workqueue::mod_delayed`], on `cpu` ([`ArmError::Offline`], `ENODEV`, if offline).
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn mod_delayed_on<P, T, const ID: u64>(
        &self,
        cpu: CpuId,
        p: P,
        delay: Delay,
    ) -> Result<Retimed<P>, ArmError<P>>
    where
        T: DelayedWorkItem<ID, Pointer = P> + HasDelayedWork<T, ID>,
        P: WorkPointer<T> + Send + 'static,
    {
        // SAFETY: As in `enqueue_delayed`.
        unsafe { DelayedWork::<T, ID>::modify(p, self.target(Some(cpu)), delay) }
    }

    /// [`Workqueue::mod_delayed`] with a clone of `p`, for callers that keep theirs: `Ok(true)`
    /// if the item was pending, `Ok(false)` if it was idle and is now queued, `EPERM` if
    /// disabled. Takes and drops a reference besides what `mod_delayed` does.
    pub(crate) fn mod_delayed_cloned<P, T, const ID: u64>(
        &self,
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

    /// How many items registered on this queue's armed list are pending and aimed at it right
    /// now (a snapshot; `0` if the list is inconsistent, which [`Workqueue::armed_check`] tells).
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn armed(&self) -> usize {
        let wq = self.inner().wq.as_ptr();
        let list = self.inner().armed.list();
        list.count(|n| n.is_pending() && n.aimed_at() == wq)
            .unwrap_or(0)
    }

    /// Walks the armed list and checks its links (for tests and the torture runner): the number
    /// of items registered on it, or `None` if it is inconsistent.
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn armed_check(&self) -> Option<usize> {
        self.inner().armed.list().count(|_| true)
    }

    /// Waits until every queue dropped inside a work item has been destroyed and the function
    /// that destroyed it has returned. Modules that drop owned queues from work items call this
    /// before they unload. Sleeps.
    pub(crate) fn wait_reaped() {
        kernel::task::might_sleep();
        loop {
            // Waits for a queued or running `reap_all` (a static item: flushing it also waits
            // for its function to return, so no module text is in use afterwards).
            REAPER.flush();
            if TO_REAP.load(Ordering::Acquire).is_null() {
                return;
            }
            // Pushed after the run we waited for; its own `enqueue` may have found the item
            // pending: run it once more.
            REAPER.enqueue(super::system::system_dfl());
        }
    }
}

impl Deref for Workqueue {
    type Target = Queue;

    fn deref(&self) -> &Queue {
        // SAFETY: The queue is valid for as long as `self` is (type invariant).
        unsafe { Queue::from_raw(self.inner().wq.as_ptr()) }
    }
}

/// Cancels every item whose timer is aimed at the queue and gives the pointers back.
fn cancel_armed(inner: &Inner) -> usize {
    let wq = inner.wq.as_ptr();
    inner.armed.list().drain_with(
        |node| {
            // The item is this queue's to cancel if its timer is armed for this queue, or has
            // fired and its function is about to queue it here. Only a timer says where it
            // aims: an item queued with no delay (here or on another queue) has no timer, and C
            // leaves `dwork->wq` naming the queue of its last timer, which may be this one
            // (dropping such an item queued on a system queue cancelled it there: found by
            // `rust_wq_owned.dropping_a_queue_leaves_an_item_queued_elsewhere_with_no_delay`).
            // Registered and aimed elsewhere (or idle), it is only unregistered.
            if node.aimed_at() != wq {
                return Taken::Nothing;
            }
            if !node.timer_pending() {
                // No timer armed, but one may have just fired, its function not yet done (it
                // queues the item here; a vCPU can be preempted in between): wait for it, as
                // `drain()` does. Afterwards the item is idle, running, or on a pool: this
                // queue's (`destroy_workqueue()` runs it) or, queued with no delay, another's.
                if !node.delete_timer_sync() {
                    return Taken::Nothing;
                }
                // An arm added a timer in between, and we deleted it: put it back as that arm
                // left it, and cancel below if it aims here.
                // SAFETY: Deleted just above, not re-added.
                unsafe { node.readd_timer() };
                if node.aimed_at() != wq {
                    return Taken::Nothing;
                }
            }
            // SAFETY: `dwork` is initialised; `cancel_delayed_work` does not sleep.
            if !unsafe { bindings::cancel_delayed_work(node.dwork()) } {
                return Taken::Nothing;
            }
            // The cancel took the period checked above (its timer, or the item its timer
            // function queued here meanwhile), or, if that one ended in between, a new one: on
            // this queue (an arm through its window), or on a queue that lives forever (an arm
            // elsewhere would have to move the registration, which waits for our lock). `wq`
            // says which, if the new one had a timer: given back, or queued again where it was
            // (`Taken::Foreign`). A new one queued with no delay leaves `wq` naming this queue
            // and is given back as ours: a race of three (the item runs from this queue's pool
            // and is queued again with no delay on a system queue, all between the check and
            // the cancel) that loses that queueing, never a pointer.
            if node.aimed_at() == wq {
                Taken::Pointer
            } else {
                Taken::Foreign
            }
        },
        |node, taken| match taken {
            // SAFETY: The cancel took the queue's pointer; given back once, with no lock held.
            Taken::Pointer => unsafe { node.release() },
            // SAFETY: As above; it goes back to the queue it was taken from.
            Taken::Foreign => unsafe { node.requeue() },
            Taken::Nothing => {}
        },
    )
}

/// Destroys the queue and frees `inner`.
///
/// # Safety
///
/// `inner` came from the `KBox` leaked in [`Workqueue::from_new`], its armed list is empty,
/// and nobody uses it any more.
unsafe fn destroy(inner: NonNull<Inner>) {
    // SAFETY: Guaranteed by the caller: `inner` is valid.
    if unsafe { inner.as_ref() }.rcu_used.load(Ordering::Acquire) {
        // An RCU work item queued on this queue may still wait for its grace period; its
        // callback queues it here. Wait for every pending callback: afterwards those items are
        // queued, and `destroy_workqueue()` below runs them. (RCU work cannot be cancelled.)
        kernel::sync::rcu::rcu_barrier();
    }
    // SAFETY: Guaranteed by the caller: we own the queue and no timer is aimed at it.
    unsafe { bindings::destroy_workqueue(inner.as_ref().wq.as_ptr()) };
    // SAFETY: Guaranteed by the caller: the box is ours.
    drop(unsafe { KBox::from_raw(inner.as_ptr()) });
}

impl Drop for Workqueue {
    fn drop(&mut self) {
        let inner = self.inner();
        // No timer may fire into the queue once it is being destroyed.
        cancel_armed(inner);
        if raw::in_worker() || !super::context::Context::current().is_task() {
            // Inside a work item: `destroy_workqueue()` would wait for this very item if it runs
            // on this queue. In interrupt context it must not sleep at all. Either way, hand the
            // destruction to `REAPER` on `system_dfl_wq`: push `inner` (now owned by the stack)
            // and queue the reaper (both callable in any context).
            let mut head = TO_REAP.load(Ordering::Acquire);
            loop {
                inner.next_reap.store(head, Ordering::Relaxed);
                match TO_REAP.compare_exchange(
                    head,
                    self.inner.as_ptr(),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => break,
                    Err(h) => head = h,
                }
            }
            REAPER.enqueue(super::system::system_dfl());
            return;
        }
        // SAFETY: We own `inner` (invariant), its list is empty (cancelled above; nothing can
        // arm on it any more, that needs `&self`), and nobody else uses it.
        unsafe { destroy(self.inner) };
    }
}
