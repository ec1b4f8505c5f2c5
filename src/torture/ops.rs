// SPDX-License-Identifier: GPL-2.0

//! The torture run's shared state, its queues, and the random operations the actors pick.

use super::items::{
    put,
    Acct,
    DItem,
    PItem,
    Tracked, //
};
use super::plan::{
    delay,
    pick,
    Ctx,
    Op,
    Rng,
    INV_DEAD_QUEUE,
    INV_NAMES,
    IRQ_OPS,
    NR_CTX,
    NR_INV,
    NR_OPS,
    RACE_REARM_ON_DROP,
    TASK_OPS, //
};
use crate::workqueue::raw_spinlock::{
    new_raw_spinlock_irq,
    RawSpinLockIrq, //
};
use crate::workqueue::{
    cpu,
    Workqueue, //
};
use core::sync::atomic::{
    AtomicBool,
    AtomicI64,
    AtomicU64,
    AtomicUsize,
    Ordering::SeqCst, //
};
use kernel::{
    new_mutex,
    prelude::*,
    sync::{
        Arc,
        Mutex, //
    },
};

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

/// One of the run's own queues, with its generation (unique in the run, never 0).
pub(super) struct TQueue {
    pub(super) q: Workqueue,
    pub(super) gen: u64,
    /// The C queue's address (what an item's `timer_target()` names).
    pub(super) addr: usize,
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
    /// Per slot: the address of its queue being dropped right now (0: none; unique while the
    /// queue lives, and no queue is made from its drop to the end of its check, `made`).
    /// Several slots can be dropping at once (one per kthread).
    dropping_addr: [AtomicUsize; NR_SLOTS],
    /// Held while a queue is made, and from a queue's drop to the end of its check: no new
    /// queue can take the dropped one's address before `check_dead` looked for timers aimed
    /// at it.
    made: Pin<KBox<Mutex<()>>>,
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
                dropping_addr: [const { AtomicUsize::new(0) }; NR_SLOTS],
                made: KBox::pin_init(new_mutex!((), "torture::Shared::made"), GFP_KERNEL)?,
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

    pub(super) fn count(&self, ctx: Ctx, op: Op) {
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
        let b = Workqueue::builder();
        let made = self.made.lock();
        let q = match gen % 3 {
            0 => b.percpu().build(fmt!("rust_wq_tq{}", gen))?,
            1 => b.unbound().build(fmt!("rust_wq_tq{}", gen))?,
            _ => b.ordered().build(fmt!("rust_wq_tq{}", gen))?,
        };
        drop(made);
        let addr = q.as_raw() as usize;
        let a = Arc::new(TQueue { q, gen, addr }, GFP_KERNEL)?;
        *slot.irq.lock() = Some(a.clone());
        *t = Some(a);
        self.queues_made.fetch_add(1, SeqCst);
        Ok(())
    }

    /// Takes the queue out of slot `i` and drops it, then checks that no item is left aimed at
    /// it. Task context. Returns the generation dropped (0: the slot was empty).
    pub(super) fn drop_queue(&self, i: usize) -> u64 {
        let (Some(slot), Some(dropping_addr)) = (self.slots.get(i), self.dropping_addr.get(i))
        else {
            return 0;
        };
        let mut t = slot.task.lock();
        let a = t.take();
        let b = slot.irq.lock().take();
        drop(t);
        let Some((gen, addr)) = a.as_ref().map(|q| (q.gen, q.addr)) else {
            return 0;
        };
        dropping_addr.store(addr, SeqCst);
        let made = self.made.lock();
        // The last reference: `Workqueue::drop` cancels what is armed on it, gives the
        // pointers back (dropped inside the layer: counted by `dec_ref`), destroys the queue.
        drop(b);
        drop(a);
        dropping_addr.store(0, SeqCst);
        self.queues_dropped.fetch_add(1, SeqCst);
        self.check_dead(gen, addr);
        drop(made);
        gen
    }

    /// After queue `gen` (at `addr`) was destroyed: no plain item whose last successful
    /// enqueue aimed at it may still be pending, and no delayed item's timer may aim at it.
    /// One that does would fire into the freed queue: it is reported, and cancelled (its
    /// pointer given back) so that it cannot.
    pub(super) fn check_dead(&self, gen: u64, addr: usize) {
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
        // A delayed item is checked by its timer: armed and aimed at the destroyed queue's
        // address, it would fire into freed memory. Its arms race each other (no torturer's
        // lock), so the queue of its last successful arm is not known; its timer says where it
        // aims. No queue was made since the drop (`made`), so none can have that address.
        for it in self.ditems.iter() {
            if it.dw.timer_target() == Some(addr) {
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

    /// Whether an arm of `d` should be skipped: without `RACE_REARM_ON_DROP`, an item last
    /// armed on a queue being dropped is mostly not armed anywhere until the drop is over
    /// (any such arm, not only the targeted re-arm, is the race of P1). A snapshot: an arm that
    /// checked just before the drop began may still race it (arms take no torturer's lock).
    pub(super) fn hands_off(&self, d: &DItem) -> bool {
        if self.races & RACE_REARM_ON_DROP != 0 {
            return false;
        }
        let aim = d.dw.last_aim();
        aim != 0 && self.dropping_addr.iter().any(|a| a.load(SeqCst) == aim)
    }

    /// Runs `f` on the queue of slot `i` under the slot's spinlock (any context).
    pub(super) fn with_queue<R>(&self, i: usize, f: impl FnOnce(&TQueue) -> R) -> Option<R> {
        let slot = self.slots.get(i)?;
        let g = slot.irq.lock();
        g.as_deref().map(f)
    }

    /// Runs `f` on the queue of slot `i` holding the slot's mutex (task context; may sleep).
    pub(super) fn with_queue_task<R>(&self, i: usize, f: impl FnOnce(&TQueue) -> R) -> Option<R> {
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
            .filter_map(|j| self.dropping_addr.get((start + j) % NR_SLOTS))
            .map(|a| a.load(SeqCst))
            .find(|&a| a != 0);
        if let Some(addr) = dropping {
            if self.races & RACE_REARM_ON_DROP != 0 && rng.chance(2) {
                self.count(ctx, Op::Rearm);
                self.rearm_from(addr, rng);
                return;
            }
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
