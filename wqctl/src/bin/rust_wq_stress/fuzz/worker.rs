//! One fuzzing thread: picks a command, an argument and a pointer, makes the
//! call and checks its outcome against the model.

use super::fields::*;
use super::model::expect;
use super::pointers::*;
use super::Known;
use crate::common::*;
use std::mem::size_of;
use wqctl::abi::*;
use wqctl::abi_field;
use wqctl::{Device, Errno, Target};

/// Types of the VFS's own ioctls (FIOCLEX..., FIFREEZE, FS_IOC_*, FICLONE...)
/// and of the tty layer: not the driver's business, and some change the
/// file or file system.
const DENY_TYPES: [u32; 7] = [0x00, 0x12, 0x15, 0x54, 0x58, 0x66, 0x94];

/// Sizes the near-miss encodings of magic 0xBC vary around (+-3): none, 24,
/// and the sizes of the structs.
const NEAR_SIZES: [usize; 6] = [
    0,
    24,
    size_of::<RustWqTarget>(),
    size_of::<RustWqModDelay>(),
    size_of::<RustWqEnqueue>(),
    size_of::<RustWqBench>(),
];

/// The command's name without the `RUST_WQ_IOC_` prefix (`ENQUEUE`), for a
/// nr of this ABI.
pub fn nr_name(nr: u32) -> Option<&'static str> {
    ALL_IOCTLS
        .iter()
        .find(|(_, cmd)| ioc_nr(*cmd) == nr)
        .map(|(name, _)| name.trim_start_matches("RUST_WQ_IOC_"))
}

fn cmd_name(cmd: u32, known: &Known) -> String {
    if ioc_type(cmd) != RUST_WQ_IOC_MAGIC {
        return "other".into();
    }
    let nr = ioc_nr(cmd);
    let Some(name) = nr_name(nr) else {
        return "bc_unknown_nr".into();
    };
    match known.iter().find(|k| k.0 == nr) {
        Some(&(_, d, s)) if d == ioc_dir(cmd) && s == ioc_size(cmd) => name.into(),
        Some(_) => format!("{name}_badenc"),
        None => "bc_unknown_nr".into(),
    }
}

pub fn describe(w: u64) -> String {
    format!("ioctl cmd {:#010x} (arg kind {})", w & 0xffff_ffff, w >> 32)
}

pub struct Worker {
    pub tally: Tally,
    pub calls: u64,
    pub reopen: u64,
    pub resets: u64,
}

#[allow(clippy::too_many_arguments)]
pub fn worker(
    idx: usize,
    opts: &Opts,
    calls: u64,
    known: &Known,
    shared: &Device,
    cpus: Cpus,
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
    // The first id of the last successful ENQUEUE due in 1 s or more: still pending a while
    // later (unless a FLUSH, CANCEL or RESET took it), so that MOD_DELAY can find one.
    let mut long_id = 0u64;
    let ps = page_size();
    let known_weights: Vec<u64> = known
        .iter()
        .map(|k| match k.0 {
            NR_ENQUEUE => 30,
            NR_RESULTS => 14,
            NR_CANCEL => 10,
            NR_FLUSH | NR_MOD_DELAY => 8,
            NR_INFO | NR_STATS => 7,
            NR_RESET => 4,
            _ => 2,
        })
        .collect();
    for i in 0..calls {
        // Housekeeping: bound the work piling up in the kernel.
        if i % 64 == 63 {
            // Valid calls with no signal pending: they cannot fail.
            match rng.below(4) {
                0 => {
                    if let Err(e) = own.reset() {
                        errs.fail(format!("thread {idx}: housekeeping RESET: {e}"));
                    }
                    out.resets += 1;
                }
                1 => {
                    if let Err(e) = own.cancel(Target::All) {
                        errs.fail(format!("thread {idx}: housekeeping CANCEL ALL: {e}"));
                    }
                }
                _ => {}
            }
            if idx == 0 && rng.pct(30) {
                if let Err(e) = shared.reset() {
                    errs.fail(format!(
                        "thread {idx}: housekeeping RESET of the shared file: {e}"
                    ));
                }
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
                    let base = rng.pick(&NEAR_SIZES) as i64 + rng.range(0, 6) as i64 - 3;
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
            let cx = Context {
                ncpu: cpus.ids,
                last_id,
                long_id,
                results_addr,
                arena: &arena,
            };
            structured(&mut rng, nr, size, &mut payload, &cx);
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
        if let (Ok(_), NR_ENQUEUE, true) = (r, nr, name == "ENQUEUE") {
            // first_id, as the kernel wrote it back.
            if let Some(o) = arg_off {
                let mut b = [0u8; size_of::<RustWqEnqueue>()];
                arena.read_arg(o, &mut b);
                last_id = get(&b, abi_field!(RustWqEnqueue, first_id)).unwrap_or(0);
                if get(&b, abi_field!(RustWqEnqueue, delay_us)).unwrap_or(0) >= 1_000_000 {
                    long_id = last_id;
                }
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
                    let mut v = expect(nr, bytes, cpus, results_addr, arena.results.len());
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
        if got == 0 && nr == NR_RESULTS && name == "RESULTS" {
            if let Some(o) = arg_off {
                type R = RustWqResults;
                let mut w = [0u8; size_of::<R>()];
                arena.read_arg(o, &mut w);
                let (cap, buf, count) = (
                    get(&w, abi_field!(R, capacity)).unwrap_or(0),
                    get(&w, abi_field!(R, buf)).unwrap_or(0) as usize,
                    get(&w, abi_field!(R, count)).unwrap_or(0),
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
        if got == 0 && nr == NR_CANCEL && name == "CANCEL" {
            if let Some(o) = arg_off {
                type T = RustWqTarget;
                let mut w = [0u8; size_of::<T>()];
                arena.read_arg(o, &mut w);
                if get(&w, abi_field!(T, kind)) == Some(u64::from(RUST_WQ_TARGET_ID)) {
                    let n = get(&w, abi_field!(T, count)).unwrap_or(0);
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
