//! Rust mirror of `include/rust_wq.h`, the ioctl ABI of `/dev/rust_wq`.
//!
//! The C header is authoritative.  Every struct here is `#[repr(C)]` with the
//! same field names, types and order, and carries its field list
//! ([`StructLayout`]); the unit tests (`abi/tests.rs`) compile a C program
//! against the header and compare sizes, field offsets, constants and ioctl
//! numbers with the values Rust computes.
//!
//! This file holds the constants and their names; `abi/layout.rs` the structs
//! and their layouts; `abi/ioctl.rs` the command numbers.

pub const RUST_WQ_ABI_VERSION: u32 = 1;
pub const RUST_WQ_DEVICE: &str = "/dev/rust_wq";
pub const RUST_WQ_IOC_MAGIC: u32 = 0xBC;

// Limits of this version (also reported by RUST_WQ_IOC_INFO).
pub const RUST_WQ_MAX_COUNT: u32 = 1024;
pub const RUST_WQ_MAX_PENDING: u32 = 4096;
pub const RUST_WQ_MAX_DELAY_US: u64 = 60_000_000;
pub const RUST_WQ_MAX_SLEEP_US: u64 = 1_000_000;
pub const RUST_WQ_MAX_RESULTS: u32 = 8192;

// Target queues.
pub const RUST_WQ_Q_PERCPU: u32 = 0;
pub const RUST_WQ_Q_UNBOUND: u32 = 1;
pub const RUST_WQ_Q_ORDERED: u32 = 2;
pub const RUST_WQ_Q_SYSTEM_PERCPU: u32 = 3;
pub const RUST_WQ_Q_SYSTEM_DFL: u32 = 4;
pub const RUST_WQ_Q_COUNT: u32 = 5;

/// `cpu` value meaning "no CPU requested" (the queue picks one).
pub const RUST_WQ_CPU_ANY: u32 = 0xffff_ffff;

// Kinds for FLUSH and CANCEL.
pub const RUST_WQ_TARGET_ALL: u32 = 0;
pub const RUST_WQ_TARGET_ID: u32 = 1;
pub const RUST_WQ_TARGET_QUEUE: u32 = 2;

// rust_wq_result.flags
pub const RUST_WQ_RES_PROCESS_CTX: u32 = 1 << 0;
pub const RUST_WQ_RES_SLEPT: u32 = 1 << 1;
pub const RUST_WQ_RES_FROM_TASK: u32 = 1 << 2;
pub const RUST_WQ_RES_FROM_SOFTIRQ: u32 = 1 << 3;
pub const RUST_WQ_RES_FROM_HARDIRQ: u32 = 1 << 4;
pub const RUST_WQ_RES_FROM_DEVICE_IRQ: u32 = 1 << 5;

// rust_wq_info.device_flags
pub const RUST_WQ_INFO_DEVICE_BOUND: u64 = 1 << 0;
pub const RUST_WQ_INFO_DEVICE_MSI: u64 = 1 << 1;

// rust_wq_enqueue.flags
pub const RUST_WQ_ENQ_F_FROM_IRQ: u64 = 1 << 0;
pub const RUST_WQ_ENQ_F_FROM_SOFTIRQ: u64 = 1 << 1;
pub const RUST_WQ_ENQ_F_FROM_DEVICE_IRQ: u64 = 1 << 2;
pub const RUST_WQ_ENQ_F_ALL: u64 =
    RUST_WQ_ENQ_F_FROM_IRQ | RUST_WQ_ENQ_F_FROM_SOFTIRQ | RUST_WQ_ENQ_F_FROM_DEVICE_IRQ;
pub const RUST_WQ_IRQ_BATCH: u32 = 64;

// RUST_WQ_IOC_BENCH paths and flags.
pub const RUST_WQ_BENCH_UNBOUND_SYSFS: u32 = 0;
pub const RUST_WQ_BENCH_PERCPU: u32 = 1;
pub const RUST_WQ_BENCH_SYSTEM_PERCPU: u32 = 2;
pub const RUST_WQ_BENCH_F_START_LATENCY: u32 = 1 << 0;
/// Time upstream's `kernel::workqueue` instead of the layer (QUEUE, QUEUE_FRESH, DELAYED).
pub const RUST_WQ_BENCH_F_UPSTREAM: u32 = 1 << 1;
/// Queue the items through `Pin<KBox<_>>` instead of `Arc` (QUEUE, QUEUE_FRESH, DELAYED).
pub const RUST_WQ_BENCH_F_KBOX: u32 = 1 << 2;
pub const RUST_WQ_BENCH_MAX_ITEMS: u32 = 1_000_000;
/// Rounds of a DROP_ARMED run.
pub const RUST_WQ_BENCH_DROP_ROUNDS: u32 = 5;
/// Most armed items of one DROP_ARMED round (its `items`).
pub const RUST_WQ_BENCH_DROP_MAX_ITEMS: u32 = 200_000;
/// Most rounds of all threads of one BENCH together (threads run x items).
pub const RUST_WQ_BENCH_MAX_TOTAL: u64 = 1 << 21;

