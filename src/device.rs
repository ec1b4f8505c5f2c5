// SPDX-License-Identifier: GPL-2.0

//! The `/dev/rust_wq` misc device: userspace enqueues test work and reads back what ran where.
//!
//! The ABI is `include/rust_wq.h` (mirrored in [`crate::abi`]). Work belongs to the open file
//! that enqueued it; closing the file cancels what has not started and waits for what runs.
//! This file uses only the safe API of [`crate::workqueue`].

use crate::abi::{self, Bench, Enqueue, Info, ModDelay, Results, Stats, Target, WorkResult};
use crate::bench;
use crate::irq_work::{
    run_in_hardirq,
    run_in_softirq,
    Context, //
};
use crate::miscdev::{
    MiscDevice,
    MiscDeviceRegistration,
    POLL_READABLE, //
};
use crate::workqueue::{
    self as wq,
    impl_has_delayed_work,
    new_delayed_work,
    CpuId,
    Delay,
    DelayedWork,
    DelayedWorkItem,
    OwnedQueue, //
};
use core::sync::atomic::{
    AtomicI64,
    AtomicU32,
    AtomicU64,
    AtomicU8,
    Ordering, //
};
use kernel::{
    fs::File,
    ioctl::{
        _IOC_NR,
        _IOC_SIZE,
        _IOC_TYPE, //
    },
    new_condvar, new_mutex,
    prelude::*,
    sync::{
        poll::{
            PollCondVarBox,
            PollTable, //
        },
        Arc,
        ArcBorrow,
        CondVar,
        Mutex, //
    },
    time::{
        delay::fsleep,
        Delta,
        Instant,
        Monotonic, //
    },
    uaccess::{
        UserPtr,
        UserSlice, //
    },
};

/// The shortest sleep `fsleep` does by sleeping rather than busy-waiting.
const MIN_SLEEP_US: u64 = 11;

/// Per-item dmesg lines are printed for the first this many items of each enqueue call.
const LOG_ITEMS_PER_BATCH: u32 = 4;

/// Module-wide state: the module's own queues and the global execution counter.
#[pin_data]
pub(crate) struct Shared {
    #[pin]
    percpu: OwnedQueue,
    #[pin]
    unbound: OwnedQueue,
    #[pin]
    ordered: OwnedQueue,
    /// The benchmark's queue: unbound and visible in sysfs, as `lib/test_workqueue.c`'s.
    #[pin]
    bench: OwnedQueue,
    /// The last sequence number handed to a running item.
    seq: AtomicU64,
    /// One benchmark at a time (a waiter can leave on a signal).
    #[pin]
    bench_lock: Gate,
    /// Keeps the per-item dmesg lines to a readable rate.
    log_limit: LogLimit,
}

/// A module-wide limit on the per-item dmesg lines: at most [`LogLimit::BURST`] a second.
///
/// Lines over the limit are counted and reported in one line when the next second starts.
struct LogLimit {
    /// The second (of monotonic time since boot) the current budget belongs to.
    window: AtomicU64,
    used: AtomicU64,
    suppressed: AtomicU64,
}

impl LogLimit {
    const BURST: u64 = 20;

    fn new() -> Self {
        Self {
            window: AtomicU64::new(0),
            used: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Returns whether one more line may be printed now.
    fn allow(&self) -> bool {
        let sec = crate::kthread::ktime_ns().max(0) as u64 / 1_000_000_000;
        let win = self.window.load(Ordering::Relaxed);
        if sec != win
            && self
                .window
                .compare_exchange(win, sec, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.used.store(0, Ordering::Relaxed);
            let n = self.suppressed.swap(0, Ordering::Relaxed);
            if n > 0 {
                pr_info!(
                    "{} per-item work lines suppressed (over {} a second)\n",
                    n,
                    Self::BURST
                );
            }
        }
        if self.used.fetch_add(1, Ordering::Relaxed) < Self::BURST {
            true
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

/// A sleeping lock whose waiters can leave when a signal arrives.
///
/// The 7.3 [`Mutex`] has no `mutex_lock_interruptible()`; this is one made of a mutex that is
/// only held for a moment and a condition variable. The holder may sleep for long (wait for
/// items, copy to user memory); waiters sleep interruptibly. Lockdep does not see it as a lock.
#[pin_data]
pub(crate) struct Gate {
    /// Whether a [`GateGuard`] exists.
    #[pin]
    held: Mutex<bool>,
    /// Notified when the gate is released.
    #[pin]
    released: CondVar,
}

impl Gate {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            held <- new_mutex!(false, "Gate::held"),
            released <- new_condvar!("Gate::released"),
        })
    }

    /// Waits until the gate is free and takes it. A signal ends the wait with [`ERESTARTSYS`]
    /// (the system call is restarted, or fails with `EINTR`, or the process dies).
    pub(crate) fn lock_interruptible(&self) -> Result<GateGuard<'_>> {
        let mut held = self.held.lock();
        while *held {
            if self.released.wait_interruptible(&mut held) {
                return Err(ERESTARTSYS);
            }
        }
        *held = true;
        Ok(GateGuard(self))
    }

    /// Waits until the gate is free and takes it, whatever signals arrive.
    pub(crate) fn lock(&self) -> GateGuard<'_> {
        let mut held = self.held.lock();
        while *held {
            self.released.wait(&mut held);
        }
        *held = true;
        GateGuard(self)
    }
}

/// A taken [`Gate`], released when dropped.
pub(crate) struct GateGuard<'a>(&'a Gate);

impl Drop for GateGuard<'_> {
    fn drop(&mut self) {
        *self.0.held.lock() = false;
        // All waiters: one that was woken may leave on a signal instead of taking the gate.
        self.0.released.notify_all();
    }
}

