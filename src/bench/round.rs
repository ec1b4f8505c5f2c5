// SPDX-License-Identifier: GPL-2.0

//! One round of each benchmarked operation, and the work items and queues the rounds use.
//!
//! The timed region allocates nothing and drops nothing.

use super::{
    now_ns,
    Op,
    Path,
    Run, //
};
use crate::kthread::Completion;
use crate::workqueue::{
    self as wq,
    declare_work,
    impl_has_delayed_work,
    impl_has_work,
    new_delayed_work,
    new_work,
    CpuId,
    Delay,
    DelayedWork,
    DelayedWorkItem,
    OwnedQueue,
    Queue,
    Work,
    WorkItem, //
};
use core::sync::atomic::{
    AtomicU64,
    Ordering::Relaxed, //
};
use kernel::{
    prelude::*,
    sync::Arc, //
};

/// The delay of armed items: long enough never to fire during a round (as in the C twin).
const ARM_DELAY_MS: u32 = 10_000;

/// The plain work item: reused every round, or made fresh for [`Op::QueueFresh`].
#[pin_data]
pub(super) struct BenchItem {
    #[pin]
    work: Work<BenchItem>,
    #[pin]
    done: Completion,
    /// When the item was queued (set only when start latency is measured).
    queued_ns: AtomicU64,
    /// When it last started, minus `queued_ns`.
    start_ns: AtomicU64,
    measure_start: bool,
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

