// SPDX-License-Identifier: GPL-2.0

//! Run-time controls and advisory queries: `max_active` of an owned queue, NUMA-node queueing,
//! congestion, a worker's description.
//!
//! Each C function here warns (a kernel `WARNING`) or logs a complaint on some input; this layer
//! checks that input first and returns `EINVAL` instead, so C never sees it:
//!
//! | C | warns when | here |
//! |---|---|---|
//! | `workqueue_set_max_active()` | BH or ordered queue (`WARN_ON`); outside 1..=512 (`pr_warn`, clamps) | `EINVAL` |
//! | `queue_work_node()` | queue not `WQ_UNBOUND` (`WARN_ON_ONCE`) | [`NodeError::NotUnbound`] (`EINVAL`) |
//! | `workqueue_congested()` | (reads a per-CPU pointer of a CPU that is not possible) | `EINVAL` |
//! | `set_worker_desc()` | (truncates silently at 31 bytes) | `EINVAL` |

use super::{
    arm::ArmError,
    cpu::CpuId,
    pointer::WorkPointer,
    queue::Queue,
    raw,
    work::{
        HasWork,
        Work,
        WorkItem, //
    },
    EnqueueError,
    Workqueue,
    MAX_ACTIVE, //
};
use core::fmt;
use kernel::{
    bindings,
    cpumask::Cpumask,
    error::code::*,
    prelude::*,
    str::Formatter, //
};

/// The longest worker description C keeps, with its NUL (`WORKER_DESC_LEN`).
pub(crate) const DESC_LEN: usize = bindings::wq_misc_consts_WORKER_DESC_LEN as usize;

/// Why [`Workqueue::enqueue_node`] did not queue. The pointer always comes back.
#[derive(Debug)]
pub(crate) enum NodeError<P> {
    /// Pending or disabled (see [`EnqueueError`]).
    Refused(EnqueueError<P>),
    /// The queue is not unbound; C's `queue_work_node()` would warn.
    NotUnbound(P),
}

impl<P> NodeError<P> {
    /// Returns the pointer that was not queued.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn into_inner(self) -> P {
        match self {
            Self::Refused(e) => e.into_inner(),
            Self::NotUnbound(p) => p,
        }
    }

    /// The errno: `EBUSY` (pending), `EPERM` (disabled) or `EINVAL` (not an unbound queue).
    pub(crate) fn to_errno(&self) -> Error {
        match self {
            Self::Refused(e) => e.to_errno(),
            Self::NotUnbound(_) => EINVAL,
        }
    }
}

impl<P> From<NodeError<P>> for Error {
    /// The errno of [`NodeError::to_errno`]; the pointer is dropped.
    fn from(e: NodeError<P>) -> Self {
        e.to_errno()
    }
}

// Kept here rather than beside `ArmError` in `arm.rs`, whose internals are being rewritten.
impl<P> From<ArmError<P>> for Error {
    /// The errno of [`ArmError::to_errno`]: `EBUSY`, `EPERM` or `ENODEV`; the pointer is dropped.
    fn from(e: ArmError<P>) -> Self {
        e.to_errno()
    }
}

impl Workqueue {
    /// Changes how many items may run at once (C's `workqueue_set_max_active()`): per CPU for
    /// per-CPU queues, in total for unbound ones. Items already queued beyond the old limit
    /// start when the new one allows.
    ///
    /// [`EINVAL`] for `n` outside `1..=`[`MAX_ACTIVE`] (C would clamp and log) and for ordered
    /// queues (C refuses with a `WARN_ON`: an ordered queue runs one item at a time by
    /// definition). BH queues have no such method. Sleeps (takes the queue's mutex).
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn set_max_active(&self, n: u32) -> Result {
        if n == 0 || n > MAX_ACTIVE || self.flags() & bindings::wq_flags___WQ_ORDERED != 0 {
            return Err(EINVAL);
        }
        kernel::task::might_sleep();
        // SAFETY: The queue is valid for the call (`self` owns it) and is neither BH nor
        // ordered; `n` is in C's range, so C neither warns nor clamps. We may sleep.
        unsafe { bindings::workqueue_set_max_active(self.as_raw(), n as i32) };
        Ok(())
    }

