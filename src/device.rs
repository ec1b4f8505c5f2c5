// SPDX-License-Identifier: GPL-2.0

//! The `/dev/rust_wq` misc device: userspace enqueues test work and reads back what ran where.
//!
//! The ABI is `include/rust_wq.h` (mirrored in [`crate::abi`]). Work belongs to the open file
//! that enqueued it; closing the file cancels what has not started and waits for what runs.
//! This file uses only the safe API of [`crate::workqueue`].

use crate::abi::{self, Bench, Enqueue, Info, ModDelay, Results, Stats, Target, WorkResult};
use crate::bench;
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
    AtomicU64,
    Ordering, //
};
use kernel::{
    fs::File,
    ioctl::{
        _IOC_NR,
        _IOC_SIZE,
        _IOC_TYPE, //
    },
    miscdevice::{
        MiscDevice,
        MiscDeviceRegistration, //
    },
    new_mutex,
    prelude::*,
    sync::{
        Arc,
        ArcBorrow,
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
    /// One benchmark at a time.
    #[pin]
    bench_lock: Mutex<()>,
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

impl Shared {
    /// Creates the module's queues.
    pub(crate) fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            percpu: OwnedQueue::builder().percpu().build(fmt!("rust_wq_percpu"))?,
            unbound: OwnedQueue::builder().unbound().build(fmt!("rust_wq_unbound"))?,
            ordered: OwnedQueue::builder().ordered().build(fmt!("rust_wq_ordered"))?,
            bench: OwnedQueue::builder().unbound().sysfs().build(fmt!("rust_wq_bench"))?,
            seq: AtomicU64::new(0),
            bench_lock <- new_mutex!((), "Shared::bench_lock"),
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
        // Queues dropped inside work items are destroyed on `system_dfl_wq`: wait for them.
        OwnedQueue::wait_reaped();
    }
}

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
    file: Arc<FileShared>,
}

impl_has_delayed_work! { impl HasDelayedWork for Item { self.dwork } }

impl DelayedWorkItem for Item {
    type Pointer = Arc<Item>;

