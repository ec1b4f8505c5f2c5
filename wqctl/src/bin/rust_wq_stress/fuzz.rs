//! Scenario `fuzz`: random ioctls from several threads.
//!
//! Commands: random 32-bit values and random other magics (minus the generic
//! VFS ioctl types, which act on the file rather than the driver), magic 0xBC
//! with random nr/dir/size, and the exact encodings with random or mutated
//! structures.  Pointers: valid, unaligned, NULL, unmapped (munmap'd),
//! read-only, kernel-space, crossing into an unmapped page, random.
//! Every call must return 0 or fail with an errno within the watchdog limit;
//! for magic 0xBC the outcome must be the documented one: unknown nr: ENOTTY;
//! known nr, wrong size/dir: EINVAL; exact encoding with a NULL, unmapped,
//! kernel or small-integer pointer, or a struct crossing into an unmapped
//! page: EFAULT; with a read-only struct a command that writes back never
//! succeeds; with a valid pointer, a model of the header's checks (`expect`)
//! says which outcomes are allowed: EINVAL exactly when a field is invalid,
//! otherwise success or the errnos the command's state can give (EBUSY for
//! ENQUEUE, ENOENT for CANCEL by id and MOD_DELAY, EFAULT for a RESULTS
//! buffer that may be too small or invalid, which then returns count 0).
//! At the end every command must have both succeeded and failed at least once
//! (else the fuzzer did not reach it).
//! Valid-looking ENQUEUEs set RUST_WQ_ENQ_F_FROM_IRQ or _FROM_SOFTIRQ 30% of the time.
//! Valid-looking ENQUEUE sleeps and BENCH item counts are bounded so that the
//! run stays short; files are reset, cancelled and reopened often.

use crate::common::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wqctl::abi::*;
use wqctl::{Device, Errno, Target};

const BENCH_NR: u32 = 0x08;
const BENCH_SIZE: usize = 120;
/// nr -> (dir, size) of every command, BENCH included when the module has it.
type Known = Vec<(u32, u32, usize)>;

/// Types of the VFS's own ioctls (FIOCLEX..., FIFREEZE, FS_IOC_*, FICLONE...)
/// and of the tty layer: not the driver's business, and some change the
/// file or file system.
const DENY_TYPES: [u32; 7] = [0x00, 0x12, 0x15, 0x54, 0x58, 0x66, 0x94];

/// (offset, width) of the fields of each structure, by nr.
fn fields(nr: u32) -> &'static [(usize, usize)] {
    match nr {
        0x01 => &[
            (0, 4),
            (4, 4),
            (8, 4),
            (12, 4),
            (16, 8),
            (24, 8),
            (32, 8),
            (40, 8),
            (48, 8),
            (56, 8),
        ],
        0x02 | 0x03 => &[
            (0, 4),
            (4, 4),
            (8, 4),
            (12, 4),
            (16, 8),
            (24, 8),
            (32, 8),
            (40, 8),
        ],
        0x04 => &[(0, 4), (4, 4), (8, 8), (16, 8), (24, 8), (32, 8)],
        0x05 => &[
            (0, 4),
            (4, 4),
            (8, 8),
            (16, 4),
            (20, 4),
            (24, 8),
            (32, 8),
            (40, 8),
        ],
        0x08 => &[
            (0, 4),
            (4, 4),
            (8, 4),
            (12, 4),
            (16, 4),
            (20, 4),
            (24, 8),
            (88, 4),
            (92, 4),
            (104, 8),
        ],
        _ => &[(0, 8), (8, 8), (16, 8), (24, 8)],
    }
}

fn put(buf: &mut [u8], off: usize, w: usize, v: u64) {
    if off + w <= buf.len() {
        buf[off..off + w].copy_from_slice(&v.to_le_bytes()[..w]);
    }
}

fn get(buf: &[u8], off: usize, w: usize) -> Option<u64> {
    if off + w > buf.len() {
        return None;
    }
    let mut b = [0u8; 8];
    b[..w].copy_from_slice(&buf[off..off + w]);
    Some(u64::from_le_bytes(b))
}

