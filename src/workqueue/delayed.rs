// SPDX-License-Identifier: GPL-2.0

//! Delayed work items whose timers this layer tracks: [`DelayedWork`] and its operations.
//!
//! The field type [`DelayedWork<T, ID>`] wraps C's `struct delayed_work` together with a small
//! lock and the links of the owned queues' armed lists (see `armed.rs`). Every change this layer
//! makes to the item's C state (queueing, cancelling, disabling, enabling, re-timing) happens
//! under that lock, so:
//!
//! - an owned queue knows exactly which items have a timer aimed at it, with no allocation and
//!   no reference, and cancels exactly those when it is dropped;
//! - the disable depth is known exactly, so a refused enqueue or `mod_delayed` says truthfully
//!   whether the item was pending or disabled, and never leaks the pointer;
//! - all of it is callable with spinlocks held, interrupts off and from hard-interrupt handlers:
//!   the lock is a raw spinlock (`raw_spinlock.rs`), valid in hard-IRQ context even on
//!   `PREEMPT_RT` (only the `_sync` operations and `flush` sleep).
//!
//! Items implement [`DelayedWorkItem`] (like upstream's `WorkItem`) and [`HasDelayedWork`]
//! (through [`impl_has_delayed_work!`]); the field is made with [`new_delayed_work!`].

use super::field::HasWorkField;
use super::raw_spinlock::{
    new_raw_spinlock_irq,
    RawSpinLockIrq, //
};
use super::{
    armed::{
        ArmedList,
        Links, //
    },
    pointer::WorkPointer,
    raw, //
};
use core::{
    marker::PhantomData,
    ptr, //
};
use kernel::{
    bindings,
    prelude::*,
    sync::LockClassKey,
    types::Opaque, //
};

/// A work item with a tracked [`DelayedWork`] field: the delayed counterpart of `WorkItem`.
pub(crate) trait DelayedWorkItem<const ID: u64 = 0>: Sized {
    /// The pointer the item is queued through: `Arc<Self>`, `Pin<KBox<Self>>` or `ARef<Self>`.
    type Pointer: WorkPointer<Self>;

    /// Runs the item, in process context (a worker thread); it may sleep.
    fn run(this: Self::Pointer);
}

/// Declares that a type contains a [`DelayedWork<Self, ID>`] field: [`HasWorkField`] for that
/// field type; every such type has it. Name the field with [`impl_has_delayed_work!`].
pub(crate) trait HasDelayedWork<const ID: u64 = 0>:
    HasWorkField<DelayedWork<Self, ID>>
{
}

impl<T: HasWorkField<DelayedWork<T, ID>>, const ID: u64> HasDelayedWork<ID> for T {}

/// Implements [`HasDelayedWork`] for a type, naming its [`DelayedWork`] field.
///
/// Upstream's syntax (the item type, then the field's id if not 0; generic types take their
/// parameters in braces after `impl`; several impls in one call), or the short forms
/// `impl HasDelayedWork for Job { .. }` and `impl HasDelayedWork<ID> for Job { .. }`.
///
/// The example below is `src/workqueue/examples/delayed_item.rs`, which the KUnit case
/// `rust_wq_examples::example_delayed_item` compiles and runs:
///
#[doc = concat!("```\n", include_str!("examples/delayed_item.rs"), "```")]
macro_rules! impl_has_delayed_work {
    (impl HasDelayedWork<$id:literal> for $ty:ty { self.$field:ident }) => {
        $crate::workqueue::impl_has_work_field! {
            impl HasWorkField<$crate::workqueue::DelayedWork<$ty, $id>> for $ty { self.$field }
        }
        // The blanket impl makes `$ty` a `HasDelayedWork<$id>`: checked here, at the item.
        const _: () = {
            fn has_field<T: $crate::workqueue::HasDelayedWork<$id>>() {}
            let _ = has_field::<$ty>;
        };
    };
    (impl HasDelayedWork for $ty:ty { self.$field:ident }) => {
        $crate::workqueue::impl_has_delayed_work!(impl HasDelayedWork<0> for $ty { self.$field });
    };
    ($(impl$({$($generics:tt)*})?
       HasDelayedWork<$work_type:ty $(, $id:tt)?>
       for $self:ty
       { self.$field:ident }
    )+) => {$(
        // With `$work_type` = `Self`, the blanket impl makes `$self` a `HasDelayedWork`.
        $crate::workqueue::impl_has_work_field! {
            impl$({$($generics)*})?
                HasWorkField<$crate::workqueue::DelayedWork<$work_type $(, $id)?>>
                for $self { self.$field }
        }
    )+};
}
pub(crate) use impl_has_delayed_work;