impl Shared {
    /// Creates the module's queues.
    pub(crate) fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            percpu: OwnedQueue::builder().percpu().build(fmt!("rust_wq_percpu"))?,
            unbound: OwnedQueue::builder().unbound().build(fmt!("rust_wq_unbound"))?,
            ordered: OwnedQueue::builder().ordered().build(fmt!("rust_wq_ordered"))?,
            bench: OwnedQueue::builder().unbound().sysfs().build(fmt!("rust_wq_bench"))?,
            seq: AtomicU64::new(0),
            bench_lock <- Gate::new(),
            log_limit: LogLimit::new(),
        }? Error)
    }
}

impl Shared {
    /// The benchmark's unbound sysfs queue.
    pub(crate) fn bench_wq(&self) -> &OwnedQueue {
        &self.bench
    }
}

kernel::sync::global_lock! {
    // SAFETY: `init` is called in the module initialiser, before the device is registered and
    // so before any other use.
    unsafe(uninit) static SHARED: Mutex<Option<Arc<Shared>>> = None;
}

/// The module-wide state, published for files opened while this value exists.
///
/// Dropping it drops the module's queues (once no file holds them any more).
pub(crate) struct Installed(());

impl Installed {
    /// Creates the module's queues and publishes them. Call once, from the module initialiser,
    /// before the misc device is registered.
    pub(crate) fn new() -> Result<Self> {
        let shared = Arc::pin_init(Shared::new(), GFP_KERNEL)?;
        // SAFETY: Called once per module load, before any other use of `SHARED` (the device,
        // whose `open` reads it, is registered only after this returns).
        unsafe { SHARED.init() };
        *SHARED.lock() = Some(shared);
        Ok(Installed(()))
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let shared = SHARED.lock().take();
        drop(shared);
    }
}

/// How often a work function sleeps again when the clock says its sleep ended early.
const MAX_SLEEP_ROUNDS: u32 = 8;

/// [`Item::state`]: the ENQUEUE call that made the item is still queueing the call's items.
const ARMING: u8 = 0;
/// [`Item::state`]: the item may run.
const GO: u8 = 1;
/// [`Item::state`]: the ENQUEUE call failed; the item must not run.
const ABORTED: u8 = 2;

/// One test work item, always a delayed work (queued at once when its delay is zero).
#[pin_data]
pub(crate) struct Item {
    #[pin]
    dwork: DelayedWork<Item>,
    id: u64,
    tag: u64,
    queue: u32,
    cpu: u32,
    sleep_us: u64,
    log: bool,
    batch_summary: Option<u32>,
    enqueued_at: Instant<Monotonic>,
    /// When its timer is due (monotonic ns); 0 when queued at once. Changed under `ctl`.
    due_ns: AtomicI64,
    /// [`ARMING`], [`GO`] or [`ABORTED`]; changed under the file's `inner` lock.
    ///
    /// A delayed item starts `ARMING`: if the ENQUEUE call fails half-way, none of its items
    /// may have run, even if a timer fired before the call could cancel it.
    state: AtomicU8,
    /// `RES_FROM_*`: the context that queued (or armed) the item, stored before it is queued.
    queued_from: AtomicU32,
    file: Arc<FileShared>,
}

impl_has_delayed_work! { impl HasDelayedWork for Item { self.dwork } }

impl DelayedWorkItem for Item {
    type Pointer = Arc<Item>;

    fn run(this: Arc<Item>) {
        if this.state.load(Ordering::Acquire) != GO && !this.file.wait_go(&this) {
            // Its ENQUEUE call failed: it did nothing and the file has forgotten it.
            return;
        }
        // The timer counts jiffies, which under emulation can run slightly ahead of the
        // monotonic clock the results use; the header promises "never early" in that clock, so
        // wait out what is left (at most a few jiffies; a few rounds cover oversleeping noise).
        for _ in 0..MAX_SLEEP_ROUNDS {
            let due = this.due_ns.load(Ordering::Relaxed);
            let left = due - crate::kthread::ktime_ns();
            if due == 0 || left <= 0 {
                break;
            }
            // At most `MAX_DELAY_US` in µs: fits.
            fsleep(Delta::from_micros((left + 999) / 1000));
        }
        let start = Instant::<Monotonic>::now();
        let cpu = kernel::cpu::CpuId::current().as_u32();
        let mut flags = this.queued_from.load(Ordering::Acquire);
        if wq::context::in_worker() && this.dwork.is_current() {
            flags |= abi::RES_PROCESS_CTX;
        }
        if this.sleep_us > 0 {
            // `sleep_us` is at most `MAX_SLEEP_US`, far below `i64::MAX / 1000`.
            let want_ns = (this.sleep_us * 1000) as i64;
            let cpu0 = crate::kthread::cpu_time_ns();
            let t0 = Instant::<Monotonic>::now();
            // Time off the CPU since `t0`: what the task spent blocked (asleep), plus any wait
            // for a CPU. A busy-wait stays on the CPU.
            let off_cpu = || {
                let on = crate::kthread::cpu_time_ns().saturating_sub(cpu0);
                t0.elapsed().as_nanos() - on.min(i64::MAX as u64) as i64
            };
            let mut off = 0;
            // Doubled after a round in which the task did not block: a sleep of a few
            // microseconds can end before the task has left the CPU (the timer fires first).
            let mut shift = 0;
            for _ in 0..MAX_SLEEP_ROUNDS {
                // `fsleep` busy-waits below 11 us, so shorter sleeps are rounded up to that. From
                // 20 ms on it sleeps in jiffies, which (under emulation) can end a little before
                // the monotonic clock has advanced as far: then sleep again for what is left.
                let left_ns = (want_ns - t0.elapsed().as_nanos()).max(want_ns - off);
                if left_ns <= 0 {
                    break;
                }
                let us = (left_ns as u64).div_ceil(1000).max(MIN_SLEEP_US) << shift;
                fsleep(Delta::from_micros(us.min(abi::MAX_SLEEP_US) as i64));
                let now_off = off_cpu();
                if now_off < off + 1000 {
                    shift += 1;
                }
                off = now_off;
            }
            if off >= want_ns && start.elapsed().as_nanos() >= want_ns {
                flags |= abi::RES_SLEPT;
            }
        }
        let end = Instant::<Monotonic>::now();
        let seq = this.file.shared.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let result = WorkResult {
            id: this.id,
            tag: this.tag,
            seq,
            latency_ns: (start - this.enqueued_at).as_nanos().max(0) as u64,
            runtime_ns: (end - start).as_nanos().max(0) as u64,
            requested_cpu: this.cpu,
            cpu,
            queue: this.queue,
            flags,
            reserved: 0,
        };
        if this.log && this.file.shared.log_limit.allow() {
            let req_cpu = match result.requested_cpu {
                abi::CPU_ANY => -1,
                c => i64::from(c),
            };
            let process_ctx = (flags & abi::RES_PROCESS_CTX) != 0;
            let slept = (flags & abi::RES_SLEPT) != 0;
            pr_info!(
                "work id={} tag={} queue={} req_cpu={} (-1: any) cpu={} latency={}us runtime={}us seq={} queued_from={} process_ctx={} slept={}\n",
                result.id,
                result.tag,
                queue_name(result.queue),
                req_cpu,
                result.cpu,
                result.latency_ns / 1000,
                result.runtime_ns / 1000,
                seq,
                from_name(flags),
                process_ctx,
                slept,
            );
        }
        if let Some(n) = this
            .batch_summary
            .filter(|_| this.file.shared.log_limit.allow())
        {
            pr_info!(
                "work batch tag={} queue={}: last of {} items ran (id={}, cpu={}); per-item lines for the first {} only\n",
                result.tag,
                queue_name(result.queue),
                n,
                result.id,
                result.cpu,
                LOG_ITEMS_PER_BATCH,
            );
        }
        this.file.finished(&this, result);
    }
}

