//! Rust mirror of `include/rust_wq.h`, the ioctl ABI of `/dev/rust_wq`.
//!
//! The C header is authoritative.  Every struct here is `#[repr(C)]` with the
//! same field names, types and order; the unit tests at the bottom compile a
//! C program against the header and compare sizes, field offsets, constants
//! and ioctl numbers with the values Rust computes.

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

// rust_wq_enqueue.flags
pub const RUST_WQ_ENQ_F_FROM_IRQ: u64 = 1 << 0;
pub const RUST_WQ_ENQ_F_FROM_SOFTIRQ: u64 = 1 << 1;
pub const RUST_WQ_ENQ_F_ALL: u64 = RUST_WQ_ENQ_F_FROM_IRQ | RUST_WQ_ENQ_F_FROM_SOFTIRQ;
pub const RUST_WQ_IRQ_BATCH: u32 = 64;

/// `struct rust_wq_info` (RUST_WQ_IOC_INFO).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RustWqInfo {
    pub abi_version: u32,
    pub nr_cpu_ids: u32,
    pub max_count: u32,
    pub max_pending: u32,
    pub max_delay_us: u64,
    pub max_sleep_us: u64,
    pub online_cpus: u64,
    pub max_results: u32,
    pub reserved0: u32,
    pub reserved: [u64; 4],
}

/// `struct rust_wq_enqueue` (RUST_WQ_IOC_ENQUEUE).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RustWqEnqueue {
    pub version: u32,
    pub queue: u32,
    pub cpu: u32,
    pub count: u32,
    pub delay_us: u64,
    pub sleep_us: u64,
    pub tag: u64,
    pub first_id: u64,
    pub flags: u64,
    pub reserved: [u64; 1],
}

/// `struct rust_wq_target` (RUST_WQ_IOC_FLUSH / RUST_WQ_IOC_CANCEL).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RustWqTarget {
    pub version: u32,
    pub kind: u32,
    pub queue: u32,
    pub pad: u32,
    pub id: u64,
    pub count: u64,
    pub reserved: [u64; 2],
}

/// `struct rust_wq_mod_delay` (RUST_WQ_IOC_MOD_DELAY).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RustWqModDelay {
    pub version: u32,
    pub pad: u32,
    pub id: u64,
    pub delay_us: u64,
    pub reserved: [u64; 2],
}

/// `struct rust_wq_result`: one executed item.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RustWqResult {
    pub id: u64,
    pub tag: u64,
    pub seq: u64,
    pub latency_ns: u64,
    pub runtime_ns: u64,
    pub requested_cpu: u32,
    pub cpu: u32,
    pub queue: u32,
    pub flags: u32,
    pub reserved: u64,
}

/// `struct rust_wq_results` (RUST_WQ_IOC_RESULTS).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RustWqResults {
    pub version: u32,
    pub capacity: u32,
    pub buf: u64,
    pub count: u32,
    pub pad: u32,
    pub dropped: u64,
    pub reserved: [u64; 2],
}

/// `struct rust_wq_stats` (RUST_WQ_IOC_STATS).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RustWqStats {
    pub enqueued: u64,
    pub executed: u64,
    pub cancelled: u64,
    pub pending: u64,
    pub results_dropped: u64,
    pub reserved: [u64; 3],
}

// RUST_WQ_IOC_BENCH paths and flags.
pub const RUST_WQ_BENCH_UNBOUND_SYSFS: u32 = 0;
pub const RUST_WQ_BENCH_PERCPU: u32 = 1;
pub const RUST_WQ_BENCH_SYSTEM_PERCPU: u32 = 2;
pub const RUST_WQ_BENCH_F_START_LATENCY: u32 = 1 << 0;
pub const RUST_WQ_BENCH_MAX_ITEMS: u32 = 1_000_000;
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
pub const RUST_WQ_BENCH_OP_COUNT: u32 = 14;

/// The benchmark operations with the names `wqctl bench --op` takes, in ABI order.
pub const BENCH_OPS: [(&str, u32); 14] = [
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
];

