// SPDX-License-Identifier: GPL-2.0

//! Arming a tracked [`DelayedWork`]: `queue_delayed_work_on()` and `mod_delayed_work_on()`, and,
//! on an owned queue, the window that checks the item's registration on the queue's armed list
//! (the protocol is in `armed.rs`; the gate that `mod_delayed` reads in `depth.rs`).

use super::{
    armed::{
        ArmedList,
        Busy, //
    },
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
use kernel::{bindings, error::code::*, prelude::*};

/// Where an arm aims: the raw queue, its armed list (owned queues only), and the CPU.
pub(crate) struct Target<'a> {
    pub(crate) wq: *mut bindings::workqueue_struct,
    pub(crate) list: Option<&'a ArmedList>,
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
    /// C queued the item.
    Queued,
    /// C refused: pending or disabled.
    Refused,
    /// The CPU asked for is offline; nothing was done.
    Offline,
}

/// What one attempt at re-timing did.
#[derive(Clone, Copy)]
enum Modded {
    /// C re-timed it: `true` if it was pending (C kept the pointer it already had), `false` if
    /// it was idle and is now queued (C took ours).
    Was(bool),
    /// Disabled, or a disable in progress: nothing changed (`EPERM`).
    Disabled,
    /// The CPU asked for is offline: nothing changed (`ENODEV`).
    Offline,
}

/// What [`DelayedWork::modify`] did with the pointer it was handed.
pub(crate) enum Retimed<P> {
    /// The item was idle and is now queued: the queue holds the pointer.
    Queued,
    /// The item was pending: only its timer changed. The queue already held a pointer to it, so
    /// the one handed in comes back.
    Pending(P),
}

