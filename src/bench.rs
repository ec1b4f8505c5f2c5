// SPDX-License-Identifier: GPL-2.0

//! The workqueue benchmark: every operation of the layer, timed call by call.
//!
//! Two kinds of run, both by the method of the kernel's own `lib/test_workqueue.c` (kthreads
//! bound to CPUs, `ktime_get()` right before and right after the timed call, percentiles indexed
//! as `sorted[n * p / 100]`):
//!
//! - [`Op::RoundTrip`]: one kthread per online CPU (at most `threads`), each doing `items`
//!   rounds of "queue one item, wait until it has run", the queueing timed; the whole run (from
//!   releasing the threads to having stopped them) gives items per second and, under QEMU's
//!   `-icount`, guest instructions per completed item. Finished threads sleep until the last
//!   one is done (they do not spin), so the elapsed time counts only the work.
//!   [`Op::QueueFresh`] is the same with a freshly allocated and initialised item every round,
//!   as `lib/test_workqueue.c` does (`INIT_WORK` before each round).
//! - every other [`Op`]: one kthread bound to the first online CPU, `items` rounds of
//!   "untimed set-up, the timed call, untimed tear-down".
//!
//! `bench/rust_wq_ctwin.c` makes the same kernel calls from C, with queues of the same flags, so
//! that Rust/C isolates the cost of this layer. Only the safe [`crate::workqueue`] API is used,
//! and the timed region allocates nothing and drops nothing (but for [`Op::DropArmed`], which
//! times a drop).
//!
//! [`Impl::Upstream`] times the same operations through upstream's `kernel::workqueue` (Linux
//! 7.3) instead, where it has them ([`upstream`]), so that the report can put this layer beside
//! both C and upstream's Rust.
//!
//! The benchmark depends on the layer and on nothing of the device: the device hands it the
//! module's queue and its `struct device` (for the log line). This file checks a request and
//! runs the threads; [`round`] holds one round of each operation, [`percentile`] the
//! percentiles.

use crate::abi;
use crate::kthread::{
    Completion,
    KThread, //
};
use crate::workqueue::{
    self as wq,
    Workqueue, //
};
use core::sync::atomic::{
    AtomicBool,
    AtomicU32, //
    Ordering::{
        Relaxed,
        SeqCst, //
    },
};
use items::Items;
use kernel::{
    device::Device,
    prelude::*,
    sync::{
        Arc,
        Mutex, //
    },
    time::{
        Instant,
        Monotonic, //
    },
};
use percentile::percentiles;
use round::{
    round,
    Queues,
    Samples, //
};

#[path = "bench/items.rs"]
mod items;
#[path = "bench/percentile.rs"]
mod percentile;
#[path = "bench/round.rs"]
mod round;
#[path = "bench/upstream.rs"]
mod upstream;

/// Most rounds per thread.
pub(crate) const MAX_ITEMS: u32 = 1_000_000;

/// Most rounds of all threads together (threads run x items): each round keeps 32 bytes of
/// samples at most (two per thread, two merged), so one run allocates at most 64 MiB.
pub(crate) const MAX_TOTAL: u64 = 1 << 21;

/// Rounds of an [`Op::DropArmed`] run (each arms `items` delayed items and drops their queue).
pub(crate) const DROP_ROUNDS: u32 = 5;

/// Most armed items of an [`Op::DropArmed`] round: they are all allocated at once, one small
/// `Arc` each, for the round only.
pub(crate) const DROP_MAX_ITEMS: u32 = 200_000;

/// Which queue the benchmark hits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    /// The module's `rust_wq_bench` queue: unbound and in sysfs, like C's `bench_wq`.
    UnboundSysfs,
    /// A per-CPU queue (`WQ_PERCPU`) owned by the run, made for it.
    PerCpu,
    /// The system per-CPU queue (`schedule_work()`).
    SystemPerCpu,
}

