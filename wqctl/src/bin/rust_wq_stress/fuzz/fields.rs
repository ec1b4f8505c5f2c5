//! Raw arguments of the fuzzer: the fields of each command's struct (from
//! the ABI mirror `wqctl::abi`), reading and writing them in a byte buffer,
//! structurally valid arguments with some fields mutated, and the bounds that
//! keep valid-looking ones cheap.

use super::pointers::Arena;
use crate::common::*;
use wqctl::abi::*;
use wqctl::abi_field;

pub const NR_INFO: u32 = ioc_nr(RUST_WQ_IOC_INFO);
pub const NR_ENQUEUE: u32 = ioc_nr(RUST_WQ_IOC_ENQUEUE);
pub const NR_FLUSH: u32 = ioc_nr(RUST_WQ_IOC_FLUSH);
pub const NR_CANCEL: u32 = ioc_nr(RUST_WQ_IOC_CANCEL);
pub const NR_MOD_DELAY: u32 = ioc_nr(RUST_WQ_IOC_MOD_DELAY);
pub const NR_RESULTS: u32 = ioc_nr(RUST_WQ_IOC_RESULTS);
pub const NR_STATS: u32 = ioc_nr(RUST_WQ_IOC_STATS);
pub const NR_RESET: u32 = ioc_nr(RUST_WQ_IOC_RESET);
pub const NR_BENCH: u32 = ioc_nr(RUST_WQ_IOC_BENCH);

/// The fields of BENCH that are mutated: the inputs, the first two outputs,
/// `op`, `pad` and the first word of `reserved`.
const BENCH_MUTATED: [&str; 10] = [
    "version",
    "path",
    "threads",
    "items",
    "flags",
    "threads_run",
    "elapsed_ns",
    "op",
    "pad",
    "reserved",
];

/// The fields a mutation picks from, by nr: every field of the command's
/// struct as words of at most 8 bytes (BENCH: [`BENCH_MUTATED`]); for
/// commands whose input is ignored (INFO, STATS, RESET) and unknown ones,
/// the first four 8-byte words.
pub fn mutable_fields(nr: u32) -> Vec<Field> {
    let words =
        |l: StructLayout| -> Vec<Field> { l.fields.iter().flat_map(|f| f.words()).collect() };
    match nr {
        NR_ENQUEUE => words(RustWqEnqueue::LAYOUT),
        NR_FLUSH | NR_CANCEL => words(RustWqTarget::LAYOUT),
        NR_MOD_DELAY => words(RustWqModDelay::LAYOUT),
        NR_RESULTS => words(RustWqResults::LAYOUT),
        NR_BENCH => {
            let reserved = abi_field!(RustWqBench, reserved).offset;
            words(RustWqBench::LAYOUT)
                .into_iter()
                .filter(|f| BENCH_MUTATED.contains(&f.name))
                .filter(|f| f.name != "reserved" || f.offset == reserved)
                .collect()
        }
        _ => (0..4)
            .map(|i| Field {
                name: "word",
                offset: 8 * i,
                size: 8,
            })
            .collect(),
    }
}

/// Writes the low `f.size` bytes of `v` (little-endian) at `f.offset`, if
/// the field lies inside `buf`.
pub fn put(buf: &mut [u8], f: Field, v: u64) {
    let (off, w) = (f.offset, f.size);
    if off + w <= buf.len() {
        buf[off..off + w].copy_from_slice(&v.to_le_bytes()[..w]);
    }
}

/// Reads the field (at most 8 bytes, little-endian), if it lies inside `buf`.
pub fn get(buf: &[u8], f: Field) -> Option<u64> {
    let (off, w) = (f.offset, f.size);
    if off + w > buf.len() {
        return None;
    }
    let mut b = [0u8; 8];
    b[..w].copy_from_slice(&buf[off..off + w]);
    Some(u64::from_le_bytes(b))
}

