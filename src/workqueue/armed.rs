// SPDX-License-Identifier: GPL-2.0

//! The armed lists of an owned queue: which tracked delayed items have a timer aimed at it.
//!
//! # Design
//!
//! C's `destroy_workqueue()` does not cancel delayed items whose timers are armed: they would
//! fire into a freed queue. So an [`OwnedQueue`](super::OwnedQueue) must find, when it is
//! dropped, exactly the items armed on it. It does so with intrusive links that live in each
//! [`DelayedWork`](super::DelayedWork) field: arming links the item, and the link goes away when
//! the timer's work starts running, when the item is cancelled or disabled, or when it is armed
//! again elsewhere. Nothing is allocated per item, no reference is held (the pointer the queue
//! owns for a pending item is the one C holds anyway), and every operation takes two IRQ-safe
//! raw spinlocks, so it works with spinlocks held, interrupts off and in hard-IRQ handlers.
//!
//! There is one list per possible CPU, chosen by the CPU that arms the item (interrupts are off
//! while it is chosen), so CPUs arming delayed work on one queue do not bounce one lock's cache
//! line between them (the objection to one list per queue made for the C side). The cost per
//! delayed enqueue is two uncontended lock/unlock pairs and four pointer writes.
//!
//! # Locking
//!
//! - The item lock ([`RawDelayed::track`]) protects the item's `armed_on` field and every change
//!   of the item's C state (`PENDING`, disable depth) made by this layer.
//! - A list lock protects the links of the items on that list.
//! - Order: item lock, then list lock. The queue's drop walks a list holding its lock and only
//!   *tries* the item lock (a trylock cannot deadlock), backing off when it is busy.
//! - An item linked on a list is alive: either it is pending (the queue owns a pointer to it), or
//!   its work function has started and is waiting for the item lock to unlink it before it calls
//!   `run`. So the list may be walked without holding references.

use super::delayed::RawDelayed;
use super::raw_spinlock::{
    new_raw_spinlock_irq,
    RawSpinLockIrq, //
};
use core::{cell::Cell, ptr};
use kernel::prelude::*;

/// The head of one armed list.
pub(crate) struct Head {
    first: *const RawDelayed,
    len: usize,
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

/// One armed list.
#[pin_data]
pub(crate) struct ArmedList {
    #[pin]
    head: RawSpinLockIrq<Head>,
}

impl ArmedList {
    fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            head <- new_raw_spinlock_irq!(Head { first: ptr::null(), len: 0 }, "ArmedList::head"),
        })
    }

    /// Links `node`.
    ///
    /// # Safety
    ///
    /// The caller holds `node`'s item lock, `node` is on no list, and records this list in
    /// `node`'s `armed_on` before releasing the item lock.
    pub(crate) unsafe fn push(&self, node: &RawDelayed) {
        let mut h = self.head.lock();
        let links = node.links();
        links.prev.set(ptr::null());
        links.next.set(h.first);
        if !h.first.is_null() {
            // SAFETY: Linked nodes are alive (module docs), and we hold the list lock.
            unsafe { (*h.first).links().prev.set(node) };
        }
        h.first = node;
        h.len += 1;
    }

    /// Unlinks `node`, which is on this list.
    ///
    /// # Safety
    ///
    /// The caller holds `node`'s item lock and `node` is on this list.
    pub(crate) unsafe fn remove(&self, node: &RawDelayed) {
        let mut h = self.head.lock();
        // SAFETY: Guaranteed by the caller, and we hold the list lock.
        unsafe { Self::unlink(&mut h, node) };
    }

    /// # Safety
    ///
    /// `node` is on the list whose head `h` is, and that list's lock is held (as `h`).
    unsafe fn unlink(h: &mut Head, node: &RawDelayed) {
        let links = node.links();
        let (prev, next) = (links.prev.get(), links.next.get());
        if prev.is_null() {
            h.first = next;
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
        h.len -= 1;
    }

    /// Empties the list. For each item, `f` is called with the item lock and the list lock held,
    /// after the item is unlinked (its `armed_on` is already cleared); `f` returns whether the
    /// item's pointer is now owned by the caller, in which case it is given back (dropped) right
    /// after both locks are released, before the next item is looked at. Returns how many were
    /// given back.
    ///
    /// Nothing of the item is used once its lock is dropped: from then on anyone holding another
    /// reference may arm it again, on any queue, and that writes its links under that queue's
    /// list lock. (An earlier version chained the taken-over items through their own links and
    /// walked the chain after the loop; a concurrent re-arm elsewhere rewrote the chain.)
    fn drain_with(&self, mut f: impl FnMut(&RawDelayed) -> bool) -> usize {
        let mut released = 0;
        loop {
            let mut h = self.head.lock();
            let first = h.first;
            if first.is_null() {
                return released;
            }
            // SAFETY: Linked nodes are alive while they are linked and we hold the list lock.
            let node = unsafe { &*first };
            let Some(mut track) = node.track().try_lock() else {
                // Someone holding the item lock is about to take this list's lock: back off.
                drop(h);
                core::hint::spin_loop();
                continue;
            };
            // SAFETY: `node` is on this list and we hold its lock.
            unsafe { Self::unlink(&mut h, node) };
            track.armed_on = ptr::null();
            let owned = f(node);
            // Keep only the address: once the locks are dropped the item is touched again only
            // if we own its pointer (which keeps it alive).
            let node: *const RawDelayed = node;
            drop(track);
            drop(h);
            if owned {
                // SAFETY: `f` took over the queue's pointer to this item (a successful cancel);
                // it is given back once, here, with no lock held. The item is alive: that
                // pointer keeps it so until this call.
                unsafe { (*node).release() };
                released += 1;
            }
        }
    }

    /// The number of items linked on this list right now.
    #[cfg(CONFIG_KUNIT)]
    fn len(&self) -> usize {
        self.head.lock().len
    }
}

