// SPDX-License-Identifier: GPL-2.0

//! Plain work items: the field type [`Work`], the item trait [`WorkItem`], and their operations
//! (cancel, disable, enable, flush, state queries).
//!
//! [`Work<T, ID>`] is this layer's own field: C's `struct work_struct` plus the disable depth
//! that this layer's callers hold, one atomic counter kept by the protocol of `depth.rs` (C's
//! disable first, then the count; an enable takes a count first, then calls C). Two things
//! follow:
//!
//! - [`Work::enable`] undoes only a disable that a caller of [`Work::disable`] made. C's
//!   `cancel_work_sync()` disables the item for the length of its wait and enables it again;
//!   an `enable` that merely checked "is it disabled?" could undo that internal disable, which
//!   C reports as "work disable count underflowed" and which lets the item be queued again
//!   before `cancel_sync` returns. The depth is capped well below C's limit, so C never warns
//!   "overflowed" either.
//! - Upstream's `kernel::workqueue::Queue` cannot take these items (they do not implement
//!   upstream's `HasWork`). Upstream's enqueue of a `Pin<KBox<T>>` assumes that `false` from
//!   `queue_work_on()` can only mean "already queued" and treats it as unreachable; in 7.3 it
//!   also means "disabled", so a disable offered on upstream's field would make that
//!   reachable. Items with this field are queued through this layer only, which hands the
//!   pointer back on every refusal.
//!
//! The C function is chosen by the type of the field: these call the `work_struct` functions
//! (`cancel_work_sync()`, ...), and the [`DelayedWork`](super::DelayedWork) field type has its
//! own methods calling the `delayed_work` ones, so a delayed item can never reach
//! `cancel_work_sync()` with its timer armed.
//!
//! Every operation that stops a pending item from running hands back the pointer the queue held
//! (`Some(pointer)`), so the caller decides where the item is dropped.
//!
//! C header: [`include/linux/workqueue.h`](srctree/include/linux/workqueue.h)

use super::{
    depth::Depth,
    field::HasWorkField,
    pointer::WorkPointer,
    raw, //
};
use core::marker::PhantomData;
use kernel::{
    bindings,
    prelude::*,
    sync::LockClassKey,
    types::Opaque, //
};

/// The most disables this layer lets callers hold on one item at a time.
///
/// C counts up to 65535 and warns past that. Besides the callers' disables, each
/// `cancel_work_sync()` in progress holds one of its own for the length of its wait (and the
/// delayed `_sync` operations one more), so the callers' share stops at half of C's limit.
pub(crate) const MAX_DISABLE_DEPTH: u32 = 0x7fff;

/// Why an item was not queued. Either way the pointer is handed back and nothing leaked.
///
/// In 7.3 a `false` from `queue_work_on()` (and the delayed variants) means the item is already
/// pending *or* disabled; the variant says which one was observed during the call.
#[derive(Debug)]
pub(crate) enum EnqueueError<P> {
    /// The item was pending (queued, or its timer armed), or another context was cancelling
    /// or disabling it at that moment (C holds the item's `PENDING` bit while it does).
    Pending(P),
    /// The item is disabled ([`Work::disable`]); it cannot be queued until enabled.
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

impl<P> From<EnqueueError<P>> for kernel::error::Error {
    fn from(e: EnqueueError<P>) -> Self {
        e.to_errno()
    }
}

/// A plain work item: what runs when its [`Work`] field is queued.
///
/// Implement it together with [`impl_has_work!`] (which names the field).
pub(crate) trait WorkItem<const ID: u64 = 0>: Sized {
    /// The pointer the item is queued through: `Arc<Self>`, `Pin<KBox<Self>>` or `ARef<Self>`.
    type Pointer: WorkPointer<Self>;

