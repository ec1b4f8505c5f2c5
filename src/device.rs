// SPDX-License-Identifier: GPL-2.0

//! The `/dev/rust_wq` misc device: userspace enqueues test work and reads back what ran where.
//!
//! The ABI is `include/rust_wq.h` (mirrored in [`crate::abi`]). Work belongs to the open file
//! that enqueued it; closing the file cancels what has not started and waits for what runs.
//! The device uses only the safe API of [`crate::workqueue`].
//!
//! This file holds the file operations (open, release, poll, ioctl dispatch); the concepts
//! behind them are modules of their own, which never import this file:
//!
//! - [`state`]: the device-wide state every open file shares (the module's queues);
//! - [`file`]: the state of one open file, and the bookkeeping of its items;
//! - [`item`]: the test work item, and the result it leaves;
//! - [`enqueue`]: the ENQUEUE call; [`control`]: FLUSH, CANCEL, MOD_DELAY, RESET;
//! - [`results`]: the RESULTS and STATS calls, and [`ring`], the results waiting to be read;
//! - [`validate`]: the checks of the ioctl arguments;
//! - [`gate`]: the interruptible lock the calls take; [`log`]: the per-item dmesg lines.
//!
//! Every dependency between them goes one way: an item reaches the file it belongs to through
//! the [`item::ItemOwner`] trait, which the file implements, so `item` does not import `file`.

use crate::abi::{
    self,
    Info, //
};
use crate::bench;
use crate::edu;
use crate::miscdev::{
    MiscDevice,
    MiscDeviceRegistration,
    POLL_READABLE, //
};
use crate::workqueue as wq;
pub(crate) use file::OpenFile;
use kernel::{
    fs::File,
    ioctl::{
        _IOC_NR,
        _IOC_SIZE,
        _IOC_TYPE, //
    },
    prelude::*,
    sync::{
        aref::ARef,
        poll::PollTable,
        Arc,
        ArcBorrow, //
    },
    transmute::{
        AsBytes,
        FromBytes, //
    },
    uaccess::{
        UserPtr,
        UserSlice, //
    },
};
pub(crate) use state::InstalledState;

#[path = "device/control.rs"]
mod control;
#[path = "device/enqueue.rs"]
mod enqueue;
#[path = "device/file.rs"]
mod file;
#[path = "device/gate.rs"]
mod gate;
#[path = "device/item.rs"]
mod item;
#[path = "device/log.rs"]
mod log;
#[path = "device/results.rs"]
mod results;
#[path = "device/ring.rs"]
mod ring;
#[path = "device/state.rs"]
mod state;
#[path = "device/validate.rs"]
mod validate;

/// INFO: the ABI version, the CPUs, the limits and the `edu` device.
fn info() -> Info {
    let mut online = 0u64;
    for cpu in 0..wq::cpu::nr_cpu_ids().min(64) {
        if wq::cpu::online_cpu(cpu).is_ok() {
            online |= 1 << cpu;
        }
    }
    let dev = edu::info();
    let device_flags = if dev.bound {
        abi::INFO_DEVICE_BOUND | if dev.msi { abi::INFO_DEVICE_MSI } else { 0 }
    } else {
        0
    };
    Info {
        abi_version: abi::ABI_VERSION,
        nr_cpu_ids: wq::cpu::nr_cpu_ids(),
        max_count: abi::MAX_COUNT,
        max_pending: abi::MAX_PENDING,
        max_delay_us: abi::MAX_DELAY_US,
        max_sleep_us: abi::MAX_SLEEP_US,
        online_cpus: online,
        max_results: abi::MAX_RESULTS,
        device_irq: dev.irq,
        device_flags,
        device_irqs: dev.irqs,
        device_bh_queued: dev.bh_queued,
        device_bh_runs: dev.bh_runs,
    }
}

#[vtable]
impl MiscDevice for OpenFile {
    type Ptr = Arc<OpenFile>;

    fn open(_file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<Arc<OpenFile>> {
        let state = state::installed()?;
        OpenFile::new(state, ARef::from(misc.device()))
    }

    fn release(this: Arc<OpenFile>, _file: &File) {
        this.cancel_all();
    }

    /// `POLLIN | POLLRDNORM` while the file has unread results (RESULTS would return some).
    fn poll(me: ArcBorrow<'_, OpenFile>, file: &File, table: PollTable<'_>) -> Result<u32> {
        // Register before looking, so a result stored in between still wakes the caller.
        table.register_wait(file, &me.readable);
        if me.has_results() {
            Ok(POLL_READABLE)
        } else {
            Ok(0)
        }
    }

    fn ioctl(me: ArcBorrow<'_, OpenFile>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        if _IOC_TYPE(cmd) != abi::MAGIC {
            return Err(ENOTTY);
        }
        let nr = _IOC_NR(cmd) as usize;
        match abi::COMMANDS.get(nr) {
            None => return Err(ENOTTY),
            // Known command, but another size or direction: a caller built for another ABI.
            Some(&known) if known != cmd => return Err(EINVAL),
            Some(_) => {}
        }
        let slice = UserSlice::new(UserPtr::from_addr(arg), _IOC_SIZE(cmd));
        match cmd {
            abi::IOC_INFO => slice.writer().write(&info())?,
            abi::IOC_ENQUEUE => exchange(arg, cmd, true, |req| OpenFile::enqueue(me, req))?,
            abi::IOC_FLUSH => exchange(arg, cmd, true, |t| me.flush(t))?,
            abi::IOC_CANCEL => exchange(arg, cmd, true, |t| me.cancel(t))?,
            abi::IOC_MOD_DELAY => me.mod_delay(&slice.reader().read()?)?,
            abi::IOC_RESULTS => exchange(arg, cmd, true, |r| me.results(r))?,
            abi::IOC_STATS => slice.writer().write(&me.stats())?,
            abi::IOC_RESET => me.reset()?,
            abi::IOC_BENCH => exchange(arg, cmd, false, |b| {
                let _one = me.device_state.bench_gate.lock_interruptible()?;
                bench::ioctl(me.device_state.bench.clone(), &me.dev, b)
            })?,
            _ => return Err(ENOTTY),
        }
        Ok(0)
    }
}

/// Runs a call whose argument of type `T` at `arg` is read, handed to `act` and written back.
///
/// With `check_writable`, the argument is first checked to be writable (see [`writable`]), so
/// that a call that acts and then reports fails with `EFAULT` before anything has happened.
fn exchange<T: FromBytes + AsBytes>(
    arg: usize,
    cmd: u32,
    check_writable: bool,
    act: impl FnOnce(&mut T) -> Result,
) -> Result {
    let (mut r, mut w) = UserSlice::new(UserPtr::from_addr(arg), _IOC_SIZE(cmd)).reader_writer();
    let mut v: T = r.read()?;
    if check_writable {
        writable(arg, cmd, &v)?;
    }
    act(&mut v)?;
    w.write(&v)
}

/// Checks that the argument of `cmd` at `arg` can be written back, by writing `v` (what was
/// read from it) there: calls that act and then report check this first, so that a bad
/// pointer fails with `EFAULT` before anything has happened.
fn writable<T: AsBytes>(arg: usize, cmd: u32, v: &T) -> Result {
    UserSlice::new(UserPtr::from_addr(arg), _IOC_SIZE(cmd))
        .writer()
        .write(v)
}
