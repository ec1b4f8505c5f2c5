//! The fuzzer's model of the header's checks: which outcomes an exact
//! encoding with a readable and writable argument may have.

use super::fields::*;
use wqctl::abi::*;
use wqctl::abi_field;

/// Whether any word of the field is non-zero.
fn nonzero(b: &[u8], f: Field) -> bool {
    f.words().any(|w| get(b, w).unwrap_or(0) != 0)
}

/// What the header allows for an exact encoding of `nr` with a readable and
/// writable argument holding `b`: the allowed outcomes (0 = success, else
/// errnos).
pub fn expect(nr: u32, b: &[u8], cpus: Cpus, results_addr: usize, room: usize) -> Vec<i32> {
    let ncpu = cpus.ids;
    let g = |f: Field| get(b, f).unwrap_or(0);
    let max_sleep = RUST_WQ_MAX_SLEEP_US;
    match nr {
        NR_INFO | NR_STATS | NR_RESET => vec![0],
        NR_ENQUEUE => {
            type E = RustWqEnqueue;
            let v1 = g(abi_field!(E, version)) == u64::from(RUST_WQ_ABI_VERSION);
            let cpu = g(abi_field!(E, cpu));
            let count = g(abi_field!(E, count));
            let flags = g(abi_field!(E, flags));
            let bad = !v1
                || g(abi_field!(E, queue)) >= u64::from(RUST_WQ_Q_COUNT)
                || (cpu != u64::from(RUST_WQ_CPU_ANY) && cpu >= u64::from(ncpu))
                || count == 0
                || count > u64::from(RUST_WQ_MAX_COUNT)
                || g(abi_field!(E, delay_us)) > RUST_WQ_MAX_DELAY_US
                || g(abi_field!(E, sleep_us)) > max_sleep
                || flags & !RUST_WQ_ENQ_F_ALL != 0
                || flags.count_ones() > 1
                || nonzero(b, abi_field!(E, reserved));
            // The arguments are checked before the room (the header): an
            // invalid call is EINVAL even when the file is full.
            if bad {
                vec![libc::EINVAL]
            } else if cpu != u64::from(RUST_WQ_CPU_ANY) && !cpus.is_online(cpu) {
                // A possible CPU that is offline: checked before the room.
                vec![libc::ENODEV]
            } else if flags & RUST_WQ_ENQ_F_FROM_DEVICE_IRQ != 0 {
                // Without a bound edu device (or when it is unbound meanwhile): ENODEV.
                vec![0, libc::EBUSY, libc::ENODEV]
            } else {
                vec![0, libc::EBUSY]
            }
        }
        NR_FLUSH | NR_CANCEL => {
            type T = RustWqTarget;
            let v1 = g(abi_field!(T, version)) == u64::from(RUST_WQ_ABI_VERSION);
            let (kind, queue, id) = (
                g(abi_field!(T, kind)),
                g(abi_field!(T, queue)),
                g(abi_field!(T, id)),
            );
            // `kind` is a 4-byte field: the cast is lossless.
            let ok_kind = match kind as u32 {
                RUST_WQ_TARGET_ALL => queue == 0 && id == 0,
                RUST_WQ_TARGET_ID => queue == 0,
                RUST_WQ_TARGET_QUEUE => queue < u64::from(RUST_WQ_Q_COUNT) && id == 0,
                _ => false,
            };
            if !v1 || g(abi_field!(T, pad)) != 0 || nonzero(b, abi_field!(T, reserved)) || !ok_kind
            {
                vec![libc::EINVAL]
            } else if nr == NR_CANCEL && kind == u64::from(RUST_WQ_TARGET_ID) {
                vec![0, libc::ENOENT]
            } else {
                vec![0]
            }
        }
        NR_MOD_DELAY => {
            type M = RustWqModDelay;
            let v1 = g(abi_field!(M, version)) == u64::from(RUST_WQ_ABI_VERSION);
            if !v1
                || g(abi_field!(M, pad)) != 0
                || nonzero(b, abi_field!(M, reserved))
                || g(abi_field!(M, delay_us)) > RUST_WQ_MAX_DELAY_US
            {
                vec![libc::EINVAL]
            } else {
                vec![0, libc::ENOENT]
            }
        }
        NR_RESULTS => {
            type R = RustWqResults;
            let v1 = g(abi_field!(R, version)) == u64::from(RUST_WQ_ABI_VERSION);
            let (cap, buf) = (g(abi_field!(R, capacity)), g(abi_field!(R, buf)) as usize);
            if !v1
                || g(abi_field!(R, pad)) != 0
                || nonzero(b, abi_field!(R, reserved))
                || (buf == 0 && cap > 0)
            {
                vec![libc::EINVAL]
            } else if buf == results_addr || cap == 0 {
                vec![0]
            } else if buf > results_addr && buf < results_addr + room {
                // Inside the results arena, near its end or unaligned: what
                // does not fit faults.
                vec![0, libc::EFAULT]
            } else {
                // An invalid buffer: EFAULT, or success with nothing waiting.
                vec![0, libc::EFAULT]
            }
        }
        NR_BENCH => expect_bench(b, ncpu),
        _ => vec![],
    }
}

