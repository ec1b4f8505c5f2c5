// SPDX-License-Identifier: GPL-2.0

//! Delayed work items whose timers this layer tracks: [`DelayedWork`] and its operations.
//!
//! The field type [`DelayedWork<T, ID>`] wraps C's `struct delayed_work` together with four
//! words of bookkeeping and the links of an owned queue's armed list:
//!
//! - `st`, the armed list of the owned queue the item is registered on, and `arming`, the arms
//!   in their window (see `armed.rs` for the protocol): an owned queue finds every item whose
//!   timer is aimed at it, with no allocation and no reference, and cancels exactly those when
//!   it is dropped;
//! - `depth`, the disables the layer's callers hold (`depth.rs`): an enable undoes only a
//!   caller's disable, never the one a `cancel_sync()` holds while it waits, and C never warns;
//! - `gate`, which keeps the C disable count still while `mod_delayed` decides whether C took
//!   the pointer it was handed, and says in the same word whether a caller holds a disable
//!   (`depth.rs`).
//!
//! C serialises every change of the item's state itself, through its `PENDING` bit: a queueing,
//! a cancel and a re-timing each own the item for their length. So the layer takes no lock of
//! its own where C's answer is enough: an arm on a queue that lives forever, a cancel,
//! `cancel_sync`, `flush` and the work function are the C call plus at most a branch. An arm on
//! an owned queue adds a window (interrupts off, a count up and down, one load) that checks the
//! item's registration on the queue's armed list; the list's lock is taken only when that
//! registration changes (the item's first arm on the queue, a move between queues, the drop of
//! the item or of the queue). Everything is callable with spinlocks held, interrupts off and
//! from hard-interrupt handlers (the list locks are raw spinlocks, valid in hard-IRQ context
//! even on `PREEMPT_RT`); only the `_sync` operations and `flush` sleep.
//!
//! What each operation does besides the C call:
//!
//! | operation | system queue | owned queue |
//! |---|---|---|
//! | `enqueue_delayed` | nothing (a refusal reads the depth to say why) | the window: interrupts off, `arming` up and down, a load of `st` (registered first if need be) |
//! | `mod_delayed` | interrupts off, the gate's reader add/sub (the caller's pointer goes to C, or back to the caller if it was pending) | the same inside the window |
//! | `cancel`, `disable` | a branch on C's answer (`disable`: the depth count too) | the same |
//! | `cancel_sync` | the gate's writer add/sub | the same |
//! | `enable` | the gate's writer add/sub, one atomic subtract | the same |
//! | the work function | nothing | the same |
//! | the item's drop | a load of `st` and of `arming` | unregisters it under the list lock |
//!
//! The guarantees, and why they hold:
//!
//! - **The queue's pointer comes back exactly once.** C queues an item (and keeps the pointer
//!   it was handed) only if it was idle, and every pending period ends exactly once: the work
//!   function receives the pointer, or exactly one cancel, disable or re-timing grabs the
//!   pending item and says so. The layer turns each such `true` into the pointer once.
//!   `mod_delayed` hands C the caller's pointer, which C keeps only if the item was idle and
//!   not disabled; the gate (`depth.rs`) makes "not disabled" hold from the check to the C
//!   call, and the pointer goes back to the caller if the item was pending.
//! - **An owned queue's drop cancels exactly the items whose timers aim at it, and no timer
//!   fires into a freed queue.** An arm on an owned queue makes its C call only inside a window
//!   that saw the item registered on the queue's list, and a move off a list waits for every
//!   such window and keeps an item that is pending there; so an item aimed at an owned queue is
//!   registered on its list. The drop decides item by item under the list lock, with the
//!   item's `st` still naming the list, so no arm on another owned queue can begin meanwhile,
//!   and a cancel that took a period of a queue that lives forever (re-aimed in between) queues
//!   it again (`armed.rs`, rules 1-4).
//! - **No use after free.** A registered item is alive: its drop unregisters it and waits for
//!   the windows still open on it (rule 5). A list named by `st` is memory until its lock is
//!   taken, because lists are freed an RCU grace period after their queue unregistered every
//!   item, and `st` is followed with interrupts off (rule 6).
//! - **Callable in any context but NMI.** Nothing sleeps except the `_sync` operations and
//!   `flush`; the only locks are raw spinlocks taken with interrupts off; a gate writer waits
//!   only for readers, and a move or an item's drop only for windows, which run with
//!   interrupts off and wait for nothing.
//! - **Enable undoes only the caller's disables; C never warns.** The depth protocol of
//!   `depth.rs`.
//!
//! Items implement [`DelayedWorkItem`] (like upstream's `WorkItem`) and [`HasDelayedWork`]
//! (through [`impl_has_delayed_work!`]); the field is made with [`new_delayed_work!`].

