// SPDX-License-Identifier: GPL-2.0

//! RCU work: an item that runs in process context after an RCU grace period (C's
//! `struct rcu_work`, `queue_rcu_work()`, `flush_rcu_work()`).
//!
//! Typical use: unpublish an RCU-protected object, then queue its RCU work item; the item runs
//! in a worker thread once every reader that could still see the object has finished, and may
//! sleep while it tears the object down (an RCU callback could not).
//!
//! What makes it sound here:
//!
//! - The queue holds the item's pointer (`Arc`, `Pin<KBox<_>>`, `ARef`) from queueing until the
//!   work function hands it to [`RcuWorkItem::run`], across the grace period: the item cannot be
//!   freed while its `rcu_head` waits in RCU or its `work_struct` waits on the queue.
//! - The RCU callback queues the item into the queue it was queued on. On `&'static Queue` (the
//!   system queues) that queue lives forever; an [`Workqueue`] used for RCU work waits for every
//!   RCU callback (`rcu_barrier()`) in its drop, before `destroy_workqueue()` runs what they
//!   queued.
//! - C cannot cancel or disable an RCU work item (it warns if the inner work was disabled, and
//!   a cancel during the grace period would spin until the callback ran), so [`RcuWork`] offers
//!   neither: only `flush` and queries. Its `work_struct` is not a [`Work`](super::Work), so
//!   [`Work`](super::Work) cannot reach it.
//!
//! A module must flush its RCU work items (or drop the owned queues they are on) before it
//! unloads, as in C: their work function is module code.

use super::field::HasWorkField;
use super::{
    pointer::WorkPointer,
    queue::Queue,
    raw,
    EnqueueError,
    Workqueue, //
};
use core::marker::PhantomData;
use kernel::{
    bindings,
    prelude::*,
    sync::LockClassKey,
    types::Opaque, //
};

/// A work item with an [`RcuWork`] field: runs after an RCU grace period.
pub(crate) trait RcuWorkItem<const ID: u64 = 0>: Sized {
    /// The pointer the item is queued through: `Arc<Self>`, `Pin<KBox<Self>>` or `ARef<Self>`.
    type Pointer: WorkPointer<Self>;

    /// Runs the item, in process context (a worker thread), after a grace period; it may sleep.
    fn run(this: Self::Pointer);
}

/// Declares that a type contains an [`RcuWork<Self, ID>`] field: [`HasWorkField`] for that
/// field type; every such type has it. Name the field with [`impl_has_rcu_work!`].
pub(crate) trait HasRcuWork<T, const ID: u64 = 0>: HasWorkField<RcuWork<T, ID>> {}

impl<T: HasWorkField<RcuWork<T, ID>>, const ID: u64> HasRcuWork<T, ID> for T {}

/// Implements [`HasRcuWork`] for a type, naming its [`RcuWork`] field: upstream's syntax (the
/// item type, then the field's id if not 0; generics in braces after `impl`), or the short forms
/// `impl HasRcuWork for Node { .. }` and `impl HasRcuWork<T, ID> for Node { .. }`.
///
/// The example below is `src/workqueue/examples/rcu.rs`, which the KUnit case
/// `rust_wq_examples::example_rcu` compiles and runs:
///
#[doc = concat!("```\n", include_str!("examples/rcu.rs"), "```")]
#[cfg_attr(
    not(CONFIG_KUNIT),
    expect(unused_macros, reason = "used by KUnit only")
)]
macro_rules! impl_has_rcu_work {
    (impl HasRcuWork<$id:literal> for $ty:ty { self.$field:ident }) => {
        $crate::workqueue::impl_has_work_field! {
            impl HasWorkField<$crate::workqueue::RcuWork<$ty, $id>> for $ty { self.$field }
        }
        // The blanket impl makes `$ty` a `HasRcuWork<$ty, $id>`: checked here, at the item.
        const _: () = {
            fn has_field<T: $crate::workqueue::HasRcuWork<T, $id>>() {}
            let _ = has_field::<$ty>;
        };
    };
    (impl HasRcuWork for $ty:ty { self.$field:ident }) => {
        $crate::workqueue::impl_has_rcu_work!(impl HasRcuWork<0> for $ty { self.$field });
    };
    ($(impl$({$($generics:tt)*})?
       HasRcuWork<$work_type:ty $(, $id:tt)?>
       for $self:ty
       { self.$field:ident }
    )+) => {$(
        // With `$work_type` = `Self`, the blanket impl makes `$self` a `HasRcuWork`.
        $crate::workqueue::impl_has_work_field! {
            impl$({$($generics)*})?
                HasWorkField<$crate::workqueue::RcuWork<$work_type $(, $id)?>>
                for $self { self.$field }
        }
    )+};
}
pub(crate) use impl_has_rcu_work;