/// [`expect`] for BENCH.
fn expect_bench(b: &[u8], ncpu: u32) -> Vec<i32> {
    type B = RustWqBench;
    let g = |f: Field| get(b, f).unwrap_or(0);
    let v1 = g(abi_field!(B, version)) == u64::from(RUST_WQ_ABI_VERSION);
    let op = g(abi_field!(B, op));
    let flags = g(abi_field!(B, flags));
    let op32 = u32::try_from(op).unwrap_or(u32::MAX);
    let multi = bench_op_multi_thread(op32);
    let (threads, items) = (g(abi_field!(B, threads)), g(abi_field!(B, items)));
    let path = g(abi_field!(B, path));
    let start = u64::from(RUST_WQ_BENCH_F_START_LATENCY);
    let variants = u64::from(RUST_WQ_BENCH_F_UPSTREAM | RUST_WQ_BENCH_F_KBOX);
    let drop = op == u64::from(RUST_WQ_BENCH_OP_DROP_ARMED);
    let bad = !v1
        || path > u64::from(RUST_WQ_BENCH_SYSTEM_PERCPU)
        || flags & !(start | variants) != 0
        || items == 0
        || items > u64::from(RUST_WQ_BENCH_MAX_ITEMS)
        || op >= u64::from(RUST_WQ_BENCH_OP_COUNT)
        || g(abi_field!(B, pad)) != 0
        || nonzero(b, abi_field!(B, reserved))
        || (!multi && threads > 1)
        || (op != u64::from(RUST_WQ_BENCH_OP_RT) && flags & start != 0)
        || (!bench_op_has_variants(op32) && flags & variants != 0)
        || (drop
            && (path != u64::from(RUST_WQ_BENCH_PERCPU)
                || items > u64::from(RUST_WQ_BENCH_DROP_MAX_ITEMS)));
    // A drop run has a fixed number of rounds; `items` is its items per round.
    let rounds = if drop {
        u64::from(RUST_WQ_BENCH_DROP_ROUNDS)
    } else {
        items
    };
    // Threads run x items above MAX_TOTAL is EINVAL; how many threads run depends on
    // the CPUs online, so near the limit either answer is allowed.
    let most = if !multi {
        1
    } else if threads == 0 {
        u64::from(ncpu)
    } else {
        threads.min(u64::from(ncpu))
    };
    if bad || rounds > RUST_WQ_BENCH_MAX_TOTAL {
        vec![libc::EINVAL]
    } else if most * rounds > RUST_WQ_BENCH_MAX_TOTAL {
        vec![0, libc::EINVAL]
    } else {
        vec![0]
    }
}
