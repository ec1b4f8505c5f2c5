// SPDX-License-Identifier: GPL-2.0

//! The torture run's work items and their accounting.
//!
//! Items are queued through [`ARef`]: the run implements the reference count itself
//! ([`AlwaysRefCounted`]), so every pointer the layer takes, keeps, hands back or drops is
//! counted. The pool holds one base reference per item and frees the items only at the end of
//! a run, and only when every count is back where it started: a count that reaches zero (a
//! pointer given back twice) is recorded as a violation and frees nothing.
//!
//! Two item types: [`PItem`] has a plain `Work` field, [`DItem`] a tracked `DelayedWork` field.
//! Items with an even index ("owned" items) go to the run's own queues and are disabled and
//! enabled by the torturer in pairs it owns; items with an odd index ("system" items) go only
//! to `system_dfl_wq` (one queue, so C's non-reentrancy makes at most one instance run at a
//! time), are never disabled by the torturer, and are the ones whose `cancel_sync()` guarantee
//! is checked.

use super::Shared;
use crate::workqueue::raw_spinlock::{
    new_raw_spinlock_irq,
    RawSpinLockIrq, //
};
use crate::workqueue::{
    impl_has_delayed_work,
    impl_has_work,
    new_delayed_work,
    new_work,
    system_dfl,
    Delay,
    DelayedWork,
    DelayedWorkItem,
    Work,
    WorkItem, //
};
use core::{
    ptr::NonNull,
    sync::atomic::{
        AtomicBool,
        AtomicI64,
        AtomicU64,
        Ordering::SeqCst, //
    },
};
use kernel::{
    prelude::*,
    sync::aref::{
        ARef,
        AlwaysRefCounted, //
    },
    time::{
        delay::fsleep,
        Delta, //
    },
};

/// Whether running items may queue themselves again (off during the final teardown).
pub(super) static SELF_REQUEUE: AtomicBool = AtomicBool::new(false);

/// Pointer and run accounting of one item. All counters only grow, except `refs` and the
/// torturer's disable depths.
#[pin_data]
pub(super) struct Acct {
    /// References: the pool's base reference (1) plus every `ARef` alive.
    pub(super) refs: AtomicI64,
    /// `inc_ref` calls (the torturer's clones).
    pub(super) incs: AtomicU64,
    /// `dec_ref` calls.
    pub(super) decs: AtomicU64,
    /// References the torturer made (to queue them).
    pub(super) own_clones: AtomicU64,
    /// References the torturer dropped (handed back by the layer, or at the end of a run).
    pub(super) own_puts: AtomicU64,
    /// Times a `dec_ref` took the count to zero: a pointer given back twice.
    pub(super) underflows: AtomicU64,
    /// Successful enqueues: each one handed a pointer to a queue.
    pub(super) enq_ok: AtomicU64,
    /// Runs (each one gets the pointer a queue held).
    pub(super) ran: AtomicU64,
    /// Pointers handed back by `cancel*`/`disable*` (`Some`).
    pub(super) got_back: AtomicU64,
    /// Enqueue attempts by the torturer (not by the item itself) begun, and ended.
    pub(super) ext_begin: AtomicU64,
    pub(super) ext_end: AtomicU64,
    /// Calls begun and ended that may set the item's PENDING bit for a moment without queueing
    /// it: every enqueue attempt (C sets PENDING, then clears it if the item is disabled), and
    /// every cancel, disable and enable (C grabs PENDING to change the item). A check that reads
    /// PENDING trusts it only if none of these was in flight (see [`Acct::quiet`]).
    pub(super) touch_begin: AtomicU64,
    pub(super) touch_end: AtomicU64,
    /// The torturer's disables not yet undone (owned items only): made with the `_sync`
    /// variant, and without it. Incremented after the layer's disable returned, decremented
    /// before the layer's enable is called.
    pub(super) depth_sync: AtomicU64,
    pub(super) depth_async: AtomicU64,
    /// Enable operations begun (for the "queued while disabled" check).
    pub(super) enables: AtomicU64,
    /// Enable operations ended; `enables != enables_end`: one is in flight.
    pub(super) enables_end: AtomicU64,
    /// Plain items: the generation of the queue of the last successful enqueue (0: a system
    /// queue), and the lock every enqueue of the item holds around the layer call and the
    /// stamp. Delayed items do not use it: their arms race each other, and `check_dead`
    /// looks at their timers.
    #[pin]
    pub(super) stamp: RawSpinLockIrq<u64>,
}