/// Creates a [`DelayedWork`] initialiser with lock classes named after the call site.
///
/// `new_delayed_work!("Job::timeout")`; `new_delayed_work!("Job::poll", deferrable)` makes a
/// deferrable timer (`TIMER_DEFERRABLE`: an idle CPU is not woken for it, C's
/// `INIT_DEFERRABLE_WORK`).
macro_rules! new_delayed_work {
    ($name:literal) => {
        $crate::workqueue::DelayedWork::new(
            ::kernel::c_str!($name),
            ::kernel::static_lock_class!(),
            ::kernel::c_str!(::core::concat!($name, "(timer)")),
            ::kernel::static_lock_class!(),
            false,
        )
    };
    ($name:literal, deferrable) => {
        $crate::workqueue::DelayedWork::new(
            ::kernel::c_str!($name),
            ::kernel::static_lock_class!(),
            ::kernel::c_str!(::core::concat!($name, "(timer)")),
            ::kernel::static_lock_class!(),
            true,
        )
    };
}
pub(crate) use new_delayed_work;

/// What the item lock protects besides the item's C state.
pub(crate) struct Track {
    /// The armed list the item is linked on, or null.
    pub(crate) armed_on: *const ArmedList,
    /// The caller's disable depth: [`DelayedWork::disable`]s not yet undone by
    /// [`DelayedWork::enable`] (only this layer changes it, always under this lock).
    pub(super) disabled: u32,
    /// The disables that `cancel_sync()` calls hold while they wait. Counted apart from
    /// `disabled`, so that a caller's `enable()` can never undo one (C's depth is the sum).
    pub(super) syncing: u32,
}

impl Track {
    /// Whether C sees the item disabled (a caller's or a waiting `cancel_sync()`'s disable).
    pub(super) fn is_disabled(&self) -> bool {
        self.disabled > 0 || self.syncing > 0
    }
}

// SAFETY: `armed_on` is only followed under the item lock, while the list is alive (armed.rs).
unsafe impl Send for Track {}

/// The type-independent part of a [`DelayedWork`].
///
/// # Invariants
///
/// - `dwork` was initialised with the work function of the item type that made this value, and
///   `release` gives back a pointer of that item type's `Pointer` type.
/// - Every change this layer makes to `dwork`'s C state happens with `track` locked.
/// - `track.armed_on` is non-null exactly while the item is linked on that list (armed.rs).
#[repr(C)]
#[pin_data]
pub(crate) struct RawDelayed {
    #[pin]
    dwork: Opaque<bindings::delayed_work>,
    #[pin]
    pub(super) track: RawSpinLockIrq<Track>,
    links: Links,
    release: unsafe fn(*const RawDelayed),
}

impl RawDelayed {
    pub(crate) fn links(&self) -> &Links {
        &self.links
    }

    pub(crate) fn track(&self) -> &RawSpinLockIrq<Track> {
        &self.track
    }

    /// The C `delayed_work`.
    pub(crate) fn dwork(&self) -> *mut bindings::delayed_work {
        self.dwork.get()
    }