/// What is timed; the numbers are the ABI's `RUST_WQ_BENCH_OP_*`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Queue one item and wait for it, on several CPUs (`Queue::enqueue`).
    RoundTrip,
    /// `Queue::enqueue` of the same item every round, then wait for it.
    Queue,
    /// `Queue::enqueue` of a freshly allocated and initialised item every round (what
    /// `lib/test_workqueue.c` does with `INIT_WORK` before each round), then wait for it.
    QueueFresh,
    /// `Queue::enqueue_on` the thread's own CPU, then wait.
    QueueOn,
    /// Arm a delayed item (`enqueue_delayed`), then cancel it untimed.
    Delayed,
    /// Arm untimed, `mod_delayed` to a longer delay, cancel untimed.
    ModDelayed,
    /// `DelayedWork::cancel` of an idle item.
    CancelIdle,
    /// Arm untimed, `DelayedWork::cancel`.
    CancelArmed,
    /// `DelayedWork::cancel_sync` of an idle item.
    CancelSyncIdle,
    /// Arm untimed, `DelayedWork::cancel_sync`.
    CancelSyncArmed,
    /// `Work::flush` of an idle item.
    FlushIdle,
    /// `Work::disable` of an idle item, then enable untimed.
    Disable,
    /// Disable untimed, then `Work::enable`.
    Enable,
    /// `StaticWork::enqueue` (C's `DECLARE_WORK` item), then flush it untimed.
    Static,
    /// [`Op::Delayed`] on several CPUs at once (`threads`), each thread its own item, all on the
    /// same queue.
    DelayedPar,
    /// Arm `items` delayed items on a new owned per-CPU queue (untimed), then drop the queue
    /// (timed: it cancels every armed item and destroys the queue); [`DROP_ROUNDS`] rounds, each
    /// reported as the time per item.
    DropArmed,
}

/// Whose code makes the timed call.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Impl {
    /// This module's layer, [`crate::workqueue`].
    Layer,
    /// Upstream's `kernel::workqueue` (Linux 7.3), on the same queues (borrowed).
    Upstream,
}

/// The pointer the items are queued through.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ptr {
    Arc,
    /// `Pin<KBox<_>>`: the work function hands the box back to the benchmark thread, so the same
    /// item is reused as with `Arc`.
    KBox,
}

impl Op {
    /// Whether the operation runs on several threads (`threads`); the others run on one.
    pub(crate) fn multi_thread(self) -> bool {
        matches!(self, Self::RoundTrip | Self::QueueFresh | Self::DelayedPar)
    }

    /// Whether the operation exists with [`Impl::Upstream`] and with [`Ptr::KBox`]: upstream
    /// can enqueue (immediately or delayed) and nothing else.
    pub(crate) fn has_variants(self) -> bool {
        matches!(self, Self::Queue | Self::QueueFresh | Self::Delayed)
    }

    /// The operation with ABI number `n`.
    pub(crate) fn from_abi(n: u32) -> Option<Self> {
        Some(match n {
            0 => Self::RoundTrip,
            1 => Self::Queue,
            2 => Self::QueueFresh,
            3 => Self::QueueOn,
            4 => Self::Delayed,
            5 => Self::ModDelayed,
            6 => Self::CancelIdle,
            7 => Self::CancelArmed,
            8 => Self::CancelSyncIdle,
            9 => Self::CancelSyncArmed,
            10 => Self::FlushIdle,
            11 => Self::Disable,
            12 => Self::Enable,
            13 => Self::Static,
            14 => Self::DelayedPar,
            15 => Self::DropArmed,
            _ => return None,
        })
    }
}

/// What one run measured.
#[derive(Default)]
pub(crate) struct Report {
    pub(crate) threads: u32,
    pub(crate) elapsed_ns: u64,
    pub(crate) items_per_sec: u64,
    /// p50, p90, p95, p99 of the timed call, in ns.
    pub(crate) queue_pct: [u64; 4],
    /// p50, p90, p95, p99 of enqueue-to-start latency, in ns (zero unless measured).
    pub(crate) start_pct: [u64; 4],
}

/// Monotonic nanoseconds since boot.
fn now_ns() -> u64 {
    crate::kthread::ktime_ns().max(0) as u64
}

