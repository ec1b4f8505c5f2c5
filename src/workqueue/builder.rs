// SPDX-License-Identifier: GPL-2.0

//! The typestate builder of [`OwnedQueue`]: `alloc_workqueue()` whose invalid flag combinations
//! do not compile.
//!
//! The kind comes first ([`OwnedQueue::builder`]`().percpu()`, `.unbound()`, `.ordered()`,
//! `.power_efficient()`, `.bh()`), so exactly one of `WQ_PERCPU`/`WQ_UNBOUND` is always set
//! (7.3 warns otherwise). Each flag method exists only on the kinds C accepts it for:
//!
//! | method | per-CPU | unbound | ordered | power-efficient | BH |
//! |---|---|---|---|---|---|
//! | `highpri()` | yes | yes | yes | yes | yes |
//! | `max_active(n)`, `cpu_intensive()` | yes | yes | — (always 1) | yes | — (C warns) |
//! | `freezable()`, `mem_reclaim()` | yes | yes | yes | yes | — (C warns) |
//! | `sysfs()` | yes | yes | — (C refuses ordered) | yes | — |
//!
//! The name is formatted into a stack buffer of C's `WQ_NAME_LEN` (no allocation); a name that
//! does not fit is `EINVAL` (C would truncate it and warn).

use super::{
    bh::BhOwnedQueue,
    OwnedQueue, //
};
use core::{fmt, marker::PhantomData, ptr::NonNull};
use kernel::{bindings, error::code::*, prelude::*, str::Formatter};

/// The largest `max_active` a queue may ask for (`WQ_MAX_ACTIVE`).
pub(crate) const MAX_ACTIVE: u32 = bindings::wq_consts_WQ_MAX_ACTIVE;

/// The longest queue name C keeps, with its NUL (`WQ_NAME_LEN`).
pub(crate) const NAME_LEN: usize = 32;

/// The kinds of queue; type parameters of [`Builder`].
pub(crate) mod kind {
    /// Per-CPU (`WQ_PERCPU`): an item queued on a CPU runs on that CPU.
    pub(crate) struct PerCpu;
    /// Unbound (`WQ_UNBOUND`): items run on any CPU of the affinity scope.
    pub(crate) struct Unbound;
    /// Ordered (`alloc_ordered_workqueue()`): one item at a time, in queueing order.
    pub(crate) struct Ordered;
    /// Per-CPU, but unbound when the system prefers power efficiency (`WQ_POWER_EFFICIENT`).
    pub(crate) struct PowerEfficient;
    /// Bottom half (`WQ_BH`): items run in softirq context and must not sleep.
    pub(crate) struct Bh;
}

/// A queue kind: the flags it starts with.
pub(crate) trait Kind {
    /// The C flags of the kind.
    const FLAGS: u32;
    /// The `max_active` the kind starts with (`0`: C's default).
    const MAX_ACTIVE: u32 = 0;
}
impl Kind for kind::PerCpu {
    const FLAGS: u32 = bindings::wq_flags_WQ_PERCPU;
}
impl Kind for kind::Unbound {
    const FLAGS: u32 = bindings::wq_flags_WQ_UNBOUND;
}
impl Kind for kind::Ordered {
    const FLAGS: u32 = bindings::wq_flags_WQ_UNBOUND | bindings::wq_flags___WQ_ORDERED;
    // As C's `alloc_ordered_workqueue()`.
    const MAX_ACTIVE: u32 = 1;
}
impl Kind for kind::PowerEfficient {
    const FLAGS: u32 = bindings::wq_flags_WQ_PERCPU | bindings::wq_flags_WQ_POWER_EFFICIENT;
}
impl Kind for kind::Bh {
    const FLAGS: u32 = bindings::wq_flags_WQ_BH | bindings::wq_flags_WQ_PERCPU;
}

/// Kinds whose items run in process context (all but BH).
pub(crate) trait Sleeping: Kind {}
impl Sleeping for kind::PerCpu {}
impl Sleeping for kind::Unbound {}
impl Sleeping for kind::Ordered {}
impl Sleeping for kind::PowerEfficient {}