use super::field::HasWorkField;
use super::{
    armed::Links,
    depth::{
        Depth,
        Gate, //
    },
    helpers,
    pointer::WorkPointer,
    raw,
    raw_spinlock::irqs_off, //
};
use core::{
    marker::PhantomData,
    sync::atomic::{
        AtomicU32,
        AtomicUsize, //
    }, //
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
pub(crate) trait HasDelayedWork<T, const ID: u64 = 0>:
    HasWorkField<DelayedWork<T, ID>>
{
}

impl<T: HasWorkField<DelayedWork<T, ID>>, const ID: u64> HasDelayedWork<T, ID> for T {}

/// Implements [`HasDelayedWork`] for a type, naming its [`DelayedWork`] field.
///
/// Upstream's syntax (the item type, then the field's id if not 0; generic types take their
/// parameters in braces after `impl`; several impls in one call), or the short forms
/// `impl HasDelayedWork for Job { .. }` and `impl HasDelayedWork<T, ID> for Job { .. }`.
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
        // The blanket impl makes `$ty` a `HasDelayedWork<$ty, $id>`: checked here, at the item.
        const _: () = {
            fn has_field<T: $crate::workqueue::HasDelayedWork<T, $id>>() {}
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

/// The type-independent part of a [`DelayedWork`].
///
/// # Invariants
///
/// - `dwork` was initialised with the work function of the item type that made this value, and
///   `release` gives back a pointer of that item type's `Pointer` type.
/// - `st` is the address of the [`ArmedList`] the item is registered (linked) on, or 0; it
///   changes only with that list's lock held (`armed.rs`, rule 1), and `links` are used only
///   with that lock held. A registered item is linked on its list, except while the holder of
///   that list's lock is changing both.
/// - `arming` is the number of arms inside their window (`armed.rs`, rule 2); the value is
///   not dropped while it is non-zero, nor while it is registered.
/// - `depth` counts the disables the layer's callers hold (`depth.rs`); every C call that
///   changes C's disable count, and every change of `depth`, is made inside a writer section
///   of `gate`, whose high half also holds one unit per disable counted in `depth` (`Gate`).
#[repr(C)]
#[pin_data(PinnedDrop)]
pub(crate) struct RawDelayed {
    #[pin]
    dwork: Opaque<bindings::delayed_work>,
    pub(super) st: AtomicUsize,
    pub(super) arming: AtomicU32,
    links: Links,
    pub(super) depth: Depth,
    gate: Gate,
    release: unsafe fn(*const RawDelayed),
}

impl RawDelayed {
    pub(crate) fn links(&self) -> &Links {
        &self.links
    }

    /// The C `delayed_work`.
    #[inline]
    pub(crate) fn dwork(&self) -> *mut bindings::delayed_work {
        self.dwork.get()
    }

    /// The C `work_struct` inside it.
    #[inline]
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

    /// Queues the item again on the queue and CPU its last arm aimed it at, when its timer would
    /// have fired (at once if that time has passed); gives the pointer back if C refuses (the
    /// item was armed again meanwhile).
    ///
    /// For an owned queue's drop that cancelled a period of another queue (`Taken::Foreign` in
    /// `armed.rs`): that queue lives forever, so no link is needed.
    ///
    /// # Safety
    ///
    /// The caller owns the queue's pointer (a cancel just succeeded), and `aimed_at()` is a
    /// queue that lives forever.
    pub(crate) unsafe fn requeue(&self) {
        let dw = self.dwork();
        // SAFETY: `dw` is initialised and idle (the cancel), so C does not write these now.
        let (cpu, expires) = unsafe { ((*dw).cpu, (*dw).timer.expires) };
        let left = expires.wrapping_sub(super::delay::jiffies() as usize) as isize;
        let delay = left.max(0) as usize;
        let queued = irqs_off(|_| {
            let online = u32::try_from(cpu)
                .ok()
                .and_then(kernel::cpu::CpuId::from_u32)
                .is_some_and(super::cpu::is_online);
            let cpu = if online { cpu } else { raw::CPU_UNBOUND };
            // SAFETY: The queue lives forever (the caller's promise); the pointer is ours to
            // hand over; the CPU is online (interrupts off) or unbound.
            unsafe { bindings::queue_delayed_work_on(cpu, self.aimed_at(), dw, delay) }
        });
        if !queued {
            // SAFETY: C did not take it: still ours, given back once.
            unsafe { self.release() };
        }
    }

    /// Whether the item's timer is armed (a snapshot). While it is, `aimed_at()` names the queue
    /// the timer will queue it on: C sets `dwork->wq` before it adds the timer, and only a
    /// grab of the pending item (which deletes the timer first) changes either. An item queued
    /// with no delay has no timer, and C leaves `dwork->wq` as its last timer left it.
    #[inline]
    pub(crate) fn timer_pending(&self) -> bool {
        // SAFETY: `dwork` is initialised and alive for the call; C reads the timer's link
        // locklessly (`timer_pending()` is a snapshot by contract).
        unsafe { helpers::rust_wq_timer_pending(self.timer()) }
    }

    /// The C timer inside the `delayed_work`.
    fn timer(&self) -> *mut bindings::timer_list {
        // SAFETY: `dwork` is valid memory for a `delayed_work`; this only computes a field address.
        unsafe { core::ptr::addr_of_mut!((*self.dwork.get()).timer) }
    }

    /// Deletes the item's timer, waiting for its function if that is running (C's
    /// `timer_delete_sync()`, as `flush_delayed_work()` does): afterwards no timer function of
    /// the item is in flight. Returns whether a pending timer was deleted; then the item's
    /// pending period is the caller's until it calls [`RawDelayed::fire_deleted_timer`] or
    /// [`RawDelayed::readd_timer`], and `aimed_at()` cannot change meanwhile.
    ///
    /// Allowed with interrupts off and spinlocks held: the timer is `TIMER_IRQSAFE`, and its
    /// function (`delayed_work_timer_fn()`, C's `__queue_work()`) takes no lock of the layer's,
    /// so the wait ends; nothing sleeps.
    pub(crate) fn delete_timer_sync(&self) -> bool {
        // SAFETY: The timer is initialised (`dwork` is) and IRQ-safe; see above.
        unsafe { bindings::timer_delete_sync(self.timer()) != 0 }
    }

    /// Does now what the deleted timer would have done: queues the item on `aimed_at()`.
    ///
    /// # Safety
    ///
    /// [`RawDelayed::delete_timer_sync`] just returned `true` and nothing re-added the timer;
    /// interrupts are off (the timer function requires it); `aimed_at()` is a live queue.
    pub(crate) unsafe fn fire_deleted_timer(&self) {
        // SAFETY: Guaranteed by the caller.
        unsafe { bindings::delayed_work_timer_fn(self.timer()) };
    }

    /// Puts a deleted timer back as the arm that added it left it (same expiry and queue).
    ///
    /// # Safety
    ///
    /// [`RawDelayed::delete_timer_sync`] just returned `true` and nothing re-added the timer.
    pub(crate) unsafe fn readd_timer(&self) {
        // SAFETY: The timer is initialised and not pending (guaranteed by the caller).
        unsafe { bindings::add_timer(self.timer()) };
    }

    /// Whether the item is pending (queued or timer armed).
    #[inline]
    pub(crate) fn is_pending(&self) -> bool {
        // SAFETY: `work()` is an initialised `work_struct` inside `self`, alive for the call.
        unsafe { raw::is_pending(self.work()) }
    }

    /// The queue the item's last arm aimed it at (`dwork->wq`; null before the first).
    #[inline]
    pub(crate) fn aimed_at(&self) -> *mut bindings::workqueue_struct {
        // SAFETY: `dwork` is initialised and alive; C writes `wq` with plain stores while it
        // owns the item (`PENDING`), so a racing read sees the old or the new pointer, which is
        // only compared, never followed.
        unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*self.dwork.get()).wq)) }
    }

    /// The gate of the C disable count (`depth.rs`).
    #[inline]
    pub(super) fn gate(&self) -> &Gate {
        &self.gate
    }

    /// Whether the layer's callers hold a disable, or a writer is changing C's count: an arm C
    /// refused now is one refused because the item is disabled.
    #[inline]
    pub(super) fn disabled_or_changing(&self) -> bool {
        self.gate.closed()
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

// SAFETY: The C `delayed_work` may be used from any thread; the Rust state is atomics, and the
// links are only touched under the lock of the list the item is on (armed.rs: a drain gives an
// item back after dropping the list's lock, and never touches it afterwards; the item's drop
// unregisters it under that lock). `T` is not contained.
unsafe impl<T, const ID: u64> Send for DelayedWork<T, ID> {}
// SAFETY: As above: every `&self` method uses atomics, takes a list lock, or calls C functions
// that lock.
unsafe impl<T, const ID: u64> Sync for DelayedWork<T, ID> {}

impl<T, const ID: u64> DelayedWork<T, ID>
where
    T: DelayedWorkItem<ID> + HasDelayedWork<T, ID>,
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
                st: AtomicUsize::new(0),
                arming: AtomicU32::new(0),
                links: Links::new(),
                depth: Depth::new(),
                gate: Gate::new(),
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
    T: DelayedWorkItem<ID> + HasDelayedWork<T, ID>,
{
    // SAFETY: `work` is the `work` field of the `delayed_work` that is the first field of a
    // `#[repr(C)]` `RawDelayed`, which is the only field of a `#[repr(transparent)]`
    // `DelayedWork<T, ID>`, so these casts give the field's address.
    let dwork = unsafe { kernel::container_of!(work, bindings::delayed_work, work) };
    let field = dwork.cast::<DelayedWork<T, ID>>();
    // C cleared `PENDING` before calling us: the period has ended. The item's registration on
    // an owned queue's list, if any, stays (`armed.rs`).
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
    T: DelayedWorkItem<ID> + HasDelayedWork<T, ID>,
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
    T: DelayedWorkItem<ID> + HasDelayedWork<T, ID>,
{
    /// Takes back the queue's pointer after a successful cancel.
    ///
    /// # Safety
    ///
    /// A cancel or disable of this field just returned `true`.
    #[inline]
    unsafe fn take_back(&self) -> T::Pointer {
        // The period ended in C. The item's registration, if any, stays (`armed.rs`).
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
    #[inline]
    pub(crate) fn cancel(&self) -> Option<T::Pointer> {
        // SAFETY: `dwork` is initialised; `cancel_delayed_work` does not sleep.
        if unsafe { bindings::cancel_delayed_work(self.raw.dwork()) } {
            // SAFETY: The cancel succeeded.
            Some(unsafe { self.take_back() })
        } else {
            None
        }
    }

    /// Disables the item, cancelling it if pending (C's `disable_delayed_work()`); disables
    /// nest. Callable from any context. Returns the queue's pointer if the item was pending.
    ///
    /// Disables nest up to [`MAX_DISABLE_DEPTH`](super::work::MAX_DISABLE_DEPTH) (half of C's
    /// limit, see there): at that depth this only cancels.
    pub(crate) fn disable(&self) -> Option<T::Pointer> {
        let gate = self.raw.gate();
        gate.write_begin();
        // SAFETY: `dwork` is initialised; does not sleep.
        let was_pending = unsafe { bindings::disable_delayed_work(self.raw.dwork()) };
        if self.raw.depth.count() {
            // The unit stays while the disable is held (`Gate`).
            gate.write_end_hold();
        } else {
            // Past the cap: undo C's disable (the callers' disables keep the item disabled).
            // SAFETY: `dwork` is initialised; C's count is at least ours plus the disable just
            // made (`depth.rs`); does not sleep.
            unsafe { bindings::enable_delayed_work(self.raw.dwork()) };
            gate.write_end();
        }
        // SAFETY: Disabling took the pending item off its queue.
        was_pending.then(|| unsafe { self.take_back() })
    }

    /// Undoes one [`DelayedWork::disable`] (C's `enable_delayed_work()`). Returns whether the
    /// item can be queued again. Without a disable of the caller's to undo it does nothing
    /// (C would warn "work disable count underflowed"), and returns whether the item is
    /// queueable: `false` while a `cancel_sync()` waits, whose disable is not the caller's.
    pub(crate) fn enable(&self) -> bool {
        let gate = self.raw.gate();
        gate.write_begin();
        if self.raw.depth.take() {
            // SAFETY: `dwork` is initialised, and C's count is at least ours was (positive,
            // `depth.rs`); does not sleep.
            let r = unsafe { bindings::enable_delayed_work(self.raw.dwork()) };
            // Our unit and the one the undone disable kept (`Gate`).
            gate.write_end_release();
            r
        } else {
            // SAFETY: `work()` is an initialised `work_struct` inside `self`.
            let r = !unsafe { raw::is_disabled(self.raw.work()) };
            gate.write_end();
            r
        }
    }

    /// Returns the caller's disable depth (a waiting `cancel_sync()`'s disable is not counted).
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn disable_depth(&self) -> u32 {
        self.raw.depth.get()
    }

    /// Cancels the item and waits for a running instance (C's `cancel_delayed_work_sync()`).
    ///
    /// While it waits the item is disabled (by C, for the length of the wait; not counted in
    /// the caller's depth), so a running instance that re-queues itself is refused. C waits
    /// with cancel semantics (`__flush_work(.., from_cancel = true)`): no flush-dependency
    /// check and no lockdep touch of the queue, so a work item may cancel a sibling on a
    /// rescuer queue. Returns the queue's pointer if the item was pending. Sleeps.
    pub(crate) fn cancel_sync(&self) -> Option<T::Pointer> {
        let gate = self.raw.gate();
        // C disables the item for the wait: a writer (`mod_delayed` must not hand C a pointer
        // meanwhile). C checks `might_sleep()` itself.
        gate.write_begin();
        // SAFETY: `dwork` is initialised; we may sleep (C checks).
        let was_pending = unsafe { bindings::cancel_delayed_work_sync(self.raw.dwork()) };
        gate.write_end();
        // SAFETY: The cancel succeeded.
        was_pending.then(|| unsafe { self.take_back() })
    }

    /// Disables the item and waits for a running instance (C's `disable_delayed_work_sync()`).
    /// Returns the queue's pointer if the item was pending. Sleeps. At the depth cap this is
    /// `cancel_sync` (nothing counted).
    pub(crate) fn disable_sync(&self) -> Option<T::Pointer> {
        let gate = self.raw.gate();
        gate.write_begin();
        // SAFETY: `dwork` is initialised; we may sleep (C checks). It waits with cancel
        // semantics, as in `cancel_sync`.
        let was_pending = unsafe { bindings::disable_delayed_work_sync(self.raw.dwork()) };
        if self.raw.depth.count() {
            // The unit stays while the disable is held, as in `disable`.
            gate.write_end_hold();
        } else {
            // Past the cap: undo C's disable, as in `disable`.
            // SAFETY: As there.
            unsafe { bindings::enable_delayed_work(self.raw.dwork()) };
            gate.write_end();
        }
        // SAFETY: The cancel succeeded.
        was_pending.then(|| unsafe { self.take_back() })
    }

    /// The address of the queue the item's armed timer will queue it on, or `None` if no timer
    /// is armed (a snapshot, for checks: no queue is dereferenced).
    pub(crate) fn timer_target(&self) -> Option<usize> {
        if self.raw.timer_pending() {
            Some(self.raw.aimed_at() as usize)
        } else {
            None
        }
    }

    /// The address of the queue the item's last timer aimed at (C's `dwork->wq`, which an
    /// arm with no delay leaves as it was), or 0 before the first (a snapshot, for checks).
    pub(crate) fn last_aim(&self) -> usize {
        self.raw.aimed_at() as usize
    }

    /// Fires a pending timer now and waits until the item has run (C's
    /// `flush_delayed_work()`). Returns whether there was anything to wait for. Sleeps.
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
