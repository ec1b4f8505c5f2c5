//! Bad input in the encoding: unknown commands, wrong sizes, directions, versions, reserved and out fields.

use crate::util::{enq, one_pending, raw, valid_enqueue, LONG_DELAY_US};
use crate::{Checker, Ctx, Must, TestResult};
use libc::{EINVAL, ENOTTY};
use std::collections::HashMap;
use wqctl::abi::*;
use wqctl::testing::RawBuf;
use wqctl::{Device, EnqueueArgs, Target};

pub fn unknown_cmd_enotty(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let e = valid_enqueue();
    let cmds: [(&str, u32); 8] = [
        ("_IOR(0xBD, 0, info)", ior::<RustWqInfo>(0xBD, 0)),
        ("_IOWR(0xBD, 1, enqueue)", iowr::<RustWqEnqueue>(0xBD, 1)),
        ("_IOWR(0x00, 1, enqueue)", iowr::<RustWqEnqueue>(0x00, 1)),
        ("_IO(0xBD, 7)", io(0xBD, 7)),
        ("_IO(0xBC, 0x09)", io(RUST_WQ_IOC_MAGIC, 0x09)),
        (
            "_IOWR(0xBC, 0x09, enqueue)",
            iowr::<RustWqEnqueue>(RUST_WQ_IOC_MAGIC, 0x09),
        ),
        (
            "_IOR(0xBC, 0x7f, info)",
            ior::<RustWqInfo>(RUST_WQ_IOC_MAGIC, 0x7f),
        ),
        (
            "_IOWR(0xBC, 0xff, 64 bytes)",
            iowr::<[u8; 64]>(RUST_WQ_IOC_MAGIC, 0xff),
        ),
    ];
    for (name, cmd) in cmds {
        c.errno(&format!("{name} = {cmd:#x}"), raw(&dev, cmd, &e), ENOTTY);
    }
    c.stats("nothing was enqueued", &dev, (0, 0, 0, 0));
    c.done()
}

pub fn wrong_size_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let pending = one_pending(&dev)?;
    // A valid argument for each command, so that ignoring the size would succeed.
    let mut args = valid_args(pending);
    for (name, cmd) in ALL_IOCTLS {
        let size = ioc_size(cmd);
        let (dir, nr) = (ioc_dir(cmd), ioc_nr(cmd));
        let mut wrong: Vec<(u32, usize)> = vec![(dir, size + 8), (dir, size + 1)];
        if size >= 8 {
            wrong.push((dir, size - 8));
            wrong.push((dir, 0));
        } else {
            wrong.push((IOC_WRITE, 8));
        }
        for (d, s) in wrong {
            let bad = ioc(d, RUST_WQ_IOC_MAGIC, nr, s);
            let what = format!("{name} with size {s} instead of {size} ({bad:#x})");
            misencoded_einval(&mut c, &dev, &mut args, cmd, bad, &what);
        }
    }
    c.stats("only the one pending item exists", &dev, (1, 0, 0, 1));
    c.done()
}

pub fn wrong_version_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let pending = one_pending(&dev)?;
    let mut buf = [RustWqResult::default(); 4];
    for v in [0u32, RUST_WQ_ABI_VERSION + 1, u32::MAX] {
        let mut e = valid_enqueue();
        e.version = v;
        c.errno(
            &format!("ENQUEUE version {v}"),
            raw(&dev, RUST_WQ_IOC_ENQUEUE, &e),
            EINVAL,
        );
        let mut calls = valid_calls(pending, &mut buf);
        calls.0.version = v;
        calls.1.version = v;
        calls.2.version = v;
        calls_einval(&mut c, &dev, &format!("version {v}"), &calls);
        let mut t = Target::All.to_raw();
        t.version = v;
        c.errno(
            &format!("CANCEL ALL version {v}"),
            raw(&dev, RUST_WQ_IOC_CANCEL, &t),
            EINVAL,
        );
    }
    c.stats(
        "only the one pending item exists, untouched",
        &dev,
        (1, 0, 0, 1),
    );
    c.done()
}