/// A random field value: boundaries, small numbers, garbage.
fn field_value(rng: &mut Rng, w: usize) -> u64 {
    let max = if w == 8 {
        u64::MAX
    } else {
        (1u64 << (8 * w)) - 1
    };
    match rng.below(10) {
        0 => 0,
        1 => 1,
        2 => max,
        3 => rng.below(8),
        4 => {
            rng.pick(&[
                1023u64,
                1024,
                1025,
                4095,
                4096,
                8192,
                60_000_000,
                60_000_001,
                1_000_000,
                1_000_001,
                0xffff_ffff,
            ]) & max
        }
        5 => 1u64 << rng.below(8 * w as u64),
        _ => rng.u64() & max,
    }
}

/// An id near the last one enqueued (70%), else `other`.
fn near_id(rng: &mut Rng, last_id: u64, other: impl FnOnce(&mut Rng) -> u64) -> u64 {
    if last_id > 0 && rng.pct(70) {
        last_id.saturating_sub(rng.below(8))
    } else {
        other(rng)
    }
}

/// The CPU ids and which of them are online (INFO's `online_cpus`, the first 64).
#[derive(Clone, Copy)]
pub struct Cpus {
    pub ids: u32,
    pub online: u64,
}

impl Cpus {
    /// Whether `cpu` (below `ids`) is online; ids from 64 on are taken as online.
    pub fn is_online(self, cpu: u64) -> bool {
        cpu >= 64 || self.online & (1 << cpu) != 0
    }
}

/// What a structured argument is built from besides the random numbers.
pub struct Context<'a> {
    pub ncpu: u32,
    /// The first id of the last successful ENQUEUE of this thread (0: none).
    pub last_id: u64,
    /// The same of the last one due in 1 s or more (0: none).
    pub long_id: u64,
    /// Start of the results arena.
    pub results_addr: usize,
    pub arena: &'a Arena,
}

