// SPDX-License-Identifier: GPL-2.0

//! ENQUEUE: make a call's items, queue them all (from the task, a hard interrupt, a softirq or
//! the `edu` device's interrupt handler), or undo the whole call.

use super::{
    file::OpenFile,
    item::{
        due_after,
        from_flag,
        Item,
        ABORTED,
        ARMING,
        GO, //
    },
    log::LOG_ITEMS_PER_BATCH,
    validate, //
};
use crate::abi::{
    self,
    Enqueue, //
};
use crate::edu::run_in_device_irq;
use crate::irq_work::{
    run_in_hardirq,
    run_in_softirq, //
};
use crate::workqueue::{
    self as wq,
    context::Context,
    new_delayed_work,
    Delay, //
};
use core::sync::atomic::{
    AtomicI64,
    AtomicU32,
    AtomicU8,
    Ordering, //
};
use kernel::{
    prelude::*,
    sync::{
        Arc,
        ArcBorrow, //
    },
    time::{
        Instant,
        Monotonic, //
    },
};

impl OpenFile {
    /// ENQUEUE: queues `req.count` items and sets `req.first_id`; on an error nothing of the
    /// call runs.
    pub(super) fn enqueue(this: ArcBorrow<'_, Self>, req: &mut Enqueue) -> Result {
        let me: &Self = &this;
        validate::enqueue(req)?;
        if req.flags & abi::ENQ_F_FROM_DEVICE_IRQ != 0 && !crate::edu::is_bound() {
            return Err(ENODEV);
        }
        let delay = Delay::from_micros(req.delay_us)?;
        me.reap();
        // The whole call is atomic with respect to the file's other control calls: they cannot
        // see its items half queued. (Taken before the CPU-hotplug lock, as everywhere.)
        let _control = me.control.lock_interruptible()?;
        // Checked again as each item is queued: the CPU may go offline in between (ENODEV).
        let cpu = match req.cpu {
            abi::CPU_ANY => None,
            c => Some(wq::cpu::online_cpu(c)?),
        };

        // Make every item first, so that running out of memory changes nothing.
        let count = req.count as usize;
        let mut items = KVec::with_capacity(count, GFP_KERNEL)?;
        let now = Instant::<Monotonic>::now();
        let due_ns = due_after(req.delay_us);
        // Queueing at once on any CPU cannot fail, so such items may go at once; delayed ones,
        // those for a CPU (which may go offline before it is queued on: `ENODEV`) and those of
        // the device's interrupt (which may be unbound between two batches: `ENODEV`) wait for
        // the end of the call (see `Item::state`).
        let initial =
            if delay == Delay::ZERO && cpu.is_none() && req.flags & abi::ENQ_F_FROM_DEVICE_IRQ == 0
            {
                GO
            } else {
                ARMING
            };
        let first_id;
        {
            let mut ledger = me.ledger.lock();
            if ledger.pending.len() + count > abi::MAX_PENDING as usize {
                return Err(EBUSY);
            }
            let room = ledger.pending.len() + count;
            ledger.pending.reserve(count, GFP_KERNEL)?;
            let want = ledger.results.len + room;
            ledger.results.reserve_for(want)?;
            ledger.retired.reserve(room, GFP_KERNEL)?;
            first_id = ledger.next_id + 1;
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
                        queued_irq: AtomicU32::new(0),
                        file: Arc::<OpenFile>::from(this),
                    }),
                    GFP_KERNEL,
                )?;
                items.push(item, GFP_KERNEL)?;
            }
            for item in items.iter() {
                // Cannot fail: reserved above.
                ledger
                    .pending
                    .push_within_capacity(item.clone())
                    .map_err(|_| ENOMEM)?;
            }
            ledger.next_id += u64::from(req.count);
            ledger.stats.enqueued += u64::from(req.count);
        }

        // Queues `batch` (starting at index `first` of the call), recording the context (and the
        // device's IRQ number when the `edu` handler runs it); returns the index and error of
        // the first item that could not be queued. Never sleeps: with `ENQ_F_FROM_IRQ` and
        // `ENQ_F_FROM_DEVICE_IRQ` it runs in a hard-interrupt handler, with
        // `ENQ_F_FROM_SOFTIRQ` in a softirq.
        let arm_batch = |first: usize,
                         batch: &[Arc<Item>],
                         device_irq: Option<u32>|
         -> Option<(usize, Error)> {
            let mut from = from_flag(Context::current());
            if device_irq.is_some() {
                from |= abi::RES_FROM_DEVICE_IRQ;
            }
            for (n, item) in batch.iter().enumerate() {
                item.queued_irq
                    .store(device_irq.unwrap_or(0), Ordering::Relaxed);
                item.queued_from.store(from, Ordering::Release);
                if let Err(e) = me.arm(item.clone(), cpu, delay) {
                    return Some((first + n, e));
                }
            }
            None
        };
        let mut failed = None;
        if req.flags & abi::ENQ_F_ALL != 0 {
            // One device-interrupt call at a time, module-wide: its batches are not interleaved
            // with another call's (`run_in_device_irq` alone serialises single interrupts).
            let _one_call = (req.flags & abi::ENQ_F_FROM_DEVICE_IRQ != 0)
                .then(|| me.device_state.device_irq_gate.lock());
            for (i, batch) in items.chunks(abi::IRQ_BATCH as usize).enumerate() {
                let first = i * abi::IRQ_BATCH as usize;
                let done = if req.flags & abi::ENQ_F_FROM_IRQ != 0 {
                    run_in_hardirq(|| arm_batch(first, batch, None))
                } else if req.flags & abi::ENQ_F_FROM_SOFTIRQ != 0 {
                    run_in_softirq(|| arm_batch(first, batch, None))
                } else {
                    run_in_device_irq(|irq| arm_batch(first, batch, Some(irq)))
                };
                match done {
                    Ok(None) => {}
                    Ok(Some(f)) => failed = Some(f),
                    // The interrupt (or BH item) could not be raised, or the device went away
                    // or the caller was killed before its interrupt ran: nothing of the batch
                    // was queued.
                    Err(e) => failed = Some((first, e)),
                }
                if failed.is_some() {
                    break;
                }
            }
        } else {
            failed = arm_batch(0, &items, None);
        }
        let Some((armed, err)) = failed else {
            if initial != GO {
                let _ledger = me.ledger.lock();
                for item in items.iter() {
                    item.state.store(GO, Ordering::Release);
                }
                me.changed.notify_all();
            }
            req.first_id = first_id;
            return Ok(());
        };
        // Undo the whole call. Only delayed queueing, queueing for a CPU and the device's
        // interrupt can fail, so every item is `ARMING`: an item whose timer fired meanwhile waits in its work function and now leaves without
        // doing anything; the others are taken off their queues or were never queued.
        let mut ledger = me.ledger.lock();
        for item in items.iter() {
            item.state.store(ABORTED, Ordering::Release);
        }
        me.changed.notify_all();
        let mut gone = 0u64;
        for (n, item) in items.iter().enumerate() {
            if (n >= armed || item.dwork.cancel().is_some()) && ledger.retire(item.id) {
                gone += 1;
            }
        }
        // The rest started and are leaving (see `ItemOwner::wait_go` of `OpenFile`).
        for item in items.iter().take(armed) {
            while ledger.find_pending(item.id).is_some() {
                me.changed.wait(&mut ledger);
            }
        }
        // An item that was queued at once may have run (not possible today: see above); it was
        // counted as executed. Every other item of the call counts as never enqueued.
        let never_ran = if initial == GO {
            gone
        } else {
            u64::from(req.count)
        };
        // Saturating: a RESET cannot have run meanwhile (we hold `control`), but stay safe.
        ledger.stats.enqueued = ledger.stats.enqueued.saturating_sub(never_ran);
        drop(ledger);
        Err(err)
    }
}