pub fn reserved_nonzero_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let pending = one_pending(&dev)?;
    let mut buf = [RustWqResult::default(); 4];
    for (i, val) in [(0usize, 1u64), (1, 1 << 63)] {
        let mut e = valid_enqueue();
        // ENQUEUE's reserved[0] became `flags` (see irq.rs): set the last word.
        e.reserved[i.min(e.reserved.len() - 1)] = val;
        c.errno(
            &format!("ENQUEUE reserved[{i}]={val:#x}"),
            raw(&dev, RUST_WQ_IOC_ENQUEUE, &e),
            EINVAL,
        );
        let mut calls = valid_calls(pending, &mut buf);
        calls.0.reserved[i] = val;
        calls.1.reserved[i] = val;
        calls.2.reserved[i] = val;
        calls_einval(&mut c, &dev, &format!("reserved[{i}]"), &calls);
    }
    let mut calls = valid_calls(pending, &mut buf);
    calls.0.pad = 1;
    calls.1.pad = 1;
    calls.2.pad = 1;
    calls_einval(&mut c, &dev, "pad=1", &calls);
    c.stats(
        "only the one pending item exists, untouched",
        &dev,
        (1, 0, 0, 1),
    );
    c.done()
}

pub fn out_fields_ignored_on_input(ctx: &Ctx) -> TestResult {
    // The header makes only version and reserved/pad fields input-checked
    // ("every reserved/pad field must be zero on input (else EINVAL)"); its
    // EINVAL list has no entry for out fields, so garbage there is accepted.
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let mut e = EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).to_raw();
    e.first_id = 0xdead_beef;
    let r = c.ok("ENQUEUE with garbage in first_id (an out field; the header's EINVAL list does not cover it)", dev.enqueue_raw(e));
    let mut t = Target::All.to_raw();
    t.count = 12345;
    if let Some(t) = c.ok("FLUSH ALL with garbage in count (out)", dev.flush_raw(t)) {
        c.check(t.count <= 1, || {
            format!("FLUSH ALL count: expected 0 or 1, seen {}", t.count)
        });
        c.eq("FLUSH out: pad/reserved", (t.pad, t.reserved), (0, [0, 0]));
    }
    let mut buf = [RustWqResult::default(); 4];
    let mut rs = RustWqResults {
        version: RUST_WQ_ABI_VERSION,
        capacity: 4,
        buf: buf.as_mut_ptr() as u64,
        count: 77,
        dropped: 88,
        ..Default::default()
    };
    c.ok(
        "RESULTS with garbage in count/dropped (out)",
        dev.ioctl_with(RUST_WQ_IOC_RESULTS, &mut rs),
    );
    c.eq("RESULTS count", rs.count, 1);
    c.eq("RESULTS dropped", rs.dropped, 0);
    if let Some(e) = r {
        c.eq("result id", buf[0].id, e.first_id);
    }
    if let Some(e) = r {
        c.eq("ENQUEUE out: reserved", e.reserved, [0]);
        c.eq("ENQUEUE out: flags unchanged", e.flags, 0);
    }
    // CANCEL: nothing is pending (the item ran), so the count is 0 whatever
    // the input said.
    let mut t = Target::All.to_raw();
    t.count = 999;
    if let Some(t) = c.ok("CANCEL ALL with garbage in count (out)", dev.cancel_raw(t)) {
        c.eq("CANCEL ALL count (nothing pending)", t.count, 0);
        c.eq("CANCEL out: pad/reserved", (t.pad, t.reserved), (0, [0, 0]));
    }
    // CANCEL of one pending item with garbage in count: count 1.
    let id = one_pending(&dev)?;
    let mut t = Target::Id(id).to_raw();
    t.count = 0xdead;
    if let Some(t) = c.ok("CANCEL id with garbage in count (out)", dev.cancel_raw(t)) {
        c.eq("CANCEL id count", t.count, 1);
    }
    // BENCH: every out field holds garbage on input.
    let b = RustWqBench {
        version: RUST_WQ_ABI_VERSION,
        path: RUST_WQ_BENCH_PERCPU,
        threads: 1,
        items: 10,
        flags: 0,
        threads_run: 77,
        elapsed_ns: !0,
        items_per_sec: !0,
        queue_p50_ns: 1,
        queue_p90_ns: 2,
        queue_p95_ns: 3,
        start_p50_ns: !0,
        start_p90_ns: !0,
        start_p95_ns: !0,
        op: RUST_WQ_BENCH_OP_RT,
        pad: 0,
        queue_p99_ns: 4,
        reserved: [0; 2],
    };
    if let Some(o) = c.ok("BENCH with garbage in its out fields", dev.bench_raw(b)) {
        c.eq("BENCH threads_run", o.threads_run, 1);
        c.check(o.elapsed_ns != !0 && o.items_per_sec != !0, || {
            format!(
                "BENCH elapsed_ns {} items_per_sec {}: the input garbage was kept",
                o.elapsed_ns, o.items_per_sec
            )
        });
        c.eq(
            "BENCH start_p* (not measured without the flag: 0)",
            (o.start_p50_ns, o.start_p90_ns, o.start_p95_ns),
            (0, 0, 0),
        );
        c.eq(
            "BENCH in fields unchanged on output",
            (o.version, o.path, o.threads, o.items, o.flags),
            (b.version, b.path, b.threads, b.items, b.flags),
        );
        c.eq("BENCH out: pad/reserved", (o.pad, o.reserved), (0, [0; 2]));
    }
    c.stats("at end", &dev, (2, 1, 1, 0));
    c.done()
}