/// A structurally valid argument for nr, with some fields mutated.
pub fn structured(rng: &mut Rng, nr: u32, size: usize, buf: &mut [u8], cx: &Context) {
    buf[..size].fill(0);
    let v = u64::from(RUST_WQ_ABI_VERSION);
    match nr {
        NR_ENQUEUE => {
            type E = RustWqEnqueue;
            put(buf, abi_field!(E, version), v);
            put(
                buf,
                abi_field!(E, queue),
                rng.below(u64::from(RUST_WQ_Q_COUNT)),
            );
            let cpu = if rng.pct(50) {
                u64::from(RUST_WQ_CPU_ANY)
            } else {
                rng.below(u64::from(cx.ncpu))
            };
            put(buf, abi_field!(E, cpu), cpu);
            put(buf, abi_field!(E, count), rng.range(1, 16));
            let d = match rng.below(4) {
                0 => 0,
                1 => rng.below(20_000),
                2 => rng.below(2_000_000),
                _ => rng.below(RUST_WQ_MAX_DELAY_US + 1),
            };
            put(buf, abi_field!(E, delay_us), d);
            let sleep = if rng.pct(60) { 0 } else { rng.below(2_000) };
            put(buf, abi_field!(E, sleep_us), sleep);
            put(buf, abi_field!(E, tag), rng.u64());
            // flags: queue from a hard-IRQ handler or softirq, rarely both (EINVAL); the
            // mutations below add unknown bits.
            if rng.pct(30) {
                let f = rng.pick(&[
                    RUST_WQ_ENQ_F_FROM_IRQ,
                    RUST_WQ_ENQ_F_FROM_IRQ,
                    RUST_WQ_ENQ_F_FROM_SOFTIRQ,
                    RUST_WQ_ENQ_F_ALL,
                ]);
                put(buf, abi_field!(E, flags), f);
            }
        }
        NR_FLUSH | NR_CANCEL => {
            type T = RustWqTarget;
            put(buf, abi_field!(T, version), v);
            let kind = rng.below(3);
            put(buf, abi_field!(T, kind), kind);
            if kind == u64::from(RUST_WQ_TARGET_QUEUE) {
                put(
                    buf,
                    abi_field!(T, queue),
                    rng.below(u64::from(RUST_WQ_Q_COUNT)),
                );
            }
            if kind == u64::from(RUST_WQ_TARGET_ID) {
                let id = near_id(rng, cx.last_id, |rng| rng.below(64));
                put(buf, abi_field!(T, id), id);
            }
        }
        NR_MOD_DELAY => {
            type M = RustWqModDelay;
            put(buf, abi_field!(M, version), v);
            // Half of the time an item that is likely still pending (else MOD_DELAY rarely
            // succeeds when the calls are slow and the short delays have run).
            let id = if cx.long_id > 0 && rng.pct(50) {
                cx.long_id
            } else {
                near_id(rng, cx.last_id, Rng::u64)
            };
            put(buf, abi_field!(M, id), id);
            let lim = if rng.pct(50) {
                50_000
            } else {
                RUST_WQ_MAX_DELAY_US + 1
            };
            put(buf, abi_field!(M, delay_us), rng.below(lim));
        }
        NR_RESULTS => {
            type R = RustWqResults;
            put(buf, abi_field!(R, version), v);
            let cap = rng.pick(&[0u64, 1, 8, 64, 256, 8192, 8193, 0xffff_ffff]);
            put(buf, abi_field!(R, capacity), cap);
            let arena = cx.arena;
            let bufp = match rng.below(9) {
                0 => 0,
                1..=3 => cx.results_addr,
                4 => arena
                    .results
                    .addr(arena.results.len() - 48 * (1 + rng.below(3) as usize)),
                5 => arena.unmapped,
                6 => rng.pick(&KERNEL_ADDRS),
                7 => arena.ro.addr(0),
                _ => cx.results_addr + 1 + rng.below(7) as usize,
            };
            put(buf, abi_field!(R, buf), bufp as u64);
        }
        NR_BENCH => {
            type B = RustWqBench;
            put(buf, abi_field!(B, version), v);
            put(buf, abi_field!(B, path), rng.below(3));
            put(buf, abi_field!(B, threads), rng.below(3));
            put(buf, abi_field!(B, items), rng.range(1, 20));
            let op = rng.below(u64::from(RUST_WQ_BENCH_OP_COUNT));
            put(buf, abi_field!(B, op), op);
            // START_LATENCY only with the round trip (else EINVAL, which mutations still reach).
            let flags = if op == u64::from(RUST_WQ_BENCH_OP_RT) {
                rng.below(2)
            } else {
                0
            };
            put(buf, abi_field!(B, flags), flags);
        }
        _ => {}
    }
    // Mutate 0..3 fields (also of INFO/STATS, whose input is ignored).
    let fl = mutable_fields(nr);
    for _ in 0..rng.pick(&[0u64, 0, 1, 1, 2, 3]) {
        let f = rng.pick(&fl);
        let val = field_value(rng, f.size);
        put(buf, f, val);
    }
}

/// Keeps valid-looking arguments cheap: total sleep of one ENQUEUE at most
/// ~5 ms, BENCH at most 32 rounds.  Garbage stays garbage.
pub fn bound(rng: &mut Rng, nr: u32, buf: &mut [u8], size: usize) {
    let b = &mut buf[..size];
    if nr == NR_ENQUEUE {
        let sleep_us = abi_field!(RustWqEnqueue, sleep_us);
        if let (Some(count), Some(sleep)) =
            (get(b, abi_field!(RustWqEnqueue, count)), get(b, sleep_us))
        {
            if (1..=u64::from(RUST_WQ_MAX_COUNT)).contains(&count)
                && sleep <= RUST_WQ_MAX_SLEEP_US
                && count * sleep > 5_000
            {
                put(b, sleep_us, rng.below(5_000 / count + 1));
            }
        }
    }
    if nr == NR_BENCH {
        let items_f = abi_field!(RustWqBench, items);
        if let Some(items) = get(b, items_f) {
            if items > 32 && items <= u64::from(RUST_WQ_BENCH_MAX_ITEMS) {
                put(b, items_f, rng.below(33));
            }
        }
    }
}
