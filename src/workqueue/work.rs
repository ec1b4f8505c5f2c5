// SPDX-License-Identifier: GPL-2.0

//! Cancel, disable, enable, flush and state queries for plain work items ([`Work`]).
//!
//! Upstream's [`Work<T, ID>`] is the field; [`WorkOps`] adds the operations on it. The C function
//! is chosen by the type of the field: these call the `work_struct` functions
//! (`cancel_work_sync()`, ...), and the [`DelayedWork`](super::DelayedWork) field type has its
//! own methods calling the `delayed_work` ones. No marker trait chooses, so a delayed item can
//! never reach `cancel_work_sync()` (which would spin until its timer fired).
//!
//! Every operation that stops a pending item from running hands back the pointer the queue held
//! (`Some(pointer)`), so the caller decides where the item is dropped.

use super::{
    pointer::WorkPointer,
    raw, //
};
use kernel::{
    bindings,
    workqueue::{
        HasWork,
        Work,
        WorkItem, //
    },
};

/// Why an item was not queued. Either way the pointer is handed back and nothing leaked.
///
/// In 7.3 a `false` from `queue_work_on()` (and the delayed variants) means the item is already
/// pending *or* disabled; the variant says which one was observed during the call.
#[derive(Debug)]
pub(crate) enum EnqueueError<P> {
    /// The item was already pending (queued, or its timer armed); it will run once.
    Pending(P),
    /// The item is disabled ([`WorkOps::disable`]); it cannot be queued until enabled.
    Disabled(P),
}

impl<P> EnqueueError<P> {
    /// Returns the pointer that was not queued.
    pub(crate) fn into_inner(self) -> P {
        match self {
            Self::Pending(p) | Self::Disabled(p) => p,
        }
    }

    /// The errno a caller at the C boundary would report: `EBUSY` or `EPERM` (disabled).
    pub(crate) fn to_errno(&self) -> kernel::error::Error {
        match self {
            Self::Pending(_) => kernel::error::code::EBUSY,
            Self::Disabled(_) => kernel::error::code::EPERM,
        }
    }
}

/// Operations on a plain [`Work`] field. The item is found through its [`HasWork`] impl.
///
/// # Examples
///
/// ```ignore
/// let _ = system_percpu().enqueue(item.clone());
/// if let Some(queued) = item.work.cancel() {
///     // It had not started; `queued` is the `Arc` the queue held.
///     drop(queued);
/// }
/// ```
pub(crate) trait WorkOps<T: WorkItem<ID>, const ID: u64> {
    /// Takes the item off its queue if it is pending, without waiting (C's `cancel_work()`).
    ///
    /// Callable from any context, including hard interrupts. Returns the queue's pointer if
    /// the item was pending (it will not run for that queueing); a running instance goes on.
    fn cancel(&self) -> Option<T::Pointer>;
    /// Cancels the item and waits for a running instance to finish (C's `cancel_work_sync()`).
    ///
    /// Returns the queue's pointer if the item was pending. Sleeps.
    fn cancel_sync(&self) -> Option<T::Pointer>;
    /// Disables the item, cancelling it if pending (C's `disable_work()`): until a matching
    /// [`WorkOps::enable`], enqueueing it fails with [`EnqueueError::Disabled`]. Disables nest.
    ///
    /// Callable from any context. Returns the queue's pointer if the item was pending.
    fn disable(&self) -> Option<T::Pointer>;
    /// Disables the item and waits for a running instance (C's `disable_work_sync()`). Sleeps.
    fn disable_sync(&self) -> Option<T::Pointer>;
    /// Undoes one disable (C's `enable_work()`); returns whether the item can be queued again.
    fn enable(&self) -> bool;
    /// Waits until the item, if queued or running, has finished (C's `flush_work()`). Returns
    /// whether there was anything to wait for. Sleeps.
    fn flush(&self) -> bool;
    /// Returns whether the item is pending (queued and not started), C's `work_pending()`.
    fn is_pending(&self) -> bool;
    /// Returns whether the calling worker thread is running this item (C's `current_work()`).
    fn is_current(&self) -> bool;
    /// Returns whether some worker is running this item right now (C's `work_busy()` running
    /// bit). Advisory; callable from any context.
    fn is_running(&self) -> bool;
}

/// Returns the item that contains `work`, if `work` is the field its [`HasWork`] impl names.
///
/// An item type could have a second field of the same `Work<T, ID>` type that is never queued
/// (queueing always goes through `HasWork`); that field never holds a pointer to give back.
fn item_of<T: HasWork<T, ID>, const ID: u64>(work: &Work<T, ID>) -> Option<*mut T> {
    let ptr = core::ptr::from_ref(work).cast_mut();
    // SAFETY: `ptr` points at a live `Work<T, ID>`. If it is the `HasWork` field, the result is
    // the containing item; if not, the result is only compared below, never dereferenced.
    let item = unsafe { T::work_container_of(ptr) };
    // SAFETY: Only address arithmetic on `item` (`raw_get_work` computes a field address).
    let back = unsafe { T::raw_get_work(item) };
    core::ptr::eq(back, ptr).then_some(item)
}

