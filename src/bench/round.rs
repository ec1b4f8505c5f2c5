// SPDX-License-Identifier: GPL-2.0

//! One round of each benchmarked operation, and the queues the rounds use (the items:
//! `items.rs`).
//!
//! The timed region allocates nothing and drops nothing, but for the drop that
//! [`Op::DropArmed`] times.

use super::items::{
    BenchDelayed,
    BenchItem,
    BoxDelayed,
    BoxItem,
    BoxItems,
    Items, //
};
use super::{
    now_ns,
    upstream,
    Op,
    Path,
    Run, //
};
use crate::workqueue::{self as wq, declare_work, Delay, Queue, Workqueue};
use core::sync::atomic::Ordering::Relaxed;
use kernel::{
    prelude::*,
    sync::Arc, //
};

/// The delay of armed items: long enough never to fire during a round (as in the C twin).
const ARM_DELAY_MS: u32 = 10_000;

/// The work function of the static item: nothing (the round flushes it).
fn static_item() {}

declare_work!(static BENCH_STATIC = static_item);

/// The queue a run hits: owned ones take delayed work through their own methods.
#[derive(Clone, Copy)]
enum Target<'a> {
    Owned(&'a Workqueue),
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
    Module(Arc<Workqueue>),
    Own(Workqueue),
    System,
}

impl Queues {
    pub(super) fn make(bench_queue: Arc<Workqueue>, path: Path) -> Result<Self> {
        Ok(match path {
            Path::UnboundSysfs => Queues::Module(bench_queue),
            Path::PerCpu => Queues::Own(
                Workqueue::builder()
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

/// Times `f`, the way `lib/test_workqueue.c` times `queue_work()`.
#[inline(always)]
pub(super) fn timed<R>(f: impl FnOnce() -> R) -> (u64, R) {
    let t0 = crate::kthread::ktime_ns();
    let r = f();
    let t1 = crate::kthread::ktime_ns();
    ((t1 - t0).max(0) as u64, r)
}

/// A delay for the armed items.
pub(super) fn arm_delay(factor: u32) -> Delay {
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
    if let Some(up) = &it.up {
        return upstream::round(run.op, run.ptr, q, up);
    }
    if let Some(bx) = &it.boxed {
        return round_kbox(run.op, t, bx);
    }
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
            // Bounded: the fresh item was just queued (a new item is never pending or
            // disabled) and runs at once; runs only in the benchmark's kthreads (see above).
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
        Op::Delayed | Op::DelayedPar => {
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
            let d = arm_delay(2);
            // The set-up (arming it on the queue) in each arm: the compiler then cannot hoist
            // the first clock read of both above the branch on the target, which would time
            // that branch (the C twin has none).
            let (ns, r) = match t {
                Target::Owned(o) => {
                    drop(o.enqueue_delayed(it.delayed.clone(), arm_delay(1)));
                    let w = it.delayed.clone();
                    timed(|| o.mod_delayed(w, d))
                }
                Target::System(s) => {
                    drop(s.enqueue_delayed(it.delayed.clone(), arm_delay(1)));
                    let w = it.delayed.clone();
                    timed(|| s.mod_delayed(w, d))
                }
            };
            // `Retimed::Pending(w)`: it was pending (armed above), as every round; the pointer
            // handed in comes back and is dropped here, untimed, as a refused enqueue's is.
            drop(r);
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
        Op::DropArmed => drop_armed(run.items)?,
    };
    Ok(ns)
}

/// One round of [`Op::DropArmed`]: `n` delayed items armed on a new per-CPU queue (allocated and
/// armed untimed), then the queue dropped (timed); returns the time per item.
///
/// The queue's drop cancels every armed item and gives back (drops) the queue's `Arc` of each:
/// a reference count decrement, as the round still holds the items; they are freed untimed.
fn drop_armed(n: u32) -> Result<u64> {
    let queue = Workqueue::builder()
        .percpu()
        .build(fmt!("rust_wq_bench_drop"))?;
    let mut armed = KVVec::with_capacity(n as usize, GFP_KERNEL)?;
    for _ in 0..n {
        armed.push(BenchDelayed::new()?, GFP_KERNEL)?;
    }
    let d = arm_delay(1);
    for it in armed.iter() {
        // `Err` only if pending, and a new item is not.
        drop(queue.enqueue_delayed(it.clone(), d));
    }
    let (ns, ()) = timed(move || drop(queue));
    drop(armed);
    Ok(ns / u64::from(n.max(1)))
}

/// One round of `op` with the items queued through `Pin<KBox<_>>` (only the operations that
/// [`Op::has_variants`]); returns the time of the timed call.
///
/// The box is taken from its slot before the clock is read and comes back untimed: through the
/// work function ([`Slot::come_home`]) or, for a delayed item, through the cancel.
fn round_kbox(op: Op, t: Target<'_>, bx: &BoxItems) -> Result<u64> {
    let q = t.queue();
    Ok(match op {
        Op::Queue => {
            let b = bx.plain.take().ok_or(EINVAL)?;
            let (ns, r) = timed(|| q.enqueue(b));
            match r {
                Ok(()) => bx.plain.wait_home(),
                // Not pending (it came home): cannot happen; keep the box.
                Err(e) => bx.plain.put(e.into_inner()),
            }
            ns
        }
        Op::QueueFresh => {
            let fresh = BoxItem::new(bx.fresh.slot())?;
            let (ns, r) = timed(|| q.enqueue(fresh));
            match r {
                Ok(()) => bx.fresh.wait_home(),
                Err(e) => drop(e.into_inner()),
            }
            // Freed untimed.
            drop(bx.fresh.take());
            ns
        }
        Op::Delayed => {
            let b = bx.delayed.take().ok_or(EINVAL)?;
            let item: *const BoxDelayed = &*b;
            let d = arm_delay(1);
            let (ns, r) = match t {
                Target::Owned(o) => timed(|| o.enqueue_delayed(b, d)),
                Target::System(s) => timed(|| s.enqueue_delayed(b, d)),
            };
            match r {
                Ok(()) => {
                    // SAFETY: The box at `item` is freed only when dropped, and nothing drops it
                    // while it is queued: the queue gives it only to the work function, which
                    // brings it home to `bx.delayed`, or back to a cancel, below. That slot lives
                    // as long as `bx`, which outlives this reference. The layer's cancel takes
                    // `&self` (the item is `Sync`).
                    let dwork = unsafe { &(*item).dwork };
                    match dwork.cancel() {
                        Some(b) => bx.delayed.put(b),
                        // It ran (its timer fired): it is (being) brought home.
                        None => bx.delayed.wait_home(),
                    }
                }
                Err(e) => bx.delayed.put(e.into_inner()),
            }
            ns
        }
        _ => return Err(EINVAL),
    })
}