    /// Runs the item, in process context (a worker thread) unless the item is a
    /// [`BhWorkItem`](super::BhWorkItem) queued on a BH queue.
    fn run(this: Self::Pointer);
}

/// Declares that a type contains a [`Work<T, ID>`] field (`T` is the type itself: upstream's
/// parameters, so a bound written as upstream's reads the same here); every type that names one
/// with [`impl_has_work!`] has it.
pub(crate) trait HasWork<T, const ID: u64 = 0>: HasWorkField<Work<T, ID>> {}

impl<T: HasWorkField<Work<T, ID>>, const ID: u64> HasWork<T, ID> for T {}

/// Names the [`Work`] field of an item type, upstream's syntax, generics allowed.
///
/// The example below is `src/workqueue/examples/work_item.rs`, which the KUnit case
/// `rust_wq_examples::example_work_item` compiles and runs:
///
#[doc = concat!("```\n", include_str!("examples/work_item.rs"), "```")]
macro_rules! impl_has_work {
    ($(impl$({$($generics:tt)*})?
       HasWork<$work_type:ty $(, $id:tt)?>
       for $self:ty
       { self.$field:ident }
    )*) => {$(
        // SAFETY: `raw_get_work` returns the address of the named field, which the type checker
        // proves is a `Work<$work_type, ID>`; `work_container_of` subtracts the same offset, so
        // it is the inverse.
        unsafe impl$(<$($generics)*>)?
            $crate::workqueue::HasWorkField<$crate::workqueue::Work<$work_type $(, $id)?>>
            for $self
        {
            #[inline]
            unsafe fn raw_get_work(
                ptr: *mut Self,
            ) -> *mut $crate::workqueue::Work<$work_type $(, $id)?> {
                // SAFETY: The caller promises that `ptr` is aligned and not dangling.
                unsafe { ::core::ptr::addr_of_mut!((*ptr).$field) }
            }

            #[inline]
            unsafe fn work_container_of(
                ptr: *mut $crate::workqueue::Work<$work_type $(, $id)?>,
            ) -> *mut Self {
                // SAFETY: The caller promises that `ptr` is the field of a `Self`.
                unsafe { ::kernel::container_of!(ptr, Self, $field) }
            }
        }
    )*};
}
pub(crate) use impl_has_work;

/// Creates a [`Work`] initialiser whose lockdep class is named `$name` (one class per call
/// site, as C's `INIT_WORK()`).
macro_rules! new_work {
    ($name:literal) => {
        $crate::workqueue::Work::new(::kernel::c_str!($name), ::kernel::static_lock_class!())
    };
}
pub(crate) use new_work;

/// The type-independent part of a [`Work`].
///
/// # Invariants
///
/// - `work` was initialised with the work function of the item type that made this value.
/// - `depth` counts the disables that callers of this layer hold (`depth.rs`): C's disable
///   count is at least that much.
#[repr(C)]
#[pin_data]
pub(crate) struct RawWork {
    #[pin]
    work: Opaque<bindings::work_struct>,
    depth: Depth,
}

impl RawWork {
    /// The C `work_struct`.
    #[inline]
    pub(crate) fn work(&self) -> *mut bindings::work_struct {
        self.work.get()
    }
}

/// A plain work field: C's `struct work_struct`, with the disable depth this layer tracks.
///
/// Embed it in an item (`#[pin] work: Work<Job>`), initialise it with [`new_work!`], name it
/// with [`impl_has_work!`] and implement [`WorkItem`]. Queue it with `enqueue` on a queue; the
/// methods here cancel, disable, enable, flush and query it.
///
/// # Invariants
///
/// `raw` was made by [`Work::new`] for the item type `T` and id `ID`.
#[repr(transparent)]
#[pin_data]
pub(crate) struct Work<T, const ID: u64 = 0> {
    #[pin]
    raw: RawWork,
    _item: PhantomData<T>,
}

// SAFETY: The C `work_struct` may be used from any thread, and the depth is an atomic. `T` is
// not contained (only named).
unsafe impl<T, const ID: u64> Send for Work<T, ID> {}
// SAFETY: As above: every `&self` method uses the atomic, or calls C functions that lock.
unsafe impl<T, const ID: u64> Sync for Work<T, ID> {}

impl<T, const ID: u64> Work<T, ID>
where
    T: WorkItem<ID> + HasWork<T, ID>,
{
    /// Creates a work field; use [`new_work!`].
    pub(crate) fn new(name: &'static CStr, key: Pin<&'static LockClassKey>) -> impl PinInit<Self> {
        pin_init!(Self {
            raw <- pin_init!(RawWork {
                work <- Opaque::ffi_init(move |slot: *mut bindings::work_struct| {
                    // SAFETY: `slot` is valid for writes and new (not queued); `run::<T, ID>` is
                    // the work function of this item type; the name and key are static.
                    unsafe { raw::init_work(slot, run::<T, ID>, false, name.as_char_ptr(), key.as_ptr()) }
                }),
                depth: Depth::new(),
            }),
            _item: PhantomData,
        })
        // INVARIANT: `work` is initialised with `run::<T, ID>`, and nobody holds a disable.
    }
}

impl<T, const ID: u64> Work<T, ID> {
    /// The C `work_struct`.
    #[inline]
    pub(crate) fn raw(&self) -> *mut bindings::work_struct {
        self.raw.work()
    }