impl<P> Retimed<P> {
    /// Whether the item was pending (C's return value).
    pub(crate) fn was_pending(&self) -> bool {
        matches!(self, Self::Pending(_))
    }
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
    /// On a queue that lives forever this is the C call alone. On an owned queue it is the C call
    /// inside the item's window (`armed.rs`, rule 2): interrupts off, a count up and down, and a
    /// load that finds the item registered on the queue's list. Everything else (a CPU to
    /// check, a registration to make or move, a refusal to explain) is on the slow path.
    ///
    /// # Safety
    ///
    /// `target.wq` is a valid queue that stays valid until the timer has fired and the item has
    /// run, or the item has been cancelled: either it lives forever, or `target.list` is its
    /// armed list and its drop cancels what is registered there before destroying it.
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
            let queue = || {
                // SAFETY: `dwork` is initialised; the caller keeps the queue valid for as long
                // as the timer may fire (on an owned queue: the item is registered on its list,
                // which the window checks); the CPU is unbound.
                unsafe {
                    bindings::queue_delayed_work_on(raw::CPU_UNBOUND, target.wq, raw.dwork(), j)
                }
            };
            let queued = match target.list {
                None => queue(),
                Some(list) => {
                    matches!(
                        irqs_off(|irqs| raw.window(list, irqs, |_| queue())),
                        Ok(true)
                    )
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

    /// [`DelayedWork::arm`] for what its fast path does not do: a CPU to check, a registration
    /// to make, a refusal to explain (each attempt makes the C call again).
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
        // One attempt, interrupts off: the CPU stays online until they are back on (cpu.rs).
        let attempt = || match cpu_of(&target) {
            None => Armed::Offline,
            Some(cpu) => {
                // SAFETY: As in `arm`; the CPU is online (interrupts off) or unbound.
                let queued =
                    unsafe { bindings::queue_delayed_work_on(cpu, target.wq, raw.dwork(), j) };
                if queued {
                    Armed::Queued
                } else {
                    Armed::Refused
                }
            }
        };
        loop {
            let step = match target.list {
                None => irqs_off(|_| attempt()),
                Some(list) => match irqs_off(|irqs| raw.window(list, irqs, |_| attempt())) {
                    Ok(step) => step,
                    Err(_) => match raw.register(list) {
                        Ok(()) => continue,
                        // Pending on another owned queue: C would refuse it.
                        Err(Busy) => return Err(ArmError::Refused(EnqueueError::Pending(back()))),
                    },
                },
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
            }
        }
    }

    /// The C re-timing of `raw`, as a reader of its gate (`depth.rs`): refused while a caller
    /// holds a disable or a writer is changing C's count, or if the CPU is offline.
    /// C takes the pointer handed in only on `Was(false)`.
    #[inline(always)]
    fn mod_raw(
        raw: &RawDelayed,
        irqs: &IrqsOff,
        target: &Target<'_>,
        j: kernel::time::Jiffies,
    ) -> Modded {
        // The gate also keeps a reader out while a caller holds a disable.
        if !raw.gate().read_begin(irqs) {
            return Modded::Disabled;
        }
        let r = if let Some(cpu) = cpu_of(target) {
            // SAFETY: As in `arm`. No disable is held or can start before `read_end` (the
            // gate), so C queues an idle item: `false` means C took the pointer.
            Modded::Was(unsafe { bindings::mod_delayed_work_on(cpu, target.wq, raw.dwork(), j) })
        } else {
            Modded::Offline
        };
        raw.gate().read_end();
        r
    }

    /// Changes the delay of the item `p` points at, queueing it with `p` if idle (C's
    /// `mod_delayed_work_on()`).
    ///
    /// [`Retimed::Queued`] if it was idle (the queue took `p`), [`Retimed::Pending`] with `p`
    /// if it was pending (only the timer changed), and an error with `p`, nothing changed, if
    /// it is disabled ([`EnqueueError::Disabled`]) or the CPU is offline.
    ///
    /// # Safety
    ///
    /// As for [`DelayedWork::arm`].
    #[inline(always)]
    pub(crate) unsafe fn modify(
        p: T::Pointer,
        target: Target<'_>,
        delay: Delay,
    ) -> Result<Retimed<T::Pointer>, ArmError<T::Pointer>> {
        let item = p.into_raw();
        // SAFETY: `item` is alive: we own its pointer until the queue takes it or we give it back.
        let raw = &Self::of(unsafe { &*item }).raw;
        let j = delay.jiffies();
        let r = match target.list {
            // The item now aims at a queue that lives forever; a registration on an owned
            // queue's list stays, unneeded until the item is armed there again.
            None => irqs_off(|irqs| Self::mod_raw(raw, irqs, &target, j)),
            Some(list) => match irqs_off(|irqs| {
                raw.window(list, irqs, |irqs| Self::mod_raw(raw, irqs, &target, j))
            }) {
                Ok(r) => r,
                Err(_) => Self::modify_slow(raw, list, &target, j),
            },
        };
        // SAFETY: C took the pointer only on `Was(false)`; otherwise it is still ours, given
        // back once (each arm returns).
        let back = || unsafe { T::Pointer::from_raw(item) };
        match r {
            Modded::Was(false) => Ok(Retimed::Queued),
            Modded::Was(true) => Ok(Retimed::Pending(back())),
            Modded::Disabled => Err(ArmError::Refused(EnqueueError::Disabled(back()))),
            Modded::Offline => Err(ArmError::Offline(back())),
        }
    }

    /// [`DelayedWork::modify`] on an owned queue when the window found the item not registered
    /// on `list`: register it and retry, or move it off the list it is pending on.
    #[cold]
    #[inline(never)]
    fn modify_slow(
        raw: &RawDelayed,
        list: &ArmedList,
        target: &Target<'_>,
        j: kernel::time::Jiffies,
    ) -> Modded {
        loop {
            if raw.register(list).is_ok() {
                if let Ok(r) = irqs_off(|irqs| {
                    raw.window(list, irqs, |irqs| Self::mod_raw(raw, irqs, target, j))
                }) {
                    return r;
                }
                continue;
            }
            // Pending on another owned queue: re-time it under that queue's list lock, so that
            // its drop cannot find it aimed there and unregistered, and register it here
            // afterwards (our queue cannot be dropped meanwhile: `target` borrows it; the
            // caller's pointer keeps the item alive). If someone registered it elsewhere in
            // between, they armed it there: it is not aimed here any more.
            let moved = raw.move_with(list, |irqs| {
                let r = Self::mod_raw(raw, irqs, target, j);
                (r, matches!(r, Modded::Was(_)))
            });
            if let Some(r) = moved {
                if matches!(r, Modded::Was(_)) {
                    let _ = raw.register(list);
                }
                return r;
            }
            // Registered here, or nowhere, meanwhile: try again.
        }
    }
}
