// SPDX-License-Identifier: GPL-2.0

//! [`DeviceState`]: what every open file of `/dev/rust_wq` shares, and its installation for
//! `open`.

use super::{
    gate::Gate,
    log::LogLimit, //
};
use crate::workqueue::Workqueue;
use core::sync::atomic::AtomicU64;
use kernel::{
    prelude::*,
    sync::Arc, //
};

/// The device-wide state every open file shares: the module's queues, the execution counter,
/// the benchmark's gate and the log limit.
#[pin_data]
pub(crate) struct DeviceState {
    #[pin]
    pub(super) percpu: Workqueue,
    #[pin]
    pub(super) unbound: Workqueue,
    #[pin]
    pub(super) ordered: Workqueue,
    /// The benchmark's queue: unbound and visible in sysfs, as `lib/test_workqueue.c`'s.
    /// Shared with a running benchmark, which holds it until its threads have stopped.
    pub(super) bench: Arc<Workqueue>,
    /// The last sequence number handed to a running item.
    pub(super) seq: AtomicU64,
    /// One benchmark at a time (a waiter can leave on a signal).
    #[pin]
    pub(super) bench_gate: Gate,
    /// Keeps the per-item dmesg lines to a readable rate.
    pub(super) log_limit: LogLimit,
}

impl DeviceState {
    /// Creates the module's queues.
    fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            percpu: Workqueue::builder().percpu().build(fmt!("rust_wq_percpu"))?,
            unbound: Workqueue::builder().unbound().build(fmt!("rust_wq_unbound"))?,
            ordered: Workqueue::builder().ordered().build(fmt!("rust_wq_ordered"))?,
            bench: Arc::new(
                Workqueue::builder().unbound().sysfs().build(fmt!("rust_wq_bench"))?,
                GFP_KERNEL
            )?,
            seq: AtomicU64::new(0),
            bench_gate <- Gate::new(),
            log_limit: LogLimit::new(),
        }? Error)
    }
}

kernel::sync::global_lock! {
    // SAFETY: `init` is called in the module initialiser, before the device is registered and
    // so before any other use.
    unsafe(uninit) static STATE: Mutex<Option<Arc<DeviceState>>> = None;
}

/// The device-wide state, installed for the files opened while this value exists.
///
/// Dropping it drops the module's queues (once no file holds them any more).
pub(crate) struct InstalledState(());

impl InstalledState {
    /// Creates the module's queues and installs them. Call once, from the module initialiser,
    /// before the misc device is registered.
    pub(crate) fn new() -> Result<Self> {
        let state = Arc::pin_init(DeviceState::new(), GFP_KERNEL)?;
        // SAFETY: Called once per module load, before any other use of `STATE` (the device,
        // whose `open` reads it, is registered only after this returns).
        unsafe { STATE.init() };
        *STATE.lock() = Some(state);
        Ok(InstalledState(()))
    }
}

/// The installed device-wide state, for a file being opened; `ENODEV` if there is none.
pub(super) fn installed() -> Result<Arc<DeviceState>> {
    STATE.lock().clone().ok_or(ENODEV)
}

impl Drop for InstalledState {
    fn drop(&mut self) {
        let state = STATE.lock().take();
        drop(state);
    }
}