    /// The C `work_struct` of the field at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` is aligned and not dangling.
    #[inline]
    pub(crate) unsafe fn raw_get(ptr: *const Self) -> *mut bindings::work_struct {
        // SAFETY: `Work` is `#[repr(transparent)]` over `RawWork`, whose first field (`#[repr(C)]`)
        // is the `Opaque<work_struct>`; only an address is computed.
        Opaque::cast_into(unsafe { core::ptr::addr_of!((*ptr).raw.work) })
    }
}

/// The work function of every plain item of type `T`.
///
/// # Safety
///
/// `work` is the `work_struct` of the `Work<T, ID>` field of a `T` that this layer queued
/// through `T::Pointer::into_raw`; the queue's pointer is handed to this call.
unsafe extern "C" fn run<T, const ID: u64>(work: *mut bindings::work_struct)
where
    T: WorkItem<ID> + HasWork<T, ID>,
{
    // `work` is the first field of the `#[repr(C)]` `RawWork` that is the only field of the
    // `#[repr(transparent)]` `Work<T, ID>`: the addresses are equal.
    let field = work.cast::<Work<T, ID>>();
    // SAFETY: `field` is the `Work<T, ID>` field of a `T` (the caller's promise).
    let item = unsafe { T::work_container_of(field) };
    // SAFETY: The queue held the pointer made by `into_raw` for this queueing; it is ours now.
    T::run(unsafe { T::Pointer::from_raw(item) })
}

impl<T, const ID: u64> Work<T, ID>
where
    T: WorkItem<ID> + HasWork<T, ID>,
{
    /// Takes back the queue's pointer after a successful cancel.
    ///
    /// # Safety
    ///
    /// A cancel or disable of this field just returned `true`: the queue held a pointer made by
    /// `into_raw` (only this layer queues these fields, through `HasWork`), and the work function
    /// will not run for it.
    unsafe fn take_back(&self) -> T::Pointer {
        let field = core::ptr::from_ref(self).cast_mut();
        // SAFETY: Every `Work<T, ID>` that can be queued is the `HasWork` field of a `T`: the
        // only way to queue one is through `T: HasWork<T, ID>`, and a cancel succeeds only for a
        // queued item.
        let item = unsafe { T::work_container_of(field) };
        // SAFETY: The caller's promise: the pointer is ours, once.
        unsafe { T::Pointer::from_raw(item) }
    }

    /// Takes the item off its queue if it is pending, without waiting (C's `cancel_work()`).
    ///
    /// Callable from any context, including hard interrupts. Returns the queue's pointer if
    /// the item was pending (it will not run for that queueing); a running instance goes on.
    pub(crate) fn cancel(&self) -> Option<T::Pointer> {
        // SAFETY: `raw()` is a live, initialised `work_struct`; `cancel_work` may be called
        // from any context.
        let was_pending = unsafe { bindings::cancel_work(self.raw()) };
        // SAFETY: The cancel succeeded.
        was_pending.then(|| unsafe { self.take_back() })
    }

    /// Cancels the item and waits for a running instance to finish (C's `cancel_work_sync()`).
    ///
    /// While it waits the item is disabled (by C), so a running instance that re-queues itself
    /// is refused; on return the item is neither pending nor running, unless another context
    /// queued it meanwhile. Returns the queue's pointer if the item was pending. Sleeps.
    pub(crate) fn cancel_sync(&self) -> Option<T::Pointer> {
        // C's own disable for the wait is not counted in `depth`, so no `enable` of ours can
        // undo it. C checks `might_sleep()` itself (for BH items it checks for hard-IRQ
        // context instead, which a `might_sleep()` here would get wrong).
        // SAFETY: `raw()` is a live, initialised `work_struct`; we may sleep.
        let was_pending = unsafe { bindings::cancel_work_sync(self.raw()) };
        // SAFETY: The cancel succeeded.
        was_pending.then(|| unsafe { self.take_back() })
    }

    /// Disables the item, cancelling it if pending (C's `disable_work()`): until a matching
    /// [`Work::enable`], enqueueing it fails with [`EnqueueError::Disabled`]. Disables nest, up
    /// to [`MAX_DISABLE_DEPTH`]; at that depth this only cancels.
    ///
    /// Callable from any context. Returns the queue's pointer if the item was pending.
    pub(crate) fn disable(&self) -> Option<T::Pointer> {
        self.disable_counted().0
    }

    /// [`Work::disable`], also saying whether the depth went up.
    #[inline]
    fn disable_counted(&self) -> (Option<T::Pointer>, bool) {
        // SAFETY: `raw()` is initialised; does not sleep.
        let was_pending = unsafe { bindings::disable_work(self.raw()) };
        // C's count went up first (`depth.rs`).
        let counted = self.raw.depth.count();
        if !counted {
            // Past the cap: undo C's disable (the callers' disables keep the item disabled).
            // SAFETY: `raw()` is initialised; C's count is at least ours plus the disable just
            // made (`depth.rs`); does not sleep.
            unsafe { bindings::enable_work(self.raw()) };
        }
        // SAFETY: Disabling took the pending item off its queue.
        (was_pending.then(|| unsafe { self.take_back() }), counted)
    }

    /// Disables the item and waits for a running instance (C's `disable_work_sync()`).
    /// Returns the queue's pointer if the item was pending. Sleeps.
    pub(crate) fn disable_sync(&self) -> Option<T::Pointer> {
        let (p, counted) = self.disable_counted();
        // Wait with cancel semantics (C's `from_cancel`): no flush-dependency check and no
        // lockdep touch of the queue, as in C's `disable_work_sync()`. With our disable held
        // nothing can be pending, so this only waits; at the cap (not counted) a running
        // instance may have re-queued itself, and this takes it off.
        // SAFETY: `raw()` is initialised; we may sleep (C checks).
        let again = unsafe { bindings::cancel_work_sync(self.raw()) };
        if again && !counted {
            // SAFETY: The cancel succeeded; this pointer is a second one (a re-queue).
            let q = unsafe { self.take_back() };
            return match p {
                // Two pointers for one call only at the cap: give back the first, drop this one
                // (we may sleep, so no caller lock is held).
                Some(p) => {
                    drop(q);
                    Some(p)
                }
                None => Some(q),
            };
        }
        p
    }

    /// Undoes one [`Work::disable`] (C's `enable_work()`). Returns whether the item can be
    /// queued again. When no caller holds a disable, nothing is done (C would warn): then it
    /// returns whether the item is enabled in C (a `cancel_sync` in progress disables it).
    ///
    /// Callable from any context.
    pub(crate) fn enable(&self) -> bool {
        if !self.raw.depth.take() {
            // SAFETY: `raw()` is a live, initialised `work_struct`.
            return !unsafe { raw::is_disabled(self.raw()) };
        }
        // SAFETY: `raw()` is initialised, and C's count is at least ours was (positive,
        // `depth.rs`); does not sleep.
        unsafe { bindings::enable_work(self.raw()) }
    }

    /// The number of disables callers hold (C's own transient ones are not counted).
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn disable_depth(&self) -> u32 {
        self.raw.depth.get()
    }

    /// Waits until the item, if queued or running, has finished (C's `flush_work()`). Returns
    /// whether there was anything to wait for. Sleeps.
    pub(crate) fn flush(&self) -> bool {
        // No `might_sleep()` here: C's `flush_work()` starts with one, and a second costs a
        // call on every flush (measured by `make bench`, op flush-idle).
        // SAFETY: `raw()` is a live, initialised `work_struct`; we may sleep.
        unsafe { bindings::flush_work(self.raw()) }
    }

    /// Returns whether the item is pending (queued and not started), C's `work_pending()`.
    pub(crate) fn is_pending(&self) -> bool {
        // SAFETY: `raw()` is a live, initialised `work_struct`.
        unsafe { raw::is_pending(self.raw()) }
    }

    /// Returns whether the calling worker thread is running this item (C's `current_work()`).
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn is_current(&self) -> bool {
        raw::is_current(self.raw())
    }

    /// Returns whether some worker is running this item right now (C's `work_busy()` running
    /// bit). Advisory; callable from any context.
    pub(crate) fn is_running(&self) -> bool {
        // SAFETY: `raw()` is a live, initialised `work_struct`.
        unsafe { raw::is_running(self.raw()) }
    }
}