/// `struct rust_wq_bench` (RUST_WQ_IOC_BENCH).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RustWqBench {
    pub version: u32,
    pub path: u32,
    pub threads: u32,
    pub items: u32,
    pub flags: u32,
    pub threads_run: u32,
    pub elapsed_ns: u64,
    pub items_per_sec: u64,
    pub queue_p50_ns: u64,
    pub queue_p90_ns: u64,
    pub queue_p95_ns: u64,
    pub start_p50_ns: u64,
    pub start_p90_ns: u64,
    pub start_p95_ns: u64,
    pub op: u32,
    pub pad: u32,
    pub queue_p99_ns: u64,
    pub reserved: [u64; 2],
}

// ioctl number encoding (asm-generic/ioctl.h, used by x86-64, arm64, riscv...).
pub const IOC_NRBITS: u32 = 8;
pub const IOC_TYPEBITS: u32 = 8;
pub const IOC_SIZEBITS: u32 = 14;
pub const IOC_DIRBITS: u32 = 2;
pub const IOC_NRSHIFT: u32 = 0;
pub const IOC_TYPESHIFT: u32 = IOC_NRSHIFT + IOC_NRBITS;
pub const IOC_SIZESHIFT: u32 = IOC_TYPESHIFT + IOC_TYPEBITS;
pub const IOC_DIRSHIFT: u32 = IOC_SIZESHIFT + IOC_SIZEBITS;
pub const IOC_NONE: u32 = 0;
pub const IOC_WRITE: u32 = 1;
pub const IOC_READ: u32 = 2;

/// `_IOC(dir, type, nr, size)`.  The size must fit in 14 bits.
pub const fn ioc(dir: u32, ty: u32, nr: u32, size: usize) -> u32 {
    assert!(size < (1 << IOC_SIZEBITS));
    assert!(dir < (1 << IOC_DIRBITS));
    assert!(ty < (1 << IOC_TYPEBITS));
    assert!(nr < (1 << IOC_NRBITS));
    (dir << IOC_DIRSHIFT)
        | ((size as u32) << IOC_SIZESHIFT)
        | (ty << IOC_TYPESHIFT)
        | (nr << IOC_NRSHIFT)
}

/// `_IO(type, nr)`.
pub const fn io(ty: u32, nr: u32) -> u32 {
    ioc(IOC_NONE, ty, nr, 0)
}

/// `_IOR(type, nr, T)`.
pub const fn ior<T>(ty: u32, nr: u32) -> u32 {
    ioc(IOC_READ, ty, nr, core::mem::size_of::<T>())
}

/// `_IOW(type, nr, T)`.
pub const fn iow<T>(ty: u32, nr: u32) -> u32 {
    ioc(IOC_WRITE, ty, nr, core::mem::size_of::<T>())
}

/// `_IOWR(type, nr, T)`.
pub const fn iowr<T>(ty: u32, nr: u32) -> u32 {
    ioc(IOC_READ | IOC_WRITE, ty, nr, core::mem::size_of::<T>())
}

/// `_IOC_DIR(nr)`.
pub const fn ioc_dir(cmd: u32) -> u32 {
    (cmd >> IOC_DIRSHIFT) & ((1 << IOC_DIRBITS) - 1)
}

/// `_IOC_TYPE(nr)`.
pub const fn ioc_type(cmd: u32) -> u32 {
    (cmd >> IOC_TYPESHIFT) & ((1 << IOC_TYPEBITS) - 1)
}

/// `_IOC_NR(nr)`.
pub const fn ioc_nr(cmd: u32) -> u32 {
    (cmd >> IOC_NRSHIFT) & ((1 << IOC_NRBITS) - 1)
}

/// `_IOC_SIZE(nr)`.
pub const fn ioc_size(cmd: u32) -> usize {
    ((cmd >> IOC_SIZESHIFT) & ((1 << IOC_SIZEBITS) - 1)) as usize
}