/// Creates an [`RcuWork`] initialiser whose lock class is named after the call site:
/// `new_rcu_work!("Node::free")` (C's `INIT_RCU_WORK()`).
#[cfg_attr(
    not(CONFIG_KUNIT),
    expect(unused_macros, reason = "used by KUnit only")
)]
macro_rules! new_rcu_work {
    ($name:literal) => {
        $crate::workqueue::RcuWork::new(::kernel::c_str!($name), ::kernel::static_lock_class!())
    };
}
pub(crate) use new_rcu_work;

/// An RCU work field: C's `struct rcu_work`.
///
/// Embed it in an item (`#[pin] free: RcuWork<Node>`), initialise it with [`new_rcu_work!`],
/// name it with [`impl_has_rcu_work!`] and implement [`RcuWorkItem`]. Queue it with
/// `enqueue_rcu` on a system queue or an [`Workqueue`].
///
/// # Invariants
///
/// `rwork.work` was initialised with [`run::<T, ID>`](run) as its function.
#[repr(transparent)]
#[pin_data]
pub(crate) struct RcuWork<T, const ID: u64 = 0> {
    #[pin]
    rwork: Opaque<bindings::rcu_work>,
    _item: PhantomData<T>,
}

// SAFETY: The C `rcu_work` may be used from any thread; `T` is not contained.
unsafe impl<T, const ID: u64> Send for RcuWork<T, ID> {}
// SAFETY: Every `&self` method calls C functions that synchronise internally.
unsafe impl<T, const ID: u64> Sync for RcuWork<T, ID> {}

impl<T, const ID: u64> RcuWork<T, ID>
where
    T: RcuWorkItem<ID> + HasRcuWork<T, ID>,
{
    /// Creates an RCU work field; use [`new_rcu_work!`].
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn new(name: &'static CStr, key: Pin<&'static LockClassKey>) -> impl PinInit<Self> {
        pin_init!(Self {
            rwork <- Opaque::ffi_init(move |slot: *mut bindings::rcu_work| {
                // SAFETY: `slot` is valid for writes; `run::<T, ID>` is this item type's work
                // function; `name` and `key` are static. `rcu` and `wq` are set by C when the
                // item is queued.
                // INVARIANT: Initialised with `run::<T, ID>`.
                unsafe {
                    let work = core::ptr::addr_of_mut!((*slot).work);
                    raw::init_work(work, run::<T, ID>, false, name.as_char_ptr(), key.as_ptr())
                }
            }),
            _item: PhantomData,
        })
    }

    /// The C `work_struct` inside.
    fn work(&self) -> *mut bindings::work_struct {
        // SAFETY: `rwork` is valid memory for an `rcu_work`; this only computes a field address.
        unsafe { core::ptr::addr_of_mut!((*self.rwork.get()).work) }
    }

    /// Waits until the last queueing of the item has run, grace period included (C's
    /// `flush_rcu_work()`): returns whether there was anything to wait for. Sleeps.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn flush(&self) -> bool {
        kernel::task::might_sleep();
        // SAFETY: `rwork` is initialised (type invariant); we may sleep.
        unsafe { bindings::flush_rcu_work(self.rwork.get()) }
    }

    /// Whether the item is pending: waiting for its grace period, or queued and not started.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn is_pending(&self) -> bool {
        // SAFETY: `work()` is an initialised `work_struct`, alive for the call.
        unsafe { raw::is_pending(self.work()) }
    }

    /// Whether some worker is running the item right now (`work_busy()`). Advisory.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn is_running(&self) -> bool {
        // SAFETY: As in `is_pending`.
        unsafe { raw::is_running(self.work()) }
    }

    /// Whether the calling worker thread is running this item (C's `current_work()`).
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn is_current(&self) -> bool {
        raw::is_current(self.work())
    }

    /// Queues `p` on `wq` after a grace period (C's `queue_rcu_work()`).
    ///
    /// # Safety
    ///
    /// `wq` is a valid queue that stays valid until the item has run: it lives forever, or it
    /// is an owned queue that waits for RCU callbacks (`rcu_barrier()`) before it is destroyed.
    unsafe fn queue(
        wq: *mut bindings::workqueue_struct,
        p: T::Pointer,
    ) -> Result<(), EnqueueError<T::Pointer>> {
        let item = p.into_raw();
        // SAFETY: `item` is alive: we own its pointer until the queue takes it or we give it
        // back; `raw_get_work` gives its field.
        let field = unsafe { &*T::raw_get_work(item) };
        // SAFETY: `rwork` is initialised with `run::<T, ID>`, which takes back the pointer made
        // by `into_raw`; the caller keeps `wq` valid until the item has run. The item cannot be
        // disabled (nothing here offers that), so C does not warn.
        if unsafe { bindings::queue_rcu_work(wq, field.rwork.get()) } {
            return Ok(());
        }
        // SAFETY: Not queued (already pending): the pointer is still ours.
        Err(EnqueueError::Pending(unsafe { T::Pointer::from_raw(item) }))
    }
}