    /// The C `work_struct` inside it.
    pub(crate) fn work(&self) -> *mut bindings::work_struct {
        // SAFETY: `dwork` is valid memory for a `delayed_work`; this only computes a field address.
        unsafe { core::ptr::addr_of_mut!((*self.dwork.get()).work) }
    }

    /// Gives back (drops) the pointer the queue held for this item.
    ///
    /// # Safety
    ///
    /// The caller owns that pointer: a cancel of a pending item just succeeded, and it is given
    /// back once.
    pub(crate) unsafe fn release(&self) {
        // SAFETY: Guaranteed by the caller; `release` matches the item type (invariant).
        unsafe { (self.release)(self) }
    }

    /// Whether the item is pending (queued or timer armed).
    pub(crate) fn is_pending(&self) -> bool {
        // SAFETY: `work()` is an initialised `work_struct` inside `self`, alive for the call.
        unsafe { raw::is_pending(self.work()) }
    }

    /// Unlinks the item from the list it is on, if any. The item lock must be held (as `t`).
    pub(super) fn unlink(&self, t: &mut Track) {
        if t.armed_on.is_null() {
            return;
        }
        // SAFETY: We hold the item lock and the item is linked on `armed_on`, so that list is
        // alive (an owned queue empties its lists, under each item's lock, before freeing them).
        unsafe { (*t.armed_on).remove(self) };
        t.armed_on = ptr::null();
    }

    /// Drops a stale link: one left by an arm whose timer has fired and whose run has started.
    /// The item lock must be held (as `t`).
    fn settle(&self, t: &mut Track) {
        // A pending item's link (if any) belongs to its current arm: keep it.
        if !self.is_pending() {
            self.unlink(t);
        }
    }
}

/// A delayed work field: C's `struct delayed_work`, tracked by this layer.
///
/// Embed it in an item (`#[pin] timeout: DelayedWork<Job>`), initialise it with
/// [`new_delayed_work!`], name it with [`impl_has_delayed_work!`] and implement
/// [`DelayedWorkItem`]. Queue it with `enqueue_delayed` on a queue; the methods here cancel,
/// disable, enable, flush and query it.
///
/// # Invariants
///
/// `raw` was made by [`DelayedWork::new`] for the item type `T` and id `ID`.
#[repr(transparent)]
#[pin_data]
pub(crate) struct DelayedWork<T, const ID: u64 = 0> {
    #[pin]
    pub(super) raw: RawDelayed,
    _item: PhantomData<T>,
}

// SAFETY: The C `delayed_work` may be used from any thread; the Rust state is behind the item
// lock, and the links are only touched under the lock of the list the item is on (armed.rs: a
// drain gives an item back before dropping its locks, and never touches it afterwards). `T` is
// not contained.
unsafe impl<T, const ID: u64> Send for DelayedWork<T, ID> {}
// SAFETY: As above: every `&self` method locks, or calls C functions that lock.
unsafe impl<T, const ID: u64> Sync for DelayedWork<T, ID> {}

impl<T, const ID: u64> DelayedWork<T, ID>
where
    T: DelayedWorkItem<ID> + HasDelayedWork<ID>,
{
    /// Creates a delayed work field; use [`new_delayed_work!`].
    pub(crate) fn new(
        name: &'static CStr,
        key: Pin<&'static LockClassKey>,
        timer_name: &'static CStr,
        timer_key: Pin<&'static LockClassKey>,
        deferrable: bool,
    ) -> impl PinInit<Self> {
        let timer_flags = if deferrable {
            bindings::TIMER_DEFERRABLE
        } else {
            0
        };
        pin_init!(Self {
            raw <- pin_init!(RawDelayed {
                dwork <- Opaque::ffi_init(move |slot: *mut bindings::delayed_work| {
                    let (tname, tkey) = (timer_name.as_char_ptr(), timer_key.as_ptr());
                    // SAFETY: `slot` is valid for writes and new (not queued, timer not armed);
                    // `run::<T, ID>` is the work function of this item type; the names and keys
                    // are static.
                    unsafe {
                        let work = core::ptr::addr_of_mut!((*slot).work);
                        raw::init_work(work, run::<T, ID>, false, name.as_char_ptr(), key.as_ptr());
                        raw::init_delayed_timer(slot, timer_flags, false, tname, tkey);
                    }
                }),
                track <- new_raw_spinlock_irq!(
                    Track { armed_on: ptr::null(), disabled: 0, syncing: 0 },
                    "DelayedWork::track"
                ),
                links: Links::new(),
                release: release::<T, ID>,
            }),
            _item: PhantomData,
        })
    }
}

