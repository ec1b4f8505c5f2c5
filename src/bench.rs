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
//! and the timed region allocates nothing and drops nothing.

use crate::abi;
use crate::device::Shared;
use crate::kthread::{Completion, KThread};
use crate::workqueue::{
    self as wq,
    declare_work,
    impl_has_delayed_work,
    new_delayed_work,
    CpuId,
    Delay,
    DelayedWork,
    DelayedWorkItem,
    OwnedQueue,
    Queue,
    Work,
    WorkItem,
    WorkOps, //
};
use core::sync::atomic::{
    AtomicBool,
    AtomicU32,
    AtomicU64, //
    Ordering::{
        Relaxed,
        SeqCst, //
    },
};
use kernel::{
    prelude::*,
    sync::{
        Arc,
        Mutex, //
    },
    time::{
        Instant,
        Monotonic, //
    },
    workqueue::{
        impl_has_work,
        new_work, //
    },
};

/// Most rounds per thread.
pub(crate) const MAX_ITEMS: u32 = 1_000_000;

/// Most rounds of all threads together (threads run x items): each round keeps 32 bytes of
/// samples at most (two per thread, two merged), so one run allocates at most 64 MiB.
pub(crate) const MAX_TOTAL: u64 = 1 << 21;

/// The delay of armed items: long enough never to fire during a round (as in the C twin).
const ARM_DELAY_MS: u32 = 10_000;

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
    /// `WorkOps::flush` of an idle item.
    FlushIdle,
    /// `WorkOps::disable` of an idle item, then enable untimed.
    Disable,
    /// Disable untimed, then `WorkOps::enable`.
    Enable,
    /// `StaticWork::enqueue` (C's `DECLARE_WORK` item), then flush it untimed.
    Static,
}

