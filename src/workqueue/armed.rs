// SPDX-License-Identifier: GPL-2.0

//! The armed list of an owned queue: the tracked delayed items registered on it, a superset of
//! those whose timer is aimed at it.
//!
//! # Why
//!
//! C's `destroy_workqueue()` does not cancel delayed items whose timers are armed: they would
//! fire into a freed queue. So a [`Workqueue`](super::Workqueue) must find, when it is
//! dropped, every item armed on it. It does so with intrusive links that live in each
//! [`DelayedWork`](super::DelayedWork) field: nothing is allocated per item and no reference is
//! held.
//!
//! # The protocol
//!
//! An item is *registered* on at most one list: its word `st` (in [`RawDelayed`]) names that
//! list, or is 0, and its links are on that list. A registration is sticky: it outlives the
//! pending period that made it, so that arming the item again on the same queue (the common
//! case: a timeout re-armed, a poll) costs no lock. The list lock is taken only to change a
//! registration, which is rare: an item's first arm on a queue, a move to another queue, the
//! drop of the item or of the queue.
//!
//! 1. `st` changes only with the lock of the list it names (or will name) held: `0 -> L` and
//!    `L -> 0` under `L`'s lock. The links are used only under that lock.
//! 2. **Arming on an owned queue** `Q` (list `L`) happens in a *window*: interrupts off, the
//!    item's `arming` count up, `st` read: the C call is made only if `st == L`, and `arming`
//!    goes down after it; nothing of the item is touched after that. If `st != L`, the item is
//!    registered on `L` first (under `L`'s lock, moving it off another list if need be) and the
//!    window is tried again.
//! 3. **A move** off list `M` (to register on another list) takes `M`'s lock, *closes* the
//!    registration (`st` becomes `M`'s address marked [`CLOSING`]), waits until `arming` is 0,
//!    and then looks at the item: if it is pending and aimed at `M`'s queue, `st` is set back
//!    to `M` and the move is refused (the item is pending, so an arm elsewhere is refused too;
//!    a re-timing moves it under `M`'s lock instead, see `arm.rs`); otherwise it is unlinked,
//!    and only then is `st` cleared. The closing store and the increment of `arming` are both
//!    sequentially consistent, so either the window sees `st != M` and makes no C call, or the
//!    move sees the window's count and waits for its C call to finish, and then sees what it
//!    did. The mark is not 0 because the item is still linked on `M`: with 0, another list
//!    could claim `st` and link the item there too (found by the KUnit case
//!    `registry_churn_across_two_owned_queues`: both lists corrupted, a timer left armed on a
//!    queue being destroyed).
//! 4. Hence the invariant the queue's drop relies on: **an item pending and aimed at an owned
//!    queue is registered on its list**, or a call that borrows that queue (so the queue cannot
//!    be dropped) is about to register it there (the end of a move by `mod_delayed`).
//! 5. **A registered item is alive.** Its [`DelayedWork`](super::DelayedWork) field, when
//!    dropped (pinned data is dropped before its memory is reused), unregisters it under the
//!    list lock and waits until `arming` is 0, so a window that queued the item and lost it to
//!    a work function or a cancel on another CPU still has memory to count down in. A window
//!    runs with interrupts off, so the wait is short and cannot be on the waiter's own CPU.
//! 6. `st` is followed, and its list locked, only inside an interrupts-off section, which is an
//!    RCU read-side section: a dropped queue unregisters every item (`st = 0`) and frees its
//!    list only after a grace period (`kvfree_rcu`). So a list named by `st` when it was read is
//!    still memory when its lock is taken, and the re-check of `st` under the lock tells whether
//!    it is still the item's list (`helpers.c`, `rust_wq_lock_st`).
//!
//! The queue's drop takes its list's lock and, item by item, unregisters it and cancels it if
//! it is pending and aimed at the queue (a re-check after the cancel tells a period of this
//! queue from one that a system-queue arm started in between: see `owned.rs`). A cancel, a
//! `cancel_sync`, the work function and an arm on a queue that lives forever do nothing with
//! the registration: they are the C call alone.
//!
//! # Locking
//!
//! List locks are taken one at a time, never nested. The disable gate of `depth.rs` and the
//! `arming` count are not locks: their waiters wait only for sections that run with interrupts
//! off and never wait.

use super::delayed::RawDelayed;
use super::helpers;
use super::raw_spinlock::{
    new_irq_spinlock,
    IrqSpinLock,
    IrqsOff, //
};
use core::{
    cell::Cell,
    ptr::{
        self,
        NonNull, //
    },
    sync::atomic::Ordering::{
        Acquire,
        Relaxed,
        Release,
        SeqCst, //
    }, //
};
use kernel::{bindings, prelude::*};

