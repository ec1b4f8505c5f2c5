// SPDX-License-Identifier: GPL-2.0

//! What a torture run picks from: the contexts, the operations and their weights, the
//! per-actor generator, the invariants it checks and the races it can provoke on purpose.

use crate::workqueue::Delay;

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
pub(super) const TASK_OPS: [(Op, u32); NR_OPS] = [
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
pub(super) const IRQ_OPS: [(Op, u32); 8] = [
    (Op::Enqueue, 10),
    (Op::EnqueueOn, 5),
    (Op::EnqueueDelayed, 12),
    (Op::ModDelayed, 6),
    (Op::Cancel, 6),
    (Op::Disable, 3),
    (Op::Enable, 4),
    (Op::Rearm, 5),
];

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

    pub(super) fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
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
/// Was `Workqueue::drain(&self)` while other contexts enqueue on the same queue (review P3).
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

pub(super) fn pick(table: &[(Op, u32)], rng: &mut Rng) -> Op {
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
/// queue is dropped, which makes the drop's walk of its armed list (the window of P1) long.
pub(super) fn delay(rng: &mut Rng) -> Delay {
    let j = match rng.below(8) {
        0 => 0,
        1 => rng.below(100),
        2 => 250 + rng.below(1000),
        _ => 1 + rng.below(8),
    };
    Delay::from_jiffies(j as kernel::time::Jiffies)
}
