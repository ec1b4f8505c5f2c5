// SPDX-License-Identifier: GPL-2.0

//! rust_wq: a safe Rust interface to the Linux workqueue, and a misc device to drive it.
//!
//! - [`workqueue`]: the abstraction layer (owned queues, per-CPU and delayed enqueue, cancel,
//!   flush, static work items, system queues). All raw `bindings::` calls live there.
//! - [`device`]: `/dev/rust_wq`, whose ioctls (`include/rust_wq.h`) let userspace enqueue test
//!   work and read back what ran where.
//! - KUnit suites `rust_wq_*` beside the code they test (`src/workqueue/tests/`, `src/bench.rs`),
//!   run when the module is loaded.

use kernel::{
    miscdevice::{
        MiscDeviceOptions,
        MiscDeviceRegistration, //
    },
    prelude::*,
};

#[path = "src/abi.rs"]
mod abi;
#[path = "src/bench.rs"]
mod bench;
#[path = "src/device.rs"]
mod device;
#[path = "src/kthread.rs"]
mod kthread;
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
    _shared: device::Installed,
    #[pin]
    _miscdev: MiscDeviceRegistration<device::FileShared>,
}

impl kernel::InPlaceModule for RustWq {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            _shared: device::Installed::new()?,
            _miscdev <- MiscDeviceRegistration::register(MiscDeviceOptions { name: c"rust_wq" }),
        }? Error)
    }
}