impl Acct {
    fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            refs: AtomicI64::new(1),
            incs: AtomicU64::new(0),
            decs: AtomicU64::new(0),
            own_clones: AtomicU64::new(0),
            own_puts: AtomicU64::new(0),
            underflows: AtomicU64::new(0),
            enq_ok: AtomicU64::new(0),
            ran: AtomicU64::new(0),
            got_back: AtomicU64::new(0),
            ext_begin: AtomicU64::new(0),
            ext_end: AtomicU64::new(0),
            touch_begin: AtomicU64::new(0),
            touch_end: AtomicU64::new(0),
            depth_sync: AtomicU64::new(0),
            depth_async: AtomicU64::new(0),
            enables: AtomicU64::new(0),
            enables_end: AtomicU64::new(0),
            stamp <- new_raw_spinlock_irq!(0, "torture::Acct::stamp"),
        })
    }

    fn inc(&self) {
        self.refs.fetch_add(1, SeqCst);
        self.incs.fetch_add(1, SeqCst);
    }

    fn dec(&self) {
        self.decs.fetch_add(1, SeqCst);
        if self.refs.fetch_sub(1, SeqCst) <= 1 {
            // The pool's base reference cannot be dropped through an `ARef`: somebody dropped a
            // pointer it did not own.
            self.underflows.fetch_add(1, SeqCst);
        }
    }

    /// Runs `f`, a call that may set PENDING for a moment, counted in `touch_*`.
    pub(super) fn touch<R>(&self, f: impl FnOnce() -> R) -> R {
        self.touch_begin.fetch_add(1, SeqCst);
        let r = f();
        self.touch_end.fetch_add(1, SeqCst);
        r
    }

    /// Reads `f` (a state that includes PENDING) when no call counted in `touch_*` is in flight;
    /// `None` if one was in flight before or began during the read, so the read may have seen a
    /// PENDING that only means "somebody is changing the item".
    pub(super) fn quiet<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        let b0 = self.touch_begin.load(SeqCst);
        if self.touch_end.load(SeqCst) != b0 {
            return None;
        }
        let r = f();
        (self.touch_begin.load(SeqCst) == b0).then_some(r)
    }

    /// A snapshot for "no enable since": the count of enables begun, if none is in flight.
    pub(super) fn enables_idle(&self) -> Option<u64> {
        let b = self.enables.load(SeqCst);
        (self.enables_end.load(SeqCst) == b).then_some(b)
    }

    /// Whether no enable began since `snap` (from [`Acct::enables_idle`]) and none was in
    /// flight then.
    pub(super) fn no_enable_since(&self, snap: Option<u64>) -> bool {
        snap == Some(self.enables.load(SeqCst))
    }

    /// The torturer's disables held right now.
    pub(super) fn depth(&self) -> u64 {
        self.depth_sync.load(SeqCst) + self.depth_async.load(SeqCst)
    }

    /// Takes one of the torturer's disables (a `_sync` one first); false if it holds none.
    pub(super) fn take_disable(&self) -> bool {
        for d in [&self.depth_sync, &self.depth_async] {
            if d.fetch_update(SeqCst, SeqCst, |v| v.checked_sub(1)).is_ok() {
                return true;
            }
        }
        false
    }
}

/// Access to the accounting of an item and to the run's shared state.
pub(super) trait Tracked: AlwaysRefCounted + Sized {
    fn acct(&self) -> &Acct;
    fn idx(&self) -> usize;

    /// Whether this item goes to `system_dfl_wq` only (odd index), see the module docs.
    fn is_system(&self) -> bool {
        self.idx() % 2 == 1
    }
}

/// Makes a new reference for the torturer to queue.
pub(super) fn clone_ref<T: Tracked>(item: &T) -> ARef<T> {
    item.acct().own_clones.fetch_add(1, SeqCst);
    ARef::from(item)
}

/// Drops a reference the torturer holds (handed back by the layer, or a run's).
pub(super) fn put<T: Tracked>(p: ARef<T>) {
    p.acct().own_puts.fetch_add(1, SeqCst);
    drop(p);
}

