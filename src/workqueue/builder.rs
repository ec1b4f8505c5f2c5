// SPDX-License-Identifier: GPL-2.0

//! The typestate builder of [`Workqueue`]: `alloc_workqueue()` whose invalid flag combinations
//! do not compile.
//!
//! The kind comes first ([`Workqueue::builder`]`().percpu()`, `.unbound()`, `.ordered()`,
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
//! The name is a `fmt::Arguments` of any length, formatted by C itself through `%pA` (as
//! upstream's `alloc_workqueue` wrapper does: no allocation, no buffer of ours). C keeps at most
//! `WQ_NAME_LEN - 1` = 31 bytes of it, and for a longer name `__alloc_workqueue()` prints
//! "workqueue: name exceeds WQ_NAME_LEN. Truncating to: ..." (`pr_warn_once`,
//! `kernel/workqueue.c:5926` in 7.3): a warning in the log for a name the caller is allowed to
//! give. So the layer measures the name first and hands C at most its first 31 bytes, cut at
//! a UTF-8 character boundary (C would cut inside a character): a long name is accepted and
//! shortened silently, never refused. A name containing a NUL byte is [`EINVAL`] (C would
//! end the name there).

use super::{
    bh::BhWorkqueue,
    Workqueue, //
};
use core::{ffi::c_void, fmt, marker::PhantomData, ptr::NonNull};
use kernel::{bindings, error::code::*, prelude::*};

/// The largest `max_active` a queue may ask for (`WQ_MAX_ACTIVE`).
pub(crate) const MAX_ACTIVE: u32 = bindings::wq_consts_WQ_MAX_ACTIVE;

/// The size of C's name buffer in a queue, with its NUL (`WQ_NAME_LEN`).
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

/// Chooses the kind; from [`Workqueue::builder`].
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
/// The example below is `src/workqueue/examples/builder.rs`, which the KUnit case
/// `rust_wq_examples::example_builder` compiles and runs:
///
#[doc = concat!("```\n", include_str!("examples/builder.rs"), "```")]
///
/// Combinations C rejects do not compile (out-of-tree doctests do not run, so `make check`
/// proves this with the cases in `tests/compile_fail/`, `make compile-fail`):
///
/// ```compile_fail
/// Workqueue::builder().ordered().max_active(4); // no `max_active` on ordered queues
/// Workqueue::builder().bh().mem_reclaim();      // no `mem_reclaim` on BH queues
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

    /// Calls `alloc_workqueue()` with the name formatted by C through `%pA` (see the module
    /// documentation for names longer than C keeps).
    fn alloc(&self, name: fmt::Arguments<'_>) -> Result<NonNull<bindings::workqueue_struct>> {
        let mut measured = Measure { nul: false };
        fmt::write(&mut measured, name)?;
        if measured.nul {
            return Err(EINVAL);
        }
        // SAFETY: The format is a literal `"%pA"` consuming exactly one argument, a pointer to a
        // `fmt::Arguments` (what C's `%pA` hands to the kernel crate's `rust_fmt_argument`),
        // which lives until the end of this statement, so across the call (C formats the name
        // into the queue during the call and keeps no pointer to it). `max_active` is at most
        // `WQ_MAX_ACTIVE`, which fits in `c_int`.
        let raw = unsafe {
            bindings::alloc_workqueue_noprof(
                c"%pA".as_char_ptr(),
                self.flags,
                self.max_active as i32,
                core::ptr::from_ref(&format_args!("{}", ShortName(name))).cast::<c_void>(),
            )
        };
        NonNull::new(raw).ok_or(ENOMEM)
    }
}

/// Checks a name before C formats it: does it contain a NUL byte?
struct Measure {
    nul: bool,
}

impl fmt::Write for Measure {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.nul |= s.as_bytes().contains(&0);
        Ok(())
    }
}

/// A queue name as this layer hands it to C: its first `NAME_LEN - 1` bytes at most, cut at a
/// character boundary, so that C never truncates it (and never warns).
pub(crate) struct ShortName<'a>(pub(crate) fmt::Arguments<'a>);

impl fmt::Display for ShortName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut cut = Cut {
            out: f,
            left: NAME_LEN - 1,
        };
        fmt::write(&mut cut, self.0)
    }
}

/// Passes at most `left` more bytes on to `out`, cutting only at character boundaries.
struct Cut<'a, W: fmt::Write> {
    out: &'a mut W,
    left: usize,
}

impl<W: fmt::Write> fmt::Write for Cut<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut end = s.len().min(self.left);
        // Index 0 is a boundary, so this stops.
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        // Once a character did not fit, nothing after it is written either.
        self.left = if end < s.len() { 0 } else { self.left - end };
        match s.get(..end) {
            Some(head) if !head.is_empty() => self.out.write_str(head),
            _ => Ok(()),
        }
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

    /// Allocates the queue, named by `name` (any length; C keeps the first 31 bytes, see the
    /// module documentation).
    pub(crate) fn build(self, name: fmt::Arguments<'_>) -> Result<Workqueue> {
        let wq = self.alloc(name)?;
        // SAFETY: `wq` was just allocated with `self.flags` and is ours; nothing is queued on it.
        unsafe { Workqueue::from_new(wq, self.flags) }
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
    pub(crate) fn build(self, name: fmt::Arguments<'_>) -> Result<BhWorkqueue> {
        let wq = self.alloc(name)?;
        // SAFETY: `wq` was just allocated with `WQ_BH` and is ours.
        Ok(unsafe { BhWorkqueue::from_new(wq) })
    }
}

impl Workqueue {
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
    /// (as [`Workqueue::create`]).
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn create_singlethread(name: fmt::Arguments<'_>) -> Result<Self> {
        Self::builder()
            .ordered()
            .singlethread()
            .set(bindings::wq_flags___WQ_LEGACY)
            .build(name)
    }
}