    /// Queues a plain item on a CPU of NUMA node `node` (C's `queue_work_node()`), for unbound
    /// queues (ordered ones included).
    ///
    /// The node is a hint, as in C: `None`, a node that does not exist or one without online
    /// CPUs means "any CPU" (plain `enqueue`). A queue that is not unbound is
    /// [`NodeError::NotUnbound`] (`EINVAL`), with the pointer back. Callable from any context.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn enqueue_node<P, T, const ID: u64>(
        &self,
        node: Option<u32>,
        p: P,
    ) -> Result<(), NodeError<P>>
    where
        T: WorkItem<ID, Pointer = P> + HasWork<T, ID>,
        P: WorkPointer<T> + Send + 'static,
    {
        if self.flags() & bindings::wq_flags_WQ_UNBOUND == 0 {
            return Err(NodeError::NotUnbound(p));
        }
        let node = node
            .and_then(|n| i32::try_from(n).ok())
            .unwrap_or(bindings::NUMA_NO_NODE);
        let item = p.into_raw();
        // SAFETY: `item` is alive (we own its pointer); `raw_get_work` gives its `Work` field.
        let work = unsafe { Work::raw_get(T::raw_get_work(item)) };
        // SAFETY: As in `Queue::enqueue`: `work` was initialised with `P`'s run function, which
        // takes back the pointer made by `into_raw`; the queue is valid and `WQ_UNBOUND` (so C
        // does not warn); any `node` value is accepted by C (out of range means "any").
        if unsafe { bindings::queue_work_node(node, self.as_raw(), work) } {
            return Ok(());
        }
        // SAFETY: `work` is alive (we still own the pointer).
        let disabled = unsafe { raw::is_disabled(work) };
        // SAFETY: Not queued: the pointer is still ours.
        let p = unsafe { P::from_raw(item) };
        Err(NodeError::Refused(if disabled {
            EnqueueError::Disabled(p)
        } else {
            EnqueueError::Pending(p)
        }))
    }
}

/// Returns the mask of possible CPUs (`cpu_possible_mask`).
fn possible_mask() -> &'static Cpumask {
    // SAFETY: `__cpu_possible_mask` is a C global that lives for the whole uptime and is only
    // changed during early boot.
    unsafe { Cpumask::from_raw(core::ptr::addr_of!(bindings::__cpu_possible_mask)) }
}

impl Queue {
    /// Whether items wait on `cpu` because the queue's `max_active` is reached there (C's
    /// `workqueue_congested()`); `None` is the calling CPU. Advisory: the answer may change at
    /// once. [`EINVAL`] for a CPU that is not possible (C has no per-CPU state for it).
    /// Callable from any context.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn is_congested(&self, cpu: Option<CpuId>) -> Result<bool> {
        let cpu = match cpu {
            Some(c) if !possible_mask().test(c) => return Err(EINVAL),
            Some(c) => c.as_u32() as i32,
            None => raw::CPU_UNBOUND,
        };
        // SAFETY: The queue is valid (type invariant); `cpu` is a possible CPU (every queue has
        // a per-CPU pool pointer for each) or `WORK_CPU_UNBOUND` (the calling CPU, chosen with
        // preemption off by C).
        Ok(unsafe { bindings::workqueue_congested(cpu, self.as_raw()) })
    }
}

/// Describes what the calling work item is doing (C's `set_worker_desc()`), for debugging.
///
/// The worker's name then reads `kworker/<id>+<desc>` while the item runs (and `-<desc>`
/// afterwards, until its next item): `/proc/<pid>/comm`, `ps`, and the kernel's task dumps
/// (SysRq-T, hung-task and lockup reports) show it.
///
/// `Ok(true)`: set; `Ok(false)`: the caller is not a worker thread running an item (a BH item,
/// or not a work item at all), so there is nothing to describe (C does nothing either).
/// [`EINVAL`] if the text does not fit in 31 bytes (C would truncate it) or contains a NUL.
#[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
pub(crate) fn set_worker_desc(desc: fmt::Arguments<'_>) -> Result<bool> {
    let mut buf = [0u8; DESC_LEN];
    // Leave room for the NUL.
    let len = {
        let mut f = Formatter::new(&mut buf[..DESC_LEN - 1]);
        fmt::write(&mut f, desc)?;
        f.bytes_written()
    };
    if buf[..len].contains(&0) {
        return Err(EINVAL);
    }
    if !raw::in_worker() {
        return Ok(false);
    }
    // SAFETY: The format is a literal `"%s"` consuming exactly one argument, a NUL-terminated
    // string (`buf` is zeroed past `len`) that C copies before returning.
    unsafe { bindings::set_worker_desc(c"%s".as_char_ptr(), buf.as_ptr()) };
    Ok(true)
}