/// The `RES_FROM_*` flag of a context.
fn from_flag(c: Context) -> u32 {
    match c {
        Context::Task => abi::RES_FROM_TASK,
        Context::SoftIrq => abi::RES_FROM_SOFTIRQ,
        // Nothing of this module queues from an NMI; count it as an interrupt if it ever did.
        Context::HardIrq | Context::Nmi => abi::RES_FROM_HARDIRQ,
    }
}

/// The name of the context in result `flags`, for the log.
fn from_name(flags: u32) -> &'static str {
    if flags & abi::RES_FROM_HARDIRQ != 0 {
        Context::HardIrq.name()
    } else if flags & abi::RES_FROM_SOFTIRQ != 0 {
        Context::SoftIrq.name()
    } else {
        Context::Task.name()
    }
}

fn queue_name(q: u32) -> &'static str {
    match q {
        abi::Q_PERCPU => "percpu",
        abi::Q_UNBOUND => "unbound",
        abi::Q_ORDERED => "ordered",
        abi::Q_SYSTEM_PERCPU => "system_percpu",
        abi::Q_SYSTEM_DFL => "system_dfl",
        _ => "?",
    }
}

/// The results of one file, oldest first, in a ring of at most [`abi::MAX_RESULTS`].
///
/// # Invariants
///
/// `len <= buf.len() <= MAX_RESULTS`, and `head < buf.len()` unless `buf` is empty. The
/// result at position `i` (`0` = oldest) is `buf[(head + i) % buf.len()]`; its absolute index
/// (counted since the file was opened) is `base + i`.
struct Ring {
    buf: KVVec<WorkResult>,
    head: usize,
    len: usize,
    /// How many results have left the ring from the front (read, dropped, or cleared).
    base: u64,
}

impl Ring {
    const MAX: usize = abi::MAX_RESULTS as usize;

    fn new() -> Self {
        Self {
            buf: KVVec::new(),
            head: 0,
            len: 0,
            base: 0,
        }
    }

    /// Makes room for `want` results (or [`Ring::MAX`] if less), so that that many pushes
    /// never allocate.
    fn reserve_for(&mut self, want: usize) -> Result {
        let want = want.min(Self::MAX);
        if self.buf.len() >= want {
            return Ok(());
        }
        let cap = want.max(self.buf.len() * 2).min(Self::MAX);
        let mut fresh = KVVec::with_capacity(cap, GFP_KERNEL)?;
        for i in 0..self.len {
            // Cannot fail: `len <= buf.len() < cap`.
            fresh
                .push_within_capacity(self.get(i))
                .map_err(|_| ENOMEM)?;
        }
        // Within the capacity reserved above: does not allocate.
        fresh.resize(cap, WorkResult::default(), GFP_KERNEL)?;
        self.buf = fresh;
        self.head = 0;
        Ok(())
    }

    /// The result at position `i` (`0` = oldest); `i < len`.
    fn get(&self, i: usize) -> WorkResult {
        self.buf[(self.head + i) % self.buf.len()]
    }

    /// The absolute index one past the newest result.
    fn end(&self) -> u64 {
        self.base + self.len as u64
    }

    /// Appends `r`; when the ring is full, drops the oldest result first and returns `true`.
    fn push(&mut self, r: WorkResult) -> bool {
        let cap = self.buf.len();
        if cap == 0 {
            // No room was ever reserved (cannot happen: ENQUEUE reserves before queueing).
            self.base += 1;
            return true;
        }
        let dropped = self.len == cap;
        if dropped {
            self.pop_front(1);
        }
        self.buf[(self.head + self.len) % cap] = r;
        self.len += 1;
        dropped
    }

    /// Removes the `n` oldest results (or all if fewer).
    fn pop_front(&mut self, n: usize) {
        let n = n.min(self.len);
        if n > 0 {
            self.head = (self.head + n) % self.buf.len();
            self.len -= n;
            self.base += n as u64;
        }
    }

    fn clear(&mut self) {
        self.pop_front(self.len);
    }
}

