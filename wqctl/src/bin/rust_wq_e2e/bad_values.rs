//! Bad values in valid structures: CPUs, queues, counts, delays, targets, ids.

use crate::util::{enq, one_pending, qn, raw, valid_enqueue, ALL_QUEUES, LONG_DELAY_US};
use crate::{Checker, Ctx, Must, TestResult};
use libc::{EINVAL, ENOENT};
use wqctl::abi::*;
use wqctl::{EnqueueArgs, Target};

fn enqueue_rejected(ctx: &Ctx, cases: &[(String, RustWqEnqueue)], errno: i32) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    for (what, e) in cases {
        c.errno(what, raw(&dev, RUST_WQ_IOC_ENQUEUE, e), errno);
    }
    c.stats("nothing was enqueued", &dev, (0, 0, 0, 0));
    c.done()
}

pub fn cpu_out_of_range_einval(ctx: &Ctx) -> TestResult {
    let nr = ctx.info.nr_cpu_ids;
    let mut cases = Vec::new();
    for cpu in [nr, 4096, nr.saturating_add(1), 0xffff_fffe] {
        if cpu < nr {
            continue;
        }
        for q in ALL_QUEUES {
            let e = EnqueueArgs::new(q, 1).cpu(cpu).to_raw();
            cases.push((
                format!("ENQUEUE on {} cpu {cpu} (nr_cpu_ids {nr})", qn(q)),
                e,
            ));
        }
        let e = EnqueueArgs::new(RUST_WQ_Q_PERCPU, 1)
            .cpu(cpu)
            .delay_us(1_000)
            .to_raw();
        cases.push((format!("ENQUEUE delayed on percpu cpu {cpu}"), e));
    }
    enqueue_rejected(ctx, &cases, EINVAL)
}

pub fn unknown_queue_einval(ctx: &Ctx) -> TestResult {
    let mut cases = Vec::new();
    for q in [RUST_WQ_Q_COUNT, RUST_WQ_Q_COUNT + 1, 0x100, u32::MAX] {
        let mut e = valid_enqueue();
        e.queue = q;
        cases.push((format!("ENQUEUE queue {q}"), e));
    }
    enqueue_rejected(ctx, &cases, EINVAL)?;
    let dev = ctx.open()?;
    let mut c = Checker::new();
    one_pending(&dev)?;
    for q in [RUST_WQ_Q_COUNT, u32::MAX] {
        c.errno(
            &format!("FLUSH QUEUE {q}"),
            dev.flush(Target::Queue(q)),
            EINVAL,
        );
        c.errno(
            &format!("CANCEL QUEUE {q}"),
            dev.cancel(Target::Queue(q)),
            EINVAL,
        );
    }
    c.stats("the pending item is untouched", &dev, (1, 0, 0, 1));
    c.done()
}

pub fn count_zero_einval(ctx: &Ctx) -> TestResult {
    let cases: Vec<(String, RustWqEnqueue)> = ALL_QUEUES
        .iter()
        .map(|&q| {
            (
                format!("ENQUEUE count 0 on {}", qn(q)),
                EnqueueArgs::new(q, 0).to_raw(),
            )
        })
        .collect();
    enqueue_rejected(ctx, &cases, EINVAL)
}

pub fn count_too_many_einval(ctx: &Ctx) -> TestResult {
    let m = ctx.info.max_count;
    let cases = vec![
        (
            format!("ENQUEUE count max_count+1 = {}", m + 1),
            EnqueueArgs::new(RUST_WQ_Q_UNBOUND, m + 1)
                .delay_us(LONG_DELAY_US)
                .to_raw(),
        ),
        (
            "ENQUEUE count u32::MAX".to_string(),
            EnqueueArgs::new(RUST_WQ_Q_UNBOUND, u32::MAX)
                .delay_us(LONG_DELAY_US)
                .to_raw(),
        ),
    ];
    enqueue_rejected(ctx, &cases, EINVAL)?;
    // The limit itself is accepted.
    let dev = ctx.open()?;
    let mut c = Checker::new();
    c.ok(
        "ENQUEUE count max_count",
        dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, m).delay_us(LONG_DELAY_US)),
    );
    c.eq(
        "CANCEL ALL count",
        dev.cancel(Target::All).must("CANCEL ALL")?,
        u64::from(m),
    );
    c.done()
}