impl Op {
    /// Whether the operation runs on several threads (`threads`); the others run on one.
    pub(crate) fn multi_thread(self) -> bool {
        matches!(self, Self::RoundTrip | Self::QueueFresh)
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

/// The plain work item: reused every round, or made fresh for [`Op::QueueFresh`].
#[pin_data]
struct BenchItem {
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
enum Queues {
    Shared(Arc<Shared>),
    Own(OwnedQueue),
    System,
}

impl Queues {
    fn make(shared: Arc<Shared>, path: Path) -> Result<Self> {
        Ok(match path {
            Path::UnboundSysfs => Queues::Shared(shared),
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
            Queues::Shared(s) => Target::Owned(s.bench_wq()),
            Queues::Own(q) => Target::Owned(q),
            Queues::System => Target::System(wq::system_percpu()),
        }
    }
}

/// What the threads share.
struct Run {
    queues: Queues,
    op: Op,
    items: u32,
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

/// The per-thread results, handed back when the thread finishes.
struct Samples {
    queue: KVVec<u64>,
    start: KVVec<u64>,
}

/// One thread's items.
struct Items {
    plain: Arc<BenchItem>,
    delayed: Arc<BenchDelayed>,
    cpu: CpuId,
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
fn round(run: &Run, it: &Items, samples: &mut Samples) -> Result<u64> {
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
            drop(r);
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

/// Runs `op` on the queue of `path`: [`Op::RoundTrip`] and [`Op::QueueFresh`] with one thread
/// per online CPU (at most `threads` if not 0), every other operation with one thread, on CPU 0
/// (the first online CPU).
pub(crate) fn run(
    shared: Arc<Shared>,
    path: Path,
    op: Op,
    threads: u32,
    items: u32,
    measure_start: bool,
) -> Result<Report> {
    if items == 0 || items > MAX_ITEMS {
        return Err(EINVAL);
    }
    // Check the size before allocating anything: the threads that would run now.
    let most = if op.multi_thread() { threads } else { 1 };
    let online = (0..wq::cpu::nr_cpu_ids())
        .filter(|&c| wq::cpu::online_cpu(c).is_ok())
        .count() as u32;
    let planned = if most == 0 { online } else { online.min(most) };
    if u64::from(planned) * u64::from(items) > MAX_TOTAL {
        return Err(EINVAL);
    }
    let run = Arc::new(
        Run {
            queues: Queues::make(shared, path)?,
            op,
            items,
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
        let items_of = Items {
            plain: BenchItem::new(measure_start)?,
            delayed: Arc::pin_init(
                pin_init!(BenchDelayed {
                    dwork <- new_delayed_work!("rust_wq::bench::BenchDelayed::dwork"),
                }),
                GFP_KERNEL,
            )?,
            cpu,
        };
        let out: Arc<Mutex<Option<Result<Samples>>>> =
            Arc::pin_init(kernel::new_mutex!(None), GFP_KERNEL)?;
        let mut samples = Samples {
            queue: KVVec::with_capacity(items as usize, GFP_KERNEL)?,
            start: KVVec::with_capacity(
                if measure_start { items as usize } else { 0 },
                GFP_KERNEL,
            )?,
        };
        if plain_items
            .push_within_capacity(items_of.plain.clone())
            .is_err()
        {
            return Err(ENOMEM);
        }
        run.left.fetch_add(1, SeqCst);
        let (r, o) = (run.clone(), out.clone());
        let t = KThread::spawn_on(cpu, c"rust_wq_bench", move |_stop| {
            r.start.wait();
            let mut res = Ok(());
            for _ in 0..r.items {
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
        // Killed: the threads stop after their current round; wait for that (short), so that
        // the items are idle before they are freed, and leave.
        run.abort.store(true, SeqCst);
        run.all_done.wait();
        for it in plain_items.iter() {
            it.work.flush();
        }
        drop(release);
        drop(kthreads);
        return Err(e);
    }
    // Drain what is left, as C's `flush_workqueue()`; on a system queue flush only our items.
    let target = run.queues.target();
    if let Target::System(_) = target {
        for it in plain_items.iter() {
            it.work.flush();
        }
    } else {
        target.flush();
    }
    drop(release);
    drop(kthreads);
    let elapsed = (Instant::<Monotonic>::now() - start).as_nanos().max(1) as u64;

    let total = u64::from(n) * u64::from(items);
    let mut all_q = KVVec::with_capacity(total as usize, GFP_KERNEL)?;
    let mut all_s =
        KVVec::with_capacity(if measure_start { total as usize } else { 0 }, GFP_KERNEL)?;
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
/// field, `items` 0 or above [`MAX_ITEMS`], `threads` above 1 for a single-call operation, or
/// the start-latency flag with an operation other than the round trip.
pub(crate) fn ioctl(shared: Arc<Shared>, b: &mut abi::Bench) -> Result {
    let path = match b.path {
        abi::BENCH_UNBOUND_SYSFS => Path::UnboundSysfs,
        abi::BENCH_PERCPU => Path::PerCpu,
        abi::BENCH_SYSTEM_PERCPU => Path::SystemPerCpu,
        _ => return Err(EINVAL),
    };
    let op = Op::from_abi(b.op).ok_or(EINVAL)?;
    let measure_start = b.flags & abi::BENCH_F_START_LATENCY != 0;
    if b.version != abi::ABI_VERSION
        || b.reserved != [0; 2]
        || b.pad != 0
        || b.flags & !abi::BENCH_F_START_LATENCY != 0
        || b.items == 0
        || b.items > MAX_ITEMS
        || (!op.multi_thread() && b.threads > 1)
        || (op != Op::RoundTrip && measure_start)
    {
        return Err(EINVAL);
    }
    let r = run(shared, path, op, b.threads, b.items, measure_start)?;
    pr_info!(
        "bench path={} op={} threads={} items={}: {} items/sec, elapsed {} ns, p50={} p90={} p95={} p99={} ns\n",
        b.path,
        b.op,
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

/// p50, p90, p95 and p99, indexed as `lib/test_workqueue.c` does (`sorted[n * p / 100]`).
pub(crate) fn percentiles(v: &mut [u64]) -> [u64; 4] {
    if v.is_empty() {
        return [0; 4];
    }
    heapsort(v);
    let n = v.len();
    [
        v[n * 50 / 100],
        v[n * 90 / 100],
        v[n * 95 / 100],
        v[n * 99 / 100],
    ]
}

/// Sorts in place in O(n log n) without allocating.
///
/// `core`'s `sort_unstable` is avoided on purpose: its quicksort trips objtool's control-flow
/// checks ("falls through to next function") in kernel builds.
fn heapsort(v: &mut [u64]) {
    fn sift_down(v: &mut [u64], mut root: usize, end: usize) {
        loop {
            let mut child = 2 * root + 1;
            if child >= end {
                return;
            }
            if child + 1 < end && v[child] < v[child + 1] {
                child += 1;
            }
            if v[root] >= v[child] {
                return;
            }
            v.swap(root, child);
            root = child;
        }
    }
    /// Sift-downs between two scheduling points (each is at most log2(n) steps).
    const BATCH: usize = 1 << 14;
    let n = v.len();
    for (k, start) in (0..n / 2).rev().enumerate() {
        sift_down(v, start, n);
        if k % BATCH == BATCH - 1 {
            crate::kthread::schedule_point();
        }
    }
    for (k, end) in (1..n).rev().enumerate() {
        v.swap(0, end);
        sift_down(v, 0, end);
        if k % BATCH == BATCH - 1 {
            crate::kthread::schedule_point();
        }
    }
}

#[kernel::prelude::kunit_tests(rust_wq_bench)]
mod tests {
    /// The percentiles index a sorted copy as `lib/test_workqueue.c` does.
    #[test]
    fn bench_percentiles() {
        let mut v = [9u64, 1, 8, 2, 7, 3, 6, 4, 5, 0];
        assert_eq!(super::percentiles(&mut v), [5, 9, 9, 9]);
        assert_eq!(v, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let mut e: [u64; 0] = [];
        assert_eq!(super::percentiles(&mut e), [0, 0, 0, 0]);
    }

    /// Every ABI operation number maps to an operation, and no other does.
    #[test]
    fn bench_op_numbers() {
        for n in 0..14 {
            assert!(super::Op::from_abi(n).is_some());
        }
        assert!(super::Op::from_abi(14).is_none());
    }
}
