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
//! - [`edu`]: a PCI driver for QEMU's `edu` device, whose interrupt handler is the tutorial's
//!   top half (it queues a static work item, and the items of `RUST_WQ_ENQ_F_FROM_DEVICE_IRQ`);
//!   [`pci_ext`] holds the PCI helpers 7.3 lacks.
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
#[path = "src/edu.rs"]
mod edu;
#[path = "src/irq_work.rs"]
mod irq_work;
#[path = "src/kthread.rs"]
mod kthread;
#[path = "src/miscdev.rs"]
mod miscdev;
#[path = "src/pci_ext.rs"]
mod pci_ext;
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

/// The module: the module-wide queues, the misc device that uses them, and the PCI driver of
/// QEMU's `edu` device (whose interrupt handler queues work for the device's ENQUEUE).
///
/// Fields drop in order: the queues are released first, but each open file holds them (and a
/// module reference), so at unload no file is open and the device is unregistered right after;
/// then the PCI driver is unregistered, which unbinds the `edu` device (its interrupt is freed
/// and its static work item flushed).
#[pin_data]
struct RustWq {
    /// The torture test's debugfs files (`src/torture.rs`); removed first at unload, which
    /// waits for a run in progress.
    #[pin]
    _torture: torture::Debugfs,
    _state: device::InstalledState,
    #[pin]
    _miscdev: MiscDeviceRegistration<device::OpenFile>,
    #[pin]
    _edu: edu::Registration,
    /// Last, so dropped last: waits for queues dropped inside work items (L4).
    _reaped: workqueue::ReapOnDrop,
}

impl kernel::InPlaceModule for RustWq {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            _torture <- torture::Debugfs::new(torture::Control::new()?),
            _state: device::InstalledState::new()?,
            _miscdev <- MiscDeviceRegistration::register(MiscDeviceOptions { name: c"rust_wq" }),
            _edu <- edu::registration(module),
            _reaped: workqueue::ReapOnDrop::new(),
        }? Error)
    }
}
