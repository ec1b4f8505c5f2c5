// SPDX-License-Identifier: GPL-2.0

//! Bottom-half queues: items run in softirq context, so only items marked [`BhWorkItem`] (whose
//! `run` never sleeps) can be queued on them.

use super::work::{
    HasWork,
    WorkItem, //
};
use super::{
    pointer::WorkPointer,
    queue::Queue,
    EnqueueError, //
};
use core::ptr::NonNull;
use kernel::bindings;

/// Marks a work item type whose `run` never sleeps, so that it may run on a BH queue.
///
/// Give such types their own `new_work!` call sites: lockdep tracks each site's lock class, and
/// a class used both in softirq and in process context is reported as inconsistent.
///
/// # Safety
///
/// The item's `run` (for work field `ID`) never sleeps and does nothing else that is invalid
/// in softirq context: on a BH queue it runs in softirq context, where sleeping is a bug.
pub(crate) unsafe trait BhWorkItem<const ID: u64 = 0> {}

/// A borrowed bottom-half queue ([`super::system_bh`], or an owned one's).
///
/// # Invariants
///
/// The wrapped queue is a valid `WQ_BH` queue for as long as the `&BhQueue` is.
#[repr(transparent)]
pub(crate) struct BhQueue(Queue);

impl BhQueue {
    /// # Safety
    ///
    /// `ptr` is a valid `WQ_BH` queue that stays valid for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *const bindings::workqueue_struct) -> &'a BhQueue {
        // SAFETY: `BhQueue` is `#[repr(transparent)]` over `Queue`, itself over the C struct;
        // the caller promises validity.
        // INVARIANT: The caller promises a `WQ_BH` queue.
        unsafe { &*core::ptr::from_ref(Queue::from_raw(ptr)).cast::<BhQueue>() }
    }

    /// Queues a non-sleeping item to run in softirq context (`queue_work()` on a BH queue).
    pub(crate) fn enqueue<P, T, const ID: u64>(&self, p: P) -> Result<(), EnqueueError<P>>
    where
        T: WorkItem<ID, Pointer = P> + HasWork<T, ID> + BhWorkItem<ID>,
        P: WorkPointer<T> + Send + 'static,
    {
        self.0.enqueue::<P, T, ID>(p)
    }
}

/// An owned BH queue (`alloc_workqueue(.., WQ_BH, ..)`), destroyed when dropped.
///
/// Only immediate queueing: BH items are short and never sleep. Dropping it runs the queued
/// items and waits for them (`destroy_workqueue()`).
///
/// # Invariants
///
/// `wq` is a valid `WQ_BH` queue owned by this value.
pub(crate) struct BhWorkqueue {
    wq: NonNull<bindings::workqueue_struct>,
}

// SAFETY: The queue may be used and destroyed from any thread.
unsafe impl Send for BhWorkqueue {}
// SAFETY: `&self` methods call C functions that lock internally.
unsafe impl Sync for BhWorkqueue {}

impl BhWorkqueue {
    /// # Safety
    ///
    /// `wq` is a valid `WQ_BH` queue that the caller owns and gives to this value.
    pub(crate) unsafe fn from_new(wq: NonNull<bindings::workqueue_struct>) -> Self {
        // INVARIANT: The caller gives us a valid, owned BH queue.
        Self { wq }
    }

    /// Waits until every item queued before the call has run (`flush_workqueue()`). Sleeps.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn flush(&self) {
        kernel::task::might_sleep();
        // SAFETY: The queue is valid (type invariant); we may sleep.
        unsafe { bindings::__flush_workqueue(self.wq.as_ptr()) };
    }
}

impl core::ops::Deref for BhWorkqueue {
    type Target = BhQueue;

    fn deref(&self) -> &BhQueue {
        // SAFETY: A valid BH queue for as long as `self` (type invariant).
        unsafe { BhQueue::from_raw(self.wq.as_ptr()) }
    }
}

impl Drop for BhWorkqueue {
    fn drop(&mut self) {
        // SAFETY: We own the queue; nobody can queue on it any more (that needs `&self`).
        unsafe { bindings::destroy_workqueue(self.wq.as_ptr()) };
    }
}
