// SPDX-License-Identifier: GPL-2.0

//! The workqueue benchmark, by the method of the kernel's own `lib/test_workqueue.c`.
//!
//! One kthread per online CPU, bound to it, each doing `items` rounds of "queue one work item,
//! wait for it to run"; the `queue_work()` call alone is timed on each round, and the whole run
//! (release of the threads to their stop) gives items per second. On the sysfs-visible unbound
//! queue (`WQ_UNBOUND | WQ_SYSFS`, as in C) userspace sets the affinity scope between runs.
//! Only the safe [`crate::workqueue`] API is used on the hot path, and it allocates nothing.

use crate::device::Shared;
use crate::kthread::{Completion, KThread};
use crate::workqueue::{self as wq, Queue, Work, WorkItem, WorkOps};
use core::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64,
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

/// Which queue the benchmark hits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    /// The module's `rust_wq_bench` queue: unbound and in sysfs, like C's `bench_wq`.
    UnboundSysfs,
    /// The module's per-CPU queue; each thread queues on its own CPU.
    PerCpu,
    /// The system per-CPU queue (`schedule_work()`).
    SystemPerCpu,
}

/// What one run measured.
#[derive(Default)]
pub(crate) struct Report {
    pub(crate) threads: u32,
    pub(crate) elapsed_ns: u64,
    pub(crate) items_per_sec: u64,
    /// p50, p90, p95 of the `enqueue` call, in ns.
    pub(crate) queue_pct: [u64; 3],
    /// p50, p90, p95 of enqueue-to-start latency, in ns (zero unless measured).
    pub(crate) start_pct: [u64; 3],
}

/// Monotonic nanoseconds since boot.
fn now_ns() -> u64 {
    crate::kthread::ktime_ns().max(0) as u64
}

/// The one work item each benchmark thread queues again and again.
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

/// What the threads share.
struct Run {
    start: Pin<KBox<Completion>>,
    all_done: Pin<KBox<Completion>>,
    left: AtomicU32,
    /// Set when the run is abandoned before it started: threads skip their rounds.
    abort: AtomicBool,
}

/// Releases the threads when dropped, so that no exit path leaves them blocked on `start`
/// (where `kthread_stop()` would wait for them forever).
struct ReleaseOnDrop<'a>(&'a Run);

impl Drop for ReleaseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.start.complete_all();
    }
}

/// The per-thread results, handed back when the thread finishes.
struct Samples {
    queue: KVVec<u64>,
    start: KVVec<u64>,
}

/// Returns the queue a path hits.
fn queue_of(shared: &Shared, path: Path) -> &Queue {
    match path {
        Path::UnboundSysfs => shared.bench_wq(),
        Path::PerCpu => shared.percpu(),
        Path::SystemPerCpu => wq::system_percpu(),
    }
}

