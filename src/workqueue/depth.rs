// SPDX-License-Identifier: GPL-2.0

//! Lock-free bookkeeping of disables: [`Depth`], the disables a layer's callers hold, and
//! [`Gate`], which keeps a delayed item's disable state still while `mod_delayed` decides who
//! owns a pointer.
//!
//! # The depth protocol
//!
//! C keeps one disable count per item (`work->data`, 16 bits, and it warns past 65535 and below
//! 0). Besides the callers' disables, C's own `cancel_work_sync()` and `cancel_delayed_work_sync()`
//! hold one for the length of their wait. [`Depth`] counts only the callers' ones:
//!
//! - a disable calls C first and counts afterwards ([`Depth::count`]); past the cap it takes the
//!   count back and undoes its C disable with C's enable (so past the cap a disable only
//!   cancels);
//! - an enable takes a count first ([`Depth::take`]) and calls C afterwards, and calls C only
//!   if it took one.
//!
//! So C's count is always at least ours: `C - ours` is the number of internal disables plus the
//! disables that have called C and not yet counted plus the enables that have taken a count and
//! not yet called C. An enable calls C only after taking a count, which was at least 1, so C's
//! count is then at least 1 plus its own share: C never underflows, and an enable never undoes a
//! `cancel_sync()`'s disable. A disable keeps its count only up to [`MAX_DISABLE_DEPTH`]: the
//! check comes after the C call, on the value its atomic add returns, and a disable past the
//! cap takes its count back before its C enable (the order an enable keeps too). C's count
//! exceeds ours by one per disable in that instant, so it stays below its limit (twice the cap)
//! unless more than 32,768 threads disable one item in the same instant.
//!
//! The counter is an `i32` holding the depth minus the cap (so 0 is the cap): a disable's one
//! atomic increment sets the flags that say whether it passed the cap (`lock inc; jg` on x86),
//! and an enable racing another can step it one below its floor and back without wrapping.
//!
//! Costs: a disable one atomic add and a branch after the C call; an enable one atomic
//! subtract (and an add back if there was nothing to undo).

use super::work::MAX_DISABLE_DEPTH;
use core::sync::atomic::{
    AtomicI32,
    AtomicU64,
    Ordering::{
        AcqRel,
        Acquire,
        Relaxed,
        Release, //
    }, //
};

/// The cap of [`Depth`], as its counter's type.
const CAP: i32 = MAX_DISABLE_DEPTH as i32;

/// The number of disables that callers of the layer hold on one item.
///
/// # Invariants
///
/// The value plus [`CAP`] is the number of counted disables minus the enables that took one,
/// plus a transient +1 per [`Depth::count`] in progress past the cap and a transient -1 per
/// [`Depth::take`] in progress that found none; C's count is at least the non-negative part
/// of that sum (module docs).
pub(crate) struct Depth(AtomicI32);

impl Depth {
    /// No disables.
    pub(crate) const fn new() -> Self {
        Self(AtomicI32::new(-CAP))
    }

    /// Counts a disable that C has just made. Returns `false` if the callers already held
    /// [`MAX_DISABLE_DEPTH`]: nothing is counted, and the caller must undo its C disable with
    /// C's enable (past the cap a disable only cancels).
    #[inline(always)]
    pub(crate) fn count(&self) -> bool {
        // INVARIANT: C's count went up first. Below the cap the old value is negative: the
        // compiler tests the flags of the atomic increment itself (`lock inc; jle` on x86).
        if self.0.fetch_add(1, Release) < 0 {
            return true;
        }
        self.uncount();
        false
    }

    /// Takes back the count of a disable past the cap, before the caller's C enable.
    #[cold]
    #[inline(never)]
    fn uncount(&self) {
        self.0.fetch_sub(1, Relaxed);
    }

    /// Takes one counted disable back; returns whether there was one, in which case the caller
    /// must now call C's enable once.
    #[inline]
    pub(crate) fn take(&self) -> bool {
        if self.0.fetch_sub(1, AcqRel) > -CAP {
            return true;
        }
        // Nothing to undo: put it back.
        self.0.fetch_add(1, Relaxed);
        false
    }

    /// The callers' depth (a snapshot).
    #[inline]
    pub(crate) fn get(&self) -> u32 {
        self.0.load(Acquire).saturating_add(CAP).clamp(0, CAP) as u32
    }
}

