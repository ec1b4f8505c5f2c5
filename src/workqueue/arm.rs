// SPDX-License-Identifier: GPL-2.0

//! Arming a tracked [`DelayedWork`]: `queue_delayed_work_on()` and `mod_delayed_work_on()` under
//! the item lock, linking the item on the armed list of the owned queue it is aimed at.

use super::{
    armed::ArmedLists,
    cpu::CpuId,
    delay::Delay,
    delayed::{
        DelayedWork,
        DelayedWorkItem,
        HasDelayedWork, //
    },
    pointer::WorkPointer,
    raw,
    EnqueueError, //
};
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

impl<T, const ID: u64> DelayedWork<T, ID>
where
    T: DelayedWorkItem<ID> + HasDelayedWork<ID>,
{
    /// Returns the field of the item `p` points at.
    fn of(p: &T) -> &Self {
        let ptr = core::ptr::from_ref(p).cast_mut();
        // SAFETY: `ptr` points at a live `T`; `raw_get_work` returns its field, which lives as
        // long as `p`.
        unsafe { &*T::raw_get_work(ptr) }
    }

    /// Queues `p` on `target` after `delay` (C's `queue_delayed_work_on()`).
    ///
    /// # Safety
    ///
    /// `target.wq` is a valid queue that stays valid until the timer has fired and the item has
    /// run, or the item has been cancelled: either it lives forever, or `target.lists` are its
    /// armed lists and its drop cancels what they hold before destroying it.
    pub(crate) unsafe fn arm(
        p: T::Pointer,
        target: Target<'_>,
        delay: Delay,
    ) -> Result<(), ArmError<T::Pointer>> {
        let item = p.into_raw();
        // SAFETY: `item` is alive: we own its pointer until the queue takes it or we give it back.
        let this = Self::of(unsafe { &*item });
        let raw = &this.raw;
        let mut t = raw.track.lock();
        // SAFETY: The pointer was not queued: it is ours to give back.
        let back = || unsafe { T::Pointer::from_raw(item) };
        if t.is_disabled() {
            return Err(ArmError::Refused(EnqueueError::Disabled(back())));
        }
        let cpu = match target.cpu {
            // Interrupts are off (item lock): an online CPU cannot go offline until we return,
            // because taking a CPU down runs a stop-machine step on every CPU.
            Some(c) if !super::cpu::is_online(c) => return Err(ArmError::Offline(back())),
            Some(c) => c.as_u32() as i32,
            None => raw::CPU_UNBOUND,
        };
        // SAFETY: `dwork` is initialised; the caller keeps the queue valid for as long as the
        // timer may fire; the CPU is online (checked above, with interrupts off) or unbound.
        let queued = unsafe {
            bindings::queue_delayed_work_on(cpu, target.wq, raw.dwork(), delay.jiffies())
        };
        if !queued {
            // Not disabled (checked under the lock, and only we change it): pending.
            return Err(ArmError::Refused(EnqueueError::Pending(back())));
        }
        // The item was idle, so a link from an earlier arm is stale.
        raw.unlink(&mut t);
        if delay.jiffies() != 0 {
            if let Some(lists) = target.lists {
                let list = lists.local();
                // SAFETY: We hold the item lock, the item is on no list (unlinked above), and
                // `armed_on` is set right below.
                unsafe { list.push(raw) };
                t.armed_on = list;
            }
        }
        Ok(())
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
        let mut t = raw.track.lock();
        if t.is_disabled() {
            return Err(EPERM);
        }
        let cpu = match target.cpu {
            Some(c) if !super::cpu::is_online(c) => return Err(ENODEV),
            Some(c) => c.as_u32() as i32,
            None => raw::CPU_UNBOUND,
        };
        // If the item is idle, the queue needs a pointer of its own: make it first.
        let extra = clone().into_raw();
        // SAFETY: As in `arm`; the item is not disabled (checked under the lock).
        let was_pending =
            unsafe { bindings::mod_delayed_work_on(cpu, target.wq, raw.dwork(), delay.jiffies()) };
        if was_pending {
            // The queue already owns a pointer; give back the one made above.
            // SAFETY: `extra` came from `into_raw` above and was not handed to the queue.
            drop(unsafe { T::Pointer::from_raw(extra) });
        }
        // The item is now aimed at `target` (whatever it was aimed at before).
        raw.unlink(&mut t);
        if delay.jiffies() != 0 {
            if let Some(lists) = target.lists {
                let list = lists.local();
                // SAFETY: As in `arm`.
                unsafe { list.push(raw) };
                t.armed_on = list;
            }
        }
        Ok(was_pending)
    }
}
