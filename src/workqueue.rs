// SPDX-License-Identifier: GPL-2.0

//! A safe interface to the Linux workqueue: owned queues, typed work items, delayed work that
//! owned queues can drop safely, cancel/disable that give ownership back, and scoped work.
//!
//! Upstream's `kernel::workqueue` (Linux 7.3) can queue typed items on queues that somebody else
//! owns. This layer adds what it lacks, one concept a file:
//!
//! | file | what |
//! |---|---|
//! | `pointer.rs` | [`WorkPointer`]: `Arc`, `Pin<KBox<_>>`, `ARef` as the pointer a queue holds |
//! | `work.rs` | [`Work`], [`WorkItem`]: plain items; `cancel`, `cancel_sync`, `disable(_sync)`, `enable` (tracked depth), `flush`, `is_pending` |
//! | `delayed.rs`, `arm.rs`, `delay.rs` | [`DelayedWork`] (tracked `delayed_work`), arming it, [`Delay`] |
//! | `field.rs` | [`HasWorkField`]: finding a work field in its item and back ([`impl_has_work_field!`]) |
//! | `armed.rs` | how an owned queue knows the items armed on it: its armed list, the items' registration (the arm window, moves, the item's drop), intrusive, IRQ-safe |
//! | `depth.rs` | the callers' disable depth and the gate of `mod_delayed`, lock-free |
//! | `queue.rs` | [`Queue`]: a borrowed queue; `enqueue`, `enqueue_on`, delayed on `'static` queues |
//! | `owned.rs`, `builder.rs` | [`Workqueue`] and its typestate builder |
//! | `bh.rs`, `system.rs` | BH queues ([`BhWorkItem`]) and the system queues by their 7.3 names |
//! | `cpu.rs` | [`CpuId`] for the `_on` calls, online checks |
//! | `scoped.rs` | [`scope`], [`ScopedWork`], [`ScopedDelayedWork`]: items that borrow |
//! | `static_work.rs` | [`StaticWork`], [`declare_work!`] (C's `DECLARE_WORK`) |
//! | `static_delayed.rs` | [`StaticDelayedWork`], [`declare_delayed_work!`] (C's `DECLARE_DELAYED_WORK`) |
//! | `spawn.rs` | [`Queue::try_spawn`]: a closure queued as a boxed item |
//! | `on_cpu.rs` | [`work_on_cpu!`]: run a closure on a CPU and return its value |
//! | `rcu.rs` | [`RcuWork`]: items that run after an RCU grace period |
//! | `control.rs` | `set_max_active`, `enqueue_node`, `is_congested`, [`context::set_worker_desc`] |
//! | `context.rs` | [`context::Context`]: task, softirq, hard-IRQ or NMI; [`context::in_worker`] |
//! | `raw_spinlock.rs` | IRQ-safe raw spinlocks (the armed lists'), interrupts-off sections |
//! | `helpers.c`, `helpers.rs` | C helpers for the C API's static inlines and macros |
//!
//! The layer stands alone: it uses only the `kernel` crate and the files under `workqueue/`
//! (no other module of this crate), and it has no architecture-specific code (what the kernel
//! crate lacks is reached through C's own macros in `helpers.c`, compiled into the module). To
//! use it elsewhere, copy `workqueue.rs` and `workqueue/`, mount it as `crate::workqueue` (its
//! macros name that path), and link `workqueue/helpers.o` into the module (Kbuild:
//! `<module>-y += .../workqueue/helpers.o`).
//!
//! Without `CONFIG_KUNIT` the suites (`tests.rs`, `tests/`) and the test-only introspection
//! (`armed`, `armed_check`, the CPU-hotplug helpers) are not compiled. Parts of the API that
//! only the suites use in this module (the rest of the module does not need, say, [`RcuWork`]
//! or [`scope`]) stay compiled for other users of the layer and carry
//! `#[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]` (or
//! `unused_imports`, `unused_macros`) on the items the suites call: `expect`, not `allow`, so
//! that the compiler says so when the module starts using one, and the items they reach count
//! as used.
//!
//! C header: [`include/linux/workqueue.h`](srctree/include/linux/workqueue.h)

