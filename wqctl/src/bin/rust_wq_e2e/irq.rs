//! End-to-end tests of RUST_WQ_ENQ_F_FROM_IRQ: items queued (or armed) from a
//! hard-interrupt handler, and the RUST_WQ_RES_FROM_* result flags.

use super::{Checker, Ctx, Must, Outcome, TestFn, TestResult};
use crate::util::{closes_at_once, ALL_QUEUES, LONG_DELAY_US, PENDING_DELAY_US};
use libc::{EBUSY, EINVAL};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use wqctl::abi::*;
use wqctl::parse::format_queue;
use wqctl::{format_flags, Device, EnqueueArgs, Target};

pub fn all() -> Vec<(&'static str, TestFn)> {
    vec![
        ("irq_every_queue_kind", irq_every_queue_kind),
        ("irq_percpu_placement", irq_percpu_placement),
        ("irq_full_batch", irq_full_batch),
        ("irq_cancel_and_mod_delay", irq_cancel_and_mod_delay),
        ("irq_close_cancels", irq_close_cancels),
        ("irq_bad_flags_einval", irq_bad_flags_einval),
        ("irq_context_by_trace", irq_context_by_trace),
    ]
}

/// Every context flag: exactly one of them is set in a result.
const FROM_ALL: u32 = RUST_WQ_RES_FROM_TASK | RUST_WQ_RES_FROM_SOFTIRQ | RUST_WQ_RES_FROM_HARDIRQ;

/// `util::enq`, with the count of items enqueued.
fn enq(dev: &Device, a: EnqueueArgs, what: &str) -> Result<(u64, u32), Outcome> {
    Ok((crate::util::enq(dev, a, what)?, a.count))
}

/// All results of `dev` by id; a duplicate or a dropped result is a failure.
fn results(c: &mut Checker, dev: &Device) -> Result<BTreeMap<u64, RustWqResult>, Outcome> {
    let (res, dropped) = dev.drain_results().must("RESULTS")?;
    c.eq("RESULTS dropped", dropped, 0);
    let mut by_id = BTreeMap::new();
    for r in res {
        if by_id.insert(r.id, r).is_some() {
            c.fail(format!("id {} has more than one result", r.id));
        }
    }
    Ok(by_id)
}

/// Checks that each id of `first..first+count` has a result on `queue`, queued
/// from `from` (one RUST_WQ_RES_FROM_* bit, alone), run in process context and
/// (with a sleep) having slept.
fn check_items(
    c: &mut Checker,
    by_id: &BTreeMap<u64, RustWqResult>,
    (first, count): (u64, u32),
    queue: u32,
    from: u32,
    slept: bool,
) {
    for id in first..first + u64::from(count) {
        let Some(r) = by_id.get(&id) else {
            c.fail(format!("id {id} ({}) has no result", format_queue(queue)));
            continue;
        };
        c.eq(&format!("id {id} queue"), r.queue, queue);
        let mut want = from | RUST_WQ_RES_PROCESS_CTX;
        if slept {
            want |= RUST_WQ_RES_SLEPT;
        }
        let mask = FROM_ALL | RUST_WQ_RES_PROCESS_CTX | RUST_WQ_RES_SLEPT;
        c.check(r.flags & mask == want, || {
            format!(
                "id {id} on {}: flags {}, expected {}",
                format_queue(queue),
                format_flags(r.flags),
                format_flags(want)
            )
        });
    }
}