pub fn reserved_zeroed_on_output(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let id = enq(&dev, EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1), "ENQUEUE")?;
    dev.flush(Target::All).must("FLUSH ALL")?;
    let mut s = RustWqStats {
        reserved: [!0; 3],
        ..Default::default()
    };
    dev.ioctl_with(RUST_WQ_IOC_STATS, &mut s).must("STATS")?;
    c.eq("STATS reserved", s.reserved, [0; 3]);
    c.eq("STATS executed", s.executed, 1);
    let garbage = RustWqResult {
        id: !0,
        tag: !0,
        seq: !0,
        latency_ns: !0,
        runtime_ns: !0,
        requested_cpu: !0 - 1,
        cpu: !0,
        queue: !0,
        flags: !0,
        reserved: !0,
    };
    let mut buf = [garbage; 2];
    let mut rs = RustWqResults {
        version: RUST_WQ_ABI_VERSION,
        capacity: 2,
        buf: buf.as_mut_ptr() as u64,
        ..Default::default()
    };
    dev.ioctl_with(RUST_WQ_IOC_RESULTS, &mut rs)
        .must("RESULTS")?;
    c.eq("RESULTS count", rs.count, 1);
    c.eq("result id", buf[0].id, id);
    c.eq("result reserved (zeroed on output)", buf[0].reserved, 0);
    c.eq(
        "result requested_cpu",
        buf[0].requested_cpu,
        RUST_WQ_CPU_ANY,
    );
    c.check(
        buf[0].flags & !(RUST_WQ_RES_PROCESS_CTX | RUST_WQ_RES_SLEPT | RUST_WQ_RES_FROM_TASK) == 0,
        || format!("result flags {:#x} has undefined bits", buf[0].flags),
    );
    c.eq(
        "second buffer entry untouched (count was 1)",
        buf[1],
        garbage,
    );
    c.eq(
        "RESULTS out: pad/reserved",
        (rs.pad, rs.reserved),
        (0, [0, 0]),
    );
    c.done()
}

/// Issues `bad`, a wrong encoding of `cmd`, with a valid argument of `cmd`
/// from `args`: EINVAL expected.
fn misencoded_einval(
    c: &mut Checker,
    dev: &Device,
    args: &mut HashMap<u32, Box<RawBuf>>,
    cmd: u32,
    bad: u32,
    what: &str,
) {
    let buf = args.get_mut(&cmd).expect("argument for every command");
    // SAFETY: 512-byte buffer, larger than any size used here.
    let r = unsafe { dev.ioctl_raw(bad, buf.ptr()) };
    c.errno(what, r, EINVAL);
}

/// Valid arguments of FLUSH/CANCEL (of `pending`), MOD_DELAY (of `pending`)
/// and RESULTS (into `buf`), for a test to spoil one field of each.
fn valid_calls(
    pending: u64,
    buf: &mut [RustWqResult; 4],
) -> (RustWqTarget, RustWqModDelay, RustWqResults) {
    let md = RustWqModDelay {
        version: RUST_WQ_ABI_VERSION,
        id: pending,
        delay_us: 1_000,
        ..Default::default()
    };
    let rs = RustWqResults {
        version: RUST_WQ_ABI_VERSION,
        capacity: 4,
        buf: buf.as_mut_ptr() as u64,
        ..Default::default()
    };
    (Target::Id(pending).to_raw(), md, rs)
}

/// FLUSH and CANCEL with the target, MOD_DELAY and RESULTS of `calls`: each
/// must fail with EINVAL (`what` names the spoilt field).
fn calls_einval(
    c: &mut Checker,
    dev: &Device,
    what: &str,
    (t, md, rs): &(RustWqTarget, RustWqModDelay, RustWqResults),
) {
    c.errno(
        &format!("FLUSH {what}"),
        raw(dev, RUST_WQ_IOC_FLUSH, t),
        EINVAL,
    );
    c.errno(
        &format!("CANCEL {what}"),
        raw(dev, RUST_WQ_IOC_CANCEL, t),
        EINVAL,
    );
    let r = raw(dev, RUST_WQ_IOC_MOD_DELAY, md);
    c.errno(&format!("MOD_DELAY {what}"), r, EINVAL);
    let r = raw(dev, RUST_WQ_IOC_RESULTS, rs);
    c.errno(&format!("RESULTS {what}"), r, EINVAL);
}