/// The work function of every RCU work item of type `T`.
///
/// # Safety
///
/// `work` is the `work_struct` of the `RcuWork<T, ID>` field of a `T` that this layer queued
/// through `T::Pointer::into_raw`; the queue's pointer is handed to this call.
unsafe extern "C" fn run<T, const ID: u64>(work: *mut bindings::work_struct)
where
    T: RcuWorkItem<ID> + HasRcuWork<T, ID>,
{
    // SAFETY: `work` is the `work` field of an `rcu_work`, which is the `Opaque` (transparent)
    // only non-zero-sized field of a `#[repr(transparent)]` `RcuWork<T, ID>`.
    let rwork = unsafe { kernel::container_of!(work, bindings::rcu_work, work) };
    let field = rwork.cast::<RcuWork<T, ID>>();
    // SAFETY: `field` is the `RcuWork<T, ID>` field of a `T` (the caller's promise).
    let item = unsafe { T::work_container_of(field) };
    // SAFETY: The queue held the pointer made by `into_raw` for this queueing; it is ours now.
    T::run(unsafe { T::Pointer::from_raw(item) })
}

impl Queue {
    /// Queues an RCU work item to run after a grace period (C's `queue_rcu_work()`), on a queue
    /// that lives forever (a system queue). `Err(Pending(p))` if it was already pending (it
    /// then runs once, possibly before a full grace period from this call). Any context.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn enqueue_rcu<P, T, const ID: u64>(
        &'static self,
        p: P,
    ) -> Result<(), EnqueueError<P>>
    where
        T: RcuWorkItem<ID, Pointer = P> + HasRcuWork<T, ID>,
        P: WorkPointer<T> + Send + 'static,
    {
        // SAFETY: `self` lives forever.
        unsafe { RcuWork::<T, ID>::queue(self.as_raw(), p) }
    }
}

impl Workqueue {
    /// Queues an RCU work item on this queue after a grace period (C's `queue_rcu_work()`).
    /// Dropping the queue waits for the grace period (`rcu_barrier()`) and runs the item.
    /// Any context.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn enqueue_rcu<P, T, const ID: u64>(&self, p: P) -> Result<(), EnqueueError<P>>
    where
        T: RcuWorkItem<ID, Pointer = P> + HasRcuWork<T, ID>,
        P: WorkPointer<T> + Send + 'static,
    {
        self.note_rcu_use();
        // SAFETY: The queue is valid; its drop calls `rcu_barrier()` before destroying it,
        // because `note_rcu_use()` was called before queueing.
        unsafe { RcuWork::<T, ID>::queue(self.as_raw(), p) }
    }
}
