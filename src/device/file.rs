// SPDX-License-Identifier: GPL-2.0

//! The state of one open file of `/dev/rust_wq`: the items it owns, their results and counters.
//!
//! Work belongs to the open file that enqueued it. [`Ledger`] keeps the books (which items are
//! pending, which are retired and waiting to be freed, the results, the counters); [`OpenFile`]
//! holds the ledger with the locks and wait queues around it, and the bookkeeping steps that
//! the work functions and every control call share.

use super::{
    gate::Gate,
    item::{
        Item,
        ItemOwner,
        ABORTED,
        GO, //
    },
    ring::Ring,
    state::DeviceState, //
};
use crate::abi::{
    self,
    Stats,
    WorkResult, //
};
use crate::workqueue::{
    self as wq,
    CpuId,
    Delay,
    Workqueue, //
};
use core::sync::atomic::Ordering;
use kernel::{
    device::Device,
    new_condvar, new_mutex,
    prelude::*,
    sync::{
        aref::ARef,
        poll::PollCondVarBox,
        Arc,
        CondVar,
        Mutex, //
    },
};

/// The books of one open file: its items, their results and its counters.
///
/// # Invariants
///
/// `pending` is sorted by id. `retired.capacity() >= retired.len() + pending.len()` and
/// `results` has room for `min(MAX_RESULTS, results.len + pending.len())` results, so a
/// finishing (or cancelled) item never allocates.
pub(super) struct Ledger {
    /// The id of the newest item (ids count from 1).
    pub(super) next_id: u64,
    /// Items enqueued and neither finished nor cancelled.
    pub(super) pending: KVec<Arc<Item>>,
    /// Items that finished or were cancelled; kept until flushed (their worker may still be
    /// returning) so that no item is freed by its own work function.
    pub(super) retired: KVec<Arc<Item>>,
    /// Results not yet read, in execution order.
    pub(super) results: Ring,
    /// Counters since open or RESET (`results_dropped` included).
    pub(super) stats: Stats,
    /// Results dropped since the last RESULTS call.
    pub(super) dropped_unread: u64,
}

impl Ledger {
    pub(super) fn find_pending(&self, id: u64) -> Option<usize> {
        self.pending.binary_search_by_key(&id, |i| i.id).ok()
    }