/// The head of one armed list.
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
            // SAFETY: Registered nodes are alive (module docs, rule 5), and we hold the lock.
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
        // SAFETY: Registered nodes are alive and we hold the list lock. The reference is only
        // used under the lock, or while the caller owns the item's pointer (see `drain_with`).
        let node = unsafe { self.first.as_ref() }?;
        // SAFETY: `node` is on this list and we hold its lock.
        unsafe { self.remove(node) };
        Some(node)
    }
}

/// The mark of `st` while a move closes an item's registration (rule 3): the list's address
/// with its lowest bit set (a list is at least 2-aligned: it starts with a `raw_spinlock_t`).
const CLOSING: usize = 1;

const _: () = assert!(core::mem::align_of::<ArmedList>() > CLOSING);

/// The armed list of one owned queue.
///
/// # Invariants
///
/// `wq` is the queue this list belongs to. The list starts with its lock (`#[repr(C)]`, and
/// [`IrqSpinLock`] starts with its `raw_spinlock_t`): the address in an item's `st` is that of
/// the lock (`helpers.c`, `rust_wq_lock_st`).
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

    /// The value an item's `st` has while it is registered here.
    #[inline]
    fn id(&self) -> usize {
        ptr::from_ref(self) as usize
    }

    /// Empties the list. For each item, `f` is called with the list lock held, after the item is
    /// unlinked (its `st` is cleared right after `f`); `f` returns a [`Taken`] saying what the
    /// caller now owns, which `after` is given once the lock is released, before the next item
    /// is looked at. Returns how many items `f` took.
    ///
    /// Nothing of an item is used once the lock is dropped unless `f` took its pointer (which
    /// keeps it alive): from then on anyone may arm it again, on any queue, or drop it.
    pub(crate) fn drain_with(
        &self,
        mut f: impl FnMut(&RawDelayed) -> Taken,
        mut after: impl FnMut(&RawDelayed, Taken),
    ) -> usize {
        let mut n = 0;
        loop {
            let step = self.head.with(|h, _| {
                // SAFETY: We hold the list lock.
                let node = unsafe { h.pop() }?;
                // `st` still names this list while `f` decides: no arm on an owned queue can
                // register the item meanwhile (it would wait for this lock), and no arm on this
                // queue can begin (its drop or drain has it exclusively), so a period `f` sees
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

    /// Walks the list under its lock and counts the registered items for which `f` is true.
    /// `None` on the first inconsistency: a node's `prev` is not the node before it, its `st`
    /// does not name the list, or the walk does not end (more than ten million nodes). For tests
    /// and the torture runner.
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn count(&self, f: impl Fn(&RawDelayed) -> bool) -> Option<usize> {
        let limit = 10_000_000;
        let me: *const ArmedList = self;
        self.head.with(|h, _| {
            let mut prev: *const RawDelayed = ptr::null();
            let mut p = h.first;
            let (mut reached, mut n) = (0, 0);
            while !p.is_null() {
                // SAFETY: Registered nodes are alive and we hold the list lock.
                let node = unsafe { &*p };
                if node.links().prev.get() != prev || reached >= limit || node.st_list() != me {
                    return None;
                }
                reached += 1;
                if f(node) {
                    n += 1;
                }
                prev = p;
                p = node.links().next.get();
            }
            Some(n)
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

/// The armed list of an owned queue, on the heap, freed an RCU grace period after its drop.
///
/// # Invariants
///
/// `list` points at a pinned [`ArmedList`] allocated by a `KBox` and owned by this value; it is
/// freed only after an RCU grace period that follows the drop of this value (module docs,
/// rule 6).
pub(crate) struct Registry {
    list: NonNull<ArmedList>,
}

// SAFETY: `ArmedList` is `Send` and `Sync`; this only owns one.
unsafe impl Send for Registry {}
// SAFETY: As above.
unsafe impl Sync for Registry {}

impl Registry {
    /// Allocates the list of the queue `wq` (the only allocation: at queue creation).
    pub(crate) fn new(wq: *mut bindings::workqueue_struct) -> Result<Self> {
        let list = KBox::pin_init(ArmedList::new(wq), GFP_KERNEL)?;
        // SAFETY: The list is not moved out of its allocation: it is used through this pointer
        // and freed as is (`Drop`).
        let raw = KBox::into_raw(unsafe { Pin::into_inner_unchecked(list) });
        // INVARIANT: A pinned list from a `KBox`, owned.
        Ok(Self {
            // SAFETY: `KBox::into_raw` never returns null.
            list: unsafe { NonNull::new_unchecked(raw) },
        })
    }

    /// The list.
    #[inline]
    pub(crate) fn list(&self) -> &ArmedList {
        // SAFETY: Valid while `self` exists (type invariant).
        unsafe { self.list.as_ref() }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Rule 6: a call that read an item's `st` before the queue's drop cleared it may still
        // be about to take the list's lock, inside its interrupts-off section. Free the list
        // only after a grace period, which waits for every such section. `ArmedList` needs no
        // destructor (a raw spinlock and pointers).
        // SAFETY: The list came from a `KBox` (kmalloc'd) and is not used by us any more; it is
        // freed after a grace period; we may sleep (an owned queue is destroyed in task
        // context: directly, or by the reaper).
        unsafe { super::helpers::rust_wq_kvfree_rcu(self.list.as_ptr().cast()) };
    }
}

/// The registration protocol on the item's side (module docs): the window, moves, the item's drop.
impl RawDelayed {
    /// Whether the item is pending and aimed at `list`'s queue (its registration there is
    /// needed: module docs, rule 4).
    #[inline]
    fn is_current_on(&self, list: &ArmedList) -> bool {
        self.is_pending() && self.aimed_at() == list.wq
    }

    /// The list `st` names (null if none): for checks only.
    #[cfg(CONFIG_KUNIT)]
    fn st_list(&self) -> *const ArmedList {
        self.st.load(Acquire) as *const ArmedList
    }

    /// Clears `st`: the caller holds the lock of the list it names and has just unlinked the
    /// item (or did not link it).
    #[inline]
    fn clear_st(&self) {
        self.st.store(0, Release);
    }

    /// Claims `st` for `list` (`0 -> list`); the caller holds `list`'s lock. `false` if the item
    /// is registered on a list.
    #[inline]
    fn claim_st(&self, list: &ArmedList) -> bool {
        self.st
            .compare_exchange(0, list.id(), Acquire, Relaxed)
            .is_ok()
    }

    /// An arm's window (module docs, rule 2): runs `f`, the C call of an arm on `list`'s queue,
    /// if the item is registered on `list`, and returns its value; if it is not, `f` is not
    /// called and comes back. Interrupts are off (the token, which `f` is given), so a move or a
    /// drop that waits for the window waits for a few instructions on another CPU.
    #[inline(always)]
    pub(super) fn window<R, F: FnOnce(&IrqsOff) -> R>(
        &self,
        list: &ArmedList,
        irqs: &IrqsOff,
        f: F,
    ) -> Result<R, F> {
        // Rule 3: this increment and a move's store of 0 to `st` are both sequentially
        // consistent, so either the load below sees the move, or the move sees the count.
        self.arming.fetch_add(1, SeqCst);
        let r = if self.st.load(SeqCst) == list.id() {
            Ok(f(irqs))
        } else {
            Err(f)
        };
        // The window's last touch of the item: once the count is 0, whoever got the pointer
        // C took may drop the item (its drop waits for the count, rule 5). Release: a move
        // that sees 0 sees what C did.
        self.arming.fetch_sub(1, Release);
        r
    }

    /// Waits until no arm's window is open on the item (rule 3 and 5). Windows run with
    /// interrupts off, so this waits for a few instructions on another CPU.
    fn wait_no_window(&self) {
        while self.arming.load(SeqCst) != 0 {
            core::hint::spin_loop();
        }
    }

    /// Closes the item's registration on `other` for a move (rule 3): `st` becomes `other`'s
    /// address marked [`CLOSING`], then every window that saw `other` has finished. The caller
    /// holds `other`'s lock and `st` names it; it then unlinks the item and clears `st`
    /// ([`RawDelayed::leave`]), or puts `st` back ([`RawDelayed::reopen`]).
    ///
    /// Not 0: the item is still linked on `other`, and 0 would let another list claim `st`
    /// and link it there too (both lists corrupted). A window compares `st` with its list's
    /// address, so the mark fails it as 0 would; a claim (`0 -> list`) fails on it; and a
    /// locker through `st` waits for `other`'s lock and then finds `st` changed.
    fn close(&self, other: &ArmedList) {
        // Sequentially consistent: see `window`.
        self.st.store(other.id() | CLOSING, SeqCst);
        self.wait_no_window();
    }

    /// Undoes [`RawDelayed::close`]: the item stays registered on `other`, whose lock the caller
    /// still holds.
    fn reopen(&self, other: &ArmedList) {
        self.st.store(other.id(), Release);
    }

    /// Ends a move off the list whose lock the caller holds, after [`RawDelayed::close`]: the
    /// item is unlinked, then `st` cleared (only now may another list claim it).
    ///
    /// # Safety
    ///
    /// The caller holds the lock of the list `h` is the head of, and closed the item's
    /// registration on it.
    unsafe fn leave(&self, h: &mut Head) {
        // SAFETY: The item is on that list (closed, not unlinked), whose lock the caller holds.
        unsafe { h.remove(self) };
        self.clear_st();
    }

    /// Runs `f` with the lock of the list the item is registered on held, after checking that
    /// `st` still names it. `None` if the item is registered on no list.
    fn with_link<R>(&self, f: impl FnOnce(&ArmedList, &mut Head, &IrqsOff) -> R) -> Option<R> {
        let mut flags = 0;
        // SAFETY: `st` is this item's word: 0 or the address of an armed list, whose lock is at
        // its start (`ArmedList` invariant).
        let lock = unsafe { helpers::rust_wq_lock_st(self.st.as_ptr(), &mut flags) };
        if lock.is_null() {
            return None;
        }
        // SAFETY: `lock` is the start of the list `st` names, locked, so the list is alive
        // (module docs, rule 6) and stays so while we hold its lock (its queue's drop must take
        // it to unregister this item).
        let list = unsafe { &*lock.cast::<ArmedList>() };
        // SAFETY: We hold the list's lock (so nobody else uses its head) and make no other
        // reference to the head.
        let h = unsafe { &mut *list.head.data_ptr() };
        // SAFETY: We hold the lock, taken with interrupts saved.
        let r = f(list, h, unsafe { IrqSpinLock::<Head>::irqs_off_token() });
        // SAFETY: Taken above with these flags.
        unsafe { helpers::rust_wq_unlock_st(lock, flags) };
        Some(r)
    }

    /// Registers the item on `list` (module docs, rule 2), moving it off the list it is
    /// registered on (rule 3). `Err(Busy)` if it is pending and aimed at the queue of the list it
    /// is registered on: it stays there (an arm would be refused anyway; a re-timing moves it
    /// under that list's lock). The caller keeps the item alive (it holds a pointer or a
    /// reference).
    pub(super) fn register(&self, list: &ArmedList) -> Result<(), Busy> {
        loop {
            let cur = self.st.load(Acquire);
            if cur == list.id() {
                return Ok(());
            }
            if cur == 0 {
                let done = list.head.with(|h, _| {
                    if !self.claim_st(list) {
                        return false;
                    }
                    // SAFETY: We hold `list`'s lock and claimed `st` for it; the item was on no
                    // list.
                    unsafe { h.push(self) };
                    true
                });
                if done {
                    return Ok(());
                }
                continue;
            }
            let moved = self.with_link(|other, h, _| {
                if other.id() == list.id() {
                    // Registered here meanwhile.
                    return Ok(());
                }
                self.close(other);
                if self.is_current_on(other) {
                    self.reopen(other);
                    return Err(Busy);
                }
                // SAFETY: We hold `other`'s lock and closed the registration on it.
                unsafe { self.leave(h) };
                Ok(())
            });
            if let Some(Err(busy)) = moved {
                return Err(busy);
            }
            // Registered here, unlinked, or unregistered meanwhile: look again.
        }
    }

    /// Moves the item off the list it is registered on, with `f` (a re-timing that aims it
    /// elsewhere) run under that list's lock between the close and the unlink, so that the
    /// list's queue cannot be dropped while the item is still aimed at it unregistered. `f`
    /// returns whether the item left (it is then unlinked; otherwise it stays registered).
    /// `None` if the item is not registered on a list other than `list`'s.
    pub(super) fn move_with<R>(
        &self,
        list: &ArmedList,
        f: impl FnOnce(&IrqsOff) -> (R, bool),
    ) -> Option<R> {
        self.with_link(|other, h, irqs| {
            if other.id() == list.id() {
                return None;
            }
            self.close(other);
            let (r, left) = f(irqs);
            if left {
                // SAFETY: We hold `other`'s lock and closed the registration on it.
                unsafe { self.leave(h) };
            } else {
                self.reopen(other);
            }
            Some(r)
        })
        .flatten()
    }
}

/// A move refused: the item is pending and aimed at the queue of the list it is registered on
/// ([`RawDelayed::register`]).
pub(super) struct Busy;

#[pinned_drop]
impl PinnedDrop for RawDelayed {
    fn drop(self: Pin<&mut Self>) {
        // Only shared access from here on: a queue's drop may be looking at the item under its
        // list's lock, and a window on another CPU may be counting down (`RawDelayed` is
        // `!Unpin`, so the `&mut` asserts no exclusive access to it).
        let this: &Self = &self;
        // module docs, rule 5. Nobody holds a pointer to the item, so nothing arms or moves it any
        // more; only a queue's drop or drain may unregister it meanwhile (then `with_link`
        // finds `st` 0).
        if this.st.load(Acquire) != 0 {
            this.with_link(|_, h, _| {
                // SAFETY: We hold the lock of the list `st` names: the item is on it.
                unsafe { h.remove(this) };
                this.clear_st();
            });
        }
        // A window that queued the item, which then ran or was cancelled and dropped on another
        // CPU, may not have counted down yet.
        this.wait_no_window();
    }
}