/// Runs the benchmark with one thread per online CPU (at most `threads` if not 0).
pub(crate) fn run(
    shared: Arc<Shared>,
    path: Path,
    threads: u32,
    items: u32,
    measure_start: bool,
) -> Result<Report> {
    if items == 0 || items > MAX_ITEMS {
        return Err(EINVAL);
    }
    let run = Arc::new(
        Run {
            start: KBox::pin_init(Completion::new(), GFP_KERNEL)?,
            all_done: KBox::pin_init(Completion::new(), GFP_KERNEL)?,
            left: AtomicU32::new(0),
            abort: AtomicBool::new(true),
        },
        GFP_KERNEL,
    )?;
    let mut outs = KVec::new();
    let mut bench_items = KVec::new();
    let mut kthreads = KVec::new();
    // Declared after `kthreads`, so dropped before them: on an early return the threads are
    // released (and, `abort` being set, skip their rounds) before they are stopped.
    let release = ReleaseOnDrop(&run);
    for cpu in 0..wq::cpu::nr_cpu_ids() {
        if threads != 0 && kthreads.len() as u32 >= threads {
            break;
        }
        let Ok(on) = wq::cpu::online_cpu(cpu) else {
            continue;
        };
        let item = Arc::pin_init(
            pin_init!(BenchItem {
                work <- new_work!("rust_wq::bench::BenchItem::work"),
                done <- Completion::new(),
                queued_ns: AtomicU64::new(0),
                start_ns: AtomicU64::new(0),
                measure_start,
            }),
            GFP_KERNEL,
        )?;
        let out: Arc<Mutex<Option<Samples>>> = Arc::pin_init(kernel::new_mutex!(None), GFP_KERNEL)?;
        let mut samples = Samples {
            queue: KVVec::with_capacity(items as usize, GFP_KERNEL)?,
            start: KVVec::with_capacity(
                if measure_start { items as usize } else { 0 },
                GFP_KERNEL,
            )?,
        };
        run.left.fetch_add(1, SeqCst);
        let (r, it, o, sh) = (run.clone(), item.clone(), out.clone(), shared.clone());
        let t = KThread::spawn_on(on, c"rust_wq_bench", move |stop| {
            let queue = queue_of(&sh, path);
            r.start.wait();
            let rounds = if r.abort.load(SeqCst) { 0 } else { items };
            for _ in 0..rounds {
                let w = it.clone();
                if measure_start {
                    it.queued_ns.store(now_ns(), Relaxed);
                }
                let t0 = crate::kthread::ktime_ns();
                let res = queue.enqueue(w);
                let t1 = crate::kthread::ktime_ns();
                // A fresh round: the item ran and completed last round, so it is never pending.
                drop(res);
                let lat = (t1 - t0).max(0) as u64;
                // Capacity was reserved for every round: no allocation on the hot path.
                let _ = samples.queue.push_within_capacity(lat);
                it.done.wait();
                if measure_start {
                    let _ = samples
                        .start
                        .push_within_capacity(it.start_ns.load(Relaxed));
                }
            }
            *o.lock() = Some(samples);
            if r.left.fetch_sub(1, SeqCst) == 1 {
                r.all_done.complete();
            }
            // As the C benchmark: stay until stopped, yielding (its threads do this so that the
            // module text is not freed under them; the spinning is part of what it measures).
            while !stop.should_stop() {
                crate::kthread::yield_cpu();
            }
        });
        let t = match t {
            Ok(t) => t,
            Err(e) => {
                run.left.fetch_sub(1, SeqCst);
                // `release` lets the threads made so far go; they skip their rounds and stop.
                return Err(e);
            }
        };
        kthreads.push(t, GFP_KERNEL)?;
        bench_items.push(item, GFP_KERNEL)?;
        outs.push(out, GFP_KERNEL)?;
    }
    let n = kthreads.len() as u32;
    if n == 0 {
        return Err(ENODEV);
    }

    let start = Instant::<Monotonic>::now();
    run.abort.store(false, SeqCst);
    drop(release);
    run.all_done.wait();
    // Drain what is left, as C's `flush_workqueue()`; on a system queue flush only our items.
    if path == Path::UnboundSysfs {
        shared.bench_wq().flush();
    } else {
        for it in bench_items.iter() {
            it.work.flush();
        }
    }
    drop(kthreads);
    let elapsed = (Instant::<Monotonic>::now() - start).as_nanos().max(1) as u64;

    let total = u64::from(n) * u64::from(items);
    let mut all_q = KVVec::with_capacity(total as usize, GFP_KERNEL)?;
    let mut all_s =
        KVVec::with_capacity(if measure_start { total as usize } else { 0 }, GFP_KERNEL)?;
    for o in outs.iter() {
        if let Some(s) = o.lock().take() {
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

/// p50, p90 and p95, indexed as `lib/test_workqueue.c` does (`sorted[n * p / 100]`).
pub(crate) fn percentiles(v: &mut [u64]) -> [u64; 3] {
    if v.is_empty() {
        return [0; 3];
    }
    heapsort(v);
    let n = v.len();
    [v[n * 50 / 100], v[n * 90 / 100], v[n * 95 / 100]]
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
    let n = v.len();
    for start in (0..n / 2).rev() {
        sift_down(v, start, n);
    }
    for end in (1..n).rev() {
        v.swap(0, end);
        sift_down(v, 0, end);
    }
}

#[kernel::prelude::kunit_tests(rust_wq_bench)]
mod tests {
    /// The percentiles index a sorted copy as `lib/test_workqueue.c` does.
    #[test]
    fn bench_percentiles() {
        let mut v = [9u64, 1, 8, 2, 7, 3, 6, 4, 5, 0];
        assert_eq!(super::percentiles(&mut v), [5, 9, 9]);
        assert_eq!(v, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let mut e: [u64; 0] = [];
        assert_eq!(super::percentiles(&mut e), [0, 0, 0]);
    }
}