/// Kinds that run several items at once, so `max_active` and `cpu_intensive` apply.
pub(crate) trait Concurrent: Sleeping {}
impl Concurrent for kind::PerCpu {}
impl Concurrent for kind::Unbound {}
impl Concurrent for kind::PowerEfficient {}

/// Chooses the kind; from [`OwnedQueue::builder`].
pub(crate) struct KindChooser(());

impl KindChooser {
    fn with<K: Kind>(self) -> Builder<K> {
        Builder {
            flags: K::FLAGS,
            max_active: K::MAX_ACTIVE,
            _kind: PhantomData,
        }
    }

    /// A per-CPU queue (`WQ_PERCPU`).
    pub(crate) fn percpu(self) -> Builder<kind::PerCpu> {
        self.with()
    }

    /// An unbound queue (`WQ_UNBOUND`).
    pub(crate) fn unbound(self) -> Builder<kind::Unbound> {
        self.with()
    }

    /// An ordered queue (`alloc_ordered_workqueue()`).
    pub(crate) fn ordered(self) -> Builder<kind::Ordered> {
        self.with()
    }

    /// A power-efficient queue (`WQ_PERCPU | WQ_POWER_EFFICIENT`).
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn power_efficient(self) -> Builder<kind::PowerEfficient> {
        self.with()
    }

    /// A bottom-half queue (`WQ_BH`); it accepts only items marked `BhWorkItem`.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn bh(self) -> Builder<kind::Bh> {
        self.with()
    }
}

/// Builds an owned queue of kind `K`: `alloc_workqueue()`'s flags and `max_active`.
///
/// # Examples
///
/// ```ignore
/// let wq = OwnedQueue::builder().percpu().highpri().max_active(4)?.build(fmt!("my_wq/{}", 0))?;
/// ```
///
/// Combinations C rejects do not compile (out-of-tree doctests do not run, so `make check`
/// proves this with the cases in `tests/compile_fail/`, `make compile-fail`):
///
/// ```compile_fail
/// OwnedQueue::builder().ordered().max_active(4); // no `max_active` on ordered queues
/// OwnedQueue::builder().bh().mem_reclaim();      // no `mem_reclaim` on BH queues
/// ```
pub(crate) struct Builder<K> {
    flags: u32,
    max_active: u32,
    _kind: PhantomData<K>,
}

impl<K: Kind> Builder<K> {
    fn set(mut self, flag: u32) -> Self {
        self.flags |= flag;
        self
    }

    /// Items run at high priority (`WQ_HIGHPRI`).
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn highpri(self) -> Self {
        self.set(bindings::wq_flags_WQ_HIGHPRI)
    }

    /// The C flags this builder passes to `alloc_workqueue()`.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn raw_flags(&self) -> u32 {
        self.flags
    }

    /// Calls `alloc_workqueue()`.
    fn alloc(&self, name: fmt::Arguments<'_>) -> Result<NonNull<bindings::workqueue_struct>> {
        let mut buf = [0u8; NAME_LEN];
        // Leave room for the NUL: a name of `NAME_LEN` bytes or more does not fit.
        let len = {
            let mut f = Formatter::new(&mut buf[..NAME_LEN - 1]);
            fmt::write(&mut f, name).map_err(|_| EINVAL)?;
            f.bytes_written()
        };
        if buf[..len].contains(&0) {
            return Err(EINVAL);
        }
        // SAFETY: The format is a literal `"%s"` consuming exactly one argument, a NUL-terminated
        // string (`buf` is zeroed past `len`) that lives across the call (C copies it).
        // `max_active` is at most `WQ_MAX_ACTIVE`, which fits in `c_int`.
        let raw = unsafe {
            bindings::alloc_workqueue_noprof(
                c"%s".as_char_ptr(),
                self.flags,
                self.max_active as i32,
                buf.as_ptr(),
            )
        };
        NonNull::new(raw).ok_or(ENOMEM)
    }
}