/// The mutable state of one open file.
///
/// # Invariants
///
/// `pending` is sorted by id. `retired.capacity() >= retired.len() + pending.len()` and
/// `results` has room for `min(MAX_RESULTS, results.len + pending.len())` results, so a
/// finishing (or cancelled) item never allocates.
struct FileInner {
    next_id: u64,
    /// Items enqueued and neither finished nor cancelled.
    pending: KVec<Arc<Item>>,
    /// Items that finished or were cancelled; kept until flushed (their worker may still be
    /// returning) so that no item is freed by its own work function.
    retired: KVec<Arc<Item>>,
    /// Results not yet read, in execution order.
    results: Ring,
    /// Counters since open or RESET (`results_dropped` included).
    stats: Stats,
    /// Results dropped since the last RESULTS call.
    dropped_unread: u64,
}

impl FileInner {
    fn find_pending(&self, id: u64) -> Option<usize> {
        self.pending.binary_search_by_key(&id, |i| i.id).ok()
    }

    /// Moves the item `id` from `pending` to `retired`; returns whether it was pending.
    fn retire(&mut self, id: u64) -> bool {
        let Some(idx) = self.find_pending(id) else {
            return false;
        };
        if let Ok(item) = self.pending.remove(idx) {
            // Cannot fail: the invariant keeps room for every pending item. (If it did, the
            // item would be dropped here, which is harmless: the caller holds a reference.)
            let _ = self.retired.push_within_capacity(item);
        }
        true
    }

    /// Cancels the pending items that `want` selects and that have not started, without
    /// waiting (phase one of a cancel); they move to `retired`. Returns how many.
    fn cancel_pending(&mut self, mut want: impl FnMut(&Item) -> bool) -> u64 {
        let FileInner {
            pending,
            retired,
            stats,
            ..
        } = self;
        let mut n = 0;
        pending.retain(|item| {
            // `cancel` never sleeps; it gives back the queue's reference, never the last one
            // (`pending` holds another).
            if !want(item) || item.dwork.cancel().is_none() {
                return true;
            }
            // Cannot fail: the invariant keeps room for every pending item; the clone keeps the
            // item alive until it is reaped outside the lock.
            let _ = retired.push_within_capacity(item.clone());
            n += 1;
            false
        });
        stats.cancelled += n;
        n
    }

    /// Returns the first pending item with an id of at least `from` and at most `last` that
    /// `want` selects.
    fn first_pending(&self, from: u64, last: u64, want: impl Fn(&Item) -> bool) -> Option<u64> {
        let start = match self.pending.binary_search_by_key(&from, |i| i.id) {
            Ok(i) | Err(i) => i,
        };
        self.pending[start..]
            .iter()
            .take_while(|i| i.id <= last)
            .find(|i| want(i))
            .map(|i| i.id)
    }
}

/// The state of one open file of `/dev/rust_wq`, shared with its items.
#[pin_data]
pub(crate) struct FileShared {
    #[pin]
    inner: Mutex<FileInner>,
    /// Notified (with `inner`) whenever an item leaves `pending` and when an ENQUEUE call
    /// lets its items go or fails.
    #[pin]
    changed: CondVar,
    /// Serialises enqueue, flush (its first phase), cancel, delay changes, results, reset and
    /// close of this file. Never taken by work functions, so it may be held while waiting or
    /// copying to user memory.
    #[pin]
    ctl: Gate,
    /// Notified when a result is stored; `poll` waits on it.
    ///
    /// Boxed and freed after an RCU grace period (`kfree_rcu`), so dropping the file's state,
    /// which may happen in a worker when its last item returns, never blocks in
    /// `synchronize_rcu()` as an inline `PollCondVar` would. No poll waiter can be left when it
    /// is dropped: poll() and select() hold a reference to the file while they are registered,
    /// and epoll removes its entries before `release`; the state lives at least that long.
    readable: PollCondVarBox,
    shared: Arc<Shared>,
}

impl FileShared {
    /// Waits until the ENQUEUE call that made `item` has queued all its items. Returns
    /// `false` if that call failed: the item is then forgotten and must do nothing.
    fn wait_go(&self, item: &Arc<Item>) -> bool {
        let mut inner = self.inner.lock();
        loop {
            match item.state.load(Ordering::Acquire) {
                GO => return true,
                ABORTED => {
                    inner.retire(item.id);
                    self.changed.notify_all();
                    return false;
                }
                // Short: the ENQUEUE call is queueing its items and waits for nothing else.
                _ => self.changed.wait(&mut inner),
            }
        }
    }

    /// Records a finished item. Called by the item's work function.
    fn finished(&self, item: &Arc<Item>, result: WorkResult) {
        let mut inner = self.inner.lock();
        if !inner.retire(item.id) {
            // Cannot happen: a started item leaves `pending` only here.
            return;
        }
        if inner.results.push(result) {
            inner.stats.results_dropped += 1;
            inner.dropped_unread += 1;
        }
        inner.stats.executed += 1;
        self.changed.notify_all();
        drop(inner);
        self.readable.notify_all();
    }

    /// Waits for retired items to be completely done and frees them.
    fn reap(&self) {
        let retired = {
            let mut inner = self.inner.lock();
            if inner.retired.is_empty() {
                return;
            }
            let cap = inner.retired.capacity();
            let mut fresh = KVec::new();
            // Keep the capacity invariant; if that allocation fails, keep the old vector.
            if fresh.reserve(cap, GFP_KERNEL).is_err() {
                return;
            }
            core::mem::replace(&mut inner.retired, fresh)
        };
        for item in retired.iter() {
            // It finished its work function (or never runs); wait until its worker has
            // returned too. Short: nothing of the item is left to run.
            item.dwork.flush();
        }
    }

