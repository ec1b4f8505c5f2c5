// SPDX-License-Identifier: GPL-2.0

//! The torture run's shared state, its queues, and the random operations the actors pick.

use super::items::{
    clone_ref,
    put,
    Acct,
    DItem,
    PItem,
    Tracked, //
};
use crate::workqueue::raw_spinlock::{
    new_raw_spinlock_irq,
    RawSpinLockIrq, //
};
use crate::workqueue::{
    cpu,
    system_dfl,
    Delay,
    OwnedQueue,
    //
};
use core::sync::atomic::{
    AtomicBool,
    AtomicI64,
    AtomicU64,
    Ordering::SeqCst, //
};
use kernel::{
    new_mutex,
    prelude::*,
    sync::{
        aref::ARef,
        Arc,
        Mutex, //
    },
};

/// Where an operation runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Ctx {
    /// A kthread (task context, may sleep).
    Task = 0,
    /// An hrtimer callback in hard-interrupt context.
    HardIrq = 1,
    /// A BH work item on `system_bh_wq` (softirq context).
    SoftIrq = 2,
    /// A work item on the run's `WQ_MEM_RECLAIM` queue (a worker, task context).
    Worker = 3,
}

pub(super) const NR_CTX: usize = 4;
pub(super) const CTX_NAMES: [&str; NR_CTX] = ["task", "hardirq", "softirq", "reclaim_worker"];

/// The operations, in the order of [`OP_NAMES`].
#[derive(Clone, Copy)]
pub(super) enum Op {
    Enqueue = 0,
    EnqueueOn,
    EnqueueDelayed,
    ModDelayed,
    Cancel,
    CancelSync,
    Disable,
    Enable,
    Flush,
    FlushQueue,
    Drain,
    DropQueue,
    Rearm,
}

pub(super) const NR_OPS: usize = 13;
pub(super) const OP_NAMES: [&str; NR_OPS] = [
    "enqueue",
    "enqueue_on",
    "enqueue_delayed",
    "mod_delayed",
    "cancel",
    "cancel_sync",
    "disable",
    "enable",
    "flush",
    "flush_queue",
    "drain",
    "drop_queue",
    "rearm",
];

/// Relative weights of the operations in task context.
const TASK_OPS: [(Op, u32); NR_OPS] = [
    (Op::Enqueue, 10),
    (Op::EnqueueOn, 5),
    (Op::EnqueueDelayed, 12),
    (Op::ModDelayed, 6),
    (Op::Cancel, 6),
    (Op::CancelSync, 4),
    (Op::Disable, 3),
    (Op::Enable, 4),
    (Op::Flush, 2),
    (Op::FlushQueue, 1),
    (Op::Drain, 1),
    (Op::DropQueue, 1),
    (Op::Rearm, 5),
];

/// Relative weights in interrupt context: only what the layer allows there (nothing sleeps).
const IRQ_OPS: [(Op, u32); 8] = [
    (Op::Enqueue, 10),
    (Op::EnqueueOn, 5),
    (Op::EnqueueDelayed, 12),
    (Op::ModDelayed, 6),
    (Op::Cancel, 6),
    (Op::Disable, 3),
    (Op::Enable, 4),
    (Op::Rearm, 5),
];

pub(super) const NR_SLOTS: usize = 4;
/// Queue drops a run may make at once, and then per second: each queue made registers lockdep
/// classes and chains (its completion map), and `make stress` (three 120 s runs in one boot,
/// about 200 queues a second unbounded) filled lockdep's chain table ("BUG:
/// MAX_LOCKDEP_CHAINS too low!", lockdep off for the rest of the boot) in its second run. The
/// burst keeps the first seconds, where the races with drops are found, as busy as before.
const DROP_BURST: u64 = 1500;
const DROPS_PER_SEC: u64 = 25;
pub(super) const NR_PITEMS: usize = 12;
pub(super) const NR_DITEMS: usize = 32;

/// A small xorshift64* generator; each actor has its own, derived from the run's seed.
pub(super) struct Rng(u64);

