// SPDX-License-Identifier: GPL-2.0

//! Upstream's `kernel::workqueue` (Linux 7.3) on the benchmark's queues: the third column of
//! the report, beside this layer and C.
//!
//! Upstream can enqueue an item, immediately or after a delay, on a queue somebody else owns
//! (it borrows it with `Queue::from_raw`), through an `Arc` or a `Pin<KBox<_>>`; it cannot
//! cancel, flush, disable, enqueue on a given CPU, or own a queue. The timed calls are its
//! `Queue::enqueue` and `Queue::enqueue_delayed`, called as a driver would, on the queue this
//! layer made for the run (or `system_percpu_wq`: upstream's `system()` is the deprecated
//! `system_wq`), with the same items reused, the same delay and the same timing points as the
//! layer's rounds.
//!
//! The untimed tear-down of a delayed round needs the cancel that upstream lacks: [`cancel`]
//! calls C's `cancel_delayed_work()` on upstream's `DelayedWork` and takes back the pointer the
//! queue held, as a driver using upstream would have to. It is the benchmark's one raw
//! workqueue call outside the layer, kept in this file.

use super::items::{
    Home,
    Slot, //
};
use super::round::{
    arm_delay,
    timed, //
};
use super::{
    Op,
    Ptr, //
};
use crate::kthread::Completion;
use crate::workqueue::Queue;
use kernel::{
    bindings,
    prelude::*,
    sync::Arc,
    workqueue::{
        self as uwq,
        DelayedWork,
        Work, //
    },
};

/// Upstream's plain item, queued through `Arc`.
#[pin_data]
struct UpItem {
    #[pin]
    work: Work<UpItem>,
    #[pin]
    done: Completion,
}

kernel::impl_has_work! {
    impl HasWork<Self> for UpItem { self.work }
}

impl uwq::WorkItem for UpItem {
    type Pointer = Arc<UpItem>;

    fn run(this: Arc<UpItem>) {
        this.done.complete();
    }
}

impl UpItem {
    fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(UpItem {
                work <- kernel::new_work!("rust_wq::bench::UpItem::work"),
                done <- Completion::new(),
            }),
            GFP_KERNEL,
        )
    }
}

/// Upstream's delayed item, queued through `Arc`; its timer never fires (it is cancelled).
#[pin_data]
struct UpDelayed {
    #[pin]
    dwork: DelayedWork<UpDelayed>,
}

kernel::impl_has_delayed_work! {
    impl HasDelayedWork<Self> for UpDelayed { self.dwork }
}

impl uwq::WorkItem for UpDelayed {
    type Pointer = Arc<UpDelayed>;

    fn run(_this: Arc<UpDelayed>) {}
}

/// Upstream's plain item, queued through `Pin<KBox<_>>`: the work function brings it home.
#[pin_data]
pub(super) struct UpBoxItem {
    #[pin]
    work: Work<UpBoxItem>,
    home: Arc<Slot<UpBoxItem>>,
}

kernel::impl_has_work! {
    impl HasWork<Self> for UpBoxItem { self.work }
}

impl uwq::WorkItem for UpBoxItem {
    type Pointer = Pin<KBox<UpBoxItem>>;

    fn run(this: Pin<KBox<UpBoxItem>>) {
        let home = this.home.clone();
        home.come_home(this);
    }
}

impl UpBoxItem {
    fn new(home: Arc<Slot<UpBoxItem>>) -> Result<Pin<KBox<Self>>> {
        KBox::pin_init(
            pin_init!(UpBoxItem {
                work <- kernel::new_work!("rust_wq::bench::UpBoxItem::work"),
                home,
            }),
            GFP_KERNEL,
        )
    }
}

/// Upstream's delayed item, queued through `Pin<KBox<_>>`; cancelled, or brought home if it ran.
#[pin_data]
pub(super) struct UpBoxDelayed {
    #[pin]
    dwork: DelayedWork<UpBoxDelayed>,
    home: Arc<Slot<UpBoxDelayed>>,
}

kernel::impl_has_delayed_work! {
    impl HasDelayedWork<Self> for UpBoxDelayed { self.dwork }
}

impl uwq::WorkItem for UpBoxDelayed {
    type Pointer = Pin<KBox<UpBoxDelayed>>;

    fn run(this: Pin<KBox<UpBoxDelayed>>) {
        let home = this.home.clone();
        home.come_home(this);
    }
}

/// One thread's upstream items.
pub(super) struct Items {
    plain: Arc<UpItem>,
    delayed: Arc<UpDelayed>,
    box_plain: Home<UpBoxItem>,
    box_delayed: Home<UpBoxDelayed>,
    /// Where the fresh boxes of [`Op::QueueFresh`] come back to (empty between rounds).
    box_fresh: Home<UpBoxItem>,
}

impl Items {
    pub(super) fn new() -> Result<Self> {
        let box_plain = Home::new()?;
        box_plain.put(UpBoxItem::new(box_plain.slot())?);
        let box_delayed = Home::new()?;
        let home = box_delayed.slot();
        box_delayed.put(KBox::pin_init(
            pin_init!(UpBoxDelayed {
                dwork <- kernel::new_delayed_work!("rust_wq::bench::UpBoxDelayed::dwork"),
                home,
            }),
            GFP_KERNEL,
        )?);
        Ok(Items {
            plain: UpItem::new()?,
            delayed: Arc::pin_init(
                pin_init!(UpDelayed {
                    dwork <- kernel::new_delayed_work!("rust_wq::bench::UpDelayed::dwork"),
                }),
                GFP_KERNEL,
            )?,
            box_plain,
            box_delayed,
            box_fresh: Home::new()?,
        })
    }
}