    /// Moves the item `id` from `pending` to `retired`; returns whether it was pending.
    pub(super) fn retire(&mut self, id: u64) -> bool {
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
    pub(super) fn cancel_pending(&mut self, mut want: impl FnMut(&Item) -> bool) -> u64 {
        let Ledger {
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
pub(crate) struct OpenFile {
    #[pin]
    pub(super) ledger: Mutex<Ledger>,
    /// Notified (with `ledger`) whenever an item leaves `pending` and when an ENQUEUE call
    /// lets its items go or fails.
    #[pin]
    pub(super) changed: CondVar,
    /// Serialises enqueue, flush (its first phase), cancel, delay changes, results, reset and
    /// close of this file. Never taken by work functions, so it may be held while waiting or
    /// copying to user memory.
    #[pin]
    pub(super) control: Gate,
    /// Notified when a result is stored; `poll` waits on it.
    ///
    /// Boxed and freed after an RCU grace period (`kfree_rcu`), so dropping the file's state,
    /// which may happen in a worker when its last item returns, never blocks in
    /// `synchronize_rcu()` as an inline `PollCondVar` would. No poll waiter can be left when it
    /// is dropped: poll() and select() hold a reference to the file while they are registered,
    /// and epoll removes its entries before `release`; the state lives at least that long.
    pub(super) readable: PollCondVarBox,
    /// The module's queues and what all files share.
    pub(super) device_state: Arc<DeviceState>,
    /// The misc device the file was opened on, for `dev_*!` log lines.
    pub(super) dev: ARef<Device>,
}

/// A queue an item can target.
enum QueueRef<'a> {
    Owned(&'a Workqueue),
    System(&'static wq::Queue),
}

impl OpenFile {
    /// Makes the state of a file opened on `dev`.
    pub(super) fn new(device_state: Arc<DeviceState>, dev: ARef<Device>) -> Result<Arc<Self>> {
        let readable = PollCondVarBox::new(c"OpenFile::readable", kernel::static_lock_class!())?;
        Arc::pin_init(
            try_pin_init!(OpenFile {
                ledger <- new_mutex!(
                    Ledger {
                        next_id: 0,
                        pending: KVec::new(),
                        retired: KVec::new(),
                        results: Ring::new(),
                        stats: Stats::default(),
                        dropped_unread: 0,
                    },
                    "OpenFile::ledger"
                ),
                changed <- new_condvar!("OpenFile::changed"),
                control <- Gate::new(),
                readable,
                device_state,
                dev,
            }? Error),
            GFP_KERNEL,
        )
    }

    /// Waits for retired items to be completely done and frees them.
    pub(super) fn reap(&self) {
        let retired = {
            let mut ledger = self.ledger.lock();
            if ledger.retired.is_empty() {
                return;
            }
            let cap = ledger.retired.capacity();
            let mut fresh = KVec::new();
            // Keep the capacity invariant; if that allocation fails, keep the old vector.
            if fresh.reserve(cap, GFP_KERNEL).is_err() {
                return;
            }
            core::mem::replace(&mut ledger.retired, fresh)
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
    pub(super) fn wait_running(&self, last: u64, want: impl Fn(&Item) -> bool) {
        let mut ledger = self.ledger.lock();
        let mut from = 0;
        while let Some(id) = ledger.first_pending(from, last, &want) {
            from = id;
            self.changed.wait(&mut ledger);
        }
    }

    fn queue(&self, q: u32) -> Result<QueueRef<'_>> {
        let state = &self.device_state;
        Ok(match q {
            abi::Q_PERCPU => QueueRef::Owned(&state.percpu),
            abi::Q_UNBOUND => QueueRef::Owned(&state.unbound),
            abi::Q_ORDERED => QueueRef::Owned(&state.ordered),
            abi::Q_SYSTEM_PERCPU => QueueRef::System(wq::system_percpu()),
            abi::Q_SYSTEM_DFL => QueueRef::System(wq::system_dfl()),
            _ => return Err(EINVAL),
        })
    }

    /// Queues `item` on its queue after `delay`, on its CPU if it has one.
    pub(super) fn arm(&self, item: Arc<Item>, cpu: Option<CpuId>, delay: Delay) -> Result {
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

    /// Takes `item`, which could not be queued again, out of `pending` and counts it as
    /// cancelled, so that every item still ends once.
    pub(super) fn drop_unqueued(&self, item: &Item) {
        let mut ledger = self.ledger.lock();
        if ledger.retire(item.id) {
            ledger.stats.cancelled += 1;
        }
        self.changed.notify_all();
    }

    /// Cancels all pending work of this file, waits for what is running and frees everything
    /// (close). Waits only for work functions already running.
    pub(super) fn cancel_all(&self) {
        // Uncontended: no ioctl of the file can be running when it is released.
        let _control = self.control.lock();
        self.cancel_all_locked();
        let retired = core::mem::take(&mut self.ledger.lock().retired);
        for item in retired.iter() {
            item.dwork.flush();
        }
        drop(retired);
    }

    /// Cancels every pending item of this file and waits for the running ones; the caller holds
    /// `control`.
    pub(super) fn cancel_all_locked(&self) {
        let last = {
            let mut ledger = self.ledger.lock();
            if ledger.cancel_pending(|_| true) > 0 {
                self.changed.notify_all();
            }
            ledger.next_id
        };
        self.wait_running(last, |_| true);
    }
}

impl ItemOwner for OpenFile {
    fn wait_go(&self, item: &Arc<Item>) -> bool {
        let mut ledger = self.ledger.lock();
        loop {
            match item.state.load(Ordering::Acquire) {
                GO => return true,
                ABORTED => {
                    ledger.retire(item.id);
                    self.changed.notify_all();
                    return false;
                }
                // Short: the ENQUEUE call is queueing its items and waits for nothing else.
                _ => self.changed.wait(&mut ledger),
            }
        }
    }

    fn finished(&self, item: &Arc<Item>, result: WorkResult) {
        let mut ledger = self.ledger.lock();
        if !ledger.retire(item.id) {
            // Cannot happen: a started item leaves `pending` only here.
            return;
        }
        if ledger.results.push(result) {
            ledger.stats.results_dropped += 1;
            ledger.dropped_unread += 1;
        }
        ledger.stats.executed += 1;
        self.changed.notify_all();
        drop(ledger);
        self.readable.notify_all();
    }

    fn device_state(&self) -> &DeviceState {
        &self.device_state
    }

    fn device(&self) -> &Device {
        &self.dev
    }
}
