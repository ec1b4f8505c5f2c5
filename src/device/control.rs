// SPDX-License-Identifier: GPL-2.0

//! The calls that act on a file's pending items: FLUSH, CANCEL, MOD_DELAY and RESET.

use super::{
    file::OpenFile,
    item::{
        due_after,
        from_flag,
        Item, //
    },
    validate, //
};
use crate::abi::{
    self,
    ModDelay,
    Stats,
    Target, //
};
use crate::workqueue::context::Context;
use crate::workqueue::{
    self as wq,
    Delay, //
};
use core::sync::atomic::Ordering;
use kernel::{
    prelude::*,
    sync::Arc, //
};

impl OpenFile {
    /// Returns clones of the pending items a target selects.
    fn select(&self, t: &Target) -> Result<KVec<Arc<Item>>> {
        let ledger = self.ledger.lock();
        let mut out = KVec::new();
        match t.kind {
            abi::TARGET_ALL => {
                out.reserve(ledger.pending.len(), GFP_KERNEL)?;
                for i in ledger.pending.iter() {
                    out.push(i.clone(), GFP_KERNEL)?;
                }
            }
            abi::TARGET_ID => {
                if let Some(idx) = ledger.find_pending(t.id) {
                    out.push(ledger.pending[idx].clone(), GFP_KERNEL)?;
                }
            }
            _ => {
                for i in ledger.pending.iter().filter(|i| i.queue == t.queue) {
                    out.push(i.clone(), GFP_KERNEL)?;
                }
            }
        }
        Ok(out)
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
            self.drop_unqueued(item);
        }
    }

    /// FLUSH: waits until the targeted items have run (their timers fired early); sets
    /// `t.count`.
    pub(super) fn flush(&self, t: &mut Target) -> Result {
        validate::target(t)?;
        let items = {
            let _control = self.control.lock_interruptible()?;
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
            let mut ledger = self.ledger.lock();
            for item in items.iter() {
                while ledger.find_pending(item.id).is_some() {
                    if self.changed.wait_interruptible(&mut ledger) {
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

    /// CANCEL: takes the targeted items that have not started off their queues, then waits for
    /// the running ones; sets `t.count` to the number cancelled.
    pub(super) fn cancel(&self, t: &mut Target) -> Result {
        validate::target(t)?;
        let (kind, queue, id) = (t.kind, t.queue, t.id);
        let want = move |i: &Item| match kind {
            abi::TARGET_ALL => true,
            abi::TARGET_ID => i.id == id,
            _ => i.queue == queue,
        };
        let (n, last) = {
            let _control = self.control.lock_interruptible()?;
            let mut ledger = self.ledger.lock();
            // Only items enqueued before the call are waited for.
            let last = ledger.next_id;
            if kind == abi::TARGET_ID && ledger.find_pending(id).is_none() {
                return Err(ENOENT);
            }
            let n = ledger.cancel_pending(want);
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

    /// MOD_DELAY: a pending item that has not started runs `m.delay_us` from now.
    pub(super) fn mod_delay(&self, m: &ModDelay) -> Result {
        validate::mod_delay(m)?;
        let delay = Delay::from_micros(m.delay_us)?;
        let _control = self.control.lock_interruptible()?;
        let item = {
            let ledger = self.ledger.lock();
            let idx = ledger.find_pending(m.id).ok_or(ENOENT)?;
            ledger.pending[idx].clone()
        };
        // "Change the delay only if still pending": take it off its queue; if that wins, the item
        // has not run and is queued again with the new delay, so it still runs exactly once. If
        // it has started, it is not waited for.
        if item.dwork.cancel().is_none() {
            return Err(ENOENT);
        }
        item.due_ns.store(due_after(m.delay_us), Ordering::Relaxed);
        // Re-armed by this task: the result says so (`RES_FROM_TASK`).
        item.queued_irq.store(0, Ordering::Relaxed);
        item.queued_from
            .store(from_flag(Context::current()), Ordering::Release);
        let cpu = match item.cpu {
            abi::CPU_ANY => Ok(None),
            c => wq::cpu::online_cpu(c).map(Some),
        };
        let res = cpu.and_then(|cpu| self.arm(item.clone(), cpu, delay));
        if let Err(e) = res {
            // It cannot be queued again (CPU gone offline, or no memory): it stays cancelled.
            self.drop_unqueued(&item);
            return Err(e);
        }
        Ok(())
    }

    /// RESET: cancels all of the file's work, drops its results and zeroes its counters.
    pub(super) fn reset(&self) -> Result {
        // One step for the other ioctls of this file: nothing can be enqueued between the
        // cancel and the zeroing of the counters.
        let _control = self.control.lock_interruptible()?;
        self.cancel_all_locked();
        let mut ledger = self.ledger.lock();
        ledger.results.clear();
        ledger.stats = Stats::default();
        ledger.dropped_unread = 0;
        drop(ledger);
        self.reap();
        Ok(())
    }
}
