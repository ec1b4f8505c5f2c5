// SPDX-License-Identifier: GPL-2.0

//! The work items the rounds use: plain and delayed, behind `Arc` or `Pin<KBox<_>>` (with
//! the slot a box lives in between rounds), and the set one thread uses.

use super::{
    now_ns,
    upstream,
    Impl,
    Ptr, //
};
use crate::kthread::Completion;
use crate::workqueue::{
    impl_has_delayed_work,
    impl_has_work,
    new_delayed_work,
    new_work,
    CpuId,
    DelayedWork,
    DelayedWorkItem,
    Work,
    WorkItem, //
};
use core::sync::atomic::{
    AtomicU64,
    Ordering::Relaxed, //
};
use kernel::{
    new_mutex,
    prelude::*,
    sync::{
        Arc,
        Mutex, //
    },
};

/// The plain work item: reused every round, or made fresh for [`Op::QueueFresh`].
#[pin_data]
pub(super) struct BenchItem {
    #[pin]
    pub(super) work: Work<BenchItem>,
    #[pin]
    pub(super) done: Completion,
    /// When the item was queued (set only when start latency is measured).
    pub(super) queued_ns: AtomicU64,
    /// When it last started, minus `queued_ns`.
    pub(super) start_ns: AtomicU64,
    pub(super) measure_start: bool,
}

impl_has_work! {
    impl HasWork<Self> for BenchItem { self.work }
}

impl WorkItem for BenchItem {
    type Pointer = Arc<BenchItem>;

    fn run(this: Arc<BenchItem>) {
        if this.measure_start {
            let q = this.queued_ns.load(Relaxed);
            this.start_ns.store(now_ns().saturating_sub(q), Relaxed);
        }
        this.done.complete();
    }
}

impl BenchItem {
    /// Waits until the item is idle (its last run has returned).
    pub(super) fn flush(&self) {
        self.work.flush();
    }

    pub(super) fn new(measure_start: bool) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(BenchItem {
                work <- new_work!("rust_wq::bench::BenchItem::work"),
                done <- Completion::new(),
                queued_ns: AtomicU64::new(0),
                start_ns: AtomicU64::new(0),
                measure_start,
            }),
            GFP_KERNEL,
        )
    }
}

/// The delayed work item of the delayed operations; its timer never fires (it is cancelled).
#[pin_data]
pub(super) struct BenchDelayed {
    #[pin]
    pub(super) dwork: DelayedWork<BenchDelayed>,
}

impl_has_delayed_work! {
    impl HasDelayedWork for BenchDelayed { self.dwork }
}

impl DelayedWorkItem for BenchDelayed {
    type Pointer = Arc<BenchDelayed>;

    fn run(_this: Arc<BenchDelayed>) {}
}

/// Where a `Pin<KBox<_>>` item lives between rounds: the benchmark thread takes it out to queue
/// it, and the work function (or a cancel) brings it back, so the same item is reused every
/// round, as with `Arc`.
#[pin_data]
pub(super) struct Slot<T> {
    /// Completed by the work function when it has brought the box back.
    #[pin]
    done: Completion,
    #[pin]
    held: Mutex<Option<Pin<KBox<T>>>>,
}

impl<T> Slot<T> {
    fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Slot {
                done <- Completion::new(),
                held <- new_mutex!(None, "rust_wq::bench::Slot::held"),
            }),
            GFP_KERNEL,
        )
    }

    /// Called by the work function: the box is back, and the thread waiting for it may go on.
    pub(super) fn come_home(&self, b: Pin<KBox<T>>) {
        *self.held.lock() = Some(b);
        self.done.complete();
    }

    /// Puts back a box the thread took out (nobody waits for it).
    pub(super) fn put(&self, b: Pin<KBox<T>>) {
        *self.held.lock() = Some(b);
    }

    /// Takes the box out; `None` if it is not home.
    pub(super) fn take(&self) -> Option<Pin<KBox<T>>> {
        self.held.lock().take()
    }

    /// Waits until the work function has brought the box back (it stays in the slot).
    pub(super) fn wait_home(&self) {
        self.done.wait();
    }
}

/// A thread's [`Slot`]: the boxes point back at their slot, so dropping the box it holds when
/// the slot goes breaks that cycle.
pub(super) struct Home<T>(Arc<Slot<T>>);

impl<T> Home<T> {
    /// An empty home.
    pub(super) fn new() -> Result<Self> {
        Ok(Home(Slot::new()?))
    }