/// Keeps a delayed item's C disable count still for a short section, and says whether it is
/// zero.
///
/// `mod_delayed_work_on()` returns whether the item *was pending*, not whether it queued it:
/// on an idle item it queues it unless C's disable count is non-zero. The layer hands C a
/// pointer for that case beforehand, so it must know which case happened, and C does not say.
/// So `mod_delayed` is a *reader*: it checks that C's count is zero and cannot change, and
/// then calls C; no *writer* (a disable, an enable, a `cancel_sync` or `disable_sync`, which
/// change C's count) may change the count in between.
///
/// One word: the low half counts readers inside their section; the high half counts *units*:
/// one per writer inside its section, and one per disable the layer's callers hold (a disable
/// that counted in [`Depth`] keeps its writer's unit when it leaves, [`Gate::write_end_hold`],
/// and the enable that takes that count back drops it, [`Gate::write_end_release`]). So the
/// high half is zero exactly when no caller holds a disable and no writer is changing C's
/// count, which is when C's count is zero (`Depth`'s invariant: C's count is the callers'
/// disables plus what writers in their sections hold).
///
/// A reader adds itself and, if the high half is not zero, leaves at once (the item is
/// disabled, or about to be, or a `cancel_sync()` is waiting: `EPERM`); one atomic add both
/// enters and checks. A writer adds its unit and waits until no reader is inside, then changes
/// C's count, then leaves. One atomic add orders each against the other, so either the reader
/// sees the writer, or the writer waits for the reader.
///
/// Readers run with interrupts off and wait for nothing, so a writer's wait is short and
/// cannot deadlock, whatever context it runs in (a writer in an interrupt handler cannot have
/// interrupted a reader on its own CPU).
///
/// # Invariants
///
/// The high half is the number of writers inside their sections plus the disables counted in
/// the item's [`Depth`] whose enables have not released their unit; the low half is the number
/// of readers inside their sections.
pub(crate) struct Gate(AtomicU64);

const READER: u64 = 1;
const WRITER: u64 = 1 << 32;
const READERS: u64 = WRITER - 1;

impl Gate {
    /// Nobody inside.
    pub(crate) const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Enters as a reader; `false` (and not entered) if a writer is inside or a caller holds a
    /// disable: C's count may be non-zero. Interrupts must be off until [`Gate::read_end`] (the
    /// token proves it).
    #[inline]
    pub(crate) fn read_begin(&self, _irqs_off: &super::raw_spinlock::IrqsOff) -> bool {
        if self.0.fetch_add(READER, AcqRel) < WRITER {
            return true;
        }
        self.0.fetch_sub(READER, Release);
        false
    }

    /// Leaves a reader's section.
    #[inline]
    pub(crate) fn read_end(&self) {
        self.0.fetch_sub(READER, Release);
    }

    /// Announces a writer and waits until no reader is inside. No lock may be held that a
    /// reader takes (the layer's writers call this before taking any).
    #[inline]
    pub(crate) fn write_begin(&self) {
        if self.0.fetch_add(WRITER, AcqRel) & READERS == 0 {
            return;
        }
        while self.0.load(Acquire) & READERS != 0 {
            core::hint::spin_loop();
        }
    }

    /// Ends a writer's section.
    #[inline]
    pub(crate) fn write_end(&self) {
        self.0.fetch_sub(WRITER, Release);
    }

    /// Ends the section of a disable that counted in [`Depth`]: its unit stays in the word,
    /// keeping readers out, until the enable that takes the count back releases it.
    #[inline]
    pub(crate) fn write_end_hold(&self) {
        // INVARIANT: the unit now stands for the counted disable.
    }

    /// Ends the section of an enable that took a count back from [`Depth`]: its own unit and
    /// that of the disable it undid.
    #[inline]
    pub(crate) fn write_end_release(&self) {
        // INVARIANT: the count was taken back and C's enable made.
        self.0.fetch_sub(2 * WRITER, Release);
    }

    /// Whether a writer is inside its section or a caller holds a disable (a snapshot).
    #[inline]
    pub(crate) fn closed(&self) -> bool {
        self.0.load(Acquire) >= WRITER
    }
}