#[path = "workqueue/arm.rs"]
mod arm;
#[path = "workqueue/armed.rs"]
mod armed;
#[path = "workqueue/bh.rs"]
mod bh;
#[path = "workqueue/builder.rs"]
pub(crate) mod builder;
#[path = "workqueue/context.rs"]
pub(crate) mod context;
#[path = "workqueue/control.rs"]
mod control;
#[path = "workqueue/cpu.rs"]
pub(crate) mod cpu;
#[path = "workqueue/delay.rs"]
mod delay;
#[path = "workqueue/delayed.rs"]
mod delayed;
#[path = "workqueue/depth.rs"]
mod depth;
#[path = "workqueue/field.rs"]
mod field;
#[path = "workqueue/helpers.rs"]
mod helpers;
#[path = "workqueue/on_cpu.rs"]
pub(crate) mod on_cpu;
#[path = "workqueue/owned.rs"]
mod owned;
#[path = "workqueue/pointer.rs"]
mod pointer;
#[path = "workqueue/queue.rs"]
mod queue;
#[path = "workqueue/raw.rs"]
mod raw;
#[path = "workqueue/raw_spinlock.rs"]
pub(crate) mod raw_spinlock;
#[path = "workqueue/rcu.rs"]
mod rcu;
#[path = "workqueue/scoped.rs"]
mod scoped;
#[path = "workqueue/spawn.rs"]
mod spawn;
#[path = "workqueue/static_delayed.rs"]
mod static_delayed;
#[path = "workqueue/static_work.rs"]
mod static_work;
#[path = "workqueue/system.rs"]
mod system;
#[path = "workqueue/work.rs"]
mod work;

// The suites and what they share exist only with KUnit (`kunit_tests` compiles a suite away
// without it, and its helpers would be dead code).
#[cfg(CONFIG_KUNIT)]
#[path = "workqueue/tests.rs"]
pub(crate) mod tests;

pub(crate) use arm::Retimed;
pub(crate) use bh::BhWorkItem;
pub(crate) use builder::MAX_ACTIVE;
#[cfg_attr(
    not(CONFIG_KUNIT),
    expect(unused_imports, reason = "used by KUnit only")
)]
pub(crate) use control::NodeError;
pub(crate) use cpu::CpuId;
#[cfg_attr(
    not(CONFIG_KUNIT),
    expect(unused_imports, reason = "used by KUnit only")
)]
pub(crate) use delay::jiffies;
pub(crate) use delay::Delay;
pub(crate) use delayed::{
    impl_has_delayed_work,
    new_delayed_work,
    DelayedWork,
    DelayedWorkItem,
    HasDelayedWork, //
};
pub(crate) use field::{
    impl_has_work_field,
    HasWorkField, //
};
#[cfg_attr(
    not(CONFIG_KUNIT),
    expect(unused_imports, reason = "used by KUnit only")
)]
pub(crate) use on_cpu::work_on_cpu;
pub(crate) use owned::{
    ReapOnDrop, //
    Workqueue,
};
pub(crate) use queue::Queue;
#[cfg_attr(
    not(CONFIG_KUNIT),
    expect(unused_imports, reason = "used by KUnit only")
)]
pub(crate) use rcu::{
    impl_has_rcu_work,
    new_rcu_work,
    HasRcuWork,
    RcuWork,
    RcuWorkItem, //
};
#[cfg_attr(
    not(CONFIG_KUNIT),
    expect(unused_imports, reason = "used by KUnit only")
)]
pub(crate) use scoped::scope;
#[cfg_attr(
    not(CONFIG_KUNIT),
    expect(unused_imports, reason = "used by KUnit only")
)]
pub(crate) use static_delayed::{
    declare_delayed_work,
    StaticDelayedWork, //
};
pub(crate) use static_work::{
    declare_work,
    StaticWork, //
};
pub(crate) use system::{
    system_bh,
    system_dfl,
    system_percpu, //
};
#[cfg_attr(
    not(CONFIG_KUNIT),
    expect(unused_imports, reason = "used by KUnit only")
)]
pub(crate) use system::{
    system_bh_highpri,
    system_dfl_long,
    system_freezable,
    system_freezable_power_efficient,
    system_highpri,
    system_long,
    system_power_efficient, //
};
pub(crate) use work::{
    impl_has_work,
    new_work,
    EnqueueError,
    Work,
    WorkItem, //
};
