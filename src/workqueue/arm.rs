// SPDX-License-Identifier: GPL-2.0

//! Arming a tracked [`DelayedWork`]: `queue_delayed_work_on()` and `mod_delayed_work_on()`, and,
//! on an owned queue, linking the item on the armed list of the CPU that arms it (the protocol is
//! in `armed.rs`; the gate that `mod_delayed` reads in `depth.rs`).

use super::{
    armed::ArmedLists,
    cpu::CpuId,
    delay::Delay,
    delayed::{
        DelayedWork,
        DelayedWorkItem,
        HasDelayedWork,
        RawDelayed, //
    },
    pointer::WorkPointer,
    raw,
    raw_spinlock::{
        irqs_off,
        IrqsOff, //
    },
    EnqueueError, //
};
use core::sync::atomic::Ordering::Relaxed;
use kernel::{bindings, error::code::*, prelude::*};

/// Where an arm aims: the raw queue, its armed lists (owned queues only), and the CPU.
pub(crate) struct Target<'a> {
    pub(crate) wq: *mut bindings::workqueue_struct,
    pub(crate) lists: Option<&'a ArmedLists>,
    pub(crate) cpu: Option<CpuId>,
}

/// Why an arm with a CPU failed besides pending/disabled.
pub(crate) enum ArmError<P> {
    /// Pending or disabled (see [`EnqueueError`]).
    Refused(EnqueueError<P>),
    /// The CPU asked for is offline; the pointer is handed back.
    Offline(P),
}

impl<P> ArmError<P> {
    /// The errno: `EBUSY` (pending), `EPERM` (disabled) or `ENODEV` (offline CPU).
    pub(crate) fn to_errno(&self) -> Error {
        match self {
            Self::Refused(e) => e.to_errno(),
            Self::Offline(_) => ENODEV,
        }
    }

    /// Returns the pointer that was not queued.
    pub(crate) fn into_inner(self) -> P {
        match self {
            Self::Refused(e) => e.into_inner(),
            Self::Offline(p) => p,
        }
    }
}

/// What one attempt at arming did.
enum Armed {
    /// C queued the item (and it is linked if it needs to be).
    Queued,
    /// C refused: pending or disabled.
    Refused,
    /// The CPU asked for is offline; nothing was done.
    Offline,
    /// The item is on (or being put on) an armed list: settle that first.
    Linked,
}

/// What one attempt at re-timing did, and the pointer made for C if the item was idle.
enum Modded {
    /// C re-timed it: `true` if it was pending (the pointer made for it is given back after
    /// the list lock is dropped), `false` if it was idle and is now queued (C took the pointer).
    Done(bool, *mut ()),
    /// Refused; nothing changed.
    Error(Error),
    /// The item is linked on another list: handle it under that list's lock.
    Elsewhere,
}

/// The C CPU number for `target`, if that CPU is online: `None` if it is not. Call with
/// interrupts off: an online CPU cannot go offline until they are back on (cpu.rs).
#[inline]
fn cpu_of(target: &Target<'_>) -> Option<i32> {
    match target.cpu {
        None => Some(raw::CPU_UNBOUND),
        Some(c) if super::cpu::is_online(c) => Some(c.as_u32() as i32),
        Some(_) => None,
    }
}

