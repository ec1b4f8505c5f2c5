// SPDX-License-Identifier: GPL-2.0

//! The system queues of 7.3, by their current names. The deprecated `system_wq` and
//! `system_unbound_wq` (7.3 prints "enqueued on deprecated workqueue" for them) are not offered.

use super::{
    bh::BhQueue,
    queue::Queue, //
};
use kernel::bindings;

macro_rules! system_queue {
    ($(#[$meta:meta])* $fn:ident => $sym:ident) => {
        $(#[$meta])*
        pub(crate) fn $fn() -> &'static Queue {
            // SAFETY: The system queues are created at boot and never destroyed.
            unsafe { Queue::from_raw(bindings::$sym) }
        }
    };
}

system_queue!(
    /// The system per-CPU queue (`system_percpu_wq`), used by C's `schedule_work()` and
    /// `schedule_delayed_work()`. Replaces the deprecated `system_wq`.
    system_percpu => system_percpu_wq
);
system_queue!(
    /// The default unbound system queue (`system_dfl_wq`). Replaces the deprecated
    /// `system_unbound_wq`.
    system_dfl => system_dfl_wq
);
system_queue!(
    /// The high-priority per-CPU system queue (`system_highpri_wq`).
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    system_highpri => system_highpri_wq
);
system_queue!(
    /// The per-CPU system queue for long-running items (`system_long_wq`).
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    system_long => system_long_wq
);
system_queue!(
    /// The unbound system queue for long-running items (`system_dfl_long_wq`).
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    system_dfl_long => system_dfl_long_wq
);
system_queue!(
    /// The freezable system queue (`system_freezable_wq`), frozen during suspend.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    system_freezable => system_freezable_wq
);
system_queue!(
    /// The power-efficient system queue (`system_power_efficient_wq`).
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    system_power_efficient => system_power_efficient_wq
);
system_queue!(
    /// The freezable power-efficient system queue (`system_freezable_power_efficient_wq`).
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    system_freezable_power_efficient => system_freezable_power_efficient_wq
);

/// The bottom-half system queue (`system_bh_wq`): items run in softirq context.
pub(crate) fn system_bh() -> &'static BhQueue {
    // SAFETY: `system_bh_wq` is a `WQ_BH` queue created at boot and never destroyed.
    unsafe { BhQueue::from_raw(bindings::system_bh_wq) }
}

/// The high-priority bottom-half system queue (`system_bh_highpri_wq`).
#[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
pub(crate) fn system_bh_highpri() -> &'static BhQueue {
    // SAFETY: `system_bh_highpri_wq` is a `WQ_BH` queue created at boot and never destroyed.
    unsafe { BhQueue::from_raw(bindings::system_bh_highpri_wq) }
}