/// What the threads share.
struct Run {
    queues: Queues,
    op: Op,
    /// The pointer the items are queued through (whose code queues them is in the items).
    ptr: Ptr,
    items: u32,
    /// Rounds per thread: `items`, or [`DROP_ROUNDS`] for [`Op::DropArmed`].
    rounds: u32,
    measure_start: bool,
    start: Pin<KBox<Completion>>,
    all_done: Pin<KBox<Completion>>,
    /// Completed (for all) when the threads may return: until then finished threads sleep.
    stop: Pin<KBox<Completion>>,
    left: AtomicU32,
    /// Set when the run is abandoned before it started: threads skip their rounds.
    abort: AtomicBool,
}

/// Releases the threads when dropped, so that no exit path leaves them blocked on `start` or
/// `stop` (where `kthread_stop()` would wait for them forever).
struct ReleaseOnDrop<'a>(&'a Run);

impl Drop for ReleaseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.start.complete_all();
        self.0.stop.complete_all();
    }
}

/// What to run: the operation, through whose code, with which pointer.
#[derive(Clone, Copy)]
pub(crate) struct What {
    pub(crate) op: Op,
    pub(crate) imp: Impl,
    pub(crate) ptr: Ptr,
}

/// Runs `op` on the queue of `path`: [`Op::RoundTrip`], [`Op::QueueFresh`] and
/// [`Op::DelayedPar`] with one thread per online CPU (at most `threads` if not 0), every other
/// operation with one thread, on CPU 0 (the first online CPU).
pub(crate) fn run(
    bench_queue: Arc<Workqueue>,
    path: Path,
    what: What,
    threads: u32,
    items: u32,
    measure_start: bool,
) -> Result<Report> {
    let What { op, imp, ptr } = what;
    if items == 0
        || items > MAX_ITEMS
        || (op == Op::DropArmed && (items > DROP_MAX_ITEMS || path != Path::PerCpu))
        || ((imp, ptr) != (Impl::Layer, Ptr::Arc) && !op.has_variants())
    {
        return Err(EINVAL);
    }
    let rounds = if op == Op::DropArmed {
        DROP_ROUNDS
    } else {
        items
    };
    // Check the size before allocating anything: the threads that would run now.
    let most = if op.multi_thread() { threads } else { 1 };
    let online = (0..wq::cpu::nr_cpu_ids())
        .filter(|&c| wq::cpu::online_cpu(c).is_ok())
        .count() as u32;
    let planned = if most == 0 { online } else { online.min(most) };
    if u64::from(planned) * u64::from(rounds) > MAX_TOTAL {
        return Err(EINVAL);
    }
    let run = Arc::new(
        Run {
            queues: Queues::make(bench_queue, path)?,
            op,
            ptr,
            items,
            rounds,
            measure_start,
            start: KBox::pin_init(Completion::new(), GFP_KERNEL)?,
            all_done: KBox::pin_init(Completion::new(), GFP_KERNEL)?,
            stop: KBox::pin_init(Completion::new(), GFP_KERNEL)?,
            left: AtomicU32::new(0),
            abort: AtomicBool::new(true),
        },
        GFP_KERNEL,
    )?;
    // One thread per online CPU from CPU 0 on, at most `threads` (single-call ops: one).
    let mut cpus = KVec::new();
    for cpu in 0..wq::cpu::nr_cpu_ids() {
        if most != 0 && cpus.len() as u32 >= most {
            break;
        }
        if let Ok(c) = wq::cpu::online_cpu(cpu) {
            cpus.push(c, GFP_KERNEL)?;
        }
    }

    // Room for every thread up front: once a thread exists, nothing may fail before it is
    // recorded (a `KThread` dropped while its thread waits on `start` would never stop).
    let mut outs = KVec::with_capacity(cpus.len(), GFP_KERNEL)?;
    let mut plain_items = KVec::with_capacity(cpus.len(), GFP_KERNEL)?;
    let mut kthreads = KVec::with_capacity(cpus.len(), GFP_KERNEL)?;
    // Declared after `kthreads`, so dropped before them: on an early return the threads are
    // released (and, `abort` being set, skip their rounds) before they are stopped.
    let release = ReleaseOnDrop(&run);
    for &cpu in cpus.iter() {
        let items_of = Items::new(cpu, measure_start, imp, ptr)?;
        let out: Arc<Mutex<Option<Result<Samples>>>> =
            Arc::pin_init(kernel::new_mutex!(None), GFP_KERNEL)?;
        let mut samples = Samples::new(rounds, measure_start)?;
        if plain_items
            .push_within_capacity(items_of.plain.clone())
            .is_err()
        {
            return Err(ENOMEM);
        }
        run.left.fetch_add(1, SeqCst);
        let (r, o) = (run.clone(), out.clone());
        // The thread's two uninterruptible waits (`start`, `stop`) are in a kernel thread, not in
        // the user's task, and bounded: `start` is completed below (or, on an early return, by
        // `release`), `stop` by `release` once every thread is done.
        let t = KThread::spawn_on(cpu, c"rust_wq_bench", move |_stop| {
            r.start.wait();
            let mut res = Ok(());
            for _ in 0..r.rounds {
                // Set before the start when the run is abandoned, and when the caller is killed
                // during the run: stop early.
                if r.abort.load(Relaxed) {
                    break;
                }
                match round(&r, &items_of, &mut samples) {
                    // Capacity was reserved for every round: no allocation on the hot path.
                    Ok(ns) => drop(samples.queue.push_within_capacity(ns)),
                    Err(e) => {
                        res = Err(e);
                        break;
                    }
                }
            }
            *o.lock() = Some(res.map(|()| samples));
            if r.left.fetch_sub(1, SeqCst) == 1 {
                r.all_done.complete();
            }
            // Sleep (not spin) until every thread is done, so that the elapsed time of a
            // round-trip run counts the work only.
            r.stop.wait();
        });
        let t = match t {
            Ok(t) => t,
            Err(e) => {
                run.left.fetch_sub(1, SeqCst);
                // `release` lets the threads made so far go; they skip their rounds and stop.
                return Err(e);
            }
        };
        // Cannot fail: room for every thread was reserved above. (Were it to fail, the thread
        // is released by `release` before `t` is dropped, because `t` goes first.)
        if let Err(e) = kthreads.push_within_capacity(t) {
            drop(release);
            drop(e);
            return Err(ENOMEM);
        }
        if outs.push_within_capacity(out).is_err() {
            return Err(ENOMEM);
        }
    }
    let n = kthreads.len() as u32;
    if n == 0 {
        return Err(ENODEV);
    }

    let start = Instant::<Monotonic>::now();
    run.abort.store(false, SeqCst);
    run.start.complete_all();
    if let Err(e) = run.all_done.wait_killable() {
        // Killed: the threads stop after their current round; wait for that, so that the items
        // are idle before they are freed, and leave. Bounded: `abort` is set, so each thread
        // finishes at most the one round it is in (one queue-and-run of an item, see `round`).
        run.abort.store(true, SeqCst);
        run.all_done.wait();
        for it in plain_items.iter() {
            it.flush();
        }
        drop(release);
        drop(kthreads);
        return Err(e);
    }
    // Drain what is left, as C's `flush_workqueue()`; on a system queue flush only our items.
    run.queues.drain(&plain_items);
    drop(release);
    drop(kthreads);
    let elapsed = (Instant::<Monotonic>::now() - start).as_nanos().max(1) as u64;

    let samples = u64::from(n) * u64::from(rounds);
    let mut all_q = KVVec::with_capacity(samples as usize, GFP_KERNEL)?;
    let mut all_s =
        KVVec::with_capacity(if measure_start { samples as usize } else { 0 }, GFP_KERNEL)?;
    // Items handled: for a drop run, every armed item of every round.
    let total = if op == Op::DropArmed {
        u64::from(rounds) * u64::from(items)
    } else {
        samples
    };
    for o in outs.iter() {
        if let Some(s) = o.lock().take() {
            let s = s?;
            all_q.extend_from_slice(&s.queue, GFP_KERNEL)?;
            all_s.extend_from_slice(&s.start, GFP_KERNEL)?;
        }
    }
    Ok(Report {
        threads: n,
        elapsed_ns: elapsed,
        items_per_sec: total * 1_000_000_000 / elapsed,
        queue_pct: percentiles(&mut all_q),
        start_pct: percentiles(&mut all_s),
    })
}