    /// The slot, for an item that must come back to it.
    pub(super) fn slot(&self) -> Arc<Slot<T>> {
        self.0.clone()
    }
}

impl<T> core::ops::Deref for Home<T> {
    type Target = Slot<T>;

    fn deref(&self) -> &Slot<T> {
        &self.0
    }
}

impl<T> Drop for Home<T> {
    fn drop(&mut self) {
        // Every item is idle at the end of a run (each round leaves it so): the box is home.
        drop(self.0.take());
    }
}

/// The plain item queued through `Pin<KBox<_>>`.
#[pin_data]
pub(super) struct BoxItem {
    #[pin]
    pub(super) work: Work<BoxItem>,
    home: Arc<Slot<BoxItem>>,
}

impl_has_work! {
    impl HasWork<Self> for BoxItem { self.work }
}

impl WorkItem for BoxItem {
    type Pointer = Pin<KBox<BoxItem>>;

    fn run(this: Pin<KBox<BoxItem>>) {
        let home = this.home.clone();
        home.come_home(this);
    }
}

impl BoxItem {
    pub(super) fn new(home: Arc<Slot<BoxItem>>) -> Result<Pin<KBox<Self>>> {
        KBox::pin_init(
            pin_init!(BoxItem {
                work <- new_work!("rust_wq::bench::BoxItem::work"),
                home,
            }),
            GFP_KERNEL,
        )
    }
}

/// The delayed item queued through `Pin<KBox<_>>`; its timer never fires (it is cancelled).
#[pin_data]
pub(super) struct BoxDelayed {
    #[pin]
    pub(super) dwork: DelayedWork<BoxDelayed>,
    home: Arc<Slot<BoxDelayed>>,
}

impl_has_delayed_work! {
    impl HasDelayedWork for BoxDelayed { self.dwork }
}

impl DelayedWorkItem for BoxDelayed {
    type Pointer = Pin<KBox<BoxDelayed>>;

    fn run(this: Pin<KBox<BoxDelayed>>) {
        let home = this.home.clone();
        home.come_home(this);
    }
}

/// One thread's `Pin<KBox<_>>` items: each at home between rounds.
pub(super) struct BoxItems {
    pub(super) plain: Home<BoxItem>,
    pub(super) delayed: Home<BoxDelayed>,
    /// Where the fresh items of [`Op::QueueFresh`] come back to (empty between rounds).
    pub(super) fresh: Home<BoxItem>,
}

impl BoxItems {
    pub(super) fn new() -> Result<Self> {
        let plain = Home::new()?;
        plain.put(BoxItem::new(plain.slot())?);
        let delayed = Home::new()?;
        let home = delayed.slot();
        delayed.put(KBox::pin_init(
            pin_init!(BoxDelayed {
                dwork <- new_delayed_work!("rust_wq::bench::BoxDelayed::dwork"),
                home,
            }),
            GFP_KERNEL,
        )?);
        Ok(BoxItems {
            plain,
            delayed,
            fresh: Home::new()?,
        })
    }
}

/// One thread's items.
pub(super) struct Items {
    pub(super) plain: Arc<BenchItem>,
    pub(super) delayed: Arc<BenchDelayed>,
    /// The `Pin<KBox<_>>` items, when the run queues through boxes.
    pub(super) boxed: Option<BoxItems>,
    /// Upstream's items, when the run times upstream.
    pub(super) up: Option<upstream::Items>,
    pub(super) cpu: CpuId,
}

impl BenchDelayed {
    pub(super) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(BenchDelayed {
                dwork <- new_delayed_work!("rust_wq::bench::BenchDelayed::dwork"),
            }),
            GFP_KERNEL,
        )
    }
}

impl Items {
    /// The items of a thread bound to `cpu`, for a run through `imp` with `ptr`.
    pub(super) fn new(cpu: CpuId, measure_start: bool, imp: Impl, ptr: Ptr) -> Result<Self> {
        Ok(Items {
            plain: BenchItem::new(measure_start)?,
            delayed: BenchDelayed::new()?,
            boxed: if (imp, ptr) == (Impl::Layer, Ptr::KBox) {
                Some(BoxItems::new()?)
            } else {
                None
            },
            up: if imp == Impl::Upstream {
                Some(upstream::Items::new()?)
            } else {
                None
            },
            cpu,
        })
    }
}
