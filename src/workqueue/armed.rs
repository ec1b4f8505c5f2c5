// SPDX-License-Identifier: GPL-2.0

//! The armed lists of an owned queue: which tracked delayed items have a timer aimed at it.
//!
//! # Why
//!
//! C's `destroy_workqueue()` does not cancel delayed items whose timers are armed: they would
//! fire into a freed queue. So an [`Workqueue`](super::Workqueue) must find, when it is
//! dropped, exactly the items armed on it. It does so with intrusive links that live in each
//! [`DelayedWork`](super::DelayedWork) field. Nothing is allocated per item and no reference is
//! held (the pointer the queue owns for a pending item is the one C holds anyway).
//!
//! # The protocol (see also `delayed.rs`)
//!
//! There is one list per possible CPU, each with its own IRQ-safe raw spinlock; an arm uses the
//! list of the CPU it runs on, so CPUs arming delayed work on one queue do not share a lock.
//! An item is on at most one list. Its word `st` (in [`RawDelayed`]) names that list, or is 0.
//!
//! 1. `st` changes only with the lock of the list it names (or will name) held: `0 -> L` and
//!    `L -> 0` under `L`'s lock. So whoever holds `L`'s lock and reads `st == L` owns the item's
//!    link until it unlocks.
//! 2. An owned-queue arm takes its list's lock, claims `st` (`0 -> L`, compare-exchange), then
//!    makes the C call, then links the item (or, if C refused, sets `st` back to 0), all before
//!    unlocking. Whoever ends that arm's pending period (the work function when it starts, a
//!    successful cancel or disable, a queue's drop) clears `PENDING` in C first and then
//!    follows `st` to unlink, so it waits for the link to be complete.
//! 3. A link is *current* while the item is pending with its `delayed_work` aimed at the list's
//!    queue (`dwork->wq`); otherwise it is *stale*, left by a period that ended before its ender
//!    got the list's lock, or re-aimed elsewhere by a call that does not link (a system-queue
//!    arm). Every ender unlinks a stale link and keeps a current one ([`RawDelayed::settle`]).
//! 4. An item is alive while it is linked: it is pending (the queue owns a pointer), or the
//!    period ended and its ender (which owns the pointer, or is the work function about to
//!    receive it) has yet to unlink it, which it does before giving the pointer to anyone.
//! 5. `st` is followed, and its list locked, only inside an interrupts-off section, which is an
//!    RCU read-side section: a dropped queue unlinks every item (`st = 0`) and then frees its
//!    lists only after a grace period (`kvfree_rcu`). So a list named by `st` when it was read
//!    is still memory when its lock is taken, and the re-check of `st` under the lock tells
//!    whether it is still the item's list.
//!
//! A system-queue arm, a cancel of an item on no list (`st == 0`) and `cancel_sync` take no
//! lock: they are the C call, one load, and a branch.
//!
//! # Locking
//!
//! List locks are taken one at a time, never nested (an item's list is unlocked before another
//! list is locked). The disable gate of `delayed.rs` is not a lock: its writers wait only for
//! readers, which run with interrupts off and never wait.

use super::delayed::RawDelayed;
use super::raw_spinlock::{
    new_irq_spinlock,
    IrqSpinLock, //
};
use core::{cell::Cell, ptr};
use kernel::{bindings, prelude::*};

/// The head of one armed list (no count: the hot paths keep only the links).
pub(crate) struct Head {
    first: *const RawDelayed,
}

// SAFETY: The pointers are only followed under the list lock, and the nodes are `Sync`.
unsafe impl Send for Head {}

/// Links of an item on an armed list, embedded in the item.
///
/// # Invariants
///
/// Only read or written with the lock of the list the item is on held.
pub(crate) struct Links {
    next: Cell<*const RawDelayed>,
    prev: Cell<*const RawDelayed>,
}

impl Links {
    /// Links that are on no list.
    pub(crate) const fn new() -> Self {
        Self {
            next: Cell::new(ptr::null()),
            prev: Cell::new(ptr::null()),
        }
    }
}

impl Head {
    /// Links `node` at the front.
    ///
    /// # Safety
    ///
    /// The caller holds this list's lock, `node`'s `st` names this list (the caller set it),
    /// and `node` is on no list.
    #[inline]
    pub(crate) unsafe fn push(&mut self, node: &RawDelayed) {
        let links = node.links();
        links.prev.set(ptr::null());
        links.next.set(self.first);
        if !self.first.is_null() {
            // SAFETY: Linked nodes are alive (module docs, rule 4), and we hold the list lock.
            unsafe { (*self.first).links().prev.set(node) };
        }
        self.first = node;
    }