/// Cancels an upstream delayed item (C's `cancel_delayed_work()`): `true` if it was pending and
/// now will not run.
///
/// # Safety
///
/// `dwork` points at an initialised [`DelayedWork`] that stays valid during the call.
unsafe fn cancel<T>(dwork: *const DelayedWork<T>) -> bool {
    // SAFETY: `dwork` is valid (the caller), so is the `work_struct` inside it.
    let work = unsafe { Work::raw_get(DelayedWork::raw_as_work(dwork)) };
    // SAFETY: `raw_as_work` returns the `work` field of the `delayed_work` inside `dwork`.
    let c_dwork = unsafe { kernel::container_of!(work, bindings::delayed_work, work) };
    // SAFETY: `c_dwork` is an initialised `delayed_work` (`DelayedWork::new` initialised its work
    // and its timer), valid during the call; `cancel_delayed_work()` may be called in any state.
    unsafe { bindings::cancel_delayed_work(c_dwork) }
}

/// Borrows the layer's queue `q` as upstream's `Queue`, as a driver borrows a queue it did not
/// make.
fn borrow(q: &Queue) -> &uwq::Queue {
    // SAFETY: `q` is a valid workqueue (the layer's `Queue` invariant) at least as long as the
    // borrow of `q`, which the returned reference has.
    unsafe { uwq::Queue::from_raw(q.as_raw()) }
}

/// One round of `op` through upstream's API on `q` (only the operations that
/// [`Op::has_variants`]); returns the time of the timed call.
///
/// As the layer's rounds: the pointer is made before the clock is read, results are dropped after
/// it is read, the delay is the same, and the item comes back untimed (the work function or the
/// cancel).
pub(super) fn round(op: Op, ptr: Ptr, q: &Queue, it: &Items) -> Result<u64> {
    let uq = borrow(q);
    let delay = arm_delay(1).jiffies();
    Ok(match (op, ptr) {
        (Op::Queue, Ptr::Arc) => {
            let w = it.plain.clone();
            let (ns, r) = timed(|| uq.enqueue(w));
            // A fresh round: the item ran last round, so it is not pending.
            if r.is_ok() {
                it.plain.done.wait();
            }
            ns
        }
        (Op::QueueFresh, Ptr::Arc) => {
            let fresh = UpItem::new()?;
            let w = fresh.clone();
            let (ns, r) = timed(|| uq.enqueue(w));
            if r.is_ok() {
                // Bounded: queued just now, it runs at once; only in the benchmark's kthreads
                // (the user's task waits for them killably, `bench.rs`).
                fresh.done.wait();
            }
            ns
        }
        (Op::Delayed, Ptr::Arc) => {
            let w = it.delayed.clone();
            let (ns, r) = timed(|| uq.enqueue_delayed(w, delay));
            // SAFETY: `it.delayed` keeps the item, and so its `dwork`, alive.
            if r.is_ok() && unsafe { cancel(&it.delayed.dwork) } {
                // SAFETY: The item was pending and now will not run: the queue held the reference
                // that upstream's enqueue gave up with `Arc::into_raw`, whose address is
                // `Arc::as_ptr` of any `Arc` of the item. It is taken back once, here.
                drop(unsafe { Arc::from_raw(Arc::as_ptr(&it.delayed)) });
            }
            ns
        }
        (Op::Queue, Ptr::KBox) => {
            let b = it.box_plain.take().ok_or(EINVAL)?;
            // Upstream's enqueue of a box cannot fail (it owns the box, so it is not pending).
            let (ns, ()) = timed(|| uq.enqueue(b));
            it.box_plain.wait_home();
            ns
        }
        (Op::QueueFresh, Ptr::KBox) => {
            let fresh = UpBoxItem::new(it.box_fresh.slot())?;
            let (ns, ()) = timed(|| uq.enqueue(fresh));
            it.box_fresh.wait_home();
            // Freed untimed.
            drop(it.box_fresh.take());
            ns
        }
        (Op::Delayed, Ptr::KBox) => {
            let b = it.box_delayed.take().ok_or(EINVAL)?;
            let item: *mut UpBoxDelayed = core::ptr::from_ref::<UpBoxDelayed>(&*b).cast_mut();
            let (ns, ()) = timed(|| uq.enqueue_delayed(b, delay));
            // SAFETY: The box at `item` is freed only when dropped, and nothing drops it while it
            // is queued: the queue gives it only to the work function, which brings it home to
            // `it.box_delayed` (alive as long as `it`), or to the cancel below.
            if unsafe { cancel(&raw const (*item).dwork) } {
                // SAFETY: The item was pending and now will not run: the queue held the box that
                // upstream's enqueue gave up with `KBox::into_raw` at this address (it was pinned,
                // and has not moved). It is taken back once, here.
                it.box_delayed
                    .put(unsafe { Pin::new_unchecked(KBox::from_raw(item)) });
            } else {
                // It ran (its timer fired): it is (being) brought home.
                it.box_delayed.wait_home();
            }
            ns
        }
        _ => return Err(EINVAL),
    })
}