impl<K: Sleeping> Builder<K> {
    /// The queue may be used during memory reclaim and has a rescuer (`WQ_MEM_RECLAIM`).
    pub(crate) fn mem_reclaim(self) -> Self {
        self.set(bindings::wq_flags_WQ_MEM_RECLAIM)
    }

    /// The queue is frozen during system suspend (`WQ_FREEZABLE`).
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn freezable(self) -> Self {
        self.set(bindings::wq_flags_WQ_FREEZABLE)
    }

    /// Allocates the queue, named by `name` (at most 31 bytes, else `EINVAL`).
    pub(crate) fn build(self, name: fmt::Arguments<'_>) -> Result<OwnedQueue> {
        let wq = self.alloc(name)?;
        // SAFETY: `wq` was just allocated with `self.flags` and is ours; nothing is queued on it.
        unsafe { OwnedQueue::from_new(wq, self.flags) }
    }
}

/// Kinds that may appear in sysfs (C refuses ordered queues there).
pub(crate) trait Sysfs: Sleeping {}
impl Sysfs for kind::PerCpu {}
impl Sysfs for kind::Unbound {}
impl Sysfs for kind::PowerEfficient {}

impl<K: Sysfs> Builder<K> {
    /// The queue appears under `/sys/devices/virtual/workqueue/` (`WQ_SYSFS`).
    pub(crate) fn sysfs(self) -> Self {
        self.set(bindings::wq_flags_WQ_SYSFS)
    }
}

impl<K: Concurrent> Builder<K> {
    /// Items are CPU-intensive and do not hold back concurrency management
    /// (`WQ_CPU_INTENSIVE`).
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn cpu_intensive(self) -> Self {
        self.set(bindings::wq_flags_WQ_CPU_INTENSIVE)
    }

    /// How many items may run at once per CPU (per node for unbound queues); `0` is the
    /// default. [`EINVAL`] above [`MAX_ACTIVE`].
    pub(crate) fn max_active(mut self, n: u32) -> Result<Self> {
        if n > MAX_ACTIVE {
            return Err(EINVAL);
        }
        self.max_active = n;
        Ok(self)
    }
}

impl Builder<kind::Ordered> {
    /// C's `create_singlethread_workqueue(name)`: ordered, `WQ_MEM_RECLAIM`.
    pub(crate) fn singlethread(self) -> Self {
        self.mem_reclaim()
    }
}

impl Builder<kind::Bh> {
    /// Allocates the BH queue (items run in softirq context).
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn build(self, name: fmt::Arguments<'_>) -> Result<BhOwnedQueue> {
        let wq = self.alloc(name)?;
        // SAFETY: `wq` was just allocated with `WQ_BH` and is ours.
        Ok(unsafe { BhOwnedQueue::from_new(wq) })
    }
}

impl OwnedQueue {
    /// Starts building a queue: choose the kind first.
    pub(crate) fn builder() -> KindChooser {
        KindChooser(())
    }

    /// C's `create_workqueue(name)`: per-CPU, `WQ_MEM_RECLAIM`, one item at a time per CPU,
    /// and C's `__WQ_LEGACY` (`include/linux/workqueue.h:603`): its items may flush items of
    /// queues without `WQ_MEM_RECLAIM` (`check_flush_dependency()` exempts legacy queues).
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn create(name: fmt::Arguments<'_>) -> Result<Self> {
        Self::builder()
            .percpu()
            .mem_reclaim()
            .max_active(1)?
            .set(bindings::wq_flags___WQ_LEGACY)
            .build(name)
    }

    /// C's `create_singlethread_workqueue(name)`: ordered, `WQ_MEM_RECLAIM`, `__WQ_LEGACY`
    /// (as [`OwnedQueue::create`]).
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn create_singlethread(name: fmt::Arguments<'_>) -> Result<Self> {
        Self::builder()
            .ordered()
            .singlethread()
            .set(bindings::wq_flags___WQ_LEGACY)
            .build(name)
    }
}
