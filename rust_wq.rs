// SPDX-License-Identifier: GPL-2.0

//! rust_wq: a safe Rust interface to the Linux workqueue, and a misc device to drive it.
//!
//! - [`workqueue`]: the abstraction layer (owned queues, per-CPU and delayed enqueue, cancel,
//!   flush, static work items, system queues). All raw `bindings::` calls live there.
//! - [`device`]: `/dev/rust_wq`, whose ioctls (`include/rust_wq.h`) let userspace enqueue test
//!   work and read back what ran where, and whose `poll` says when results are waiting
//!   (`src/device/`: one module per concept).
//! - [`bench`]: the in-kernel benchmark behind `RUST_WQ_IOC_BENCH`; it uses the layer only.
//! - [`torture`]: a torture test of the layer (debugfs `rust_wq/torture`), in the tradition of
//!   `rcutorture`.
//! - [`miscdev`]: the misc device registration, with the `poll` hook 7.3's
//!   `kernel::miscdevice` lacks.
//! - KUnit suites `rust_wq_*` beside the code they test (`src/workqueue/tests/`, `src/bench/`),
//!   run when the module is loaded.

use kernel::prelude::*;
use miscdev::{
    MiscDeviceOptions,
    MiscDeviceRegistration, //
};

#[path = "src/abi.rs"]
mod abi;
#[path = "src/bench.rs"]
mod bench;
#[path = "src/device.rs"]
mod device;
#[path = "src/irq_work.rs"]
mod irq_work;
#[path = "src/kthread.rs"]
mod kthread;
#[path = "src/miscdev.rs"]
mod miscdev;
#[path = "src/raw_spinlock.rs"]
mod raw_spinlock;
#[path = "src/torture.rs"]
mod torture;
#[path = "src/workqueue.rs"]
mod workqueue;

module! {
    type: RustWq,
    name: "rust_wq",
    authors: ["rust_wq developers"],
    description: "Safe Rust workqueue abstractions with a test misc device",
    license: "GPL",
}

/// The module: the module-wide queues, then the misc device that uses them.
///
/// Fields drop in order: the queues are released first, but each open file holds them (and a
/// module reference), so at unload no file is open and the device is unregistered right after.
#[pin_data]
struct RustWq {
    /// The torture test's debugfs files (`src/torture.rs`); removed first at unload, which
    /// waits for a run in progress.
    #[pin]
    _torture: torture::Debugfs,
    _state: device::InstalledState,
    #[pin]
    _miscdev: MiscDeviceRegistration<device::OpenFile>,
}

impl kernel::InPlaceModule for RustWq {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            _torture <- torture::Debugfs::new(torture::Control::new()?),
            _state: device::InstalledState::new()?,
            _miscdev <- MiscDeviceRegistration::register(MiscDeviceOptions { name: c"rust_wq" }),
        }? Error)
    }
}