impl Rng {
    /// The generator of actor `actor` for `seed` (splitmix64 of both, never zero).
    pub(super) fn new(seed: u64, actor: u64) -> Self {
        let mut z = seed
            .wrapping_add(actor.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub(super) fn state(&self) -> u64 {
        self.0
    }

    pub(super) fn from_state(s: u64) -> Self {
        Rng(s | 1)
    }

    pub(super) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n > 0`).
    pub(super) fn below(&mut self, n: usize) -> usize {
        (((self.next() >> 32) * (n as u64)) >> 32) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// One of the run's own queues, with its generation (unique in the run, never 0).
pub(super) struct TQueue {
    pub(super) q: OwnedQueue,
    pub(super) gen: u64,
}

/// A place for a queue. Interrupt contexts use it under `irq` (a raw spinlock), without taking
/// a reference, so the last reference is always dropped in task context; task operations that
/// sleep on the queue (`flush`, `drain`) hold `task`, and so does the task that drops it.
#[pin_data]
pub(super) struct Slot {
    #[pin]
    task: Mutex<Option<Arc<TQueue>>>,
    #[pin]
    irq: RawSpinLockIrq<Option<Arc<TQueue>>>,
}

impl Slot {
    pub(super) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            task <- new_mutex!(None, "torture::Slot::task"),
            irq <- new_raw_spinlock_irq!(None, "torture::Slot::irq"),
        })
    }
}

/// The invariants, in the order of [`INV_NAMES`].
pub(super) const NR_INV: usize = 7;
pub(super) const INV_NAMES: [&str; NR_INV] = [
    "no_pointer_given_back_twice",
    "no_pointer_leaked",
    "no_item_aimed_at_destroyed_queue",
    "nothing_queued_while_disabled",
    "counts_conserve",
    "cancel_sync_leaves_item_idle",
    "nothing_pending_at_end",
];
pub(super) const INV_TWICE: usize = 0;
pub(super) const INV_LEAKED: usize = 1;
pub(super) const INV_DEAD_QUEUE: usize = 2;
pub(super) const INV_DISABLED: usize = 3;
pub(super) const INV_CONSERVE: usize = 4;
pub(super) const INV_CANCEL_SYNC: usize = 5;
pub(super) const INV_END_IDLE: usize = 6;

/// Everything the actors share.
pub(super) struct Shared {
    pub(super) seed: u64,
    /// The races this run provokes (`RACE_*`).
    pub(super) races: u32,
    pub(super) start_ns: i64,
    pub(super) pitems: KVec<Pin<KBox<PItem>>>,
    pub(super) ditems: KVec<Pin<KBox<DItem>>>,
    pub(super) slots: KVec<Pin<KBox<Slot>>>,
    next_gen: AtomicU64,
    /// Per slot: the generation of its queue being dropped right now (0: none). Several
    /// slots can be dropping at once (one per kthread).
    dropping: [AtomicU64; NR_SLOTS],
    pub(super) stop: AtomicBool,
    /// Operations per context and kind.
    pub(super) ops: [[AtomicU64; NR_OPS]; NR_CTX],
    /// Violations per invariant, and when each was first seen (ns after the start, -1: never).
    pub(super) viol: [AtomicU64; NR_INV],
    pub(super) first_ns: [AtomicI64; NR_INV],
    /// Queues made and dropped.
    pub(super) queues_made: AtomicU64,
    pub(super) queues_dropped: AtomicU64,
    /// Spurious enables: `enable()` on an item the torturer did not disable (the plain-`Work`
    /// API documents it as a no-op). Counted apart from `ops`.
    pub(super) spurious_enables: AtomicU64,
}

/// The races a run provokes on purpose, as bits of a mask (the optional third number written
/// to debugfs `rust_wq/torture`; default [`RACES_DEFAULT`]). Running with one bit at a time
/// tells which race a failed check or a splat comes from.
///
/// This is the one place that knows which of the layer's operations were racy by design before
/// the fixes of the 2026-12 review (`RACE_DRAIN`, `RACE_ENABLE`).
///
/// While a queue is dropped, other contexts re-arm the items that were armed on it onto
/// another queue (review P1). Without it, no context arms such an item during the drop (best
/// effort). Legal with any API: it stays.
pub(super) const RACE_REARM_ON_DROP: u32 = 1;
/// Was `OwnedQueue::drain(&self)` while other contexts enqueue on the same queue (review P3).
/// `drain` takes `&mut self` now, so the race no longer compiles
/// (`tests/compile_fail/drain_shared_queue.rs`): the bit is accepted and ignored, and the
/// drain op is a queue flush (the same wait; the slots' queues are shared).
pub(super) const RACE_DRAIN: u32 = 2;
/// `enable()` on items that other contexts `cancel_sync()`, without a disable of its own to
/// undo (review P5, and L7 for delayed items): the layer's enable is a no-op then, and must
/// not undo `cancel_sync()`'s disable.
pub(super) const RACE_ENABLE: u32 = 4;
/// `cancel_sync()` of system items, called from a work item on a `WQ_MEM_RECLAIM` queue while
/// the target may be running on `system_dfl_wq` (review P4: C's `cancel_delayed_work_sync()` is
/// silent there, a wait with `flush_work()` warns). Legal with any API: it stays.
pub(super) const RACE_CANCEL_IN_RECLAIM: u32 = 8;
/// Every race above.
pub(super) const RACES_ALL: u32 = RACE_REARM_ON_DROP | RACE_ENABLE | RACE_CANCEL_IN_RECLAIM;
/// The bits a write may name: every race, and the retired [`RACE_DRAIN`].
pub(super) const RACES_ACCEPTED: u32 = RACES_ALL | RACE_DRAIN;
/// What a run provokes when the write names no mask.
pub(super) const RACES_DEFAULT: u32 = RACES_ALL;

impl Shared {
    pub(super) fn new(seed: u64, races: u32) -> Result<Arc<Self>> {
        let mut pitems = KVec::with_capacity(NR_PITEMS, GFP_KERNEL)?;
        for i in 0..NR_PITEMS {
            pitems.push(KBox::pin_init(PItem::new(i), GFP_KERNEL)?, GFP_KERNEL)?;
        }
        let mut ditems = KVec::with_capacity(NR_DITEMS, GFP_KERNEL)?;
        for i in 0..NR_DITEMS {
            ditems.push(KBox::pin_init(DItem::new(i), GFP_KERNEL)?, GFP_KERNEL)?;
        }
        let mut slots = KVec::with_capacity(NR_SLOTS, GFP_KERNEL)?;
        for _ in 0..NR_SLOTS {
            slots.push(KBox::pin_init(Slot::new(), GFP_KERNEL)?, GFP_KERNEL)?;
        }
        let s = Arc::new(
            Shared {
                seed,
                races,
                start_ns: crate::kthread::ktime_ns(),
                pitems,
                ditems,
                slots,
                next_gen: AtomicU64::new(1),
                dropping: [const { AtomicU64::new(0) }; NR_SLOTS],
                stop: AtomicBool::new(false),
                ops: [const { [const { AtomicU64::new(0) }; NR_OPS] }; NR_CTX],
                viol: [const { AtomicU64::new(0) }; NR_INV],
                first_ns: [const { AtomicI64::new(-1) }; NR_INV],
                queues_made: AtomicU64::new(0),
                queues_dropped: AtomicU64::new(0),
                spurious_enables: AtomicU64::new(0),
            },
            GFP_KERNEL,
        )?;
        for i in 0..NR_SLOTS {
            s.refill(i)?;
        }
        Ok(s)
    }

    /// Records a violation of invariant `inv`; the first one of each kind is logged with the
    /// time since the start.
    pub(super) fn violation(&self, inv: usize, what: core::fmt::Arguments<'_>) {
        let (Some(v), Some(f)) = (self.viol.get(inv), self.first_ns.get(inv)) else {
            return;
        };
        if v.fetch_add(1, SeqCst) == 0 {
            let t = crate::kthread::ktime_ns() - self.start_ns;
            // Only the first caller sets it.
            let _ = f.compare_exchange(-1, t, SeqCst, SeqCst);
            pr_err!(
                "torture seed {}: {} violated after {} ms: {}\n",
                self.seed,
                INV_NAMES.get(inv).unwrap_or(&"?"),
                t / 1_000_000,
                what
            );
        }
    }

    fn count(&self, ctx: Ctx, op: Op) {
        if let Some(c) = self.ops.get(ctx as usize).and_then(|o| o.get(op as usize)) {
            c.fetch_add(1, SeqCst);
        }
    }

    /// Makes a new queue for slot `i` if it is empty. Task context.
    pub(super) fn refill(&self, i: usize) -> Result {
        let Some(slot) = self.slots.get(i) else {
            return Ok(());
        };
        let mut t = slot.task.lock();
        if t.is_some() {
            return Ok(());
        }
        let gen = self.next_gen.fetch_add(1, SeqCst);
        let b = OwnedQueue::builder();
        let q = match gen % 3 {
            0 => b.percpu().build(fmt!("rust_wq_tq{}", gen))?,
            1 => b.unbound().build(fmt!("rust_wq_tq{}", gen))?,
            _ => b.ordered().build(fmt!("rust_wq_tq{}", gen))?,
        };
        let a = Arc::new(TQueue { q, gen }, GFP_KERNEL)?;
        *slot.irq.lock() = Some(a.clone());
        *t = Some(a);
        self.queues_made.fetch_add(1, SeqCst);
        Ok(())
    }

    /// Takes the queue out of slot `i` and drops it, then checks that no item is left aimed at
    /// it. Task context. Returns the generation dropped (0: the slot was empty).
    pub(super) fn drop_queue(&self, i: usize) -> u64 {
        let (Some(slot), Some(dropping)) = (self.slots.get(i), self.dropping.get(i)) else {
            return 0;
        };
        let mut t = slot.task.lock();
        let a = t.take();
        let b = slot.irq.lock().take();
        drop(t);
        let Some(gen) = a.as_ref().map(|q| q.gen) else {
            return 0;
        };
        dropping.store(gen, SeqCst);
        if self.races & RACE_REARM_ON_DROP == 0 {
            // The other half of `hands_off`: every arm holds its item's stamp lock from the
            // check to the end, so once each lock has been free after `dropping` was set, an
            // arm that missed it has finished, and every later one sees it.
            for it in self.ditems.iter() {
                drop(it.acct().stamp.lock());
            }
        }
        // The last reference: `OwnedQueue::drop` cancels what is armed on it, gives the
        // pointers back (dropped inside the layer: counted by `dec_ref`), destroys the queue.
        drop(b);
        drop(a);
        dropping.store(0, SeqCst);
        self.queues_dropped.fetch_add(1, SeqCst);
        self.check_dead(gen);
        gen
    }

    /// After queue `gen` was destroyed: no item whose last successful enqueue aimed at it may
    /// still be pending. One that is would fire into the freed queue: it is reported, and
    /// cancelled (its pointer given back) so that it cannot.
    fn check_dead(&self, gen: u64) {
        for it in self.pitems.iter() {
            let s = it.acct().stamp.lock();
            if *s == gen && quiet_read(it.acct(), || it.w.is_pending()) {
                drop(s);
                self.violation(
                    INV_DEAD_QUEUE,
                    fmt!("plain item {} pending on destroyed queue {}", it.idx(), gen),
                );
                if let Some(p) = it.acct().touch(|| it.w.cancel()) {
                    it.acct().got_back.fetch_add(1, SeqCst);
                    put(p);
                }
            }
        }
        for it in self.ditems.iter() {
            let s = it.acct().stamp.lock();
            if *s == gen && quiet_read(it.acct(), || it.dw.is_pending()) {
                drop(s);
                self.violation(
                    INV_DEAD_QUEUE,
                    fmt!("delayed item {} armed on destroyed queue {}", it.idx(), gen),
                );
                if let Some(p) = it.acct().touch(|| it.dw.cancel()) {
                    it.acct().got_back.fetch_add(1, SeqCst);
                    put(p);
                }
            }
        }
    }

    /// Whether an arm of an item whose stamp is `stamp` must be skipped: without
    /// `RACE_REARM_ON_DROP`, no item armed on a queue being dropped is armed anywhere until the
    /// drop is over (any such arm, not only the targeted re-arm, is the race of P1). Call with
    /// the item's stamp lock held until the arm is over (see `drop_queue`).
    fn hands_off(&self, stamp: u64) -> bool {
        if self.races & RACE_REARM_ON_DROP != 0 {
            return false;
        }
        stamp != 0 && self.dropping.iter().any(|d| d.load(SeqCst) == stamp)
    }

    /// Runs `f` on the queue of slot `i` under the slot's spinlock (any context).
    fn with_queue<R>(&self, i: usize, f: impl FnOnce(&TQueue) -> R) -> Option<R> {
        let slot = self.slots.get(i)?;
        let g = slot.irq.lock();
        g.as_deref().map(f)
    }

    /// Runs `f` on the queue of slot `i` holding the slot's mutex (task context; may sleep).
    fn with_queue_task<R>(&self, i: usize, f: impl FnOnce(&TQueue) -> R) -> Option<R> {
        let slot = self.slots.get(i)?;
        let g = slot.task.lock();
        g.as_deref().map(f)
    }

    /// One random operation from context `ctx`.
    pub(super) fn random_op(&self, ctx: Ctx, rng: &mut Rng) {
        // While a queue is being dropped, the other contexts mostly re-arm items that were
        // armed on it onto another queue: the race of P1.
        let start = rng.below(NR_SLOTS);
        let dropping = (0..NR_SLOTS)
            .filter_map(|j| self.dropping.get((start + j) % NR_SLOTS))
            .map(|d| d.load(SeqCst))
            .find(|&g| g != 0)
            .unwrap_or(0);
        if dropping != 0 && self.races & RACE_REARM_ON_DROP != 0 && rng.chance(2) {
            self.count(ctx, Op::Rearm);
            self.rearm_from(dropping, rng);
            return;
        }
        let op = if ctx == Ctx::Task {
            pick(&TASK_OPS, rng)
        } else {
            pick(&IRQ_OPS, rng)
        };
        // Without its race, `drain` is a queue flush (the same wait, and nobody is refused).
        let op = match op {
            Op::Drain => Op::FlushQueue,
            op => op,
        };
        self.count(ctx, op);
        let slot = rng.below(NR_SLOTS);
        let plain = rng.chance(2);
        let pi = rng.below(NR_PITEMS);
        let di = rng.below(NR_DITEMS);
        let (Some(p), Some(d)) = (self.pitems.get(pi), self.ditems.get(di)) else {
            return;
        };
        let (p, d): (&PItem, &DItem) = (p, d);
        match op {
            Op::Enqueue => self.enqueue_p(p, slot, None),
            Op::EnqueueOn => {
                let cpu = rng.below(cpu::nr_cpu_ids() as usize) as u32;
                // Online CPUs only: a possible CPU that never came up is P6, not this test.
                self.enqueue_p(p, slot, cpu::online_cpu(cpu).ok())
            }
            Op::EnqueueDelayed => self.enqueue_d(d, slot, delay(rng), false),
            Op::ModDelayed => self.enqueue_d(d, slot, delay(rng), true),
            Op::Rearm => {
                // Cancel, and put the item straight back, on another queue.
                if let Some(ptr) = d.acct().touch(|| d.dw.cancel()) {
                    d.acct().got_back.fetch_add(1, SeqCst);
                    put(ptr);
                }
                self.enqueue_d(d, (slot + 1) % NR_SLOTS, delay(rng), false);
            }
            Op::Cancel => {
                if plain {
                    if let Some(ptr) = p.acct().touch(|| p.w.cancel()) {
                        p.acct().got_back.fetch_add(1, SeqCst);
                        put(ptr);
                    }
                } else if let Some(ptr) = d.acct().touch(|| d.dw.cancel()) {
                    d.acct().got_back.fetch_add(1, SeqCst);
                    put(ptr);
                }
            }
            Op::CancelSync => {
                if plain {
                    self.cancel_sync_checked(
                        p,
                        "plain",
                        |x| x.w.cancel_sync(),
                        |x| x.w.is_pending() || x.w.is_running(),
                    )
                } else {
                    self.cancel_sync_checked(
                        d,
                        "delayed",
                        |x| x.dw.cancel_sync(),
                        |x| x.dw.is_pending() || x.dw.is_running(),
                    )
                }
            }
            Op::Disable => {
                if plain {
                    self.disable(
                        p,
                        true,
                        ctx == Ctx::Task && rng.chance(2),
                        |x, sync| {
                            if sync {
                                x.w.disable_sync()
                            } else {
                                x.w.disable()
                            }
                        },
                        |x| x.w.is_pending(),
                    )
                } else {
                    self.disable(
                        d,
                        false,
                        ctx == Ctx::Task && rng.chance(2),
                        |x, sync| {
                            if sync {
                                x.dw.disable_sync()
                            } else {
                                x.dw.disable()
                            }
                        },
                        |x| x.dw.is_pending(),
                    )
                }
            }
            Op::Enable => {
                if plain {
                    self.enable(p, |x| {
                        x.w.enable();
                    })
                } else {
                    self.enable(d, |x| {
                        x.dw.enable();
                    })
                }
            }
            Op::Flush => {
                if plain {
                    p.w.flush();
                } else {
                    d.dw.flush();
                }
            }
            Op::FlushQueue => {
                self.with_queue_task(slot, |q| q.q.flush());
            }
            // Mapped to `FlushQueue` above (see `RACE_DRAIN`).
            Op::Drain => {}
            // Over the budget (see `DROP_BURST`): the same wait as a drop, without the queue.
            Op::DropQueue if !self.may_drop_queue() => {
                self.with_queue_task(slot, |q| q.q.flush());
            }
            Op::DropQueue => {
                self.drop_queue(slot);
                if let Err(e) = self.refill(slot) {
                    pr_warn!(
                        "torture: cannot make a queue ({:?}); the slot stays empty\n",
                        e
                    );
                }
            }
        }
    }

    /// Whether the run's queue-drop budget allows one more (see [`DROP_BURST`]).
    fn may_drop_queue(&self) -> bool {
        let secs =
            u64::try_from(crate::kthread::ktime_ns() - self.start_ns).unwrap_or(0) / 1_000_000_000;
        self.queues_dropped.load(SeqCst) < DROP_BURST + DROPS_PER_SEC * secs
    }

    /// `cancel_sync()` of a random system item, from the reclaim worker (`Ctx::Worker`).
    pub(super) fn cancel_sync_from_worker(&self, rng: &mut Rng) {
        self.count(Ctx::Worker, Op::CancelSync);
        // System items have odd indices; they never wait for anything, so this cannot deadlock.
        let pi = rng.below(NR_PITEMS / 2) * 2 + 1;
        let di = rng.below(NR_DITEMS / 2) * 2 + 1;
        if rng.chance(2) {
            if let Some(p) = self.pitems.get(pi) {
                self.cancel_sync_checked(
                    &**p,
                    "plain",
                    |x| x.w.cancel_sync(),
                    |x| x.w.is_pending() || x.w.is_running(),
                );
            }
        } else if let Some(d) = self.ditems.get(di) {
            self.cancel_sync_checked(
                &**d,
                "delayed",
                |x| x.dw.cancel_sync(),
                |x| x.dw.is_pending() || x.dw.is_running(),
            );
        }
    }

    /// Plain enqueue of `p` (on slot `slot`, or on `system_dfl_wq` for a system item).
    fn enqueue_p(&self, p: &PItem, slot: usize, cpu: Option<cpu::CpuId>) {
        let a = p.acct();
        a.ext_begin.fetch_add(1, SeqCst);
        a.touch_begin.fetch_add(1, SeqCst);
        // Enables first: an enable in flight (begun, its layer call not yet made) makes the
        // depth read below meaningless, and `enables_idle` says so.
        let (en0, depth0) = (a.enables_idle(), a.depth());
        let ptr = clone_ref(p);
        let r = if p.is_system() {
            let mut s = a.stamp.lock();
            let r = match cpu {
                Some(c) => system_dfl().enqueue_on(c, ptr).map_err(|e| e.into_inner()),
                None => system_dfl().enqueue(ptr).map_err(|e| e.into_inner()),
            };
            if r.is_ok() {
                *s = 0;
            }
            Some(r)
        } else {
            // Hand the pointer in and out of the closure: a slot may be empty.
            let mut ptr = Some(ptr);
            let r = self.with_queue(slot, |q| {
                let mut s = a.stamp.lock();
                let ptr = ptr.take()?;
                let r = match cpu {
                    Some(c) => q.q.enqueue_on(c, ptr).map_err(|e| e.into_inner()),
                    None => q.q.enqueue(ptr).map_err(|e| e.into_inner()),
                };
                if r.is_ok() {
                    *s = q.gen;
                }
                Some(r)
            });
            if let Some(ptr) = ptr {
                put(ptr);
            }
            r.flatten()
        };
        match r {
            Some(Ok(())) => {
                a.enq_ok.fetch_add(1, SeqCst);
                self.check_queued_while_disabled(p.idx(), a, en0, depth0, "plain");
            }
            Some(Err(p)) => put(p),
            None => {}
        }
        a.touch_end.fetch_add(1, SeqCst);
        a.ext_end.fetch_add(1, SeqCst);
    }

    /// Delayed enqueue (or `mod_delayed`) of `d`.
    fn enqueue_d(&self, d: &DItem, slot: usize, delay: Delay, modify: bool) {
        let a = d.acct();
        a.ext_begin.fetch_add(1, SeqCst);
        a.touch_begin.fetch_add(1, SeqCst);
        // Enables first: an enable in flight (begun, its layer call not yet made) makes the
        // depth read below meaningless, and `enables_idle` says so.
        let (en0, depth0) = (a.enables_idle(), a.depth());
        let ptr = clone_ref(d);
        // What happened: queued (a pointer handed over), moved (was pending), refused.
        let mut queued = false;
        if d.is_system() {
            let mut s = a.stamp.lock();
            if modify {
                if let Ok(moved) = system_dfl().mod_delayed(&ptr, delay) {
                    *s = 0;
                    if moved {
                        a.mod_pending.fetch_add(1, SeqCst);
                    } else {
                        queued = true;
                    }
                }
                drop(s);
                put(ptr);
            } else {
                match system_dfl().enqueue_delayed(ptr, delay) {
                    Ok(()) => {
                        *s = 0;
                        queued = true;
                    }
                    Err(e) => {
                        drop(s);
                        put(e.into_inner());
                    }
                }
            }
        } else {
            let mut ptr = Some(ptr);
            self.with_queue(slot, |q| {
                let mut s = a.stamp.lock();
                if self.hands_off(*s) {
                    return;
                }
                let Some(p) = ptr.take() else {
                    return;
                };
                if modify {
                    if let Ok(moved) = q.q.mod_delayed(&p, delay) {
                        *s = q.gen;
                        if moved {
                            a.mod_pending.fetch_add(1, SeqCst);
                        } else {
                            queued = true;
                        }
                    }
                    ptr = Some(p);
                } else {
                    match q.q.enqueue_delayed(p, delay) {
                        Ok(()) => {
                            *s = q.gen;
                            queued = true;
                        }
                        Err(e) => ptr = Some(e.into_inner()),
                    }
                }
            });
            if let Some(p) = ptr {
                put(p);
            }
        }
        if queued {
            a.enq_ok.fetch_add(1, SeqCst);
            self.check_queued_while_disabled(d.idx(), a, en0, depth0, "delayed");
        }
        a.touch_end.fetch_add(1, SeqCst);
        a.ext_end.fetch_add(1, SeqCst);
    }

    /// A successful enqueue: if the torturer held a disable when it began and no enable began
    /// since, the layer queued a disabled item.
    fn check_queued_while_disabled(
        &self,
        idx: usize,
        a: &super::items::Acct,
        en0: Option<u64>,
        depth0: u64,
        kind: &str,
    ) {
        if depth0 > 0 && a.no_enable_since(en0) {
            self.violation(
                INV_DISABLED,
                fmt!(
                    "{} item {} queued while disabled (depth {})",
                    kind,
                    idx,
                    depth0
                ),
            );
        }
    }

    /// Re-arms, on another queue, the items that were armed on the queue `gen` being dropped
    /// (those its drop has already cancelled are idle, and are queued again).
    fn rearm_from(&self, gen: u64, rng: &mut Rng) {
        let start = rng.below(NR_SLOTS);
        let Some(target) = (0..NR_SLOTS)
            .map(|j| (start + j) % NR_SLOTS)
            .find(|&j| self.with_queue(j, |q| q.gen != gen) == Some(true))
        else {
            return;
        };
        for d in self.ditems.iter() {
            if d.is_system() || *d.acct().stamp.lock() != gen {
                continue;
            }
            self.enqueue_d(d, target, delay(rng), false);
        }
    }

    /// `cancel_sync` with its guarantee checked (system items only: see `items.rs`).
    fn cancel_sync_checked<T: Tracked>(
        &self,
        x: &T,
        kind: &str,
        cancel: impl FnOnce(&T) -> Option<ARef<T>>,
        busy: impl FnOnce(&T) -> bool,
    ) {
        let a = x.acct();
        let (b0, e0) = (a.ext_begin.load(SeqCst), a.ext_end.load(SeqCst));
        if let Some(ptr) = a.touch(|| cancel(x)) {
            a.got_back.fetch_add(1, SeqCst);
            put(ptr);
        }
        if !x.is_system() {
            return;
        }
        // Read only while nobody else is changing the item (a concurrent cancel or enable sets
        // PENDING for a moment); a busy item that is not quiet is not judged.
        let busy = a.quiet(|| busy(x)) == Some(true);
        // No enqueue by the torturer was in flight when it began, and none began since: only
        // the item itself could have queued it again, which C refuses while it cancels.
        if busy && b0 == e0 && a.ext_begin.load(SeqCst) == b0 {
            self.violation(
                INV_CANCEL_SYNC,
                fmt!(
                    "{} item {} pending or running when cancel_sync() returned",
                    kind,
                    x.idx()
                ),
            );
        }
    }

    /// A disable the torturer owns (owned items only); `sync` waits for a running instance.
    fn disable<T: Tracked>(
        &self,
        x: &T,
        plain: bool,
        sync: bool,
        disable: impl FnOnce(&T, bool) -> Option<ARef<T>>,
        pending: impl FnOnce(&T) -> bool,
    ) {
        let a = x.acct();
        if x.is_system() || a.depth() >= 3 {
            return;
        }
        let en0 = a.enables_idle();
        if let Some(ptr) = a.touch(|| disable(x, sync)) {
            a.got_back.fetch_add(1, SeqCst);
            put(ptr);
        }
        if sync {
            a.depth_sync.fetch_add(1, SeqCst);
        } else {
            a.depth_async.fetch_add(1, SeqCst);
        }
        // Disabled now: nothing may be pending (a disabled item cannot be queued), unless an
        // enable began meanwhile. Plain items only: the layer itself may change a delayed item
        // (a queue's drop or drain), which sets PENDING for a moment.
        if plain && a.quiet(|| pending(x)) == Some(true) && a.no_enable_since(en0) {
            self.violation(
                INV_DISABLED,
                fmt!("plain item {} pending right after disable()", x.idx()),
            );
        }
    }

    /// Undoes one of the torturer's disables; on a system item (never disabled by the
    /// torturer), with `RACE_ENABLE`, calls `enable()` anyway (documented as a no-op there):
    /// other contexts may be in its `cancel_sync()`.
    fn enable<T: Tracked>(&self, x: &T, enable: impl FnOnce(&T)) {
        let a = x.acct();
        a.enables.fetch_add(1, SeqCst);
        if x.is_system() {
            if self.races & RACE_ENABLE != 0 {
                self.spurious_enables.fetch_add(1, SeqCst);
                a.touch(|| enable(x));
            }
        } else if a.take_disable() {
            a.touch(|| enable(x));
        }
        a.enables_end.fetch_add(1, SeqCst);
    }

    /// Whether the run is stopping.
    pub(super) fn stopping(&self) -> bool {
        self.stop.load(SeqCst)
    }
}

/// Reads `f` (a state that includes PENDING) once the item is quiet (see [`Acct::quiet`]),
/// trying for a while; `false` if it never was.
fn quiet_read(a: &Acct, f: impl Fn() -> bool) -> bool {
    for _ in 0..1000 {
        if let Some(r) = a.quiet(&f) {
            return r;
        }
        core::hint::spin_loop();
    }
    false
}

fn pick(table: &[(Op, u32)], rng: &mut Rng) -> Op {
    let total: u32 = table.iter().map(|(_, w)| w).sum();
    let mut r = rng.below(total as usize) as u32;
    for &(op, w) in table {
        if r < w {
            return op;
        }
        r -= w;
    }
    Op::Enqueue
}

/// A random delay: mostly a few jiffies, sometimes none, sometimes up to 100, and sometimes
/// long (250 to 1250 jiffies, 1 to 5 s at `HZ=250`): those items are still armed when their
/// queue is dropped, which makes the drop's walk of its armed lists (the window of P1) long.
fn delay(rng: &mut Rng) -> Delay {
    let j = match rng.below(8) {
        0 => 0,
        1 => rng.below(100),
        2 => 250 + rng.below(1000),
        _ => 1 + rng.below(8),
    };
    Delay::from_jiffies(j as kernel::time::Jiffies)
}