/// Runs `RUST_WQ_IOC_BENCH`: checks the request, runs it, and fills in the results.
///
/// `EINVAL` for a wrong version, an unknown path, operation or flag, a non-zero pad or reserved
/// field, `items` 0 or above [`MAX_ITEMS`], `threads` above 1 for a single-call operation, the
/// start-latency flag with an operation other than the round trip, the upstream or `KBox` flag
/// with an operation other than queue, queue-fresh and delayed, or a drop run on another path
/// than the per-CPU one or with more than [`DROP_MAX_ITEMS`] items.
///
/// `bench_queue` is the module's unbound sysfs queue (the `UNBOUND_SYSFS` path); the summary
/// line goes to the log of `dev`, the device the call came from.
pub(crate) fn ioctl(bench_queue: Arc<Workqueue>, dev: &Device, b: &mut abi::Bench) -> Result {
    let path = match b.path {
        abi::BENCH_UNBOUND_SYSFS => Path::UnboundSysfs,
        abi::BENCH_PERCPU => Path::PerCpu,
        abi::BENCH_SYSTEM_PERCPU => Path::SystemPerCpu,
        _ => return Err(EINVAL),
    };
    let op = Op::from_abi(b.op).ok_or(EINVAL)?;
    let measure_start = b.flags & abi::BENCH_F_START_LATENCY != 0;
    let what = What {
        op,
        imp: if b.flags & abi::BENCH_F_UPSTREAM != 0 {
            Impl::Upstream
        } else {
            Impl::Layer
        },
        ptr: if b.flags & abi::BENCH_F_KBOX != 0 {
            Ptr::KBox
        } else {
            Ptr::Arc
        },
    };
    let known = abi::BENCH_F_START_LATENCY | abi::BENCH_F_UPSTREAM | abi::BENCH_F_KBOX;
    if b.version != abi::ABI_VERSION
        || b.reserved != [0; 2]
        || b.pad != 0
        || b.flags & !known != 0
        || b.items == 0
        || b.items > MAX_ITEMS
        || (!op.multi_thread() && b.threads > 1)
        || (op != Op::RoundTrip && measure_start)
    {
        return Err(EINVAL);
    }
    let r = run(bench_queue, path, what, b.threads, b.items, measure_start)?;
    dev_info!(
        dev,
        "bench path={} op={} flags={:#x} threads={} items={}: {} items/sec, elapsed {} ns, p50={} p90={} p95={} p99={} ns\n",
        b.path,
        b.op,
        b.flags,
        r.threads,
        b.items,
        r.items_per_sec,
        r.elapsed_ns,
        r.queue_pct[0],
        r.queue_pct[1],
        r.queue_pct[2],
        r.queue_pct[3],
    );
    *b = abi::Bench {
        version: b.version,
        path: b.path,
        threads: b.threads,
        items: b.items,
        flags: b.flags,
        threads_run: r.threads,
        elapsed_ns: r.elapsed_ns,
        items_per_sec: r.items_per_sec,
        queue_p50_ns: r.queue_pct[0],
        queue_p90_ns: r.queue_pct[1],
        queue_p95_ns: r.queue_pct[2],
        start_p50_ns: r.start_pct[0],
        start_p90_ns: r.start_pct[1],
        start_p95_ns: r.start_pct[2],
        op: b.op,
        pad: 0,
        queue_p99_ns: r.queue_pct[3],
        reserved: [0; 2],
    };
    Ok(())
}

#[kernel::prelude::kunit_tests(rust_wq_bench)]
mod tests {
    /// The percentiles index a sorted copy as `lib/test_workqueue.c` does.
    #[test]
    fn bench_percentiles() {
        let mut v = [9u64, 1, 8, 2, 7, 3, 6, 4, 5, 0];
        assert_eq!(super::percentile::percentiles(&mut v), [5, 9, 9, 9]);
        assert_eq!(v, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let mut e: [u64; 0] = [];
        assert_eq!(super::percentile::percentiles(&mut e), [0, 0, 0, 0]);
    }

    /// Every ABI operation number maps to an operation, and no other does.
    #[test]
    fn bench_op_numbers() {
        for n in 0..16 {
            assert!(super::Op::from_abi(n).is_some());
        }
        assert!(super::Op::from_abi(16).is_none());
    }
}