impl<T, const ID: u64> WorkOps<T, ID> for Work<T, ID>
where
    T: WorkItem<ID> + HasWork<T, ID>,
    T::Pointer: WorkPointer<T>,
{
    fn cancel(&self) -> Option<T::Pointer> {
        // SAFETY: `raw()` is a live, initialised `work_struct`; `cancel_work` may be called
        // from any context.
        let was_pending = unsafe { bindings::cancel_work(self.raw()) };
        if was_pending {
            // SAFETY: A successful cancel took the item off its queue: the pointer the queue held
            // (from `into_raw`) is now ours, and the work function will not take it.
            unsafe { take_back::<T, ID>(self) }
        } else {
            None
        }
    }

    fn cancel_sync(&self) -> Option<T::Pointer> {
        // C's `cancel_work_sync()` checks `might_sleep()` itself (for BH items it checks for
        // hard-IRQ context instead, which a `might_sleep()` here would get wrong).
        // SAFETY: As in `cancel`; we may sleep.
        let was_pending = unsafe { bindings::cancel_work_sync(self.raw()) };
        if was_pending {
            // SAFETY: As in `cancel`.
            unsafe { take_back::<T, ID>(self) }
        } else {
            None
        }
    }

    fn disable(&self) -> Option<T::Pointer> {
        // SAFETY: As in `cancel`; `disable_work` may be called from any context.
        let was_pending = unsafe { bindings::disable_work(self.raw()) };
        if was_pending {
            // SAFETY: As in `cancel`: disabling cancels a pending item.
            unsafe { take_back::<T, ID>(self) }
        } else {
            None
        }
    }

    fn disable_sync(&self) -> Option<T::Pointer> {
        // As in `cancel_sync`: C's `disable_work_sync()` does the context check.
        // SAFETY: As in `cancel`; we may sleep.
        let was_pending = unsafe { bindings::disable_work_sync(self.raw()) };
        if was_pending {
            // SAFETY: As in `disable`.
            unsafe { take_back::<T, ID>(self) }
        } else {
            None
        }
    }

    fn enable(&self) -> bool {
        // SAFETY: `raw()` is a live, initialised `work_struct`. `enable_work` warns when the
        // count is already zero, so only call it for a disabled item.
        if !unsafe { raw::is_disabled(self.raw()) } {
            return true;
        }
        // SAFETY: As above; the item is disabled, so the count is positive.
        unsafe { bindings::enable_work(self.raw()) }
    }

    fn flush(&self) -> bool {
        // No `might_sleep()` here: C's `flush_work()` starts with one, and a second costs a
        // call on every flush (measured by `make bench`, op flush-idle).
        // SAFETY: `raw()` is a live, initialised `work_struct`; we may sleep.
        unsafe { bindings::flush_work(self.raw()) }
    }

    fn is_pending(&self) -> bool {
        // SAFETY: `raw()` is a live, initialised `work_struct`.
        unsafe { raw::is_pending(self.raw()) }
    }

    fn is_current(&self) -> bool {
        raw::is_current(self.raw())
    }

    fn is_running(&self) -> bool {
        // SAFETY: `raw()` is a live, initialised `work_struct`.
        unsafe { raw::is_running(self.raw()) }
    }
}

/// Gives back the pointer the queue held for a plain item whose cancel just succeeded.
///
/// # Safety
///
/// A cancel (or disable) of `work` must just have returned `true`: the item had been queued by
/// this layer through `T::Pointer::into_raw`, and the work function will not run for it.
unsafe fn take_back<T, const ID: u64>(work: &Work<T, ID>) -> Option<T::Pointer>
where
    T: WorkItem<ID> + HasWork<T, ID>,
    T::Pointer: WorkPointer<T>,
{
    // A field that is not the `HasWork` one is never queued by this layer or upstream's (both
    // go through `HasWork`); if C code queued it anyway, its pointer is unknown and stays leaked.
    let item = item_of(work)?;
    // SAFETY: The queue held the pointer made by `into_raw` for this item (the caller's
    // promise); it is taken back once.
    Some(unsafe { T::Pointer::from_raw(item) })
}

/// Access to the raw `work_struct` of a [`Work`].
pub(crate) trait RawWork {
    /// The C `work_struct`.
    fn raw(&self) -> *mut bindings::work_struct;
}

impl<T: ?Sized, const ID: u64> RawWork for Work<T, ID> {
    #[inline]
    fn raw(&self) -> *mut bindings::work_struct {
        // SAFETY: `self` is a live reference, so the pointer is aligned and not dangling.
        unsafe { Work::raw_get(self) }
    }
}