impl<T, const ID: u64> DelayedWork<T, ID>
where
    T: DelayedWorkItem<ID> + HasDelayedWork<T, ID>,
{
    /// Returns the field of the item `p` points at.
    #[inline]
    fn of(p: &T) -> &Self {
        let ptr = core::ptr::from_ref(p).cast_mut();
        // SAFETY: `ptr` points at a live `T`; `raw_get_work` returns its field, which lives as
        // long as `p`.
        unsafe { &*T::raw_get_work(ptr) }
    }

    /// Queues `p` on `target` after `delay` (C's `queue_delayed_work_on()`).
    ///
    /// On a queue that lives forever this is the C call alone. On an owned queue the item is
    /// linked on its list of that queue, under that list's lock (`armed.rs`). Everything else
    /// (a CPU to check, a refusal to explain, a link to settle first) is on the slow path.
    ///
    /// # Safety
    ///
    /// `target.wq` is a valid queue that stays valid until the timer has fired and the item has
    /// run, or the item has been cancelled: either it lives forever, or `target.lists` are its
    /// armed lists and its drop cancels what they hold before destroying it.
    #[inline(always)]
    pub(crate) unsafe fn arm(
        p: T::Pointer,
        target: Target<'_>,
        delay: Delay,
    ) -> Result<(), ArmError<T::Pointer>> {
        let item = p.into_raw();
        // SAFETY: `item` is alive: we own its pointer until the queue takes it or we give it back.
        let raw = &Self::of(unsafe { &*item }).raw;
        let j = delay.jiffies();
        if target.cpu.is_none() {
            let queued = match target.lists {
                // SAFETY: `dwork` is initialised; the caller keeps the queue valid for as long
                // as the timer may fire; the CPU is unbound.
                None => unsafe {
                    bindings::queue_delayed_work_on(raw::CPU_UNBOUND, target.wq, raw.dwork(), j)
                },
                Some(lists) => {
                    let list = lists.for_item(raw);
                    list.head().with(|h, _| {
                        if !raw.claim_st(list) {
                            // On a list already: the slow path settles it.
                            return false;
                        }
                        // SAFETY: As above; the caller keeps the queue valid while `lists`
                        // hold the item.
                        let queued = unsafe {
                            bindings::queue_delayed_work_on(
                                raw::CPU_UNBOUND,
                                target.wq,
                                raw.dwork(),
                                j,
                            )
                        };
                        if queued && j != 0 {
                            // A timer is aimed at the queue: link the item before unlocking,
                            // so that whoever ends this period finds the link complete.
                            // SAFETY: We hold `list`'s lock and claimed `st` for it; the item
                            // was on no list.
                            unsafe { h.push(raw) };
                        } else {
                            // Refused, or queued at once (no timer): no link.
                            raw.clear_st();
                        }
                        queued
                    })
                }
            };
            if queued {
                return Ok(());
            }
        }
        // SAFETY: The pointer was not queued: still ours; the caller's promise about the queue
        // is passed on.
        unsafe { Self::arm_slow(item, target, j) }
    }

    /// [`DelayedWork::arm`] for what its fast path does not do: a CPU to check, a link to
    /// settle, a refusal to explain (each attempt makes the C call again).
    ///
    /// # Safety
    ///
    /// `item` came from `into_raw` and its pointer is ours (not queued); `target` as for
    /// [`DelayedWork::arm`].
    #[cold]
    #[inline(never)]
    unsafe fn arm_slow(
        item: *mut T,
        target: Target<'_>,
        j: kernel::time::Jiffies,
    ) -> Result<(), ArmError<T::Pointer>> {
        // SAFETY: `item` is alive: we own its pointer.
        let raw = &Self::of(unsafe { &*item }).raw;
        // SAFETY: Called only when the pointer was not queued: it is still ours, given back once
        // (each call returns).
        let back = || unsafe { T::Pointer::from_raw(item) };
        loop {
            let step = match target.lists {
                None => irqs_off(|_| match cpu_of(&target) {
                    None => Armed::Offline,
                    // SAFETY: As in `arm`; the CPU is online and stays so (interrupts off), or
                    // unbound.
                    Some(cpu) => match unsafe {
                        bindings::queue_delayed_work_on(cpu, target.wq, raw.dwork(), j)
                    } {
                        true => Armed::Queued,
                        false => Armed::Refused,
                    },
                }),
                Some(lists) => {
                    let list = lists.for_item(raw);
                    list.head().with(|h, _| {
                        if !raw.claim_st(list) {
                            return Armed::Linked;
                        }
                        let Some(cpu) = cpu_of(&target) else {
                            raw.clear_st();
                            return Armed::Offline;
                        };
                        // SAFETY: As in `arm`.
                        let queued = unsafe {
                            bindings::queue_delayed_work_on(cpu, target.wq, raw.dwork(), j)
                        };
                        if queued && j != 0 {
                            // SAFETY: As in `arm`.
                            unsafe { h.push(raw) };
                        } else {
                            raw.clear_st();
                        }
                        if queued {
                            Armed::Queued
                        } else {
                            Armed::Refused
                        }
                    })
                }
            };
            match step {
                Armed::Queued => return Ok(()),
                Armed::Offline => return Err(ArmError::Offline(back())),
                Armed::Refused => {
                    // Disabled, or a disable in progress: `EPERM`; else pending: `EBUSY`; else
                    // the state changed after C looked (it ran or was cancelled): try again.
                    if raw.disabled_or_changing() {
                        return Err(ArmError::Refused(EnqueueError::Disabled(back())));
                    }
                    if raw.is_pending() {
                        return Err(ArmError::Refused(EnqueueError::Pending(back())));
                    }
                }
                Armed::Linked => {
                    // A current link means a pending item; a stale one goes, and we retry.
                    if raw.unlink_stale() {
                        return Err(ArmError::Refused(EnqueueError::Pending(back())));
                    }
                }
            }
        }
    }

    /// The C re-timing of `raw`, as a reader of its gate (`depth.rs`): refused with `EPERM`
    /// while the callers hold a disable or a writer is changing C's count, `ENODEV` for an
    /// offline CPU. `clone` makes the pointer C keeps if the item was idle; it is called at
    /// most once, and only on the way to C.
    fn mod_raw(
        raw: &RawDelayed,
        irqs: &IrqsOff,
        clone: &mut Option<impl FnOnce() -> T::Pointer>,
        target: &Target<'_>,
        j: kernel::time::Jiffies,
    ) -> Modded {
        if !raw.gate().read_begin(irqs) {
            return Modded::Error(EPERM);
        }
        let r = if raw.depth.get() > 0 {
            Modded::Error(EPERM)
        } else if let Some(cpu) = cpu_of(target) {
            match clone.take() {
                Some(clone) => {
                    // If the item is idle, C queues it and keeps this pointer.
                    let extra = clone().into_raw();
                    // SAFETY: As in `arm`; no disable is held or can start before `read_end`
                    // (the gate), so C queues an idle item: `false` means C took `extra`.
                    let was =
                        unsafe { bindings::mod_delayed_work_on(cpu, target.wq, raw.dwork(), j) };
                    Modded::Done(was, extra.cast())
                }
                // Not reached: each attempt that gets here returns.
                None => Modded::Error(EINVAL),
            }
        } else {
            Modded::Error(ENODEV)
        };
        raw.gate().read_end();
        r
    }

    /// Gives back the pointer `mod_raw` made, if C did not take it.
    fn finish_mod(r: Modded) -> Result<bool> {
        match r {
            Modded::Done(true, extra) => {
                // SAFETY: `extra` came from `into_raw` in `mod_raw` and C did not take it (the
                // item was pending). No lock is held: dropping it may free the item's data.
                drop(unsafe { T::Pointer::from_raw(extra.cast()) });
                Ok(true)
            }
            Modded::Done(false, _) => Ok(false),
            Modded::Error(e) => Err(e),
            Modded::Elsewhere => Err(EAGAIN),
        }
    }

    /// Changes the delay of `item`, queueing it if idle (C's `mod_delayed_work_on()`).
    ///
    /// Returns `Ok(true)` if it was pending (only the timer changed), `Ok(false)` if it was idle
    /// and is now queued (with a new pointer made from `item`), and an error, with nothing
    /// changed, if it is disabled or the CPU is offline.
    ///
    /// # Safety
    ///
    /// As for [`DelayedWork::arm`].
    pub(crate) unsafe fn modify(
        item: &T,
        clone: impl FnOnce() -> T::Pointer,
        target: Target<'_>,
        delay: Delay,
    ) -> Result<bool> {
        let raw = &Self::of(item).raw;
        let j = delay.jiffies();
        let mut clone = Some(clone);
        let Some(lists) = target.lists else {
            let r = irqs_off(|irqs| Self::mod_raw(raw, irqs, &mut clone, &target, j));
            let ok = matches!(r, Modded::Done(..));
            let r = Self::finish_mod(r);
            if ok {
                // The item now aims at a queue that lives forever: a link left on an owned
                // queue's list is stale.
                raw.settle();
            }
            return r;
        };
        loop {
            let list = lists.for_item(raw);
            let me = core::ptr::from_ref(list) as usize;
            let r = list.head().with(|h, irqs| {
                let linked_here = raw.st.load(Relaxed) == me;
                if !linked_here && !raw.claim_st(list) {
                    return Modded::Elsewhere;
                }
                // `st` names this list and we hold its lock: the link is ours to manage.
                let r = Self::mod_raw(raw, irqs, &mut clone, &target, j);
                let armed = matches!(r, Modded::Done(..)) && j != 0;
                match (linked_here, armed) {
                    // Aimed here with a timer: the link is current.
                    (true, true) => {}
                    // SAFETY: We hold `list`'s lock and claimed `st` for it; the item was on
                    // no list.
                    (false, true) => unsafe { h.push(raw) },
                    (false, false) => raw.clear_st(),
                    (true, false) => {
                        if matches!(r, Modded::Done(..)) {
                            // Queued at once, no timer: no link.
                            // SAFETY: `st` names this list: the item is on it.
                            unsafe { h.remove(raw) };
                            raw.clear_st();
                        }
                    }
                }
                r
            });
            if !matches!(r, Modded::Elsewhere) {
                return Self::finish_mod(r);
            }
            // Linked on another list: re-time under that list's lock, so that nobody ends the
            // old period meanwhile, and unlink there; then link here if the new timer is still
            // armed (`item` keeps the item alive).
            let moved = raw.with_link(|_, h, irqs| {
                let r = Self::mod_raw(raw, irqs, &mut clone, &target, j);
                if matches!(r, Modded::Done(..)) {
                    // SAFETY: `with_link` holds the lock of the list `st` names.
                    unsafe { h.remove(raw) };
                    raw.clear_st();
                }
                r
            });
            if let Some(r) = moved {
                let ok = matches!(r, Modded::Done(..));
                let r = Self::finish_mod(r);
                if ok && j != 0 {
                    raw.link_if_current(lists.for_item(raw));
                }
                return r;
            }
            // Unlinked meanwhile: try again from the start.
        }
    }
}