// RUST_WQ_IOC_BENCH operations (`op`).
pub const RUST_WQ_BENCH_OP_RT: u32 = 0;
pub const RUST_WQ_BENCH_OP_QUEUE: u32 = 1;
pub const RUST_WQ_BENCH_OP_QUEUE_FRESH: u32 = 2;
pub const RUST_WQ_BENCH_OP_QUEUE_ON: u32 = 3;
pub const RUST_WQ_BENCH_OP_DELAYED: u32 = 4;
pub const RUST_WQ_BENCH_OP_MOD_DELAYED: u32 = 5;
pub const RUST_WQ_BENCH_OP_CANCEL_IDLE: u32 = 6;
pub const RUST_WQ_BENCH_OP_CANCEL_ARMED: u32 = 7;
pub const RUST_WQ_BENCH_OP_CANCEL_SYNC_IDLE: u32 = 8;
pub const RUST_WQ_BENCH_OP_CANCEL_SYNC_ARMED: u32 = 9;
pub const RUST_WQ_BENCH_OP_FLUSH_IDLE: u32 = 10;
pub const RUST_WQ_BENCH_OP_DISABLE: u32 = 11;
pub const RUST_WQ_BENCH_OP_ENABLE: u32 = 12;
pub const RUST_WQ_BENCH_OP_STATIC: u32 = 13;
pub const RUST_WQ_BENCH_OP_DELAYED_PAR: u32 = 14;
pub const RUST_WQ_BENCH_OP_DROP_ARMED: u32 = 15;
pub const RUST_WQ_BENCH_OP_COUNT: u32 = 16;

/// The benchmark operations with the names `wqctl bench --op` takes, in ABI order.
pub const BENCH_OPS: [(&str, u32); 16] = [
    ("rt", RUST_WQ_BENCH_OP_RT),
    ("queue", RUST_WQ_BENCH_OP_QUEUE),
    ("queue-fresh", RUST_WQ_BENCH_OP_QUEUE_FRESH),
    ("queue-on", RUST_WQ_BENCH_OP_QUEUE_ON),
    ("delayed", RUST_WQ_BENCH_OP_DELAYED),
    ("mod-delayed", RUST_WQ_BENCH_OP_MOD_DELAYED),
    ("cancel-idle", RUST_WQ_BENCH_OP_CANCEL_IDLE),
    ("cancel-armed", RUST_WQ_BENCH_OP_CANCEL_ARMED),
    ("cancel-sync-idle", RUST_WQ_BENCH_OP_CANCEL_SYNC_IDLE),
    ("cancel-sync-armed", RUST_WQ_BENCH_OP_CANCEL_SYNC_ARMED),
    ("flush-idle", RUST_WQ_BENCH_OP_FLUSH_IDLE),
    ("disable", RUST_WQ_BENCH_OP_DISABLE),
    ("enable", RUST_WQ_BENCH_OP_ENABLE),
    ("static", RUST_WQ_BENCH_OP_STATIC),
    ("delayed-par", RUST_WQ_BENCH_OP_DELAYED_PAR),
    ("drop-armed", RUST_WQ_BENCH_OP_DROP_ARMED),
];

/// Whether `op` runs on several threads (`threads`: 0 = one per online CPU).
pub fn bench_op_multi_thread(op: u32) -> bool {
    matches!(
        op,
        RUST_WQ_BENCH_OP_RT | RUST_WQ_BENCH_OP_QUEUE_FRESH | RUST_WQ_BENCH_OP_DELAYED_PAR
    )
}

/// Whether `op` takes RUST_WQ_BENCH_F_UPSTREAM and RUST_WQ_BENCH_F_KBOX.
pub fn bench_op_has_variants(op: u32) -> bool {
    matches!(
        op,
        RUST_WQ_BENCH_OP_QUEUE | RUST_WQ_BENCH_OP_QUEUE_FRESH | RUST_WQ_BENCH_OP_DELAYED
    )
}

/// Name of a benchmark operation (as `wqctl bench --op` spells it).
pub fn bench_op_name(op: u32) -> Option<&'static str> {
    BENCH_OPS
        .iter()
        .find(|(_, n)| *n == op)
        .map(|(name, _)| *name)
}

/// Name of a benchmark path (as the `wqctl bench --path` option spells it).
pub fn bench_path_name(path: u32) -> Option<&'static str> {
    Some(match path {
        RUST_WQ_BENCH_UNBOUND_SYSFS => "unbound-sysfs",
        RUST_WQ_BENCH_PERCPU => "percpu",
        RUST_WQ_BENCH_SYSTEM_PERCPU => "system-percpu",
        _ => return None,
    })
}

/// Short lower-case name of a queue (as the `wqctl --queue` option spells it).
pub fn queue_name(queue: u32) -> Option<&'static str> {
    Some(match queue {
        RUST_WQ_Q_PERCPU => "percpu",
        RUST_WQ_Q_UNBOUND => "unbound",
        RUST_WQ_Q_ORDERED => "ordered",
        RUST_WQ_Q_SYSTEM_PERCPU => "system-percpu",
        RUST_WQ_Q_SYSTEM_DFL => "system-dfl",
        _ => return None,
    })
}

mod ioctl;
mod layout;
#[cfg(test)]
mod tests;

pub use ioctl::*;
pub use layout::*;
