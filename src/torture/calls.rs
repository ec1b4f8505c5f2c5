// SPDX-License-Identifier: GPL-2.0

//! The layer calls a torture operation makes, each with the checks made around it: the
//! pointers handed in and back, the item's accounting, and the invariants it can break.

use super::items::{
    clone_ref,
    put,
    DItem,
    PItem,
    Tracked, //
};
use super::ops::{
    Shared,
    NR_SLOTS, //
};
use super::plan::{
    delay,
    Rng,
    INV_CANCEL_SYNC,
    INV_DISABLED,
    RACE_ENABLE, //
};
use crate::workqueue::{
    cpu,
    system_dfl,
    Delay,
    Retimed, //
};
use core::sync::atomic::Ordering::SeqCst;
use kernel::{
    prelude::*,
    sync::aref::ARef, //
};

impl Shared {
    /// Plain enqueue of `p` (on slot `slot`, or on `system_dfl_wq` for a system item).
    pub(super) fn enqueue_p(&self, p: &PItem, slot: usize, cpu: Option<cpu::CpuId>) {
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
    pub(super) fn enqueue_d(&self, d: &DItem, slot: usize, delay: Delay, modify: bool) {
        let a = d.acct();
        a.ext_begin.fetch_add(1, SeqCst);
        a.touch_begin.fetch_add(1, SeqCst);
        // Enables first: an enable in flight (begun, its layer call not yet made) makes the
        // depth read below meaningless, and `enables_idle` says so.
        let (en0, depth0) = (a.enables_idle(), a.depth());
        let ptr = clone_ref(d);
        // What happened: queued (a pointer handed over), moved (was pending), refused.
        let mut queued = false;
        // No lock of the torturer's around the layer call: arms, re-timings and moves of one
        // item race each other from every context (on two owned queues at once, too).
        if d.is_system() {
            if modify {
                match system_dfl().mod_delayed(ptr, delay) {
                    Ok(Retimed::Queued) => queued = true,
                    // Only the timer moved: the torturer's pointer comes back.
                    Ok(Retimed::Pending(p)) => put(p),
                    Err(e) => put(e.into_inner()),
                }
            } else {
                match system_dfl().enqueue_delayed(ptr, delay) {
                    Ok(()) => queued = true,
                    Err(e) => put(e.into_inner()),
                }
            }
        } else {
            let mut ptr = Some(ptr);
            self.with_queue(slot, |q| {
                if self.hands_off(d) {
                    return;
                }
                let Some(p) = ptr.take() else {
                    return;
                };
                if modify {
                    match q.q.mod_delayed(p, delay) {
                        Ok(Retimed::Queued) => queued = true,
                        // Only the timer moved: the torturer's pointer comes back.
                        Ok(Retimed::Pending(p)) => ptr = Some(p),
                        Err(e) => ptr = Some(e.into_inner()),
                    }
                } else {
                    match q.q.enqueue_delayed(p, delay) {
                        Ok(()) => queued = true,
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
    pub(super) fn check_queued_while_disabled(
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

    /// Re-arms, on another queue, the items last armed on the queue at `addr` being dropped
    /// (those its drop has already cancelled are idle, and are queued again).
    pub(super) fn rearm_from(&self, addr: usize, rng: &mut Rng) {
        let start = rng.below(NR_SLOTS);
        let Some(target) = (0..NR_SLOTS)
            .map(|j| (start + j) % NR_SLOTS)
            .find(|&j| self.with_queue(j, |q| q.addr != addr) == Some(true))
        else {
            return;
        };
        for d in self.ditems.iter() {
            if d.is_system() || d.dw.last_aim() != addr {
                continue;
            }
            self.enqueue_d(d, target, delay(rng), false);
        }
    }

    /// `cancel_sync` with its guarantee checked (system items only: see `items.rs`).
    pub(super) fn cancel_sync_checked<T: Tracked>(
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
    pub(super) fn disable<T: Tracked>(
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
    pub(super) fn enable<T: Tracked>(&self, x: &T, enable: impl FnOnce(&T)) {
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
}