    /// Waits until no pending item with an id up to `last` that `want` selects is left (phase
    /// two of a cancel: only items that were running are left). Not interruptible; it waits
    /// only for work functions that have started, each at most `MAX_SLEEP_US` long.
    fn wait_running(&self, last: u64, want: impl Fn(&Item) -> bool) {
        let mut inner = self.inner.lock();
        let mut from = 0;
        while let Some(id) = inner.first_pending(from, last, &want) {
            from = id;
            self.changed.wait(&mut inner);
        }
    }

    fn queue(&self, q: u32) -> Result<QueueRef<'_>> {
        Ok(match q {
            abi::Q_PERCPU => QueueRef::Owned(&self.shared.percpu),
            abi::Q_UNBOUND => QueueRef::Owned(&self.shared.unbound),
            abi::Q_ORDERED => QueueRef::Owned(&self.shared.ordered),
            abi::Q_SYSTEM_PERCPU => QueueRef::System(wq::system_percpu()),
            abi::Q_SYSTEM_DFL => QueueRef::System(wq::system_dfl()),
            _ => return Err(EINVAL),
        })
    }

    /// Queues `item` on its queue after `delay`, on its CPU if it has one.
    fn arm(&self, item: Arc<Item>, cpu: Option<CpuId>, delay: Delay) -> Result {
        // A refused item is handed back and dropped here, outside any lock. Never sleeps (it
        // runs in a hard-interrupt handler with `ENQ_F_FROM_IRQ`).
        match (self.queue(item.queue)?, cpu) {
            (QueueRef::Owned(w), Some(c)) => w
                .enqueue_delayed_on(c, item, delay)
                .map_err(|e| e.to_errno()),
            (QueueRef::Owned(w), None) => w.enqueue_delayed(item, delay).map_err(|e| e.to_errno()),
            (QueueRef::System(s), Some(c)) => s
                .enqueue_delayed_on(c, item, delay)
                .map_err(|e| e.to_errno()),
            (QueueRef::System(s), None) => s.enqueue_delayed(item, delay).map_err(|e| e.to_errno()),
        }
    }

    fn info(&self) -> Info {
        let mut online = 0u64;
        for cpu in 0..wq::cpu::nr_cpu_ids().min(64) {
            if wq::cpu::online_cpu(cpu).is_ok() {
                online |= 1 << cpu;
            }
        }
        Info {
            abi_version: abi::ABI_VERSION,
            nr_cpu_ids: wq::cpu::nr_cpu_ids(),
            max_count: abi::MAX_COUNT,
            max_pending: abi::MAX_PENDING,
            max_delay_us: abi::MAX_DELAY_US,
            max_sleep_us: abi::MAX_SLEEP_US,
            online_cpus: online,
            max_results: abi::MAX_RESULTS,
            ..Info::default()
        }
    }

    fn enqueue(this: ArcBorrow<'_, Self>, req: &mut Enqueue) -> Result {
        let me: &Self = &this;
        if req.version != abi::ABI_VERSION
            || req.reserved != [0; 1]
            || req.flags & !abi::ENQ_F_ALL != 0
            || req.flags == abi::ENQ_F_ALL
        {
            return Err(EINVAL);
        }
        if req.queue >= abi::Q_COUNT
            || req.count == 0
            || req.count > abi::MAX_COUNT
            || req.delay_us > abi::MAX_DELAY_US
            || req.sleep_us > abi::MAX_SLEEP_US
        {
            return Err(EINVAL);
        }
        let delay = Delay::from_micros(req.delay_us)?;
        me.reap();
        // The whole call is atomic with respect to the file's other control calls: they cannot
        // see its items half queued. (Taken before the CPU-hotplug lock, as everywhere.)
        let _ctl = me.ctl.lock_interruptible()?;
        // Held until every item is queued: the CPU cannot go offline in between.
        let cpu = match req.cpu {
            abi::CPU_ANY => None,
            c => Some(wq::cpu::online_cpu(c)?),
        };

        // Make every item first, so that running out of memory changes nothing.
        let count = req.count as usize;
        let mut items = KVec::with_capacity(count, GFP_KERNEL)?;
        let now = Instant::<Monotonic>::now();
        let due_ns = due_after(req.delay_us);
        // Queueing at once on any CPU cannot fail, so such items may go at once; delayed ones
        // and those for a CPU (which may go offline before it is queued on: `ENODEV`) wait for
        // the end of the call (see `Item::state`).
        let initial = if delay == Delay::ZERO && cpu.is_none() {
            GO
        } else {
            ARMING
        };
        let first_id;
        {
            let mut inner = me.inner.lock();
            if inner.pending.len() + count > abi::MAX_PENDING as usize {
                return Err(EBUSY);
            }
            let room = inner.pending.len() + count;
            inner.pending.reserve(count, GFP_KERNEL)?;
            let want = inner.results.len + room;
            inner.results.reserve_for(want)?;
            inner.retired.reserve(room, GFP_KERNEL)?;
            first_id = inner.next_id + 1;
            let (tag, queue, cpu_req, sleep_us, n) =
                (req.tag, req.queue, req.cpu, req.sleep_us, req.count);
            for i in 0..n {
                let item = Arc::pin_init(
                    pin_init!(Item {
                        dwork <- new_delayed_work!("rust_wq::Item::dwork"),
                        id: first_id + u64::from(i),
                        tag,
                        queue,
                        cpu: cpu_req,
                        sleep_us,
                        log: i < LOG_ITEMS_PER_BATCH,
                        batch_summary: (n > LOG_ITEMS_PER_BATCH && i == n - 1).then_some(n),
                        enqueued_at: now,
                        due_ns: AtomicI64::new(due_ns),
                        state: AtomicU8::new(initial),
                        queued_from: AtomicU32::new(0),
                        file: this.into(),
                    }),
                    GFP_KERNEL,
                )?;
                items.push(item, GFP_KERNEL)?;
            }
            for item in items.iter() {
                // Cannot fail: reserved above.
                inner
                    .pending
                    .push_within_capacity(item.clone())
                    .map_err(|_| ENOMEM)?;
            }
            inner.next_id += u64::from(req.count);
            inner.stats.enqueued += u64::from(req.count);
        }

        // Queues `batch` (starting at index `first` of the call), recording the context; returns
        // the index and error of the first item that could not be queued. Never sleeps: with
        // `ENQ_F_FROM_IRQ` it runs in a hard-interrupt handler, with `ENQ_F_FROM_SOFTIRQ` in a
        // softirq.
        let arm_batch = |first: usize, batch: &[Arc<Item>]| -> Option<(usize, Error)> {
            let from = from_flag(Context::current());
            for (n, item) in batch.iter().enumerate() {
                item.queued_from.store(from, Ordering::Release);
                if let Err(e) = me.arm(item.clone(), cpu, delay) {
                    return Some((first + n, e));
                }
            }
            None
        };
        let mut failed = None;
        if req.flags & abi::ENQ_F_ALL != 0 {
            for (i, batch) in items.chunks(abi::IRQ_BATCH as usize).enumerate() {
                let first = i * abi::IRQ_BATCH as usize;
                let run = || arm_batch(first, batch);
                let done = if req.flags & abi::ENQ_F_FROM_IRQ != 0 {
                    run_in_hardirq(run)
                } else {
                    run_in_softirq(run)
                };
                match done {
                    Ok(None) => {}
                    Ok(Some(f)) => failed = Some(f),
                    // The interrupt (or BH item) could not be raised: nothing of it was queued.
                    Err(e) => failed = Some((first, e)),
                }
                if failed.is_some() {
                    break;
                }
            }
        } else {
            failed = arm_batch(0, &items);
        }
        let Some((armed, err)) = failed else {
            if initial != GO {
                let _inner = me.inner.lock();
                for item in items.iter() {
                    item.state.store(GO, Ordering::Release);
                }
                me.changed.notify_all();
            }
            req.first_id = first_id;
            return Ok(());
        };
        // Undo the whole call. Only delayed queueing can fail, so every item is `ARMING`: an
        // item whose timer fired meanwhile waits in its work function and now leaves without
        // doing anything; the others are taken off their queues or were never queued.
        let mut inner = me.inner.lock();
        for item in items.iter() {
            item.state.store(ABORTED, Ordering::Release);
        }
        me.changed.notify_all();
        let mut gone = 0u64;
        for (n, item) in items.iter().enumerate() {
            if (n >= armed || item.dwork.cancel().is_some()) && inner.retire(item.id) {
                gone += 1;
            }
        }
        // The rest started and are leaving (see `FileShared::wait_go`).
        for item in items.iter().take(armed) {
            while inner.find_pending(item.id).is_some() {
                me.changed.wait(&mut inner);
            }
        }
        // An item that was queued at once may have run (not possible today: see above); it was
        // counted as executed. Every other item of the call counts as never enqueued.
        let never_ran = if initial == GO {
            gone
        } else {
            u64::from(req.count)
        };
        // Saturating: a RESET cannot have run meanwhile (we hold `ctl`), but stay safe.
        inner.stats.enqueued = inner.stats.enqueued.saturating_sub(never_ran);
        drop(inner);
        Err(err)
    }

    /// Returns clones of the pending items a target selects.
    fn select(&self, t: &Target) -> Result<KVec<Arc<Item>>> {
        let inner = self.inner.lock();
        let mut out = KVec::new();
        match t.kind {
            abi::TARGET_ALL => {
                out.reserve(inner.pending.len(), GFP_KERNEL)?;
                for i in inner.pending.iter() {
                    out.push(i.clone(), GFP_KERNEL)?;
                }
            }
            abi::TARGET_ID => {
                if let Some(idx) = inner.find_pending(t.id) {
                    out.push(inner.pending[idx].clone(), GFP_KERNEL)?;
                }
            }
            _ => {
                for i in inner.pending.iter().filter(|i| i.queue == t.queue) {
                    out.push(i.clone(), GFP_KERNEL)?;
                }
            }
        }
        Ok(out)
    }

    fn check_target(t: &Target) -> Result {
        let ok_kind = match t.kind {
            abi::TARGET_ALL => t.queue == 0 && t.id == 0,
            abi::TARGET_ID => t.queue == 0,
            abi::TARGET_QUEUE => t.queue < abi::Q_COUNT && t.id == 0,
            _ => false,
        };
        if t.version != abi::ABI_VERSION || t.pad != 0 || t.reserved != [0; 2] || !ok_kind {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// Queues a pending item that was just taken off its queue at once, on its CPU if that is
    /// still online (else on any CPU: a timer of an offline CPU also fires elsewhere).
    fn fire(&self, item: &Arc<Item>) {
        item.due_ns.store(0, Ordering::Relaxed);
        let cpu = match item.cpu {
            abi::CPU_ANY => None,
            c => wq::cpu::online_cpu(c).ok(),
        };
        if self.arm(item.clone(), cpu, Delay::ZERO).is_err() {
            // Cannot happen: queueing at once allocates nothing, and the item is not pending.
            // Should it ever, the item is counted as cancelled, so every item still ends once.
            let mut inner = self.inner.lock();
            if inner.retire(item.id) {
                inner.stats.cancelled += 1;
            }
            self.changed.notify_all();
        }
    }

    fn flush(&self, t: &mut Target) -> Result {
        Self::check_target(t)?;
        let items = {
            let _ctl = self.ctl.lock_interruptible()?;
            let items = self.select(t)?;
            // Fire the timers that have not fired yet, as `flush_delayed_work()` does. (An item
            // whose timer is due has fired or fires within a jiffy: it is not moved, so that the
            // ordered queue keeps its order.)
            let now = crate::kthread::ktime_ns();
            for item in items.iter() {
                if item.due_ns.load(Ordering::Relaxed) > now && item.dwork.cancel().is_some() {
                    self.fire(item);
                }
            }
            items
        };
        // Wait, interruptibly, until each has finished (or was cancelled by another call).
        {
            let mut inner = self.inner.lock();
            for item in items.iter() {
                while inner.find_pending(item.id).is_some() {
                    if self.changed.wait_interruptible(&mut inner) {
                        return Err(ERESTARTSYS);
                    }
                }
            }
        }
        t.count = items.len() as u64;
        drop(items);
        self.reap();
        Ok(())
    }

    fn cancel(&self, t: &mut Target) -> Result {
        Self::check_target(t)?;
        let (kind, queue, id) = (t.kind, t.queue, t.id);
        let want = move |i: &Item| match kind {
            abi::TARGET_ALL => true,
            abi::TARGET_ID => i.id == id,
            _ => i.queue == queue,
        };
        let (n, last) = {
            let _ctl = self.ctl.lock_interruptible()?;
            let mut inner = self.inner.lock();
            // Only items enqueued before the call are waited for.
            let last = inner.next_id;
            if kind == abi::TARGET_ID && inner.find_pending(id).is_none() {
                return Err(ENOENT);
            }
            let n = inner.cancel_pending(want);
            if n > 0 {
                self.changed.notify_all();
            }
            (n, last)
        };
        // Phase two: what is left of the targeted items had started; wait for those only.
        self.wait_running(last, want);
        self.reap();
        if kind == abi::TARGET_ID && n == 0 {
            // It started before we could cancel it (and has finished now).
            return Err(ENOENT);
        }
        t.count = n;
        Ok(())
    }

    fn mod_delay(&self, m: &ModDelay) -> Result {
        if m.version != abi::ABI_VERSION
            || m.pad != 0
            || m.reserved != [0; 2]
            || m.delay_us > abi::MAX_DELAY_US
        {
            return Err(EINVAL);
        }
        let delay = Delay::from_micros(m.delay_us)?;
        let _ctl = self.ctl.lock_interruptible()?;
        let item = {
            let inner = self.inner.lock();
            let idx = inner.find_pending(m.id).ok_or(ENOENT)?;
            inner.pending[idx].clone()
        };
        // "Change the delay only if still pending": take it off its queue; if that wins, the item
        // has not run and is queued again with the new delay, so it still runs exactly once. If
        // it has started, it is not waited for.
        if item.dwork.cancel().is_none() {
            return Err(ENOENT);
        }
        item.due_ns.store(due_after(m.delay_us), Ordering::Relaxed);
        // Re-armed by this task: the result says so (`RES_FROM_TASK`).
        item.queued_from
            .store(from_flag(Context::current()), Ordering::Release);
        let cpu = match item.cpu {
            abi::CPU_ANY => Ok(None),
            c => wq::cpu::online_cpu(c).map(Some),
        };
        let res = cpu.and_then(|cpu| self.arm(item.clone(), cpu, delay));
        if let Err(e) = res {
            // It cannot be queued again (CPU gone offline, or no memory): it stays cancelled.
            let mut inner = self.inner.lock();
            if inner.retire(item.id) {
                inner.stats.cancelled += 1;
            }
            self.changed.notify_all();
            drop(inner);
            return Err(e);
        }
        Ok(())
    }

    fn results(&self, r: &mut Results) -> Result {
        /// Results copied per round; the copy to user memory is done with no lock held that a
        /// work function takes.
        const CHUNK: usize = 8;
        if r.version != abi::ABI_VERSION || r.pad != 0 || r.reserved != [0; 2] {
            return Err(EINVAL);
        }
        if r.buf == 0 && r.capacity > 0 {
            return Err(EINVAL);
        }
        // Nobody else consumes results meanwhile.
        let _ctl = self.ctl.lock_interruptible()?;
        self.reap();
        let want = r.capacity as usize;
        let size = want
            .checked_mul(core::mem::size_of::<WorkResult>())
            .ok_or(EINVAL)?;
        let mut writer = UserSlice::new(UserPtr::from_addr(r.buf as usize), size).writer();
        // Absolute indices (see `Ring`): results up to `end` are the ones there at the call.
        let (first, end) = {
            let inner = self.inner.lock();
            (inner.results.base, inner.results.end())
        };
        let mut next = first;
        let mut copied = 0usize;
        // Results that the ring dropped (full) before we could copy them.
        let mut skipped = 0u64;
        let mut chunk = [WorkResult::default(); CHUNK];
        while copied < want && next < end {
            let k = {
                let inner = self.inner.lock();
                let ring = &inner.results;
                if next < ring.base {
                    skipped += ring.base - next;
                    next = ring.base;
                }
                let k = (end.saturating_sub(next) as usize)
                    .min(CHUNK)
                    .min(want - copied);
                for (j, slot) in chunk.iter_mut().take(k).enumerate() {
                    *slot = ring.get((next - ring.base) as usize + j);
                }
                k
            };
            for res in chunk.iter().take(k) {
                // On a fault nothing is consumed: the caller can retry with a good buffer.
                writer.write(res)?;
            }
            next += k as u64;
            copied += k;
        }
        let mut inner = self.inner.lock();
        let base = inner.results.base;
        // Copied results that the ring dropped meanwhile were delivered after all.
        let delivered_dropped = (next.min(base).saturating_sub(first)).saturating_sub(skipped);
        inner.results.pop_front(next.saturating_sub(base) as usize);
        inner.stats.results_dropped = inner
            .stats
            .results_dropped
            .saturating_sub(delivered_dropped);
        let unread = inner.dropped_unread.saturating_sub(delivered_dropped);
        inner.dropped_unread = 0;
        r.count = copied as u32;
        r.dropped = unread;
        Ok(())
    }

    fn stats(&self) -> Stats {
        let inner = self.inner.lock();
        Stats {
            pending: inner.pending.len() as u64,
            ..inner.stats
        }
    }

    /// Cancels all pending work of this file, waits for what is running and frees everything
    /// (close). Waits only for work functions already running.
    fn cancel_all(&self) {
        // Uncontended: no ioctl of the file can be running when it is released.
        let _ctl = self.ctl.lock();
        self.cancel_all_locked();
        let retired = core::mem::take(&mut self.inner.lock().retired);
        for item in retired.iter() {
            item.dwork.flush();
        }
        drop(retired);
    }

    /// Cancels every pending item of this file and waits for the running ones; the caller holds
    /// `ctl`.
    fn cancel_all_locked(&self) {
        let last = {
            let mut inner = self.inner.lock();
            if inner.cancel_pending(|_| true) > 0 {
                self.changed.notify_all();
            }
            inner.next_id
        };
        self.wait_running(last, |_| true);
    }

    fn bench(&self, b: &mut Bench) -> Result {
        let _one = self.shared.bench_lock.lock_interruptible()?;
        bench::ioctl(self.shared.clone(), b)
    }

    fn reset(&self) -> Result {
        // One step for the other ioctls of this file: nothing can be enqueued between the
        // cancel and the zeroing of the counters.
        let _ctl = self.ctl.lock_interruptible()?;
        self.cancel_all_locked();
        let mut inner = self.inner.lock();
        inner.results.clear();
        inner.stats = Stats::default();
        inner.dropped_unread = 0;
        drop(inner);
        self.reap();
        Ok(())
    }
}

/// The monotonic time (ns) at which a timer armed now with `delay_us` is due; 0 for none.
fn due_after(delay_us: u64) -> i64 {
    if delay_us == 0 {
        return 0;
    }
    // `delay_us` is at most `MAX_DELAY_US`: no overflow.
    crate::kthread::ktime_ns() + (delay_us * 1000) as i64
}

/// A queue an item can target.
enum QueueRef<'a> {
    Owned(&'a OwnedQueue),
    System(&'static wq::Queue),
}

#[vtable]
impl MiscDevice for FileShared {
    type Ptr = Arc<FileShared>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<Arc<FileShared>> {
        let shared = SHARED.lock().clone().ok_or(ENODEV)?;
        let readable = PollCondVarBox::new(c"FileShared::readable", kernel::static_lock_class!())?;
        Arc::pin_init(
            try_pin_init!(FileShared {
                inner <- new_mutex!(
                    FileInner {
                        next_id: 0,
                        pending: KVec::new(),
                        retired: KVec::new(),
                        results: Ring::new(),
                        stats: Stats::default(),
                        dropped_unread: 0,
                    },
                    "FileShared::inner"
                ),
                changed <- new_condvar!("FileShared::changed"),
                ctl <- Gate::new(),
                readable,
                shared,
            }? Error),
            GFP_KERNEL,
        )
    }

    fn release(device: Arc<FileShared>, _file: &File) {
        device.cancel_all();
    }

    /// `POLLIN | POLLRDNORM` while the file has unread results (RESULTS would return some).
    fn poll(me: ArcBorrow<'_, FileShared>, file: &File, table: PollTable<'_>) -> Result<u32> {
        // Register before looking, so a result stored in between still wakes the caller.
        table.register_wait(file, &me.readable);
        if me.inner.lock().results.len == 0 {
            Ok(0)
        } else {
            Ok(POLL_READABLE)
        }
    }

    fn ioctl(me: ArcBorrow<'_, FileShared>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        if _IOC_TYPE(cmd) != abi::MAGIC {
            return Err(ENOTTY);
        }
        let nr = _IOC_NR(cmd) as usize;
        match abi::COMMANDS.get(nr) {
            None => return Err(ENOTTY),
            // Known command, but another size or direction: a caller built for another ABI.
            Some(&known) if known != cmd => return Err(EINVAL),
            Some(_) => {}
        }
        let slice = UserSlice::new(UserPtr::from_addr(arg), _IOC_SIZE(cmd));
        match cmd {
            abi::IOC_INFO => slice.writer().write(&me.info())?,
            abi::IOC_ENQUEUE => {
                let (mut r, mut w) = slice.reader_writer();
                let mut req: Enqueue = r.read()?;
                // Check that the answer can be delivered before enqueueing anything.
                writable(arg, cmd, &req)?;
                FileShared::enqueue(me, &mut req)?;
                w.write(&req)?;
            }
            abi::IOC_FLUSH => {
                let (mut r, mut w) = slice.reader_writer();
                let mut t: Target = r.read()?;
                writable(arg, cmd, &t)?;
                me.flush(&mut t)?;
                w.write(&t)?;
            }
            abi::IOC_CANCEL => {
                let (mut r, mut w) = slice.reader_writer();
                let mut t: Target = r.read()?;
                writable(arg, cmd, &t)?;
                me.cancel(&mut t)?;
                w.write(&t)?;
            }
            abi::IOC_MOD_DELAY => {
                let m: ModDelay = slice.reader().read()?;
                me.mod_delay(&m)?;
            }
            abi::IOC_RESULTS => {
                let (mut r, mut w) = slice.reader_writer();
                let mut res: Results = r.read()?;
                writable(arg, cmd, &res)?;
                me.results(&mut res)?;
                w.write(&res)?;
            }
            abi::IOC_STATS => slice.writer().write(&me.stats())?,
            abi::IOC_RESET => me.reset()?,
            abi::IOC_BENCH => {
                let (mut r, mut w) = slice.reader_writer();
                let mut b: Bench = r.read()?;
                me.bench(&mut b)?;
                w.write(&b)?;
            }
            _ => return Err(ENOTTY),
        }
        Ok(0)
    }
}

/// Checks that the argument of `cmd` at `arg` can be written back, by writing `v` (what was
/// read from it) there: calls that act and then report check this first, so that a bad
/// pointer fails with `EFAULT` before anything has happened.
fn writable<T: kernel::transmute::AsBytes>(arg: usize, cmd: u32, v: &T) -> Result {
    UserSlice::new(UserPtr::from_addr(arg), _IOC_SIZE(cmd))
        .writer()
        .write(v)
}
