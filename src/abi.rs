// SPDX-License-Identifier: GPL-2.0

//! The `/dev/rust_wq` ioctl ABI, mirrored from `include/rust_wq.h`.
//!
//! Every struct here is `#[repr(C)]` with only `u32`/`u64` fields, naturally aligned, and no
//! implicit padding, so it has the same layout as its C twin on every ABI. The userspace mirror
//! (`wqctl/src/abi.rs`) and a host test keep the three in step.

use kernel::{
    ioctl::{
        _IO,
        _IOR,
        _IOW,
        _IOWR, //
    },
    transmute::{
        AsBytes,
        FromBytes, //
    },
};

/// The ABI version in every request and in [`Info::abi_version`].
pub(crate) const ABI_VERSION: u32 = 1;
/// The ioctl magic (free in `Documentation/userspace-api/ioctl/ioctl-number.rst`).
pub(crate) const MAGIC: u32 = 0xBC;

/// Most items one enqueue may create.
pub(crate) const MAX_COUNT: u32 = 1024;
/// Most unfinished items one open file may have.
pub(crate) const MAX_PENDING: u32 = 4096;
/// Largest delay, in microseconds (60 s).
pub(crate) const MAX_DELAY_US: u64 = 60_000_000;
/// Largest sleep inside a work item, in microseconds (1 s).
pub(crate) const MAX_SLEEP_US: u64 = 1_000_000;
/// Results kept per file before the oldest are dropped.
pub(crate) const MAX_RESULTS: u32 = 8192;

/// `cpu` value meaning "no CPU requested".
pub(crate) const CPU_ANY: u32 = u32::MAX;

/// The queues userspace can target.
pub(crate) const Q_PERCPU: u32 = 0;
pub(crate) const Q_UNBOUND: u32 = 1;
pub(crate) const Q_ORDERED: u32 = 2;
pub(crate) const Q_SYSTEM_PERCPU: u32 = 3;
pub(crate) const Q_SYSTEM_DFL: u32 = 4;
pub(crate) const Q_COUNT: u32 = 5;

/// Target kinds of FLUSH and CANCEL.
pub(crate) const TARGET_ALL: u32 = 0;
pub(crate) const TARGET_ID: u32 = 1;
pub(crate) const TARGET_QUEUE: u32 = 2;

/// Result flags.
pub(crate) const RES_PROCESS_CTX: u32 = 1 << 0;
pub(crate) const RES_SLEPT: u32 = 1 << 1;
pub(crate) const RES_FROM_TASK: u32 = 1 << 2;
pub(crate) const RES_FROM_SOFTIRQ: u32 = 1 << 3;
pub(crate) const RES_FROM_HARDIRQ: u32 = 1 << 4;
/// Set with [`RES_FROM_HARDIRQ`] when the handler was the `edu` device's.
pub(crate) const RES_FROM_DEVICE_IRQ: u32 = 1 << 5;

/// [`Info::device_flags`]: an `edu` device is bound; its interrupt is an MSI vector.
pub(crate) const INFO_DEVICE_BOUND: u64 = 1 << 0;
pub(crate) const INFO_DEVICE_MSI: u64 = 1 << 1;

/// Enqueue flags: queue the items from a hard-IRQ handler, from softirq context, or from the
/// `edu` device's interrupt handler.
pub(crate) const ENQ_F_FROM_IRQ: u64 = 1 << 0;
pub(crate) const ENQ_F_FROM_SOFTIRQ: u64 = 1 << 1;
pub(crate) const ENQ_F_FROM_DEVICE_IRQ: u64 = 1 << 2;
/// Every enqueue flag this version knows (at most one may be set).
pub(crate) const ENQ_F_ALL: u64 = ENQ_F_FROM_IRQ | ENQ_F_FROM_SOFTIRQ | ENQ_F_FROM_DEVICE_IRQ;
/// Most items queued per interrupt (or softirq run) with those flags.
pub(crate) const IRQ_BATCH: u32 = 64;

/// `struct rust_wq_info`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Info {
    pub(crate) abi_version: u32,
    pub(crate) nr_cpu_ids: u32,
    pub(crate) max_count: u32,
    pub(crate) max_pending: u32,
    pub(crate) max_delay_us: u64,
    pub(crate) max_sleep_us: u64,
    pub(crate) online_cpus: u64,
    pub(crate) max_results: u32,
    pub(crate) device_irq: u32,
    pub(crate) device_flags: u64,
    pub(crate) device_irqs: u64,
    pub(crate) device_bh_queued: u64,
    pub(crate) device_bh_runs: u64,
}

/// `struct rust_wq_enqueue`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Enqueue {
    pub(crate) version: u32,
    pub(crate) queue: u32,
    pub(crate) cpu: u32,
    pub(crate) count: u32,
    pub(crate) delay_us: u64,
    pub(crate) sleep_us: u64,
    pub(crate) tag: u64,
    pub(crate) first_id: u64,
    pub(crate) flags: u64,
    pub(crate) reserved: [u64; 1],
}

/// `struct rust_wq_target`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Target {
    pub(crate) version: u32,
    pub(crate) kind: u32,
    pub(crate) queue: u32,
    pub(crate) pad: u32,
    pub(crate) id: u64,
    pub(crate) count: u64,
    pub(crate) reserved: [u64; 2],
}