/// A valid argument for each command, so that only the encoding can be wrong.
fn valid_args(pending: u64) -> HashMap<u32, Box<RawBuf>> {
    let mut args: HashMap<u32, Box<RawBuf>> = HashMap::new();
    args.insert(RUST_WQ_IOC_INFO, RawBuf::with(&RustWqInfo::default()));
    args.insert(RUST_WQ_IOC_ENQUEUE, RawBuf::with(&valid_enqueue()));
    args.insert(
        RUST_WQ_IOC_FLUSH,
        RawBuf::with(&Target::Id(pending).to_raw()),
    );
    args.insert(
        RUST_WQ_IOC_CANCEL,
        RawBuf::with(&Target::Id(pending).to_raw()),
    );
    args.insert(
        RUST_WQ_IOC_MOD_DELAY,
        RawBuf::with(&RustWqModDelay {
            version: RUST_WQ_ABI_VERSION,
            id: pending,
            delay_us: LONG_DELAY_US,
            ..Default::default()
        }),
    );
    args.insert(
        RUST_WQ_IOC_RESULTS,
        RawBuf::with(&RustWqResults {
            version: RUST_WQ_ABI_VERSION,
            ..Default::default()
        }),
    );
    args.insert(RUST_WQ_IOC_STATS, RawBuf::with(&RustWqStats::default()));
    args.insert(RUST_WQ_IOC_RESET, RawBuf::with(&0u64));
    args.insert(
        RUST_WQ_IOC_BENCH,
        RawBuf::with(&RustWqBench {
            version: RUST_WQ_ABI_VERSION,
            path: RUST_WQ_BENCH_PERCPU,
            items: 1,
            ..Default::default()
        }),
    );
    args
}

/// The header: a known command nr with the right size but another direction
/// is EINVAL (not ENOTTY, and never executed).
pub fn wrong_direction_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let pending = one_pending(&dev)?;
    let mut args = valid_args(pending);
    let dirs = [IOC_NONE, IOC_READ, IOC_WRITE, IOC_READ | IOC_WRITE];
    for (name, cmd) in ALL_IOCTLS {
        let (dir, nr, size) = (ioc_dir(cmd), ioc_nr(cmd), ioc_size(cmd));
        for d in dirs.into_iter().filter(|&d| d != dir) {
            let bad = ioc(d, RUST_WQ_IOC_MAGIC, nr, size);
            let what =
                format!("{name} with direction {d} instead of {dir}, size {size} ({bad:#x})");
            misencoded_einval(&mut c, &dev, &mut args, cmd, bad, &what);
        }
    }
    c.stats("only the one pending item exists", &dev, (1, 0, 0, 1));
    c.done()
}

/// The header: FLUSH/CANCEL with a non-zero `queue` or `id` that the target
/// kind does not use is EINVAL.
pub fn target_unused_field_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let pending = one_pending(&dev)?;
    let base = RustWqTarget {
        version: RUST_WQ_ABI_VERSION,
        ..Default::default()
    };
    let cases = [
        (
            "ALL with queue 1",
            RustWqTarget {
                kind: RUST_WQ_TARGET_ALL,
                queue: RUST_WQ_Q_UNBOUND,
                ..base
            },
        ),
        (
            "ALL with the pending id",
            RustWqTarget {
                kind: RUST_WQ_TARGET_ALL,
                id: pending,
                ..base
            },
        ),
        (
            "ID with queue 1",
            RustWqTarget {
                kind: RUST_WQ_TARGET_ID,
                id: pending,
                queue: RUST_WQ_Q_UNBOUND,
                ..base
            },
        ),
        (
            "QUEUE unbound with the pending id",
            RustWqTarget {
                kind: RUST_WQ_TARGET_QUEUE,
                queue: RUST_WQ_Q_UNBOUND,
                id: pending,
                ..base
            },
        ),
    ];
    for (what, t) in cases {
        c.errno(
            &format!("FLUSH {what}"),
            raw(&dev, RUST_WQ_IOC_FLUSH, &t),
            EINVAL,
        );
        c.errno(
            &format!("CANCEL {what}"),
            raw(&dev, RUST_WQ_IOC_CANCEL, &t),
            EINVAL,
        );
    }
    c.stats(
        "the pending item is untouched (not flushed, not cancelled)",
        &dev,
        (1, 0, 0, 1),
    );
    c.done()
}