/// Each queue kind: immediate and delayed items from a hard-IRQ handler and
/// from softirq, and the same from the task, in one file.
fn irq_every_queue_kind(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let mut sets = Vec::new();
    for q in ALL_QUEUES {
        let base = EnqueueArgs::new(q, 3).sleep_us(500);
        let qn = format_queue(q);
        let now = enq(
            &dev,
            base.from_irq(true),
            &format!("ENQUEUE 3 on {qn} from IRQ"),
        )?;
        let later = enq(
            &dev,
            base.from_irq(true).delay_us(3_000),
            &format!("ENQUEUE 3 on {qn} delayed 3ms from IRQ"),
        )?;
        let task = enq(&dev, base, &format!("ENQUEUE 3 on {qn} from the task"))?;
        let soft = enq(
            &dev,
            base.from_softirq(true),
            &format!("ENQUEUE 3 on {qn} from softirq"),
        )?;
        let soft_later = enq(
            &dev,
            base.from_softirq(true).delay_us(3_000),
            &format!("ENQUEUE 3 on {qn} delayed 3ms from softirq"),
        )?;
        sets.push((q, soft, RUST_WQ_RES_FROM_SOFTIRQ));
        sets.push((q, soft_later, RUST_WQ_RES_FROM_SOFTIRQ));
        sets.push((q, now, RUST_WQ_RES_FROM_HARDIRQ));
        sets.push((q, later, RUST_WQ_RES_FROM_HARDIRQ));
        sets.push((q, task, RUST_WQ_RES_FROM_TASK));
    }
    // Let the delayed ones fire by themselves (FLUSH would fire them from the task).
    std::thread::sleep(Duration::from_millis(50));
    let n = dev.flush(Target::All).must("FLUSH ALL")?;
    c.check(n <= 75, || format!("FLUSH ALL count {n} > 75 items"));
    let by_id = results(&mut c, &dev)?;
    c.eq("results", by_id.len(), 75);
    for (q, set, from) in sets {
        check_items(&mut c, &by_id, set, q, from, true);
    }
    c.stats("after FLUSH", &dev, (75, 75, 0, 0));
    c.done()
}

/// Per-CPU placement stays exact when the items are queued from an interrupt
/// (on whatever CPU the ioctl's interrupt ran), immediate and delayed.
fn irq_percpu_placement(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let mut expect = Vec::new();
    for &cpu in &ctx.online {
        for q in [RUST_WQ_Q_PERCPU, RUST_WQ_Q_SYSTEM_PERCPU] {
            for delay in [0, 2_000] {
                let a = EnqueueArgs::new(q, 2)
                    .cpu(cpu)
                    .delay_us(delay)
                    .from_irq(true);
                let what = format!(
                    "ENQUEUE 2 on {} cpu {cpu} delay {delay}us from IRQ",
                    format_queue(q)
                );
                expect.push((enq(&dev, a, &what)?, q, cpu));
            }
        }
    }
    std::thread::sleep(Duration::from_millis(30));
    dev.flush(Target::All).must("FLUSH ALL")?;
    let by_id = results(&mut c, &dev)?;
    for (set, q, cpu) in expect {
        check_items(&mut c, &by_id, set, q, RUST_WQ_RES_FROM_HARDIRQ, false);
        for id in set.0..set.0 + u64::from(set.1) {
            if let Some(r) = by_id.get(&id) {
                c.eq(
                    &format!("id {id} ({}) requested cpu", format_queue(q)),
                    r.requested_cpu,
                    cpu,
                );
                c.eq(
                    &format!("id {id} ({}) ran on cpu", format_queue(q)),
                    r.cpu,
                    cpu,
                );
            }
        }
    }
    c.done()
}