pub const RUST_WQ_IOC_INFO: u32 = ior::<RustWqInfo>(RUST_WQ_IOC_MAGIC, 0x00);
pub const RUST_WQ_IOC_ENQUEUE: u32 = iowr::<RustWqEnqueue>(RUST_WQ_IOC_MAGIC, 0x01);
pub const RUST_WQ_IOC_FLUSH: u32 = iowr::<RustWqTarget>(RUST_WQ_IOC_MAGIC, 0x02);
pub const RUST_WQ_IOC_CANCEL: u32 = iowr::<RustWqTarget>(RUST_WQ_IOC_MAGIC, 0x03);
pub const RUST_WQ_IOC_MOD_DELAY: u32 = iow::<RustWqModDelay>(RUST_WQ_IOC_MAGIC, 0x04);
pub const RUST_WQ_IOC_RESULTS: u32 = iowr::<RustWqResults>(RUST_WQ_IOC_MAGIC, 0x05);
pub const RUST_WQ_IOC_STATS: u32 = ior::<RustWqStats>(RUST_WQ_IOC_MAGIC, 0x06);
pub const RUST_WQ_IOC_RESET: u32 = io(RUST_WQ_IOC_MAGIC, 0x07);
pub const RUST_WQ_IOC_BENCH: u32 = iowr::<RustWqBench>(RUST_WQ_IOC_MAGIC, 0x08);