pub fn delay_too_long_einval(ctx: &Ctx) -> TestResult {
    let m = ctx.info.max_delay_us;
    let cases = vec![
        (
            format!("ENQUEUE delay max+1 = {}", m + 1),
            EnqueueArgs::new(RUST_WQ_Q_PERCPU, 1)
                .delay_us(m + 1)
                .to_raw(),
        ),
        (
            "ENQUEUE delay u64::MAX".to_string(),
            EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1)
                .delay_us(u64::MAX)
                .to_raw(),
        ),
        (
            "ENQUEUE delay 2^63 on ordered".to_string(),
            EnqueueArgs::new(RUST_WQ_Q_ORDERED, 1)
                .delay_us(1 << 63)
                .to_raw(),
        ),
    ];
    enqueue_rejected(ctx, &cases, EINVAL)?;
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let id = c.ok(
        "ENQUEUE delay max_delay_us",
        dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).delay_us(m)),
    );
    if let Some(id) = id {
        c.errno("MOD_DELAY delay max+1", dev.mod_delay(id, m + 1), EINVAL);
        c.errno(
            "MOD_DELAY delay u64::MAX",
            dev.mod_delay(id, u64::MAX),
            EINVAL,
        );
        c.ok("MOD_DELAY delay max_delay_us", dev.mod_delay(id, m));
        c.stats("the item is still pending", &dev, (1, 0, 0, 1));
        c.eq(
            "CANCEL id count",
            dev.cancel(Target::Id(id)).must("CANCEL ID")?,
            1,
        );
    }
    c.done()
}

pub fn sleep_too_long_einval(ctx: &Ctx) -> TestResult {
    let m = ctx.info.max_sleep_us;
    let cases = vec![
        (
            format!("ENQUEUE sleep max+1 = {}", m + 1),
            EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1)
                .sleep_us(m + 1)
                .to_raw(),
        ),
        (
            "ENQUEUE sleep u64::MAX".to_string(),
            EnqueueArgs::new(RUST_WQ_Q_PERCPU, 1)
                .sleep_us(u64::MAX)
                .to_raw(),
        ),
    ];
    enqueue_rejected(ctx, &cases, EINVAL)?;
    let dev = ctx.open()?;
    let mut c = Checker::new();
    c.ok(
        "ENQUEUE sleep max_sleep_us (delayed, then cancelled)",
        dev.enqueue(
            EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1)
                .sleep_us(m)
                .delay_us(LONG_DELAY_US),
        ),
    );
    c.eq(
        "CANCEL ALL count",
        dev.cancel(Target::All).must("CANCEL ALL")?,
        1,
    );
    c.done()
}

pub fn unknown_target_kind_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    one_pending(&dev)?;
    for kind in [3u32, 0x100, u32::MAX] {
        let t = RustWqTarget {
            version: RUST_WQ_ABI_VERSION,
            kind,
            ..Default::default()
        };
        c.errno(
            &format!("FLUSH kind {kind}"),
            raw(&dev, RUST_WQ_IOC_FLUSH, &t),
            EINVAL,
        );
        c.errno(
            &format!("CANCEL kind {kind}"),
            raw(&dev, RUST_WQ_IOC_CANCEL, &t),
            EINVAL,
        );
    }
    c.stats("the pending item is untouched", &dev, (1, 0, 0, 1));
    c.done()
}

pub fn mod_delay_unknown_enoent(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let ran = enq(&dev, EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1), "ENQUEUE")?;
    dev.flush(Target::All).must("FLUSH ALL")?;
    let cancelled = one_pending(&dev)?;
    c.eq(
        "CANCEL id",
        dev.cancel(Target::Id(cancelled)).must("CANCEL ID")?,
        1,
    );
    c.errno("MOD_DELAY id 0", dev.mod_delay(0, 1_000), ENOENT);
    c.errno(
        "MOD_DELAY of an id never issued",
        dev.mod_delay(cancelled + 1000, 1_000),
        ENOENT,
    );
    c.errno(
        "MOD_DELAY of an id that ran",
        dev.mod_delay(ran, 1_000),
        ENOENT,
    );
    c.errno(
        "MOD_DELAY of a cancelled id",
        dev.mod_delay(cancelled, 1_000),
        ENOENT,
    );
    c.errno("MOD_DELAY of u64::MAX", dev.mod_delay(u64::MAX, 0), ENOENT);
    // Ids are per file: an id pending only in another file is unknown here.
    let other = ctx.open()?;
    let f = enq(
        &other,
        EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 4).delay_us(LONG_DELAY_US),
        "ENQUEUE 4 in another file",
    )?;
    let foreign = f + 3;
    if foreign > cancelled {
        c.errno(
            "MOD_DELAY of an id pending only in another file",
            dev.mod_delay(foreign, 1_000),
            ENOENT,
        );
        c.errno(
            "CANCEL of an id pending only in another file",
            dev.cancel(Target::Id(foreign)),
            ENOENT,
        );
        c.eq(
            "FLUSH of an id pending only in another file: count",
            dev.flush(Target::Id(foreign)).must("FLUSH ID")?,
            0,
        );
        c.stats("the other file is untouched", &other, (4, 0, 0, 4));
    }
    c.stats("at end", &dev, (2, 1, 1, 0));
    c.done()
}