/// The most items one call may make (several interrupts' worth), mixed
/// immediate and delayed in two calls; ids stay contiguous, all run once.
fn irq_full_batch(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let n = ctx.info.max_count;
    c.check(n > RUST_WQ_IRQ_BATCH, || {
        format!("max_count {n} should need several interrupts of {RUST_WQ_IRQ_BATCH}")
    });
    let a = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_UNBOUND, n).from_irq(true).tag(1),
        &format!("ENQUEUE {n} unbound from IRQ"),
    )?;
    let b = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_SYSTEM_DFL, n)
            .delay_us(1_000)
            .from_irq(true)
            .tag(2),
        &format!("ENQUEUE {n} system-dfl delayed 1ms from IRQ"),
    )?;
    c.eq("second call's first id", b.0, a.0 + u64::from(n));
    std::thread::sleep(Duration::from_millis(30));
    dev.flush(Target::All).must("FLUSH ALL")?;
    let by_id = results(&mut c, &dev)?;
    c.eq("results", by_id.len(), 2 * n as usize);
    check_items(
        &mut c,
        &by_id,
        a,
        RUST_WQ_Q_UNBOUND,
        RUST_WQ_RES_FROM_HARDIRQ,
        false,
    );
    check_items(
        &mut c,
        &by_id,
        b,
        RUST_WQ_Q_SYSTEM_DFL,
        RUST_WQ_RES_FROM_HARDIRQ,
        false,
    );
    c.stats(
        "after FLUSH",
        &dev,
        (2 * u64::from(n), 2 * u64::from(n), 0, 0),
    );
    c.done()
}

/// CANCEL by id, by queue and ALL, and MOD_DELAY, of items armed from an
/// interrupt; a re-armed item says it was queued by the task.
fn irq_cancel_and_mod_delay(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let long = |q| {
        EnqueueArgs::new(q, 4)
            .delay_us(LONG_DELAY_US)
            .from_irq(true)
    };
    let (u, _) = enq(
        &dev,
        long(RUST_WQ_Q_UNBOUND),
        "ENQUEUE 4 unbound delayed 5s from IRQ",
    )?;
    let (p, _) = enq(
        &dev,
        long(RUST_WQ_Q_PERCPU),
        "ENQUEUE 4 percpu delayed 5s from IRQ",
    )?;
    enq(
        &dev,
        long(RUST_WQ_Q_ORDERED),
        "ENQUEUE 4 ordered delayed 5s from IRQ",
    )?;
    c.stats("armed", &dev, (12, 0, 0, 12));
    c.eq("CANCEL id", dev.cancel(Target::Id(u)).ok(), Some(1));
    c.eq(
        "CANCEL queue percpu",
        dev.cancel(Target::Queue(RUST_WQ_Q_PERCPU)).ok(),
        Some(4),
    );
    c.errno(
        "CANCEL of a cancelled id",
        dev.cancel(Target::Id(p)),
        libc::ENOENT,
    );
    // Re-timed by this task: runs soon, and says FROM_TASK.
    c.ok("MOD_DELAY to 1ms", dev.mod_delay(u + 1, 1_000));
    let t = Instant::now();
    let mut by_id = BTreeMap::new();
    while by_id.is_empty() && t.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(2));
        by_id = results(&mut c, &dev)?;
    }
    c.eq(
        "results after MOD_DELAY",
        by_id.keys().copied().collect::<Vec<_>>(),
        vec![u + 1],
    );
    check_items(
        &mut c,
        &by_id,
        (u + 1, 1),
        RUST_WQ_Q_UNBOUND,
        RUST_WQ_RES_FROM_TASK,
        false,
    );
    c.eq("CANCEL ALL", dev.cancel(Target::All).ok(), Some(6));
    c.stats("after the cancels", &dev, (12, 1, 11, 0));
    let left = results(&mut c, &dev)?.len();
    c.eq("no more results", left, 0);
    c.done()
}

/// Closing a file cancels its items armed from an interrupt at once, and none
/// of them runs later.
fn irq_close_cancels(ctx: &Ctx) -> TestResult {
    let mut c = Checker::new();
    let a = ctx.open()?;
    let cpu0 = ctx.online.first().copied().unwrap_or(0);
    for q in ALL_QUEUES {
        let cpu = if q == RUST_WQ_Q_PERCPU {
            cpu0
        } else {
            RUST_WQ_CPU_ANY
        };
        enq(
            &a,
            EnqueueArgs::new(q, 8)
                .cpu(cpu)
                .delay_us(PENDING_DELAY_US)
                .from_irq(true),
            &format!("ENQUEUE 8 on {} delayed 2s from IRQ", format_queue(q)),
        )?;
    }
    c.stats("before close", &a, (40, 0, 0, 40));
    closes_at_once(&mut c, a);
    let b = ctx.open()?;
    crate::lifecycle::closed_items_never_run(&mut c, &b)?;
    c.done()
}