/// The work function of every tracked delayed item of type `T`.
///
/// # Safety
///
/// `work` is the `work_struct` of the `DelayedWork<T, ID>` field of a `T` that this layer queued
/// through `T::Pointer::into_raw`; the queue's pointer is handed to this call.
unsafe extern "C" fn run<T, const ID: u64>(work: *mut bindings::work_struct)
where
    T: DelayedWorkItem<ID> + HasDelayedWork<ID>,
{
    // SAFETY: `work` is the `work` field of the `delayed_work` that is the first field of a
    // `#[repr(C)]` `RawDelayed`, which is the only field of a `#[repr(transparent)]`
    // `DelayedWork<T, ID>`, so these casts give the field's address.
    let dwork = unsafe { kernel::container_of!(work, bindings::delayed_work, work) };
    let field = dwork.cast::<DelayedWork<T, ID>>();
    // SAFETY: The queue's pointer keeps the item alive until `from_raw` below hands it to `run`.
    let raw = unsafe { &(*field).raw };
    {
        let mut t = raw.track.lock();
        raw.settle(&mut t);
    }
    // SAFETY: `field` is the `DelayedWork<T, ID>` field of a `T` (the caller's promise).
    let item = unsafe { T::work_container_of(field) };
    // SAFETY: The queue held the pointer made by `into_raw` for this queueing; it is ours now.
    T::run(unsafe { T::Pointer::from_raw(item) })
}

/// Gives back a pointer the queue held for an item of type `T`.
///
/// # Safety
///
/// `raw` is the `RawDelayed` of a `DelayedWork<T, ID>` field of a `T` whose queued pointer the
/// caller owns (a cancel just succeeded); called once per such pointer.
unsafe fn release<T, const ID: u64>(raw: *const RawDelayed)
where
    T: DelayedWorkItem<ID> + HasDelayedWork<ID>,
{
    // SAFETY: `DelayedWork` is `#[repr(transparent)]` over `RawDelayed`; the caller promises the
    // field belongs to a `T` and that the pointer is owned.
    let item = unsafe { T::work_container_of(raw.cast_mut().cast::<DelayedWork<T, ID>>()) };
    // SAFETY: As above.
    drop(unsafe { T::Pointer::from_raw(item) });
}