/// Every command of this ABI version, with its name (for tests and tools).
pub const ALL_IOCTLS: [(&str, u32); 9] = [
    ("RUST_WQ_IOC_INFO", RUST_WQ_IOC_INFO),
    ("RUST_WQ_IOC_ENQUEUE", RUST_WQ_IOC_ENQUEUE),
    ("RUST_WQ_IOC_FLUSH", RUST_WQ_IOC_FLUSH),
    ("RUST_WQ_IOC_CANCEL", RUST_WQ_IOC_CANCEL),
    ("RUST_WQ_IOC_MOD_DELAY", RUST_WQ_IOC_MOD_DELAY),
    ("RUST_WQ_IOC_RESULTS", RUST_WQ_IOC_RESULTS),
    ("RUST_WQ_IOC_STATS", RUST_WQ_IOC_STATS),
    ("RUST_WQ_IOC_RESET", RUST_WQ_IOC_RESET),
    ("RUST_WQ_IOC_BENCH", RUST_WQ_IOC_BENCH),
];

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::mem::{offset_of, size_of};
    use std::path::PathBuf;
    use std::process::Command;

    fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
        size_of::<F>()
    }

    /// (C struct name, C field name, Rust offset, Rust size) for every field.
    macro_rules! layout {
        ($out:ident, $ty:ty, $cname:literal, [$($f:ident),+ $(,)?]) => {
            $out.push(($cname, "", 0usize, size_of::<$ty>()));
            $(
                $out.push(($cname, stringify!($f), offset_of!($ty, $f), field_size(|s: &$ty| &s.$f)));
            )+
        };
    }

    fn rust_layouts() -> Vec<(&'static str, &'static str, usize, usize)> {
        let mut v = Vec::new();
        layout!(
            v,
            RustWqInfo,
            "rust_wq_info",
            [
                abi_version,
                nr_cpu_ids,
                max_count,
                max_pending,
                max_delay_us,
                max_sleep_us,
                online_cpus,
                max_results,
                reserved0,
                reserved
            ]
        );
        layout!(
            v,
            RustWqEnqueue,
            "rust_wq_enqueue",
            [version, queue, cpu, count, delay_us, sleep_us, tag, first_id, flags, reserved]
        );
        layout!(
            v,
            RustWqTarget,
            "rust_wq_target",
            [version, kind, queue, pad, id, count, reserved]
        );
        layout!(
            v,
            RustWqModDelay,
            "rust_wq_mod_delay",
            [version, pad, id, delay_us, reserved]
        );
        layout!(
            v,
            RustWqResult,
            "rust_wq_result",
            [
                id,
                tag,
                seq,
                latency_ns,
                runtime_ns,
                requested_cpu,
                cpu,
                queue,
                flags,
                reserved
            ]
        );
        layout!(
            v,
            RustWqResults,
            "rust_wq_results",
            [version, capacity, buf, count, pad, dropped, reserved]
        );
        layout!(
            v,
            RustWqStats,
            "rust_wq_stats",
            [
                enqueued,
                executed,
                cancelled,
                pending,
                results_dropped,
                reserved
            ]
        );
        layout!(
            v,
            RustWqBench,
            "rust_wq_bench",
            [
                version,
                path,
                threads,
                items,
                flags,
                threads_run,
                elapsed_ns,
                items_per_sec,
                queue_p50_ns,
                queue_p90_ns,
                queue_p95_ns,
                start_p50_ns,
                start_p90_ns,
                start_p95_ns,
                op,
                pad,
                queue_p99_ns,
                reserved
            ]
        );
        v
    }

    /// The C names of the operation numbers, in ABI order (checked against the header).
    const BENCH_OP_CONSTS: [&str; 14] = [
        "RUST_WQ_BENCH_OP_RT",
        "RUST_WQ_BENCH_OP_QUEUE",
        "RUST_WQ_BENCH_OP_QUEUE_FRESH",
        "RUST_WQ_BENCH_OP_QUEUE_ON",
        "RUST_WQ_BENCH_OP_DELAYED",
        "RUST_WQ_BENCH_OP_MOD_DELAYED",
        "RUST_WQ_BENCH_OP_CANCEL_IDLE",
        "RUST_WQ_BENCH_OP_CANCEL_ARMED",
        "RUST_WQ_BENCH_OP_CANCEL_SYNC_IDLE",
        "RUST_WQ_BENCH_OP_CANCEL_SYNC_ARMED",
        "RUST_WQ_BENCH_OP_FLUSH_IDLE",
        "RUST_WQ_BENCH_OP_DISABLE",
        "RUST_WQ_BENCH_OP_ENABLE",
        "RUST_WQ_BENCH_OP_STATIC",
    ];

    #[test]
    fn bench_op_names() {
        assert_eq!(bench_op_name(RUST_WQ_BENCH_OP_RT), Some("rt"));
        assert_eq!(bench_op_name(RUST_WQ_BENCH_OP_STATIC), Some("static"));
        assert_eq!(bench_op_name(RUST_WQ_BENCH_OP_COUNT), None);
        for (i, (_, n)) in BENCH_OPS.iter().enumerate() {
            assert_eq!(*n, i as u32);
        }
    }

    fn rust_constants() -> Vec<(&'static str, u64)> {
        let mut v: Vec<(&'static str, u64)> = vec![
            ("RUST_WQ_ABI_VERSION", RUST_WQ_ABI_VERSION.into()),
            ("RUST_WQ_IOC_MAGIC", RUST_WQ_IOC_MAGIC.into()),
            ("RUST_WQ_MAX_COUNT", RUST_WQ_MAX_COUNT.into()),
            ("RUST_WQ_MAX_PENDING", RUST_WQ_MAX_PENDING.into()),
            ("RUST_WQ_MAX_DELAY_US", RUST_WQ_MAX_DELAY_US),
            ("RUST_WQ_MAX_SLEEP_US", RUST_WQ_MAX_SLEEP_US),
            ("RUST_WQ_MAX_RESULTS", RUST_WQ_MAX_RESULTS.into()),
            ("RUST_WQ_Q_PERCPU", RUST_WQ_Q_PERCPU.into()),
            ("RUST_WQ_Q_UNBOUND", RUST_WQ_Q_UNBOUND.into()),
            ("RUST_WQ_Q_ORDERED", RUST_WQ_Q_ORDERED.into()),
            ("RUST_WQ_Q_SYSTEM_PERCPU", RUST_WQ_Q_SYSTEM_PERCPU.into()),
            ("RUST_WQ_Q_SYSTEM_DFL", RUST_WQ_Q_SYSTEM_DFL.into()),
            ("RUST_WQ_Q_COUNT", RUST_WQ_Q_COUNT.into()),
            ("RUST_WQ_CPU_ANY", RUST_WQ_CPU_ANY.into()),
            ("RUST_WQ_TARGET_ALL", RUST_WQ_TARGET_ALL.into()),
            ("RUST_WQ_TARGET_ID", RUST_WQ_TARGET_ID.into()),
            ("RUST_WQ_TARGET_QUEUE", RUST_WQ_TARGET_QUEUE.into()),
            ("RUST_WQ_RES_PROCESS_CTX", RUST_WQ_RES_PROCESS_CTX.into()),
            ("RUST_WQ_RES_SLEPT", RUST_WQ_RES_SLEPT.into()),
            ("RUST_WQ_RES_FROM_TASK", RUST_WQ_RES_FROM_TASK.into()),
            ("RUST_WQ_RES_FROM_SOFTIRQ", RUST_WQ_RES_FROM_SOFTIRQ.into()),
            ("RUST_WQ_RES_FROM_HARDIRQ", RUST_WQ_RES_FROM_HARDIRQ.into()),
            ("RUST_WQ_ENQ_F_FROM_IRQ", RUST_WQ_ENQ_F_FROM_IRQ),
            ("RUST_WQ_ENQ_F_FROM_SOFTIRQ", RUST_WQ_ENQ_F_FROM_SOFTIRQ),
            ("RUST_WQ_ENQ_F_ALL", RUST_WQ_ENQ_F_ALL),
            ("RUST_WQ_IRQ_BATCH", RUST_WQ_IRQ_BATCH.into()),
            (
                "RUST_WQ_BENCH_UNBOUND_SYSFS",
                RUST_WQ_BENCH_UNBOUND_SYSFS.into(),
            ),
            ("RUST_WQ_BENCH_PERCPU", RUST_WQ_BENCH_PERCPU.into()),
            (
                "RUST_WQ_BENCH_SYSTEM_PERCPU",
                RUST_WQ_BENCH_SYSTEM_PERCPU.into(),
            ),
            (
                "RUST_WQ_BENCH_F_START_LATENCY",
                RUST_WQ_BENCH_F_START_LATENCY.into(),
            ),
            ("RUST_WQ_BENCH_MAX_ITEMS", RUST_WQ_BENCH_MAX_ITEMS.into()),
            ("RUST_WQ_BENCH_MAX_TOTAL", RUST_WQ_BENCH_MAX_TOTAL),
            ("RUST_WQ_BENCH_OP_COUNT", RUST_WQ_BENCH_OP_COUNT.into()),
            ("RUST_WQ_IOC_BENCH", RUST_WQ_IOC_BENCH.into()),
        ];
        for (name, nr) in ALL_IOCTLS {
            v.push((name, nr.into()));
        }
        for (i, name) in BENCH_OP_CONSTS.iter().enumerate() {
            v.push((name, i as u64));
        }
        v
    }

    /// Writes, compiles and runs a C program that prints what the header says.
    /// Output lines: `size <struct> <n>`, `field <struct> <field> <offset> <size>`,
    /// `const <NAME> <value>`, and `device <string>`.
    fn c_header_facts() -> BTreeMap<String, String> {
        let include = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../include");
        assert!(
            include.join("rust_wq.h").exists(),
            "{} not found: the crate must live next to include/",
            include.join("rust_wq.h").display()
        );
        let mut c = String::from(
            "#include <stdio.h>\n#include <stddef.h>\n#include \"rust_wq.h\"\n\
             #define FSIZE(s, f) sizeof(((struct s *)0)->f)\nint main(void) {\n",
        );
        for (s, f, _, _) in rust_layouts() {
            if f.is_empty() {
                c += &format!("printf(\"size {s} %zu\\n\", sizeof(struct {s}));\n");
            } else {
                c += &format!(
                    "printf(\"field {s} {f} %zu %zu\\n\", offsetof(struct {s}, {f}), FSIZE({s}, {f}));\n"
                );
            }
        }
        for (name, _) in rust_constants() {
            c += &format!("printf(\"const {name} %llu\\n\", (unsigned long long)({name}));\n");
        }
        c += "printf(\"device %s\\n\", RUST_WQ_DEVICE);\nreturn 0;\n}\n";

        let dir = std::env::temp_dir().join(format!("wqctl-abi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("abi_facts.c");
        let exe = dir.join("abi_facts");
        std::fs::write(&src, c).unwrap();
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let out = Command::new(&cc)
            .arg("-std=c11")
            .arg("-Wall")
            .arg("-Werror")
            .arg("-I")
            .arg(&include)
            .arg("-o")
            .arg(&exe)
            .arg(&src)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run the C compiler `{cc}`: {e}\n\
                     install it (Debian/Ubuntu: `apt-get install gcc linux-libc-dev`) or set CC"
                )
            });
        assert!(
            out.status.success(),
            "compiling {} against {}/rust_wq.h failed:\n{}\n\
             hint: <linux/ioctl.h> and <linux/types.h> come from the `linux-libc-dev` package \
             (`apt-get install linux-libc-dev`)",
            src.display(),
            include.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let run = Command::new(&exe)
            .output()
            .expect("running the compiled C program");
        assert!(run.status.success());
        let _ = std::fs::remove_dir_all(&dir);
        let mut facts = BTreeMap::new();
        for line in String::from_utf8(run.stdout).unwrap().lines() {
            let mut parts = line.split_whitespace();
            let kind = parts.next().unwrap();
            let rest: Vec<&str> = parts.collect();
            match kind {
                "size" => {
                    facts.insert(format!("size {}", rest[0]), rest[1].to_string());
                }
                "field" => {
                    facts.insert(
                        format!("offset {}.{}", rest[0], rest[1]),
                        rest[2].to_string(),
                    );
                    facts.insert(
                        format!("fsize {}.{}", rest[0], rest[1]),
                        rest[3].to_string(),
                    );
                }
                "const" => {
                    facts.insert(format!("const {}", rest[0]), rest[1].to_string());
                }
                "device" => {
                    facts.insert("device".into(), rest[0].to_string());
                }
                _ => panic!("unexpected line {line:?}"),
            }
        }
        facts
    }

    #[test]
    fn layouts_constants_and_ioctl_numbers_match_c_header() {
        let facts = c_header_facts();
        let mut mismatches = Vec::new();
        let mut check = |key: String, rust: String| match facts.get(&key) {
            Some(c) if *c == rust => {}
            Some(c) => mismatches.push(format!("{key}: C says {c}, Rust says {rust}")),
            None => mismatches.push(format!("{key}: missing from the C output")),
        };
        let layouts = rust_layouts();
        for (s, f, off, size) in &layouts {
            if f.is_empty() {
                check(format!("size {s}"), size.to_string());
            } else {
                check(format!("offset {s}.{f}"), off.to_string());
                check(format!("fsize {s}.{f}"), size.to_string());
            }
        }
        for (name, val) in rust_constants() {
            check(format!("const {name}"), val.to_string());
        }
        check("device".into(), RUST_WQ_DEVICE.to_string());
        assert!(
            mismatches.is_empty(),
            "ABI mismatches:\n{}",
            mismatches.join("\n")
        );
        // Every struct is fully covered by its fields (no hidden padding).
        for (s, f, _, size) in &layouts {
            if f.is_empty() {
                let sum: usize = layouts
                    .iter()
                    .filter(|(s2, f2, _, _)| s2 == s && !f2.is_empty())
                    .map(|(_, _, _, sz)| sz)
                    .sum();
                assert_eq!(sum, *size, "struct {s} has implicit padding");
            }
        }
    }

    #[test]
    fn ioctl_encoding_matches_known_values() {
        // _IOR('T', 0x13, int) == TIOCGWINSZ-like sanity: _IOR(0x54, 0x13, 4)
        assert_eq!(ior::<u32>(0x54, 0x13), 0x8004_5413);
        assert_eq!(io(0x54, 0x13), 0x5413);
        assert_eq!(iow::<u64>(0xBC, 4), 0x4008_BC04);
        assert_eq!(iowr::<[u8; 64]>(0xBC, 1), 0xC040_BC01);
        assert_eq!(ioc_type(RUST_WQ_IOC_ENQUEUE), RUST_WQ_IOC_MAGIC);
        assert_eq!(ioc_nr(RUST_WQ_IOC_STATS), 6);
        assert_eq!(ioc_size(RUST_WQ_IOC_INFO), size_of::<RustWqInfo>());
        assert_eq!(ioc_dir(RUST_WQ_IOC_MOD_DELAY), IOC_WRITE);
        assert_eq!(ioc_dir(RUST_WQ_IOC_RESET), IOC_NONE);
        assert_eq!(ioc_nr(RUST_WQ_IOC_BENCH), 8);
        assert_eq!(ioc_dir(RUST_WQ_IOC_BENCH), IOC_READ | IOC_WRITE);
        assert_eq!(ioc_size(RUST_WQ_IOC_BENCH), size_of::<RustWqBench>());
        assert_eq!(size_of::<RustWqBench>(), 120);
    }

    #[test]
    fn bench_path_names() {
        assert_eq!(
            bench_path_name(RUST_WQ_BENCH_UNBOUND_SYSFS),
            Some("unbound-sysfs")
        );
        assert_eq!(
            bench_path_name(RUST_WQ_BENCH_SYSTEM_PERCPU),
            Some("system-percpu")
        );
        assert_eq!(bench_path_name(3), None);
    }

    #[test]
    fn queue_names() {
        assert_eq!(queue_name(RUST_WQ_Q_SYSTEM_DFL), Some("system-dfl"));
        assert_eq!(queue_name(RUST_WQ_Q_COUNT), None);
    }
}