struct Arena {
    arg: Pages,     // 5 RW pages then an unmapped guard page
    ro: Pages,      // 1 page, read-only except while we fill it
    results: Pages, // room for RUST_WQ_MAX_RESULTS results, then a guard page
    unmapped: usize,
}

impl Arena {
    fn new() -> Self {
        let mut arg = Pages::map(6);
        arg.drop_last_page();
        let ro = Pages::map(1);
        ro.protect(libc::PROT_READ);
        let n = (RUST_WQ_MAX_RESULTS as usize * std::mem::size_of::<RustWqResult>())
            .div_ceil(page_size())
            + 1;
        let mut results = Pages::map(n + 1);
        results.drop_last_page();
        Arena {
            arg,
            ro,
            results,
            unmapped: unmapped_addr(),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Ptr {
    Valid,
    Unaligned,
    Null,
    Unmapped,
    Kernel,
    ReadOnly,
    Straddle,
    Random,
    SmallInt,
}

const PTRS: [(Ptr, u64); 9] = [
    (Ptr::Valid, 35),
    (Ptr::Unaligned, 14),
    (Ptr::Null, 8),
    (Ptr::Unmapped, 8),
    (Ptr::Kernel, 8),
    (Ptr::ReadOnly, 10),
    (Ptr::Straddle, 7),
    (Ptr::Random, 5),
    (Ptr::SmallInt, 5),
];

fn ptr_name(p: Ptr) -> &'static str {
    match p {
        Ptr::Valid => "valid",
        Ptr::Unaligned => "unaligned",
        Ptr::Null => "null",
        Ptr::Unmapped => "unmapped",
        Ptr::Kernel => "kernel",
        Ptr::ReadOnly => "readonly",
        Ptr::Straddle => "straddle",
        Ptr::Random => "random",
        Ptr::SmallInt => "smallint",
    }
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

/// A structurally valid argument for nr, with some fields mutated.
#[allow(clippy::too_many_arguments)]
fn structured(
    rng: &mut Rng,
    nr: u32,
    size: usize,
    ncpu: u32,
    last_id: u64,
    buf: &mut [u8],
    results_addr: usize,
    arena: &Arena,
) {
    buf[..size].fill(0);
    let v = u64::from(RUST_WQ_ABI_VERSION);
    match nr {
        0x01 => {
            put(buf, 0, 4, v);
            put(buf, 4, 4, rng.below(u64::from(RUST_WQ_Q_COUNT)));
            let cpu = if rng.pct(50) {
                u64::from(RUST_WQ_CPU_ANY)
            } else {
                rng.below(u64::from(ncpu))
            };
            put(buf, 8, 4, cpu);
            put(buf, 12, 4, rng.range(1, 16));
            let d = match rng.below(4) {
                0 => 0,
                1 => rng.below(20_000),
                2 => rng.below(2_000_000),
                _ => rng.below(RUST_WQ_MAX_DELAY_US + 1),
            };
            put(buf, 16, 8, d);
            put(buf, 24, 8, if rng.pct(60) { 0 } else { rng.below(2_000) });
            put(buf, 32, 8, rng.u64());
            // flags: queue from a hard-IRQ handler or softirq, rarely both (EINVAL); the
            // mutations below add unknown bits.
            if rng.pct(30) {
                let f = rng.pick(&[
                    RUST_WQ_ENQ_F_FROM_IRQ,
                    RUST_WQ_ENQ_F_FROM_IRQ,
                    RUST_WQ_ENQ_F_FROM_SOFTIRQ,
                    RUST_WQ_ENQ_F_ALL,
                ]);
                put(buf, 48, 8, f);
            }
        }
        0x02 | 0x03 => {
            put(buf, 0, 4, v);
            let kind = rng.below(3);
            put(buf, 4, 4, kind);
            if kind == 2 {
                put(buf, 8, 4, rng.below(u64::from(RUST_WQ_Q_COUNT)));
            }
            if kind == 1 {
                put(
                    buf,
                    16,
                    8,
                    if last_id > 0 && rng.pct(70) {
                        last_id.saturating_sub(rng.below(8))
                    } else {
                        rng.below(64)
                    },
                );
            }
        }
        0x04 => {
            put(buf, 0, 4, v);
            put(
                buf,
                8,
                8,
                if last_id > 0 && rng.pct(70) {
                    last_id.saturating_sub(rng.below(8))
                } else {
                    rng.u64()
                },
            );
            let lim = if rng.pct(50) {
                50_000
            } else {
                RUST_WQ_MAX_DELAY_US + 1
            };
            put(buf, 16, 8, rng.below(lim));
        }
        0x05 => {
            put(buf, 0, 4, v);
            let cap = rng.pick(&[0u64, 1, 8, 64, 256, 8192, 8193, 0xffff_ffff]);
            put(buf, 4, 4, cap);
            let bufp = match rng.below(9) {
                0 => 0,
                1..=3 => results_addr,
                4 => arena
                    .results
                    .addr(arena.results.len() - 48 * (1 + rng.below(3) as usize)),
                5 => arena.unmapped,
                6 => rng.pick(&KERNEL_ADDRS),
                7 => arena.ro.addr(0),
                _ => results_addr + 1 + rng.below(7) as usize,
            };
            put(buf, 8, 8, bufp as u64);
        }
        BENCH_NR => {
            put(buf, 0, 4, v);
            put(buf, 4, 4, rng.below(3));
            put(buf, 8, 4, rng.below(3));
            put(buf, 12, 4, rng.range(1, 20));
            let op = rng.below(u64::from(RUST_WQ_BENCH_OP_COUNT));
            put(buf, 88, 4, op);
            // START_LATENCY only with the round trip (else EINVAL, which mutations still reach).
            put(buf, 16, 4, if op == 0 { rng.below(2) } else { 0 });
        }
        _ => {}
    }
    // Mutate 0..3 fields (also of INFO/STATS, whose input is ignored).
    let fl = fields(nr);
    for _ in 0..rng.pick(&[0u64, 0, 1, 1, 2, 3]) {
        let (off, w) = rng.pick(fl);
        let val = field_value(rng, w);
        put(buf, off, w, val);
    }
}

/// Keeps valid-looking arguments cheap: total sleep of one ENQUEUE at most
/// ~5 ms, BENCH at most 32 rounds.  Garbage stays garbage.
fn bound(rng: &mut Rng, nr: u32, buf: &mut [u8], size: usize) {
    let b = &mut buf[..size];
    if nr == 0x01 {
        if let (Some(count), Some(sleep)) = (get(b, 12, 4), get(b, 24, 8)) {
            if (1..=u64::from(RUST_WQ_MAX_COUNT)).contains(&count)
                && sleep <= RUST_WQ_MAX_SLEEP_US
                && count * sleep > 5_000
            {
                put(b, 24, 8, rng.below(5_000 / count + 1));
            }
        }
    }
    if nr == BENCH_NR {
        if let Some(items) = get(b, 12, 4) {
            if items > 32 && items <= 1_000_000 {
                put(b, 12, 4, rng.below(33));
            }
        }
    }
}

/// What the header allows for an exact encoding of `nr` with a readable and
/// writable argument holding `b`: the allowed outcomes (0 = success, else
/// errnos).
fn expect(nr: u32, b: &[u8], ncpu: u32, results_addr: usize, room: usize) -> Vec<i32> {
    let g = |off: usize, w: usize| get(b, off, w).unwrap_or(0);
    let v1 = g(0, 4) == u64::from(RUST_WQ_ABI_VERSION);
    let max_sleep = RUST_WQ_MAX_SLEEP_US;
    match nr {
        0x00 | 0x06 | 0x07 => vec![0],
        0x01 => {
            let cpu = g(8, 4);
            let count = g(12, 4);
            let bad = !v1
                || g(4, 4) >= u64::from(RUST_WQ_Q_COUNT)
                || (cpu != u64::from(RUST_WQ_CPU_ANY) && cpu >= u64::from(ncpu))
                || count == 0
                || count > u64::from(RUST_WQ_MAX_COUNT)
                || g(16, 8) > RUST_WQ_MAX_DELAY_US
                || g(24, 8) > max_sleep
                || g(48, 8) & !RUST_WQ_ENQ_F_ALL != 0
                || g(48, 8) == RUST_WQ_ENQ_F_ALL
                || g(56, 8) != 0;
            // Too many items is EBUSY too (either check may come first).
            if bad {
                vec![libc::EINVAL, libc::EBUSY]
            } else {
                vec![0, libc::EBUSY]
            }
        }
        0x02 | 0x03 => {
            let (kind, queue, id) = (g(4, 4), g(8, 4), g(16, 8));
            let ok_kind = match kind {
                0 => queue == 0 && id == 0,
                1 => queue == 0,
                2 => queue < u64::from(RUST_WQ_Q_COUNT) && id == 0,
                _ => false,
            };
            if !v1 || g(12, 4) != 0 || g(32, 8) != 0 || g(40, 8) != 0 || !ok_kind {
                vec![libc::EINVAL]
            } else if nr == 0x03 && kind == 1 {
                vec![0, libc::ENOENT]
            } else {
                vec![0]
            }
        }
        0x04 => {
            if !v1
                || g(4, 4) != 0
                || g(24, 8) != 0
                || g(32, 8) != 0
                || g(16, 8) > RUST_WQ_MAX_DELAY_US
            {
                vec![libc::EINVAL]
            } else {
                vec![0, libc::ENOENT]
            }
        }
        0x05 => {
            let (cap, buf) = (g(4, 4), g(8, 8) as usize);
            if !v1 || g(20, 4) != 0 || g(32, 8) != 0 || g(40, 8) != 0 || (buf == 0 && cap > 0) {
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
        BENCH_NR => {
            let op = g(88, 4);
            let multi = op == u64::from(RUST_WQ_BENCH_OP_RT)
                || op == u64::from(RUST_WQ_BENCH_OP_QUEUE_FRESH);
            let (threads, items) = (g(8, 4), g(12, 4));
            let bad = !v1
                || g(4, 4) > 2
                || g(16, 4) & !u64::from(RUST_WQ_BENCH_F_START_LATENCY) != 0
                || items == 0
                || items > u64::from(RUST_WQ_BENCH_MAX_ITEMS)
                || op >= u64::from(RUST_WQ_BENCH_OP_COUNT)
                || g(92, 4) != 0
                || g(104, 8) != 0
                || g(112, 8) != 0
                || (!multi && threads > 1)
                || (op != u64::from(RUST_WQ_BENCH_OP_RT) && g(16, 4) != 0);
            // Threads run x items above MAX_TOTAL is EINVAL; how many threads run depends on
            // the CPUs online, so near the limit either answer is allowed.
            let most = if !multi {
                1
            } else if threads == 0 {
                u64::from(ncpu)
            } else {
                threads.min(u64::from(ncpu))
            };
            if bad || items > RUST_WQ_BENCH_MAX_TOTAL {
                vec![libc::EINVAL]
            } else if most * items > RUST_WQ_BENCH_MAX_TOTAL {
                vec![0, libc::EINVAL]
            } else {
                vec![0]
            }
        }
        _ => vec![],
    }
}

fn cmd_name(cmd: u32, known: &Known) -> String {
    if ioc_type(cmd) != RUST_WQ_IOC_MAGIC {
        return "other".into();
    }
    let nr = ioc_nr(cmd);
    let name = match nr {
        0 => "INFO",
        1 => "ENQUEUE",
        2 => "FLUSH",
        3 => "CANCEL",
        4 => "MOD_DELAY",
        5 => "RESULTS",
        6 => "STATS",
        7 => "RESET",
        8 => "BENCH",
        _ => return "bc_unknown_nr".into(),
    };
    match known.iter().find(|k| k.0 == nr) {
        Some(&(_, d, s)) if d == ioc_dir(cmd) && s == ioc_size(cmd) => name.into(),
        Some(_) => format!("{name}_badenc"),
        None => "bc_unknown_nr".into(),
    }
}

fn describe(w: u64) -> String {
    format!("ioctl cmd {:#010x} (arg kind {})", w & 0xffff_ffff, w >> 32)
}

struct Worker {
    tally: Tally,
    calls: u64,
    reopen: u64,
    resets: u64,
}

#[allow(clippy::too_many_arguments)]
fn worker(
    idx: usize,
    opts: &Opts,
    calls: u64,
    known: &Known,
    shared: &Device,
    ncpu: u32,
    errs: &Errs,
    wd: &Watchdog,
) -> Worker {
    let mut rng = Rng::new(opts.seed_for("fuzz", idx as u64));
    let mut arena = Arena::new();
    let mut own = Device::open(&opts.path).expect("open");
    let mut out = Worker {
        tally: Tally::default(),
        calls: 0,
        reopen: 0,
        resets: 0,
    };
    let mut payload = vec![0u8; 1 << 14];
    let mut last_id = 0u64;
    let ps = page_size();
    let known_weights: Vec<u64> = known
        .iter()
        .map(|k| match k.0 {
            0x01 => 30,
            0x05 => 14,
            0x03 => 10,
            0x02 | 0x04 => 8,
            0x00 | 0x06 => 7,
            0x07 => 4,
            _ => 2,
        })
        .collect();
    for i in 0..calls {
        // Housekeeping: bound the work piling up in the kernel.
        if i % 64 == 63 {
            match rng.below(4) {
                0 => {
                    let _ = own.reset();
                    out.resets += 1;
                }
                1 => {
                    let _ = own.cancel(Target::All);
                }
                _ => {}
            }
            if idx == 0 && rng.pct(30) {
                let _ = shared.reset();
                out.resets += 1;
            }
        }
        if i % 500 == 499 {
            own = Device::open(&opts.path).expect("reopen");
            out.reopen += 1;
        }
        let dev = if rng.pct(20) { shared } else { &own };

        // The command.
        let cmd = match rng.weighted(&[8, 8, 24, 60]) {
            0 => loop {
                let c = rng.u32();
                if !DENY_TYPES.contains(&ioc_type(c)) && ioc_type(c) != RUST_WQ_IOC_MAGIC {
                    break c;
                }
            },
            1 => loop {
                let t = rng.below(256) as u32;
                if !DENY_TYPES.contains(&t) && t != RUST_WQ_IOC_MAGIC {
                    break ioc(
                        rng.below(4) as u32,
                        t,
                        rng.below(256) as u32,
                        rng.below(1 << 14) as usize,
                    );
                }
            },
            2 => {
                let nr = if rng.pct(50) {
                    rng.below(13)
                } else {
                    rng.below(256)
                } as u32;
                let size = if rng.pct(50) {
                    let base = rng.pick(&[0usize, 24, 48, 40, 64, 120]) as i64
                        + rng.range(0, 6) as i64
                        - 3;
                    base.clamp(0, (1 << 14) - 1) as usize
                } else {
                    rng.below(1 << 14) as usize
                };
                ioc(rng.below(4) as u32, RUST_WQ_IOC_MAGIC, nr, size)
            }
            _ => {
                let (nr, d, s) = known[rng.weighted(&known_weights)];
                ioc(d, RUST_WQ_IOC_MAGIC, nr, s)
            }
        };
        let size = ioc_size(cmd).max(64).min(payload.len());
        let nr = ioc_nr(cmd);
        let is_bc = ioc_type(cmd) == RUST_WQ_IOC_MAGIC;
        let results_addr = arena.results.addr(0);
        if rng.pct(25) {
            rng.fill(&mut payload[..size]);
        } else {
            structured(
                &mut rng,
                nr,
                size,
                ncpu,
                last_id,
                &mut payload,
                results_addr,
                &arena,
            );
        }
        if is_bc {
            bound(&mut rng, nr, &mut payload, size);
        }

        // The pointer.
        let kinds: Vec<u64> = PTRS.iter().map(|p| p.1).collect();
        let kind = PTRS[rng.weighted(&kinds)].0;
        // Bytes of the struct that are mapped (Straddle) and where the struct
        // lies in the arg arena (Valid, Unaligned).
        let mut straddle_k = usize::MAX;
        let mut arg_off = None;
        let addr = match kind {
            Ptr::Valid => {
                arena.arg.write_bytes(0, &payload[..size]);
                arg_off = Some(0);
                arena.arg.addr(0)
            }
            Ptr::Unaligned => {
                let o = 1 + rng.below(7) as usize;
                arena.arg.write_bytes(o, &payload[..size]);
                arg_off = Some(o);
                arena.arg.addr(o)
            }
            Ptr::Null => 0,
            Ptr::Unmapped => arena.unmapped,
            Ptr::Kernel => rng.pick(&KERNEL_ADDRS),
            Ptr::ReadOnly => {
                arena.ro.protect(libc::PROT_READ | libc::PROT_WRITE);
                let n = size.min(ps);
                arena.ro.write_bytes(0, &payload[..n]);
                arena.ro.protect(libc::PROT_READ);
                arena.ro.addr(0)
            }
            Ptr::Straddle => {
                let len = arena.arg.len();
                let k = 1 + rng.below(ioc_size(cmd).clamp(1, 64) as u64) as usize;
                let k = k.min(size);
                straddle_k = k;
                arena.arg.write_bytes(len - k, &payload[..k]);
                arena.arg.addr(len - k)
            }
            Ptr::Random => rng.u64() as usize,
            Ptr::SmallInt => 1 + rng.below(4095) as usize,
        };

        wd.enter(idx, u64::from(cmd) | ((kind as u64) << 32));
        // SAFETY: the kernel writes at most ioc_size(cmd) (< 16 KiB) bytes at
        // addr: our scratch arena (5 pages + guard, addr in the first page or
        // at its end), the read-only page, or an address it must refuse; the
        // RESULTS buffer points into our results arena (+guard) or is invalid.
        let r = unsafe { dev.ioctl_addr(cmd, addr) };
        wd.leave(idx);
        out.calls += 1;

        let name = cmd_name(cmd, known);
        out.tally.add(format!("{name}:{}", ename(r)), 1);
        if let (Ok(_), 0x01, true) = (r, nr, name == "ENQUEUE") {
            // first_id lies at offset 40 of what the kernel wrote back.
            if let Some(o) = arg_off {
                let mut b = [0u8; 8];
                // SAFETY: reading back our own writable scratch page.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        (arena.arg.addr(o + 40)) as *const u8,
                        b.as_mut_ptr(),
                        8,
                    )
                };
                last_id = u64::from_le_bytes(b);
            }
        }
        if !is_bc {
            continue;
        }
        let what = || {
            format!(
                "ioctl({:#010x} [{name}], {} ptr {addr:#x})",
                cmd,
                ptr_name(kind)
            )
        };
        let got = match r {
            Ok(v) => {
                errs.check(v == 0, || format!("{}: returned {v}, expected 0", what()));
                0
            }
            Err(e) => e.0,
        };
        let documented = [
            0,
            libc::ENOTTY,
            libc::EINVAL,
            libc::ENODEV,
            libc::EFAULT,
            libc::EBUSY,
            libc::ENOENT,
            libc::ENOMEM,
        ];
        errs.check(documented.contains(&got), || {
            format!("{}: undocumented errno {}", what(), ename(r))
        });
        let allowed: Vec<i32> = if name == "bc_unknown_nr" {
            vec![libc::ENOTTY]
        } else if name.ends_with("_badenc") {
            vec![libc::EINVAL]
        } else if ioc_dir(cmd) == IOC_NONE {
            // RESET: no argument.
            vec![0]
        } else {
            let isize = ioc_size(cmd);
            match kind {
                Ptr::Null | Ptr::Unmapped | Ptr::Kernel | Ptr::SmallInt => vec![libc::EFAULT],
                Ptr::Straddle if straddle_k < isize => vec![libc::EFAULT],
                // A struct that cannot be written back: never a success for
                // a command that writes back (MOD_DELAY only reads).
                Ptr::ReadOnly if ioc_dir(cmd) & IOC_READ != 0 => documented[1..].to_vec(),
                Ptr::Valid | Ptr::Unaligned => {
                    let bytes = &payload[..isize.min(size)];
                    let mut v = expect(nr, bytes, ncpu, results_addr, arena.results.len());
                    if v.is_empty() {
                        v = documented.to_vec();
                    }
                    v
                }
                _ => documented.to_vec(),
            }
        };
        errs.check(allowed.contains(&got), || {
            format!(
                "{}: got {}, expected one of {:?}",
                what(),
                ename(r),
                allowed
                    .iter()
                    .map(|&e| if e == 0 {
                        "ok".to_string()
                    } else {
                        Errno(e).name()
                    })
                    .collect::<Vec<_>>()
            )
        });
        // A successful RESULTS: count within capacity, and 0 when the buffer
        // was not ours to write.
        if got == 0 && nr == 0x05 && name == "RESULTS" {
            if let Some(o) = arg_off {
                let mut w = [0u8; 48];
                // SAFETY: reading back our own writable scratch arena.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        arena.arg.addr(o) as *const u8,
                        w.as_mut_ptr(),
                        48,
                    )
                };
                let (cap, buf, count) = (
                    get(&w, 4, 4).unwrap_or(0),
                    get(&w, 8, 8).unwrap_or(0) as usize,
                    get(&w, 16, 4).unwrap_or(0),
                );
                errs.check(count <= cap, || {
                    format!("{}: RESULTS count {count} > capacity {cap}", what())
                });
                let ours = buf >= results_addr && buf < results_addr + arena.results.len();
                errs.check(ours || count == 0, || {
                    format!(
                        "{}: RESULTS succeeded with count {count} into a buffer it cannot write ({buf:#x})",
                        what()
                    )
                });
            }
        }
        // A successful CANCEL by id cancelled exactly that one item.
        if got == 0 && nr == 0x03 && name == "CANCEL" {
            if let Some(o) = arg_off {
                let mut w = [0u8; 32];
                // SAFETY: reading back our own writable scratch arena.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        arena.arg.addr(o) as *const u8,
                        w.as_mut_ptr(),
                        32,
                    )
                };
                if get(&w, 4, 4) == Some(1) {
                    let n = get(&w, 24, 8).unwrap_or(0);
                    errs.check(n == 1, || {
                        format!("{}: CANCEL by id succeeded with count {n}", what())
                    });
                }
            }
        }
    }
    // Leave the own file consistent and check its counters.
    let _ = own.cancel(Target::All);
    match own.flush(Target::All) {
        Ok(_) => {}
        Err(e) => errs.fail(format!("thread {idx}: final FLUSH ALL: {e}")),
    }
    match own.stats() {
        Ok(s) => errs.check(
            s.pending == 0 && s.enqueued == s.executed + s.cancelled,
            || format!("thread {idx}: final stats inconsistent: {s:?}"),
        ),
        Err(e) => errs.check(false, || format!("thread {idx}: final STATS: {e}")),
    };
    out
}