    /// Unlinks `node`.
    ///
    /// # Safety
    ///
    /// The caller holds this list's lock and `node` is on this list.
    #[inline]
    pub(crate) unsafe fn remove(&mut self, node: &RawDelayed) {
        let links = node.links();
        let (prev, next) = (links.prev.get(), links.next.get());
        if prev.is_null() {
            self.first = next;
        } else {
            // SAFETY: Neighbours on a list are alive, and we hold its lock.
            unsafe { (*prev).links().next.set(next) };
        }
        if !next.is_null() {
            // SAFETY: As above.
            unsafe { (*next).links().prev.set(prev) };
        }
        links.next.set(ptr::null());
        links.prev.set(ptr::null());
    }

    /// Unlinks and returns the first node, if any.
    ///
    /// # Safety
    ///
    /// The caller holds this list's lock.
    unsafe fn pop(&mut self) -> Option<&RawDelayed> {
        // SAFETY: Linked nodes are alive and we hold the list lock. The reference is only used
        // under the lock, or while the caller owns the item's pointer (see `drain_with`).
        let node = unsafe { self.first.as_ref() }?;
        // SAFETY: `node` is on this list and we hold its lock.
        unsafe { self.remove(node) };
        Some(node)
    }
}

/// One armed list.
///
/// # Invariants
///
/// `wq` is the queue of the [`ArmedLists`] this list belongs to. The list starts with its lock
/// (`#[repr(C)]`, and [`IrqSpinLock`] starts with its `raw_spinlock_t`): the address in an item's
/// `st` is that of the lock (`helpers.c`, `rust_wq_lock_st`).
#[repr(C)]
#[pin_data]
pub(crate) struct ArmedList {
    #[pin]
    head: IrqSpinLock<Head>,
    wq: *mut bindings::workqueue_struct,
}

// SAFETY: `wq` is only compared, never followed; the head is behind its lock.
unsafe impl Send for ArmedList {}
// SAFETY: As above.
unsafe impl Sync for ArmedList {}

impl ArmedList {
    fn new(wq: *mut bindings::workqueue_struct) -> impl PinInit<Self> {
        pin_init!(Self {
            head <- new_irq_spinlock!(Head { first: ptr::null() }, "ArmedList::head"),
            wq,
        })
    }

    /// The queue whose timers this list tracks.
    #[inline]
    pub(crate) fn wq(&self) -> *mut bindings::workqueue_struct {
        self.wq
    }

    /// The list's lock, for the protocol in `delayed.rs`.
    #[inline]
    pub(crate) fn head(&self) -> &IrqSpinLock<Head> {
        &self.head
    }

    /// Empties the list. For each item, `f` is called with the list lock held, after the item is
    /// unlinked (its `st` is cleared right after `f`); `f` returns a [`Taken`] saying what the caller now owns,
    /// which `after` is given once the lock is released, before the next item is looked at.
    /// Returns how many items `f` took.
    ///
    /// Nothing of an item is used once the lock is dropped unless `f` took its pointer (which
    /// keeps it alive): from then on anyone may arm it again, on any queue.
    fn drain_with(
        &self,
        f: &mut impl FnMut(&RawDelayed) -> Taken,
        after: &mut impl FnMut(&RawDelayed, Taken),
    ) -> usize {
        let mut n = 0;
        loop {
            let step = self.head.with(|h, _| {
                // SAFETY: We hold the list lock.
                let node = unsafe { h.pop() }?;
                // `st` still names this list while `f` decides: no arm on an owned queue can
                // claim the item meanwhile (it would wait for this lock), so a period `f` sees
                // end and begin again can only be one on a queue that lives forever.
                let taken = f(node);
                node.clear_st();
                // Keep only the address: it is followed after the unlock only if `f` took the
                // item's pointer.
                Some((core::ptr::from_ref(node), taken))
            });
            let Some((node, taken)) = step else {
                return n;
            };
            if !matches!(taken, Taken::Nothing) {
                n += 1;
                // SAFETY: `f` took the queue's pointer to this item, which keeps it alive until
                // `after` gives it back or re-queues it.
                after(unsafe { &*node }, taken);
            }
        }
    }

    /// The number of items linked on this list right now (a walk under the lock).
    #[cfg(CONFIG_KUNIT)]
    fn len(&self) -> usize {
        self.head.with(|h, _| {
            let (mut n, mut p) = (0, h.first);
            while !p.is_null() {
                n += 1;
                // SAFETY: Linked nodes are alive and we hold the list lock.
                p = unsafe { (*p).links().next.get() };
            }
            n
        })
    }
}