/// `struct rust_wq_mod_delay`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct ModDelay {
    pub(crate) version: u32,
    pub(crate) pad: u32,
    pub(crate) id: u64,
    pub(crate) delay_us: u64,
    pub(crate) reserved: [u64; 2],
}

/// `struct rust_wq_result`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct WorkResult {
    pub(crate) id: u64,
    pub(crate) tag: u64,
    pub(crate) seq: u64,
    pub(crate) latency_ns: u64,
    pub(crate) runtime_ns: u64,
    pub(crate) requested_cpu: u32,
    pub(crate) cpu: u32,
    pub(crate) queue: u32,
    pub(crate) flags: u32,
    pub(crate) reserved: u64,
}

/// `struct rust_wq_results`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Results {
    pub(crate) version: u32,
    pub(crate) capacity: u32,
    pub(crate) buf: u64,
    pub(crate) count: u32,
    pub(crate) pad: u32,
    pub(crate) dropped: u64,
    pub(crate) reserved: [u64; 2],
}

/// `struct rust_wq_stats`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Stats {
    pub(crate) enqueued: u64,
    pub(crate) executed: u64,
    pub(crate) cancelled: u64,
    pub(crate) pending: u64,
    pub(crate) results_dropped: u64,
    pub(crate) reserved: [u64; 3],
}

/// Benchmark paths and flags.
pub(crate) const BENCH_UNBOUND_SYSFS: u32 = 0;
pub(crate) const BENCH_PERCPU: u32 = 1;
pub(crate) const BENCH_SYSTEM_PERCPU: u32 = 2;
pub(crate) const BENCH_F_START_LATENCY: u32 = 1 << 0;
pub(crate) const BENCH_F_UPSTREAM: u32 = 1 << 1;
pub(crate) const BENCH_F_KBOX: u32 = 1 << 2;

/// `struct rust_wq_bench`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Bench {
    pub(crate) version: u32,
    pub(crate) path: u32,
    pub(crate) threads: u32,
    pub(crate) items: u32,
    pub(crate) flags: u32,
    pub(crate) threads_run: u32,
    pub(crate) elapsed_ns: u64,
    pub(crate) items_per_sec: u64,
    pub(crate) queue_p50_ns: u64,
    pub(crate) queue_p90_ns: u64,
    pub(crate) queue_p95_ns: u64,
    pub(crate) start_p50_ns: u64,
    pub(crate) start_p90_ns: u64,
    pub(crate) start_p95_ns: u64,
    pub(crate) op: u32,
    pub(crate) pad: u32,
    pub(crate) queue_p99_ns: u64,
    pub(crate) reserved: [u64; 2],
}

macro_rules! plain_data {
    ($($t:ty => $size:literal),* $(,)?) => {$(
        // The sizes are the C header's; a mismatch stops the build.
        const _: () = assert!(core::mem::size_of::<$t>() == $size);
        // SAFETY: `#[repr(C)]`, only integer fields, and the size assertion above shows there is
        // no padding (the fields add up to the size), so every byte pattern is a valid value.
        unsafe impl FromBytes for $t {}
        // SAFETY: As above: no padding and no pointers, so all bytes are initialised data.
        unsafe impl AsBytes for $t {}
    )*};
}

plain_data! {
    Info => 80,
    Enqueue => 64,
    Target => 48,
    ModDelay => 40,
    WorkResult => 64,
    Results => 48,
    Stats => 64,
    Bench => 120,
}

/// `RUST_WQ_IOC_INFO`.
pub(crate) const IOC_INFO: u32 = _IOR::<Info>(MAGIC, 0x00);
/// `RUST_WQ_IOC_ENQUEUE`.
pub(crate) const IOC_ENQUEUE: u32 = _IOWR::<Enqueue>(MAGIC, 0x01);
/// `RUST_WQ_IOC_FLUSH`.
pub(crate) const IOC_FLUSH: u32 = _IOWR::<Target>(MAGIC, 0x02);
/// `RUST_WQ_IOC_CANCEL`.
pub(crate) const IOC_CANCEL: u32 = _IOWR::<Target>(MAGIC, 0x03);
/// `RUST_WQ_IOC_MOD_DELAY`.
pub(crate) const IOC_MOD_DELAY: u32 = _IOW::<ModDelay>(MAGIC, 0x04);
/// `RUST_WQ_IOC_RESULTS`.
pub(crate) const IOC_RESULTS: u32 = _IOWR::<Results>(MAGIC, 0x05);
/// `RUST_WQ_IOC_STATS`.
pub(crate) const IOC_STATS: u32 = _IOR::<Stats>(MAGIC, 0x06);
/// `RUST_WQ_IOC_RESET`.
pub(crate) const IOC_RESET: u32 = _IO(MAGIC, 0x07);

/// `RUST_WQ_IOC_BENCH`.
pub(crate) const IOC_BENCH: u32 = _IOWR::<Bench>(MAGIC, 0x08);

/// The command numbers (`_IOC_NR`) this ABI defines, with the full ioctl number of each.
pub(crate) const COMMANDS: [u32; 9] = [
    IOC_INFO,
    IOC_ENQUEUE,
    IOC_FLUSH,
    IOC_CANCEL,
    IOC_MOD_DELAY,
    IOC_RESULTS,
    IOC_STATS,
    IOC_RESET,
    IOC_BENCH,
];