/// Unknown flag bits are EINVAL; FROM_IRQ keeps every other check and errno
/// (count 0, an unknown queue: EINVAL; past the pending limit: EBUSY), and a
/// refused call enqueues nothing.
fn irq_bad_flags_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let raw = |e: RustWqEnqueue| dev.enqueue_raw(e).map(|r| r.first_id);
    let base = EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1)
        .from_irq(true)
        .to_raw();
    for bad in [1u64 << 3, 1 << 31, 1 << 63, !0, !RUST_WQ_ENQ_F_ALL] {
        for known in [
            0,
            RUST_WQ_ENQ_F_FROM_IRQ,
            RUST_WQ_ENQ_F_FROM_SOFTIRQ,
            RUST_WQ_ENQ_F_FROM_DEVICE_IRQ,
        ] {
            let flags = bad & !RUST_WQ_ENQ_F_ALL | known;
            let e = RustWqEnqueue { flags, ..base };
            c.errno(&format!("ENQUEUE flags {flags:#x}"), raw(e), EINVAL);
        }
    }
    // The items are queued from one context: two or three FROM_ flags are EINVAL.
    for (name, flags) in [
        (
            "FROM_IRQ|FROM_SOFTIRQ",
            RUST_WQ_ENQ_F_FROM_IRQ | RUST_WQ_ENQ_F_FROM_SOFTIRQ,
        ),
        (
            "FROM_IRQ|FROM_DEVICE_IRQ",
            RUST_WQ_ENQ_F_FROM_IRQ | RUST_WQ_ENQ_F_FROM_DEVICE_IRQ,
        ),
        (
            "FROM_SOFTIRQ|FROM_DEVICE_IRQ",
            RUST_WQ_ENQ_F_FROM_SOFTIRQ | RUST_WQ_ENQ_F_FROM_DEVICE_IRQ,
        ),
        ("all three FROM_ flags", RUST_WQ_ENQ_F_ALL),
    ] {
        c.errno(
            &format!("ENQUEUE flags {name}"),
            raw(RustWqEnqueue { flags, ..base }),
            EINVAL,
        );
    }
    c.errno(
        "FROM_IRQ with count 0",
        raw(RustWqEnqueue { count: 0, ..base }),
        EINVAL,
    );
    c.errno(
        "FROM_IRQ with an unknown queue",
        raw(RustWqEnqueue {
            queue: RUST_WQ_Q_COUNT,
            ..base
        }),
        EINVAL,
    );
    c.errno(
        "FROM_IRQ with reserved[0] set",
        raw(RustWqEnqueue {
            reserved: [1],
            ..base
        }),
        EINVAL,
    );
    c.stats("nothing enqueued", &dev, (0, 0, 0, 0));
    // Fill the pending limit from the interrupt path, then one more: EBUSY.
    let per = ctx.info.max_count;
    let mut queued = 0u64;
    while queued + u64::from(per) <= u64::from(ctx.info.max_pending) {
        let e = RustWqEnqueue {
            count: per,
            delay_us: LONG_DELAY_US,
            ..base
        };
        if c.ok("ENQUEUE up to max_pending from IRQ", raw(e)).is_none() {
            break;
        }
        queued += u64::from(per);
    }
    c.errno(
        "FROM_IRQ past max_pending",
        raw(RustWqEnqueue {
            delay_us: LONG_DELAY_US,
            ..base
        }),
        EBUSY,
    );
    c.stats("full", &dev, (queued, 0, 0, queued));
    c.eq("CANCEL ALL", dev.cancel(Target::All).ok(), Some(queued));
    c.done()
}