/// The armed lists of one owned queue, one per possible CPU.
///
/// # Invariants
///
/// `lists` has `nr_cpu_ids` entries (at least one); each is pinned (boxed) and never moves.
pub(crate) struct ArmedLists {
    lists: KVec<Pin<KBox<ArmedList>>>,
}

impl ArmedLists {
    /// Allocates the lists (the only allocation: at queue creation).
    pub(crate) fn new() -> Result<Self> {
        let n = kernel::cpu::nr_cpu_ids() as usize;
        if n == 0 {
            return Err(kernel::error::code::EINVAL);
        }
        let mut lists = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            lists.push(KBox::pin_init(ArmedList::new(), GFP_KERNEL)?, GFP_KERNEL)?;
        }
        // INVARIANT: One pinned list per possible CPU.
        Ok(Self { lists })
    }

    /// The list for the CPU running the caller. Call with interrupts off (under an item lock).
    pub(crate) fn local(&self) -> &ArmedList {
        let cpu = kernel::cpu::CpuId::current().as_u32() as usize;
        // `cpu < nr_cpu_ids == lists.len()` by the invariant; the modulo only keeps the index
        // in range without a panic path.
        let i = cpu.checked_rem(self.lists.len()).unwrap_or(0);
        // SAFETY: `lists.len() >= 1` (invariant), so `i` (a remainder, or 0) is in range.
        unsafe { self.lists.get_unchecked(i) }
    }

    /// Empties every list with `f` (see [`ArmedList::drain_with`]), giving each taken-over
    /// pointer back as soon as its locks are dropped. Returns how many were given back.
    pub(crate) fn drain_with(&self, mut f: impl FnMut(&RawDelayed) -> bool) -> usize {
        self.lists.iter().map(|list| list.drain_with(&mut f)).sum()
    }

    /// Walks every list under its lock and checks that the links agree with the counts: each
    /// node's `prev` is the node before it, and the number of nodes reached is the list's
    /// length. For tests and the torture runner; returns the number of nodes reached, or
    /// `None` on the first inconsistency.
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn check(&self) -> Option<usize> {
        let mut total = 0;
        for list in self.lists.iter() {
            let h = list.head.lock();
            let mut prev: *const RawDelayed = ptr::null();
            let mut p = h.first;
            let mut n = 0;
            while !p.is_null() {
                // SAFETY: Linked nodes are alive and we hold the list lock.
                let links = unsafe { (*p).links() };
                if links.prev.get() != prev || n >= h.len {
                    return None;
                }
                n += 1;
                prev = p;
                p = links.next.get();
            }
            if n != h.len {
                return None;
            }
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