/// What a drain step took from an item (see [`ArmedList::drain_with`]).
pub(crate) enum Taken {
    /// Nothing: the item was left as it was.
    Nothing,
    /// The queue's pointer: a cancel succeeded.
    Pointer,
    /// The pointer of a pending period that was not this queue's: a cancel took it in the
    /// instant between the caller's check and the C call (a system-queue arm that re-aimed the
    /// item). It is queued again as it was.
    Foreign,
}

/// The armed lists of one owned queue, one per possible CPU.
///
/// # Invariants
///
/// `lists` has a power-of-two number of entries, at least `nr_cpu_ids`, and `mask` is that
/// number minus one; each is pinned (boxed) and never moves, and is freed only after an RCU
/// grace period that follows the drop of this value (module docs, rule 5).
pub(crate) struct ArmedLists {
    lists: KVec<Pin<KBox<ArmedList>>>,
    mask: usize,
}

impl ArmedLists {
    /// Allocates the lists of the queue `wq` (the only allocation: at queue creation).
    pub(crate) fn new(wq: *mut bindings::workqueue_struct) -> Result<Self> {
        let n = (kernel::cpu::nr_cpu_ids() as usize)
            .max(1)
            .checked_next_power_of_two()
            .ok_or(kernel::error::code::EINVAL)?;
        let mut lists = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            lists.push(KBox::pin_init(ArmedList::new(wq), GFP_KERNEL)?, GFP_KERNEL)?;
        }
        // INVARIANT: A power of two of pinned lists, at least one per possible CPU.
        Ok(Self { lists, mask: n - 1 })
    }

    /// The list an item goes on: chosen by the item's address, so an item always meets the same
    /// list of a queue (a re-arm or `mod_delayed` finds its own link there), and items armed by
    /// different CPUs at once are spread over as many lists as there are CPUs (any list would
    /// be correct).
    #[inline]
    pub(crate) fn for_item(&self, node: &RawDelayed) -> &ArmedList {
        let a = core::ptr::from_ref(node) as usize;
        // Items are at least cache-line apart in practice; mix in higher bits too.
        let i = ((a >> 6) ^ (a >> 12)) & self.mask;
        // SAFETY: `i <= mask < lists.len()` (invariant).
        unsafe { self.lists.get_unchecked(i) }
    }

    /// Empties every list (see [`ArmedList::drain_with`]). Returns how many items `f` took.
    pub(crate) fn drain_with(
        &self,
        mut f: impl FnMut(&RawDelayed) -> Taken,
        mut after: impl FnMut(&RawDelayed, Taken),
    ) -> usize {
        self.lists
            .iter()
            .map(|list| list.drain_with(&mut f, &mut after))
            .sum()
    }

    /// Walks every list under its lock and checks its links: each node's `prev` is the node
    /// before it, its `st` names the list, and the walk ends (no cycle: at most `limit` nodes
    /// in all). For tests and the torture runner; returns the number of nodes reached, or
    /// `None` on the first inconsistency.
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn check(&self) -> Option<usize> {
        // More nodes than this means a cycle (no test arms anywhere near as many).
        let limit = 10_000_000;
        let mut total = 0;
        for list in self.lists.iter() {
            let me: *const ArmedList = &**list;
            let n = list.head.with(|h, _| {
                let mut prev: *const RawDelayed = ptr::null();
                let mut p = h.first;
                let mut n = 0;
                while !p.is_null() {
                    // SAFETY: Linked nodes are alive and we hold the list lock.
                    let node = unsafe { &*p };
                    if node.links().prev.get() != prev || n >= limit || node.st_list() != me {
                        return None;
                    }
                    n += 1;
                    prev = p;
                    p = node.links().next.get();
                }
                Some(n)
            })?;
            total += n;
        }
        Some(total)
    }

    /// How many items are linked right now (a snapshot, for tests and statistics).
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn len(&self) -> usize {
        self.lists.iter().map(|l| l.len()).sum()
    }
}

impl Drop for ArmedLists {
    fn drop(&mut self) {
        // Rule 5: a call that read an item's `st` before the drain cleared it may still be about
        // to take a list's lock, inside its interrupts-off section. Free each list only after a
        // grace period, which waits for every such section.
        while let Some(list) = self.lists.pop() {
            // SAFETY: The list is not moved: its allocation is handed to `kvfree_rcu` as is.
            // `ArmedList` needs no destructor (a raw spinlock, pointers and a count).
            let raw = KBox::into_raw(unsafe { Pin::into_inner_unchecked(list) });
            // SAFETY: `raw` came from a `KBox` (kmalloc'd), is not used by us any more, and is
            // freed after a grace period; we may sleep (an owned queue is destroyed in task
            // context: directly, or by the reaper).
            unsafe { super::helpers::rust_wq_kvfree_rcu(raw.cast()) };
        }
    }
}