/// Pins the calling thread to `cpu` (sched_setaffinity).
pub(crate) fn pin_to(cpu: u32) -> Result<(), Outcome> {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET and
    // sched_setaffinity get a valid set of the right size.
    let r = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if r != 0 {
        return crate::fail(format!(
            "sched_setaffinity to CPU {cpu}: {}",
            wqctl::Errno::last()
        ));
    }
    Ok(())
}

/// FROM_IRQ and FROM_SOFTIRQ seen from outside the module: the kernel's own
/// context flags of the `workqueue_queue_work` trace events of the items (the
/// hardirq/softirq column, from the preempt count as `in_hardirq()` /
/// `in_serving_softirq()` read it) and their CPU, the one the calling task
/// was pinned to ("on the calling CPU"); and at most RUST_WQ_IRQ_BATCH
/// queueings between an `irq_work_entry` and its `irq_work_exit` on that CPU.
fn irq_context_by_trace(ctx: &Ctx) -> TestResult {
    const EVENTS: [&str; 3] = [
        "workqueue/workqueue_queue_work",
        "irq_vectors/irq_work_entry",
        "irq_vectors/irq_work_exit",
    ];
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let cpus: Vec<u32> = ctx.online.iter().copied().take(2).collect();
    for &cpu in &cpus {
        pin_to(cpu)?;
        for (how, irq, softirq, want) in [
            ("FROM_IRQ", true, false, 'h'),
            ("FROM_SOFTIRQ", false, true, 's'),
            ("task", false, false, '.'),
        ] {
            let n = if irq { 200 } else { 20 };
            let trace = match crate::util::Trace::start(&EVENTS) {
                Ok(t) => t,
                Err(e) => return crate::unavailable("tracing", format!("cannot trace: {e}")),
            };
            dev.enqueue(
                EnqueueArgs::new(RUST_WQ_Q_UNBOUND, n)
                    .from_irq(irq)
                    .from_softirq(softirq),
            )
            .must("ENQUEUE")?;
            let text = trace.stop().map_err(|e| Outcome::Fail(vec![e]))?;
            drop(trace);
            dev.flush(Target::All).must("FLUSH ALL")?;
            dev.drain_results().must("RESULTS")?;
            let mut events = 0u32;
            let (mut in_irq, mut per_irq, mut most) = (false, 0u32, 0u32);
            for l in text.lines().filter_map(crate::util::trace_line) {
                match l.event {
                    "irq_work_entry" if l.cpu == cpu => (in_irq, per_irq) = (true, 0),
                    "irq_work_exit" if l.cpu == cpu => in_irq = false,
                    "workqueue_queue_work" if l.rest.contains("workqueue=rust_wq_unbound ") => {
                        events += 1;
                        if in_irq {
                            per_irq += 1;
                            most = most.max(per_irq);
                        }
                        c.check(l.cpu == cpu && l.irq == want, || {
                            format!("{how} from a task on CPU {cpu}: an item was queued on CPU {} in context '{}' (trace flags), expected CPU {cpu}, '{want}'", l.cpu, l.irq)
                        });
                    }
                    _ => {}
                }
            }
            c.eq(&format!("{how} on CPU {cpu}: queue_work events"), events, n);
            if irq {
                c.check(most > 0 && most <= RUST_WQ_IRQ_BATCH, || {
                    format!("FROM_IRQ on CPU {cpu}: at most {most} items queued in one irq_work interrupt (expected 1..={RUST_WQ_IRQ_BATCH})")
                });
            }
        }
    }
    // Unpinned again.
    // SAFETY: a set of every CPU the kernel may have (CPU_SET on each).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for cpu in &ctx.online {
            libc::CPU_SET(*cpu as usize, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
    c.done()
}