    fn run(this: Arc<Item>) {
        let start = Instant::<Monotonic>::now();
        let cpu = kernel::cpu::CpuId::current().as_u32();
        let mut flags = 0;
        if wq::context::in_worker() && this.dwork.is_current() {
            flags |= abi::RES_PROCESS_CTX;
        }
        if this.sleep_us > 0 {
            // `sleep_us` is at most `MAX_SLEEP_US`, far below `i64::MAX`. `fsleep` busy-waits
            // below 11 us, so shorter sleeps are rounded up to that.
            fsleep(Delta::from_micros(this.sleep_us.max(MIN_SLEEP_US) as i64));
            let slept_for = start.elapsed().as_nanos();
            // `fsleep` blocks in the scheduler (a sleeping wait; in atomic context the debug kernel
            // would report it), so having waited at least the time asked for means it slept.
            if slept_for >= (this.sleep_us * 1000) as i64 {
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
                "work id={} tag={} queue={} req_cpu={} (-1: any) cpu={} latency={}us runtime={}us seq={} process_ctx={} slept={}\n",
                result.id,
                result.tag,
                queue_name(result.queue),
                req_cpu,
                result.cpu,
                result.latency_ns / 1000,
                result.runtime_ns / 1000,
                seq,
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

/// The mutable state of one open file.
///
/// # Invariants
///
/// `pending` is sorted by id. `results.capacity() >= results.len() + pending.len()` and
/// `retired.capacity() >= retired.len() + pending.len()`, so a finishing item never allocates.
struct FileInner {
    next_id: u64,
    /// Items enqueued and neither finished nor cancelled.
    pending: KVec<Arc<Item>>,
    /// Items that finished; kept until flushed (their worker may still be returning).
    retired: KVec<Arc<Item>>,
    /// Results not yet read, in execution order.
    results: KVec<WorkResult>,
    stats: Stats,
}

impl FileInner {
    fn find_pending(&self, id: u64) -> Option<usize> {
        self.pending.binary_search_by_key(&id, |i| i.id).ok()
    }

    /// Drops the oldest results beyond [`abi::MAX_RESULTS`].
    fn trim_results(&mut self) {
        let max = abi::MAX_RESULTS as usize;
        if self.results.len() > max {
            let excess = self.results.len() - max;
            let mut seen = 0;
            self.results.retain(|_| {
                seen += 1;
                seen > excess
            });
            self.stats.results_dropped += excess as u64;
        }
    }
}

/// The state of one open file of `/dev/rust_wq`, shared with its items.
#[pin_data]
pub(crate) struct FileShared {
    #[pin]
    inner: Mutex<FileInner>,
    /// Serialises enqueue, cancel, delay changes, reset and close of this file, which wait for
    /// items outside `inner`. Never taken by work functions.
    #[pin]
    ctl: Mutex<()>,
    shared: Arc<Shared>,
}

impl FileShared {
    /// Records a finished item. Called by the item's work function.
    fn finished(&self, item: &Arc<Item>, result: WorkResult) {
        let mut inner = self.inner.lock();
        let Some(idx) = inner.find_pending(item.id) else {
            // The file is being reset or closed; nobody will read this result.
            return;
        };
        if let Ok(me) = inner.pending.remove(idx) {
            // Cannot fail: the invariant keeps room for every pending item.
            if let Err(e) = inner.retired.push_within_capacity(me) {
                drop(e);
            }
        }
        if inner.results.push_within_capacity(result).is_err() {
            inner.stats.results_dropped += 1;
        }
        inner.stats.executed += 1;
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
            // The item finished its work function; wait until its worker has returned too.
            item.dwork.flush();
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
        // A refused item is handed back and dropped here, outside any lock.
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
        if req.version != abi::ABI_VERSION || req.reserved != [0; 2] {
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
        // The whole call is atomic with respect to CANCEL, MOD_DELAY, RESET and close of this
        // file: they cannot see its items half queued. (Taken before the CPU-hotplug lock, as
        // everywhere.)
        let _ctl = me.ctl.lock();
        // Held until every item is queued: the CPU cannot go offline in between.
        let cpu = match req.cpu {
            abi::CPU_ANY => None,
            c => Some(wq::cpu::online_cpu(c)?),
        };

        // Make every item first, so that running out of memory changes nothing.
        let count = req.count as usize;
        let mut items = KVec::with_capacity(count, GFP_KERNEL)?;
        let now = Instant::<Monotonic>::now();
        let first_id;
        {
            let mut inner = me.inner.lock();
            if inner.pending.len() + count > abi::MAX_PENDING as usize {
                return Err(EBUSY);
            }
            let room = inner.pending.len() + count;
            inner.pending.reserve(count, GFP_KERNEL)?;
            inner.results.reserve(room, GFP_KERNEL)?;
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

        let mut failed = None;
        for (n, item) in items.iter().enumerate() {
            if let Err(e) = me.arm(item.clone(), cpu, delay) {
                failed = Some((n, e));
                break;
            }
        }
        if let Some((armed, err)) = failed {
            // Undo the whole call: cancel what was armed (it has not run: delays are at least
            // one jiffy and we are right behind it) and forget every item of this call.
            let mut cancelled = 0u64;
            for item in items.iter().take(armed) {
                if item.dwork.cancel_sync().is_some() {
                    cancelled += 1;
                }
            }
            let mut inner = me.inner.lock();
            for item in items.iter() {
                if let Some(idx) = inner.find_pending(item.id) {
                    let _ = inner.pending.remove(idx);
                }
            }
            // Items that ran anyway were counted by `finished`; count the rest as never enqueued.
            let never_ran = u64::from(req.count) - (armed as u64 - cancelled);
            // Saturating: a concurrent RESET may have zeroed the counters meanwhile.
            inner.stats.enqueued = inner.stats.enqueued.saturating_sub(never_ran);
            drop(inner);
            return Err(err);
        }
        req.first_id = first_id;
        Ok(())
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

    fn flush(&self, t: &mut Target) -> Result {
        Self::check_target(t)?;
        let items = self.select(t)?;
        for item in items.iter() {
            item.dwork.flush();
        }
        t.count = items.len() as u64;
        drop(items);
        self.reap();
        Ok(())
    }

    /// Cancels `items`, returning how many were cancelled before they started.
    fn cancel_items(&self, items: &KVec<Arc<Item>>) -> u64 {
        let mut n = 0;
        for item in items.iter() {
            if item.dwork.cancel_sync().is_some() {
                let mut inner = self.inner.lock();
                if let Some(idx) = inner.find_pending(item.id) {
                    let _ = inner.pending.remove(idx);
                }
                inner.stats.cancelled += 1;
                n += 1;
            }
        }
        n
    }

    fn cancel(&self, t: &mut Target) -> Result {
        Self::check_target(t)?;
        let _ctl = self.ctl.lock();
        let items = self.select(t)?;
        if t.kind == abi::TARGET_ID && items.is_empty() {
            return Err(ENOENT);
        }
        let n = self.cancel_items(&items);
        drop(items);
        if t.kind == abi::TARGET_ID && n == 0 {
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
        let _ctl = self.ctl.lock();
        let item = {
            let inner = self.inner.lock();
            let idx = inner.find_pending(m.id).ok_or(ENOENT)?;
            inner.pending[idx].clone()
        };
        // "Change the delay only if still pending": take it off its queue; if that wins, the item
        // has not run and is queued again with the new delay, so it still runs exactly once.
        if item.dwork.cancel_sync().is_none() {
            return Err(ENOENT);
        }
        let cpu = match item.cpu {
            abi::CPU_ANY => Ok(None),
            c => wq::cpu::online_cpu(c).map(Some),
        };
        let res = cpu.and_then(|cpu| self.arm(item.clone(), cpu, delay));
        if let Err(e) = res {
            // It cannot be queued again (CPU gone offline, or no memory): it stays cancelled.
            let mut inner = self.inner.lock();
            if let Some(idx) = inner.find_pending(item.id) {
                let _ = inner.pending.remove(idx);
            }
            inner.stats.cancelled += 1;
            drop(inner);
            return Err(e);
        }
        Ok(())
    }

    fn results(&self, r: &mut Results) -> Result {
        if r.version != abi::ABI_VERSION || r.pad != 0 || r.reserved != [0; 2] {
            return Err(EINVAL);
        }
        if r.buf == 0 && r.capacity > 0 {
            return Err(EINVAL);
        }
        self.reap();
        let mut inner = self.inner.lock();
        inner.trim_results();
        let n = inner.results.len().min(r.capacity as usize);
        let size = n * core::mem::size_of::<WorkResult>();
        let mut writer = UserSlice::new(UserPtr::from_addr(r.buf as usize), size).writer();
        for res in inner.results.iter().take(n) {
            // On a fault nothing is consumed: the caller can retry with a good buffer.
            writer.write(res)?;
        }
        let mut seen = 0;
        inner.results.retain(|_| {
            seen += 1;
            seen > n
        });
        r.count = n as u32;
        r.dropped = core::mem::take(&mut inner.stats.results_dropped);
        Ok(())
    }

    fn stats(&self) -> Stats {
        let inner = self.inner.lock();
        Stats {
            pending: inner.pending.len() as u64,
            ..inner.stats
        }
    }

    /// Cancels all pending work of this file, waits for running work and frees everything.
    fn cancel_all(&self) {
        let _ctl = self.ctl.lock();
        self.cancel_all_locked();
    }

    /// [`FileShared::cancel_all`] for a caller that holds `ctl`.
    fn cancel_all_locked(&self) {
        let (pending, retired) = {
            let mut inner = self.inner.lock();
            (
                core::mem::take(&mut inner.pending),
                core::mem::take(&mut inner.retired),
            )
        };
        for item in pending.iter() {
            // Cancels it, or waits until it has finished running.
            // The pointer handed back (if it was pending) is dropped right here.
            drop(item.dwork.cancel_sync());
        }
        for item in retired.iter() {
            item.dwork.flush();
        }
        drop(pending);
        drop(retired);
    }

    fn bench(&self, b: &mut Bench) -> Result {
        let _one = self.shared.bench_lock.lock();
        bench::ioctl(self.shared.clone(), b)
    }

    fn reset(&self) {
        // One step for the other ioctls of this file: nothing can be enqueued between the
        // cancel and the zeroing of the counters.
        let _ctl = self.ctl.lock();
        self.cancel_all_locked();
        let mut inner = self.inner.lock();
        inner.results.clear();
        inner.stats = Stats::default();
    }
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
        Arc::pin_init(
            try_pin_init!(FileShared {
                inner <- new_mutex!(
                    FileInner {
                        next_id: 0,
                        pending: KVec::new(),
                        retired: KVec::new(),
                        results: KVec::new(),
                        stats: Stats::default(),
                    },
                    "FileShared::inner"
                ),
                ctl <- new_mutex!((), "FileShared::ctl"),
                shared,
            }? Error),
            GFP_KERNEL,
        )
    }

    fn release(device: Arc<FileShared>, _file: &File) {
        device.cancel_all();
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
                UserSlice::new(UserPtr::from_addr(arg), _IOC_SIZE(cmd))
                    .writer()
                    .write(&req)?;
                FileShared::enqueue(me, &mut req)?;
                w.write(&req)?;
            }
            abi::IOC_FLUSH => {
                let (mut r, mut w) = slice.reader_writer();
                let mut t: Target = r.read()?;
                me.flush(&mut t)?;
                w.write(&t)?;
            }
            abi::IOC_CANCEL => {
                let (mut r, mut w) = slice.reader_writer();
                let mut t: Target = r.read()?;
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
                me.results(&mut res)?;
                w.write(&res)?;
            }
            abi::IOC_STATS => slice.writer().write(&me.stats())?,
            abi::IOC_RESET => me.reset(),
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