pub fn run(opts: &Opts, rep: &mut Report) -> Result<(), Outcome> {
    let threads = 4usize;
    let total: u64 = opts.pick(10_000, 100_000);
    let per = total / threads as u64;
    let probe = opts.open()?;
    let info = probe.info().must("INFO")?;
    let mut known: Known = ALL_IOCTLS
        .iter()
        .map(|&(_, c)| (ioc_nr(c), ioc_dir(c), ioc_size(c)))
        .filter(|k| k.0 != BENCH_NR)
        .collect();
    // Does the module know BENCH?  (A wrong version gives EINVAL if so.)
    let bench = ioc(
        IOC_READ | IOC_WRITE,
        RUST_WQ_IOC_MAGIC,
        BENCH_NR,
        BENCH_SIZE,
    );
    let mut zero = [0u8; BENCH_SIZE];
    // SAFETY: the buffer has BENCH_SIZE bytes.
    let r = unsafe { probe.ioctl_raw(bench, zero.as_mut_ptr() as *mut _) };
    if r == Err(Errno(libc::EINVAL)) {
        known.push((BENCH_NR, IOC_READ | IOC_WRITE, BENCH_SIZE));
    }
    rep.diag(format!(
        "seed {} (per-thread seeds derived from it), {threads} threads x {per} calls, commands known: {}",
        opts.seed,
        known.len()
    ));
    let shared = Arc::new(opts.open()?);
    let errs = Errs::new();
    let wd = Watchdog::new(threads);
    let wdh = wd.spawn("fuzz", Duration::from_secs(60), describe);
    let t0 = Instant::now();
    let results: Vec<Worker> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|i| {
                let (known, shared, errs, wd) = (&known, &shared, &errs, &wd);
                s.spawn(move || worker(i, opts, per, known, shared, info.nr_cpu_ids, errs, wd))
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("fuzz worker panicked"))
            .collect()
    });
    wd.stop();
    let _ = wdh.join();
    let secs = t0.elapsed().as_secs_f64();
    let mut tally = Tally::default();
    let (mut calls, mut reopen, mut resets) = (0, 0, 0);
    for w in &results {
        tally.merge(&w.tally);
        calls += w.calls;
        reopen += w.reopen;
        resets += w.resets;
    }
    // Still usable afterwards.
    let _ = shared.reset();
    drop(shared);
    let dev = opts.open()?;
    let first = dev
        .enqueue(wqctl::EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 4))
        .must("ENQUEUE after fuzzing")?;
    dev.flush(Target::All).must("FLUSH after fuzzing")?;
    let (res, _) = dev.drain_results().must("RESULTS after fuzzing")?;
    let mut ids: Vec<u64> = res.iter().map(|r| r.id).collect();
    ids.sort();
    rep.check(ids == (first..first + 4).collect::<Vec<_>>(), || {
        format!("after fuzzing: 4 items enqueued (ids from {first}), results {ids:?}")
    });
    let bad = errs.count();
    errs.to_report(rep);
    rep.diag(format!(
        "{calls} calls in {secs:.1} s ({:.0}/s), {reopen} reopens, {resets} resets, {bad} violations",
        calls as f64 / secs
    ));
    let mut by_errno = Tally::default();
    for (k, v) in &tally.0 {
        by_errno.add(k.rsplit(':').next().unwrap_or("?"), *v);
    }
    rep.diag(format!("errnos: {}", by_errno.lines().join(" ")));
    for l in tally.lines() {
        rep.diag(format!("by command: {l}"));
    }
    // Each command must have both succeeded and been refused (else the
    // fuzzer never reached it, or never reached its checks).
    for &(nr, _, _) in &known {
        let n = match nr {
            0 => "INFO",
            1 => "ENQUEUE",
            2 => "FLUSH",
            3 => "CANCEL",
            4 => "MOD_DELAY",
            5 => "RESULTS",
            6 => "STATS",
            7 => "RESET",
            _ => "BENCH",
        };
        let ok = tally.get(&format!("{n}:ok"));
        let refused: u64 = tally
            .0
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{n}:")) && !k.ends_with(":ok"))
            .map(|(_, v)| v)
            .sum();
        rep.check(ok > 0 && (refused > 0 || nr == 7), || {
            format!(
                "{n}: {ok} calls succeeded, {refused} were refused: the fuzzer did not cover it"
            )
        });
    }
    rep.check(
        tally.get("bc_unknown_nr:ENOTTY") > 0
            && tally.0.keys().any(|k| k.ends_with("_badenc:EINVAL")),
        || "no unknown nr (ENOTTY) or wrong encoding (EINVAL) was tried".into(),
    );
    Ok(())
}