/// Operations on a tracked [`DelayedWork`] field; the C `delayed_work` functions.
impl<T, const ID: u64> DelayedWork<T, ID>
where
    T: DelayedWorkItem<ID> + HasDelayedWork<ID>,
{
    /// Takes back the queue's pointer after a successful cancel.
    ///
    /// # Safety
    ///
    /// A cancel or disable of this field just returned `true`.
    unsafe fn take_back(&self) -> T::Pointer {
        let field = core::ptr::from_ref(self).cast_mut();
        // SAFETY: `self` is the `DelayedWork<T, ID>` field of a `T` (only such fields are made).
        let item = unsafe { T::work_container_of(field) };
        // SAFETY: The queue held the pointer from `into_raw`; the cancel made it ours.
        unsafe { T::Pointer::from_raw(item) }
    }

    /// Cancels a pending item without waiting (C's `cancel_delayed_work()`).
    ///
    /// Callable from any context, including hard interrupts and with spinlocks held. Returns
    /// the queue's pointer if the item was pending; a running instance goes on.
    pub(crate) fn cancel(&self) -> Option<T::Pointer> {
        let mut t = self.raw.track.lock();
        // SAFETY: `dwork` is initialised; `cancel_delayed_work` does not sleep.
        let was_pending = unsafe { bindings::cancel_delayed_work(self.raw.dwork()) };
        self.raw.settle(&mut t);
        drop(t);
        // SAFETY: The cancel succeeded.
        was_pending.then(|| unsafe { self.take_back() })
    }

    /// Disables the item, cancelling it if pending (C's `disable_delayed_work()`); disables
    /// nest. Callable from any context. Returns the queue's pointer if the item was pending.
    ///
    /// Disables nest up to [`MAX_DISABLE_DEPTH`](super::work::MAX_DISABLE_DEPTH) (half of C's
    /// limit, see there): at that depth this only cancels.
    pub(crate) fn disable(&self) -> Option<T::Pointer> {
        self.disable_counted(false).0
    }

    /// [`DelayedWork::disable`], also saying whether the depth went up: the caller's depth, or,
    /// for `sync`, the depth of the waiting `cancel_sync()`s.
    fn disable_counted(&self, sync: bool) -> (Option<T::Pointer>, bool) {
        let mut t = self.raw.track.lock();
        let counted = t.disabled + t.syncing < super::work::MAX_DISABLE_DEPTH;
        // SAFETY: `dwork` is initialised; neither call sleeps.
        let was_pending = unsafe {
            if counted {
                bindings::disable_delayed_work(self.raw.dwork())
            } else {
                bindings::cancel_delayed_work(self.raw.dwork())
            }
        };
        match (counted, sync) {
            (false, _) => {}
            (true, false) => t.disabled += 1,
            (true, true) => t.syncing += 1,
        }
        self.raw.settle(&mut t);
        drop(t);
        // SAFETY: Disabling (or cancelling) took the pending item off its queue.
        (was_pending.then(|| unsafe { self.take_back() }), counted)
    }

    /// Undoes one [`DelayedWork::disable`] (C's `enable_delayed_work()`). Returns whether the
    /// item can be queued again. Without a disable of the caller's to undo it does nothing
    /// (C would warn "work disable count underflowed"), and returns whether the item is
    /// queueable: `false` while a `cancel_sync()` waits, whose disable is not the caller's.
    pub(crate) fn enable(&self) -> bool {
        let mut t = self.raw.track.lock();
        if t.disabled == 0 {
            return t.syncing == 0;
        }
        t.disabled -= 1;
        // SAFETY: `dwork` is initialised and disabled (C's depth is at least ours, positive);
        // does not sleep.
        unsafe { bindings::enable_delayed_work(self.raw.dwork()) }
    }

    /// Undoes the disable of a `cancel_sync()` that has finished waiting.
    fn end_sync(&self) {
        let mut t = self.raw.track.lock();
        if t.syncing == 0 {
            return;
        }
        t.syncing -= 1;
        // SAFETY: `dwork` is initialised and disabled by the caller's `cancel_sync()` (counted
        // in `syncing`, which nothing else undoes); does not sleep.
        unsafe { bindings::enable_delayed_work(self.raw.dwork()) };
    }

    /// Returns the caller's disable depth (a waiting `cancel_sync()`'s disable is not counted).
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn disable_depth(&self) -> u32 {
        self.raw.track.lock().disabled
    }

    /// Waits for a running instance to finish (the waiting half of the `_sync` operations).
    ///
    /// The caller has just disabled or cancelled the item under its lock, so its timer is
    /// idle. This waits with C's cancel semantics (`cancel_work_sync()` on the inner
    /// `work_struct`, `__flush_work(.., from_cancel = true)`), as `cancel_delayed_work_sync()`
    /// does: `flush_work()` would add the flush-dependency check ("WQ_MEM_RECLAIM .. is
    /// flushing !WQ_MEM_RECLAIM") and a lockdep acquisition of the queue's map, which give a
    /// WARN, or lockdep's "possible recursive locking", when a work item cancels a sibling on
    /// a rescuer queue. C's "not for `delayed_work`" rule for `cancel_work_sync()` exists for an
    /// armed timer, which this item does not have. Returns whether the item was pending again
    /// (a running instance re-queued itself; possible only if the caller's disable was not
    /// counted, at the depth cap): then the queue's pointer is the caller's.
    fn wait_running(&self) -> bool {
        // SAFETY: `work()` is initialised and its timer idle (see above); we may sleep (the
        // callers allow it). C's own disable for the wait is not counted in `track.disabled`.
        let again = unsafe { bindings::cancel_work_sync(self.raw.work()) };
        if again {
            // The timer is idle, so the item was queued directly: unlink a stale link.
            let mut t = self.raw.track.lock();
            self.raw.settle(&mut t);
        }
        again
    }

    /// Cancels the item and waits for a running instance (C's `cancel_delayed_work_sync()`).
    ///
    /// While it waits the item is disabled, so a running instance that re-queues itself is
    /// refused (as in C). Returns the queue's pointer if the item was pending. Sleeps.
    pub(crate) fn cancel_sync(&self) -> Option<T::Pointer> {
        kernel::task::might_sleep();
        let (p, counted) = self.disable_counted(true);
        let again = self.wait_running();
        if counted {
            self.end_sync();
        }
        // SAFETY: `again`: the cancel in `wait_running` succeeded.
        Self::one_of(p, again.then(|| unsafe { self.take_back() }))
    }

    /// Disables the item and waits for a running instance (C's `disable_delayed_work_sync()`).
    /// Returns the queue's pointer if the item was pending. Sleeps.
    pub(crate) fn disable_sync(&self) -> Option<T::Pointer> {
        kernel::task::might_sleep();
        let p = self.disable();
        let again = self.wait_running();
        // SAFETY: `again`: the cancel in `wait_running` succeeded.
        Self::one_of(p, again.then(|| unsafe { self.take_back() }))
    }

    /// The pointer a `_sync` call gives back. Two exist only at the disable-depth cap, when a
    /// running instance re-queued itself during the wait: the second is dropped here (the
    /// caller may sleep, so it holds no spinlock).
    fn one_of(p: Option<T::Pointer>, again: Option<T::Pointer>) -> Option<T::Pointer> {
        match (p, again) {
            (Some(p), again) => {
                drop(again);
                Some(p)
            }
            (None, again) => again,
        }
    }

    /// Fires a pending timer now and waits until the item has run (C's
    /// `flush_delayed_work()`). Returns whether there was anything to wait for. Sleeps.
    ///
    /// The link of a fired timer is dropped by the work function when it starts, as usual.
    pub(crate) fn flush(&self) -> bool {
        kernel::task::might_sleep();
        // SAFETY: `dwork` is initialised; we may sleep. C re-queues the item only if its timer
        // was pending, on the queue the timer was aimed at (valid until the item has run).
        unsafe { bindings::flush_delayed_work(self.raw.dwork()) }
    }

    /// Whether the item is pending (timer armed, or queued and not started).
    pub(crate) fn is_pending(&self) -> bool {
        self.raw.is_pending()
    }

    /// Whether the calling worker thread is running this item.
    pub(crate) fn is_current(&self) -> bool {
        raw::is_current(self.raw.work())
    }

    /// Whether some worker is running this item right now (C's `work_busy()` running bit).
    /// Advisory; callable from any context.
    pub(crate) fn is_running(&self) -> bool {
        // SAFETY: `work()` is an initialised `work_struct` inside `self`, alive for the call.
        unsafe { raw::is_running(self.raw.work()) }
    }
}