    fn new(measure_start: bool) -> Result<Arc<Self>> {
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
struct BenchDelayed {
    #[pin]
    dwork: DelayedWork<BenchDelayed>,
}

impl_has_delayed_work! {
    impl HasDelayedWork for BenchDelayed { self.dwork }
}

impl DelayedWorkItem for BenchDelayed {
    type Pointer = Arc<BenchDelayed>;

    fn run(_this: Arc<BenchDelayed>) {}
}

/// The work function of the static item: nothing (the round flushes it).
fn static_item() {}

declare_work!(static BENCH_STATIC = static_item);

/// The queue a run hits: owned ones take delayed work through their own methods.
#[derive(Clone, Copy)]
enum Target<'a> {
    Owned(&'a OwnedQueue),
    System(&'static Queue),
}

impl Target<'_> {
    fn queue(&self) -> &Queue {
        match self {
            Target::Owned(q) => q,
            Target::System(q) => q,
        }
    }

    fn flush(&self) {
        if let Target::Owned(q) = self {
            q.flush();
        }
    }
}

/// The queues a run can use: the module's sysfs one, or a per-CPU one made for this run.
pub(super) enum Queues {
    /// The module's `rust_wq_bench` queue, shared with the device that owns it.
    Module(Arc<OwnedQueue>),
    Own(OwnedQueue),
    System,
}

impl Queues {
    pub(super) fn make(bench_queue: Arc<OwnedQueue>, path: Path) -> Result<Self> {
        Ok(match path {
            Path::UnboundSysfs => Queues::Module(bench_queue),
            Path::PerCpu => Queues::Own(
                OwnedQueue::builder()
                    .percpu()
                    .build(fmt!("rust_wq_bench_pcpu"))?,
            ),
            Path::SystemPerCpu => Queues::System,
        })
    }

    fn target(&self) -> Target<'_> {
        match self {
            Queues::Module(q) => Target::Owned(q),
            Queues::Own(q) => Target::Owned(q),
            Queues::System => Target::System(wq::system_percpu()),
        }
    }

    /// Drains what is left of a run, as C's `flush_workqueue()`; on a system queue it flushes
    /// only the run's `items`.
    pub(super) fn drain(&self, items: &[Arc<BenchItem>]) {
        let target = self.target();
        if let Target::System(_) = target {
            for it in items.iter() {
                it.flush();
            }
        } else {
            target.flush();
        }
    }
}

/// The per-thread results, handed back when the thread finishes.
pub(super) struct Samples {
    pub(super) queue: KVVec<u64>,
    pub(super) start: KVVec<u64>,
}

impl Samples {
    /// Room for the samples of `items` rounds, so that no round allocates.
    pub(super) fn new(items: u32, measure_start: bool) -> Result<Self> {
        Ok(Samples {
            queue: KVVec::with_capacity(items as usize, GFP_KERNEL)?,
            start: KVVec::with_capacity(
                if measure_start { items as usize } else { 0 },
                GFP_KERNEL,
            )?,
        })
    }
}

/// One thread's items.
pub(super) struct Items {
    pub(super) plain: Arc<BenchItem>,
    delayed: Arc<BenchDelayed>,
    cpu: CpuId,
}

impl Items {
    /// The items of a thread bound to `cpu`.
    pub(super) fn new(cpu: CpuId, measure_start: bool) -> Result<Self> {
        Ok(Items {
            plain: BenchItem::new(measure_start)?,
            delayed: Arc::pin_init(
                pin_init!(BenchDelayed {
                    dwork <- new_delayed_work!("rust_wq::bench::BenchDelayed::dwork"),
                }),
                GFP_KERNEL,
            )?,
            cpu,
        })
    }
}

/// Times `f`, the way `lib/test_workqueue.c` times `queue_work()`.
#[inline(always)]
fn timed<R>(f: impl FnOnce() -> R) -> (u64, R) {
    let t0 = crate::kthread::ktime_ns();
    let r = f();
    let t1 = crate::kthread::ktime_ns();
    ((t1 - t0).max(0) as u64, r)
}

/// A delay for the armed items.
fn arm_delay(factor: u32) -> Delay {
    Delay::from_millis(ARM_DELAY_MS * factor).unwrap_or(Delay::ZERO)
}

/// Arms the delayed item on `t` (untimed set-up); the result is `Err` only if it was pending,
/// which cannot happen here (every round leaves it idle).
fn arm(t: Target<'_>, it: &Arc<BenchDelayed>, delay: Delay) {
    let r = match t {
        Target::Owned(q) => q.enqueue_delayed(it.clone(), delay),
        Target::System(q) => q.enqueue_delayed(it.clone(), delay),
    };
    drop(r);
}

/// One round of `op`; returns the time of the timed call.
///
/// Results that hand a pointer back (an `Err` from a refused enqueue, the `Some` of a cancel)
/// are dropped after the timed region, so no destructor is timed. The field a call works on is
/// taken before the first clock read, as the C twin has it in a register.
///
/// Runs only in the benchmark's kernel threads (`bench.rs`), never in the calling user's task.
/// Its uninterruptible `done.wait()`s wait for the item this round has just queued, which runs
/// at once (its function records a time and completes): each is bounded by one queue-and-run.
/// The user's task waits for the threads killably (`all_done.wait_killable()` in `bench.rs`).
pub(super) fn round(run: &Run, it: &Items, samples: &mut Samples) -> Result<u64> {
    let t = run.queues.target();
    let q = t.queue();
    let ns = match run.op {
        Op::RoundTrip | Op::Queue => {
            let w = it.plain.clone();
            if run.measure_start {
                it.plain.queued_ns.store(now_ns(), Relaxed);
            }
            let (ns, r) = timed(|| q.enqueue(w));
            // A fresh round: the item ran and completed last round, so it is never pending.
            drop(r);
            it.plain.done.wait();
            if run.measure_start {
                let _ = samples
                    .start
                    .push_within_capacity(it.plain.start_ns.load(Relaxed));
            }
            ns
        }
        Op::QueueFresh => {
            let fresh = BenchItem::new(false)?;
            let w = fresh.clone();
            let (ns, r) = timed(|| q.enqueue(w));
            drop(r);
            fresh.done.wait();
            ns
        }
        Op::QueueOn => {
            let w = it.plain.clone();
            let (ns, r) = timed(|| q.enqueue_on(it.cpu, w));
            // Refused (the CPU went offline during the run: `ENODEV`), nothing was queued and
            // nothing will complete `done`: end the run with the errno instead of waiting.
            r.map_err(|e| e.to_errno())?;
            it.plain.done.wait();
            ns
        }
        Op::Delayed => {
            let w = it.delayed.clone();
            let d = arm_delay(1);
            let (ns, r) = match t {
                Target::Owned(o) => timed(|| o.enqueue_delayed(w, d)),
                Target::System(s) => timed(|| s.enqueue_delayed(w, d)),
            };
            drop(r);
            drop(it.delayed.dwork.cancel());
            ns
        }
        Op::ModDelayed => {
            arm(t, &it.delayed, arm_delay(1));
            let d = arm_delay(2);
            let (ns, r) = match t {
                Target::Owned(o) => timed(|| o.mod_delayed(&it.delayed, d)),
                Target::System(s) => timed(|| s.mod_delayed(&it.delayed, d)),
            };
            // `Ok(true)`: it was pending (armed above), as every round; nothing to give back.
            let _ = r;
            drop(it.delayed.dwork.cancel());
            ns
        }
        Op::CancelIdle => {
            let d = &it.delayed.dwork;
            let (ns, r) = timed(|| d.cancel());
            drop(r);
            ns
        }
        Op::CancelArmed => {
            arm(t, &it.delayed, arm_delay(1));
            let d = &it.delayed.dwork;
            let (ns, r) = timed(|| d.cancel());
            drop(r);
            ns
        }
        Op::CancelSyncIdle => {
            let d = &it.delayed.dwork;
            let (ns, r) = timed(|| d.cancel_sync());
            drop(r);
            ns
        }
        Op::CancelSyncArmed => {
            arm(t, &it.delayed, arm_delay(1));
            let d = &it.delayed.dwork;
            let (ns, r) = timed(|| d.cancel_sync());
            drop(r);
            ns
        }
        Op::FlushIdle => {
            let w = &it.plain.work;
            timed(|| w.flush()).0
        }
        Op::Disable => {
            let w = &it.plain.work;
            let (ns, r) = timed(|| w.disable());
            drop(r);
            w.enable();
            ns
        }
        Op::Enable => {
            let w = &it.plain.work;
            drop(w.disable());
            timed(|| w.enable()).0
        }
        Op::Static => {
            let (ns, _) = timed(|| BENCH_STATIC.enqueue(q));
            BENCH_STATIC.flush();
            ns
        }
    };
    Ok(ns)
}