/// A plain work item.
#[pin_data]
pub(super) struct PItem {
    #[pin]
    pub(super) w: Work<PItem>,
    idx: usize,
    #[pin]
    acct: Acct,
}

impl_has_work! { impl HasWork<Self> for PItem { self.w } }

impl PItem {
    pub(super) fn new(idx: usize) -> impl PinInit<Self> {
        pin_init!(Self { w <- new_work!("torture::PItem::w"), idx, acct <- Acct::new() })
    }
}

/// A delayed work item (the layer's tracked `DelayedWork`).
#[pin_data]
pub(super) struct DItem {
    #[pin]
    pub(super) dw: DelayedWork<DItem>,
    idx: usize,
    #[pin]
    acct: Acct,
}

impl_has_delayed_work! { impl HasDelayedWork for DItem { self.dw } }

impl DItem {
    pub(super) fn new(idx: usize) -> impl PinInit<Self> {
        pin_init!(Self { dw <- new_delayed_work!("torture::DItem::dw"), idx, acct <- Acct::new() })
    }
}

macro_rules! tracked {
    ($ty:ty) => {
        impl Tracked for $ty {
            fn acct(&self) -> &Acct {
                &self.acct
            }
            fn idx(&self) -> usize {
                self.idx
            }
        }

        // SAFETY: The pool owns every item for the whole run and frees an item only after the
        // run has stopped every context and checked that no reference but its own is left
        // (`refs == 1`, no underflow, not pending, not running); otherwise it leaks the pool.
        // So the object outlives every `ARef`, and `dec_ref` never frees.
        unsafe impl AlwaysRefCounted for $ty {
            fn inc_ref(&self) {
                self.acct.inc();
            }

            unsafe fn dec_ref(obj: NonNull<Self>) {
                // SAFETY: The caller owned a reference, so the object is alive (it is only
                // freed by the pool, see above).
                unsafe { obj.as_ref() }.acct.dec();
            }
        }
    };
}
tracked!(PItem);
tracked!(DItem);

/// A small pseudo-random delay for a work function, from its item and run count.
fn run_sleep(idx: usize, n: u64) {
    let h = (n ^ ((idx as u64) << 40)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    // Half of the runs sleep up to ~500 us: the windows in which a `cancel_sync()`,
    // `disable_sync()`, `flush` or `drain` waits for a running item.
    if h & 0x100 != 0 {
        fsleep(Delta::from_micros(((h >> 20) % 500) as i64));
    }
}

/// Whether this run queues its item again (about one run in four), from its run count.
fn run_requeues(n: u64) -> bool {
    SELF_REQUEUE.load(SeqCst) && n.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 62 == 0
}

impl WorkItem for PItem {
    type Pointer = ARef<PItem>;

    fn run(this: ARef<PItem>) {
        let n = this.acct.ran.fetch_add(1, SeqCst);
        run_sleep(this.idx, n);
        if run_requeues(n) {
            // A chained re-queue, on the system queue (stamp 0: it never dies). Refused while
            // the item is disabled or being cancelled with `cancel_sync()`.
            let p = clone_ref(&*this);
            let mut s = this.acct.stamp.lock();
            match this.acct.touch(|| system_dfl().enqueue(p)) {
                Ok(()) => {
                    *s = 0;
                    this.acct.enq_ok.fetch_add(1, SeqCst);
                }
                Err(e) => {
                    drop(s);
                    put(e.into_inner());
                }
            }
        }
        put(this);
    }
}

impl DelayedWorkItem for DItem {
    type Pointer = ARef<DItem>;

    fn run(this: ARef<DItem>) {
        let n = this.acct.ran.fetch_add(1, SeqCst);
        run_sleep(this.idx, n);
        if run_requeues(n) {
            let p = clone_ref(&*this);
            match this
                .acct
                .touch(|| system_dfl().enqueue_delayed(p, Delay::from_jiffies(1)))
            {
                Ok(()) => {
                    this.acct.enq_ok.fetch_add(1, SeqCst);
                }
                Err(e) => put(e.into_inner()),
            }
        }
        put(this);
    }
}

/// Compile-time proof that the items can be shared with every context of the run.
const _: () = {
    const fn sync<T: Send + Sync>() {}
    sync::<PItem>();
    sync::<DItem>();
    sync::<Shared>();
};
