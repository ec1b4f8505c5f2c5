// SPDX-License-Identifier: GPL-2.0

//! CPU numbers for the `_on` calls: [`CpuId`] (a valid CPU) and online checks.
//!
//! The `_on` calls take a [`CpuId`], a proof that the number is below `nr_cpu_ids`, and check
//! that the CPU is online. C's `queue_work_on()` accepts a CPU that went offline (the item then
//! runs on some other CPU), but an item queued on a possible CPU that was never online never
//! runs: no worker pool has a worker there, so a flush of it hangs and the workqueue watchdog
//! reports a lockup (C's comment above `queue_work_on()`: "callers specifying a CPU that never
//! has been online will get a splat"). Delayed `_on` calls need the CPU online when the timer is
//! armed (C warns otherwise).
//!
//! The delayed `_on` calls check with interrupts off (`irqs_off`, or an armed list's lock):
//! taking a CPU down runs a
//! stop-machine step on every CPU, which cannot happen while this CPU has interrupts off, so the
//! CPU stays online until the timer is armed, without the CPU-hotplug lock (which could
//! self-deadlock if nested, and cannot be taken in atomic context). A plain `enqueue_on` checks
//! without that: an item queued on a CPU that goes offline just after still runs (C hands the
//! work of an offline CPU's pool to other CPUs); only a CPU that was never online must be
//! refused, and that cannot change during the call.
//! An offline CPU gives `ENODEV`.

use core::sync::atomic::{
    AtomicUsize,
    Ordering::Relaxed, //
};
pub(crate) use kernel::cpu::CpuId;
use kernel::{
    bindings,
    error::code::*,
    prelude::*, //
};

/// Returns the number of possible CPU ids (`nr_cpu_ids`); valid CPUs are `0..nr_cpu_ids()`.
pub(crate) fn nr_cpu_ids() -> u32 {
    kernel::cpu::nr_cpu_ids()
}

/// Returns whether `cpu` is online right now (the answer may be stale at once, unless
/// interrupts are off; see the module docs). One load of a word of `cpu_online_mask`.
#[inline]
pub(crate) fn is_online(cpu: CpuId) -> bool {
    let c = cpu.as_u32() as usize;
    let per_word = usize::BITS as usize;
    let words = core::mem::size_of::<bindings::cpumask>() / core::mem::size_of::<usize>();
    let i = c / per_word;
    if i >= words {
        // Not a CPU of this kernel (`CpuId` is below `nr_cpu_ids`, so this does not happen).
        return false;
    }
    // Only addresses: no reference to the C global is made (the kernel changes it).
    let base = core::ptr::addr_of!(bindings::__cpu_online_mask).cast::<usize>();
    // SAFETY: `i` is within the mask's words (checked above); `__cpu_online_mask` lives for the
    // whole uptime, its words are `unsigned long` (the size and alignment of `usize` on every
    // Linux target), and the kernel changes them only with atomic bit operations, so an atomic
    // load is sound.
    let w = unsafe { AtomicUsize::from_ptr(base.add(i).cast_mut()) };
    (w.load(Relaxed) >> (c % per_word)) & 1 != 0
}

/// Returns a [`CpuId`] for `cpu`: [`EINVAL`] past `nr_cpu_ids`.
pub(crate) fn cpu_id(cpu: u32) -> Result<CpuId> {
    CpuId::from_u32(cpu).ok_or(EINVAL)
}

/// Returns a [`CpuId`] for `cpu` if it is online right now: [`EINVAL`] past `nr_cpu_ids`,
/// [`ENODEV`] if offline. The CPU may go offline afterwards; the `_on` calls cope (see above).
pub(crate) fn online_cpu(cpu: u32) -> Result<CpuId> {
    let id = cpu_id(cpu)?;
    if is_online(id) {
        Ok(id)
    } else {
        Err(ENODEV)
    }
}
