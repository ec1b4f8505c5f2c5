// SPDX-License-Identifier: GPL-2.0

//! Facts about the calling context: which context the caller runs in ([`Context`]), whether it
//! is a workqueue worker ([`in_worker`]), and a worker's description ([`set_worker_desc`]).
//!
//! [`Context::current`] asks C (`helpers.c`: `in_nmi()`, `in_hardirq()`,
//! `in_serving_softirq()`), so it is right on every architecture and on `PREEMPT_RT`, where the
//! softirq count is kept in the task (`current->softirq_disable_cnt`) rather than in the
//! preempt count.
//!
//! # What the context does not tell
//!
//! Task context is not the same as "may sleep": a task holding a spinlock, or with preemption,
//! bottom halves or interrupts off, is in task context and must not sleep. C cannot tell that
//! in general either (without `CONFIG_PREEMPT_COUNT`, a held spinlock leaves no trace), and
//! Rust for Linux does not track atomic context in types. The layer therefore documents, on
//! each operation that sleeps, that the caller must be able to sleep, and calls
//! `might_sleep()` there, so that a debug kernel (`CONFIG_DEBUG_ATOMIC_SLEEP`) reports a wrong
//! call; on a production kernel such a call is a bug of the caller, not caught. The known
//! places where safe code can sleep in atomic context this way:
//!
//! - dropping an [`Workqueue`](super::Workqueue) in task context with a spinlock held or
//!   bottom halves or interrupts off: the drop recognises worker and interrupt context only
//!   (where it defers), and otherwise destroys the queue at once, which sleeps
//!   (`destroy_workqueue()`, `rcu_barrier()`);
//! - the operations documented to sleep (`cancel_sync`, `flush`, `disable_sync`, an owned
//!   queue's `flush`/`drain`) called from such a section.
//!
//! C header: [`include/linux/preempt.h`](srctree/include/linux/preempt.h)

use super::helpers;

#[cfg_attr(
    not(CONFIG_KUNIT),
    expect(unused_imports, reason = "used by KUnit only")
)]
pub(crate) use super::control::set_worker_desc;

/// Returns whether the caller is a workqueue worker running an item, in task context.
pub(crate) fn in_worker() -> bool {
    super::raw::in_worker()
}

/// An execution context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Context {
    /// Task (process) context: a thread, which may sleep unless it holds a lock or has
    /// preemption, bottom halves or interrupts off (C's `in_task()`).
    Task,
    /// Serving a softirq, for example a timer callback or a BH work item
    /// (C's `in_serving_softirq()`).
    SoftIrq,
    /// A hard-interrupt handler (C's `in_hardirq()`).
    HardIrq,
    /// A non-maskable interrupt (C's `in_nmi()`).
    Nmi,
}

impl Context {
    /// Returns the context of the caller. Callable from any context.
    pub(crate) fn current() -> Self {
        // SAFETY: `rust_wq_context` has no preconditions; it only reads the preempt count and,
        // on `PREEMPT_RT`, the current task's softirq count.
        match unsafe { helpers::rust_wq_context() } {
            3 => Context::Nmi,
            2 => Context::HardIrq,
            1 => Context::SoftIrq,
            _ => Context::Task,
        }
    }

    /// Whether this is task context.
    pub(crate) fn is_task(self) -> bool {
        self == Context::Task
    }

    /// A short name for logs: `task`, `softirq`, `hardirq` or `nmi`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Context::Task => "task",
            Context::SoftIrq => "softirq",
            Context::HardIrq => "hardirq",
            Context::Nmi => "nmi",
        }
    }
}
