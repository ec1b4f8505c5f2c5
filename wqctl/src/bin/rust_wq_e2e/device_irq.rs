//! End-to-end tests of RUST_WQ_ENQ_F_FROM_DEVICE_IRQ: items queued (or armed)
//! from the interrupt handler of QEMU's edu PCI device (scripts/vm.sh adds
//! two `-device edu`; the driver binds one), the interrupt in /proc/interrupts
//! and in the kernel's tracepoints, the driver's static item, the second
//! device refused, and unbinding and rebinding the device through sysfs.

use super::{fail, Checker, Ctx, Must, Outcome, TestFn, TestResult};
use crate::util::ALL_QUEUES;
use libc::ENODEV;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wqctl::abi::*;
use wqctl::parse::format_queue;
use wqctl::{format_flags, Device, EnqueueArgs, Target};

pub fn all() -> Vec<(&'static str, TestFn)> {
    vec![
        ("device_irq_every_queue_kind", device_irq_every_queue_kind),
        ("device_irq_percpu_placement", device_irq_percpu_placement),
        ("device_irq_full_batch", device_irq_full_batch),
        ("device_irq_static_item", device_irq_static_item),
        ("device_irq_by_trace", device_irq_by_trace),
        (
            "device_irq_one_call_at_a_time",
            device_irq_one_call_at_a_time,
        ),
        ("second_edu_refused_ebusy", second_edu_refused_ebusy),
        ("device_irq_unbind_rebind", device_irq_unbind_rebind),
    ]
}

/// The PCI driver's name.
const DRIVER_DIR_NAME: &str = "rust_wq_edu";
/// The PCI driver's directory in sysfs.
const DRIVER_DIR: &str = "/sys/bus/pci/drivers/rust_wq_edu";
/// The IRQ's name in /proc/interrupts.
const IRQ_NAME: &str = "rust_wq_edu";

/// The flags every item queued by the device's handler has (besides SLEPT).
const FROM_DEVICE: u32 =
    RUST_WQ_RES_FROM_HARDIRQ | RUST_WQ_RES_FROM_DEVICE_IRQ | RUST_WQ_RES_PROCESS_CTX;
/// The bits the checks compare.
const MASK: u32 = RUST_WQ_RES_FROM_TASK
    | RUST_WQ_RES_FROM_SOFTIRQ
    | RUST_WQ_RES_FROM_HARDIRQ
    | RUST_WQ_RES_FROM_DEVICE_IRQ
    | RUST_WQ_RES_PROCESS_CTX
    | RUST_WQ_RES_SLEPT;

/// An I/O result, or a failure naming `what`.
fn io<T>(r: std::io::Result<T>, what: &str) -> Result<T, Outcome> {
    match r {
        Ok(v) => Ok(v),
        Err(e) => fail(format!("{what}: {e}")),
    }
}

/// The device as INFO reports it: (IRQ number, MSI); fails if none is bound.
pub(crate) fn bound_device(dev: &Device) -> Result<(u32, bool), Outcome> {
    let i = dev.info().must("INFO")?;
    if i.device_flags & RUST_WQ_INFO_DEVICE_BOUND == 0 {
        return fail(format!(
            "INFO: no edu device bound (device_flags {:#x}); scripts/vm.sh adds -device edu",
            i.device_flags
        ));
    }
    Ok((i.device_irq, i.device_flags & RUST_WQ_INFO_DEVICE_MSI != 0))
}

/// The total count of IRQ `irq` over all CPUs in /proc/interrupts, if it has a
/// line named rust_wq_edu.
fn proc_interrupts(irq: u32) -> Result<Option<u64>, Outcome> {
    let text = io(
        std::fs::read_to_string("/proc/interrupts"),
        "read /proc/interrupts",
    )?;
    let prefix = format!("{irq}:");
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some(prefix.as_str()) || !line.trim_end().ends_with(IRQ_NAME) {
            continue;
        }
        let sum = words
            .map_while(|w| w.parse::<u64>().ok())
            .fold(0u64, |a, n| a.saturating_add(n));
        return Ok(Some(sum));
    }
    Ok(None)
}

/// Counts what a test changes: the line of /proc/interrupts and INFO's counters.
struct Counts {
    irq: u32,
    msi: bool,
    line: u64,
    irqs: u64,
}

impl Counts {
    fn now(dev: &Device) -> Result<Counts, Outcome> {
        let (irq, msi) = bound_device(dev)?;
        let Some(line) = proc_interrupts(irq)? else {
            return fail(format!(
                "/proc/interrupts has no line {irq}: ... {IRQ_NAME}"
            ));
        };
        let irqs = dev.info().must("INFO")?.device_irqs;
        Ok(Counts {
            irq,
            msi,
            line,
            irqs,
        })
    }

    /// Checks that exactly `raised` interrupts were handled since `self`: the
    /// handler's count, and the line in /proc/interrupts (exactly with MSI,
    /// which no other device shares; at least with a shared INTx line).
    fn check_raised(&self, c: &mut Checker, dev: &Device, raised: u64) -> Result<(), Outcome> {
        let after = Counts::now(dev)?;
        c.eq("IRQ number unchanged", after.irq, self.irq);
        c.eq(
            "INFO device_irqs: one interrupt per call of up to 64 items",
            after.irqs - self.irqs,
            raised,
        );
        let grew = after.line.saturating_sub(self.line);
        if self.msi {
            c.eq(
                &format!(
                    "/proc/interrupts line {} ({IRQ_NAME}, MSI) grew by",
                    self.irq
                ),
                grew,
                raised,
            );
        } else {
            c.check(grew >= raised, || {
                format!(
                    "/proc/interrupts line {} ({IRQ_NAME}, INTx) grew by {grew}, expected at least {raised}",
                    self.irq
                )
            });
        }
        Ok(())
    }
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

/// Checks that each id of `first..first+count` has a result on `queue`,
/// queued by the device's handler, run in process context, and (with a
/// sleep) having slept; with `cpu`, that it ran there.
fn check_items(
    c: &mut Checker,
    by_id: &BTreeMap<u64, RustWqResult>,
    (first, count): (u64, u32),
    queue: u32,
    slept: bool,
    cpu: Option<u32>,
) {
    let want = FROM_DEVICE | if slept { RUST_WQ_RES_SLEPT } else { 0 };
    for id in first..first + u64::from(count) {
        let Some(r) = by_id.get(&id) else {
            c.fail(format!("id {id} ({}) has no result", format_queue(queue)));
            continue;
        };
        c.eq(&format!("id {id} queue"), r.queue, queue);
        c.check(r.flags & MASK == want, || {
            format!(
                "id {id} on {}: flags {}, expected {}",
                format_queue(queue),
                format_flags(r.flags),
                format_flags(want)
            )
        });
        if let Some(cpu) = cpu {
            c.eq(
                &format!("id {id} ({}) ran on cpu", format_queue(queue)),
                r.cpu,
                cpu,
            );
        }
    }
}

/// Enqueues `a` with the flag; returns (first id, count).
fn enq(dev: &Device, a: EnqueueArgs, what: &str) -> Result<(u64, u32), Outcome> {
    let a = a.from_device_irq(true);
    Ok((crate::util::enq(dev, a, what)?, a.count))
}

/// Each queue kind, immediate and delayed (3 ms), from the device's interrupt:
/// every item runs once, in process context, after sleeping, with
/// FROM_HARDIRQ|FROM_DEVICE_IRQ; one interrupt per call, seen in
/// /proc/interrupts.
fn device_irq_every_queue_kind(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let before = Counts::now(&dev)?;
    let mut sets = Vec::new();
    for q in ALL_QUEUES {
        let qn = format_queue(q);
        for delay in [0, 3_000] {
            let a = EnqueueArgs::new(q, 3).sleep_us(500).delay_us(delay);
            let what = format!("ENQUEUE 3 on {qn} delay {delay}us from the device IRQ");
            sets.push((q, enq(&dev, a, &what)?));
        }
    }
    // Let the delayed ones fire by themselves (FLUSH would fire them from the task).
    std::thread::sleep(Duration::from_millis(50));
    dev.flush(Target::All).must("FLUSH ALL")?;
    let by_id = results(&mut c, &dev)?;
    let n = sets.len() as u64 * 3;
    c.eq("results", by_id.len() as u64, n);
    for (q, set) in &sets {
        check_items(&mut c, &by_id, *set, *q, true, None);
    }
    c.stats("after FLUSH", &dev, (n, n, 0, 0));
    before.check_raised(&mut c, &dev, sets.len() as u64)?;
    c.done()
}

/// Per-CPU placement holds when the device's handler queues (on whichever CPU
/// the interrupt arrives), immediate and delayed, on both per-CPU queues.
fn device_irq_percpu_placement(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let before = Counts::now(&dev)?;
    let mut expect = Vec::new();
    for &cpu in &ctx.online {
        for q in [RUST_WQ_Q_PERCPU, RUST_WQ_Q_SYSTEM_PERCPU] {
            for delay in [0, 2_000] {
                let a = EnqueueArgs::new(q, 2).cpu(cpu).delay_us(delay);
                let what = format!(
                    "ENQUEUE 2 on {} cpu {cpu} delay {delay}us from the device IRQ",
                    format_queue(q)
                );
                expect.push((enq(&dev, a, &what)?, q, cpu));
            }
        }
    }
    std::thread::sleep(Duration::from_millis(30));
    dev.flush(Target::All).must("FLUSH ALL")?;
    let by_id = results(&mut c, &dev)?;
    for (set, q, cpu) in &expect {
        check_items(&mut c, &by_id, *set, *q, false, Some(*cpu));
        for id in set.0..set.0 + u64::from(set.1) {
            if let Some(r) = by_id.get(&id) {
                c.eq(&format!("id {id} requested cpu"), r.requested_cpu, *cpu);
            }
        }
    }
    before.check_raised(&mut c, &dev, expect.len() as u64)?;
    c.done()
}

/// The most items one call may make: one interrupt per 64 items, ids
/// contiguous, every item run once from the device's interrupt.
fn device_irq_full_batch(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let n = ctx.info.max_count;
    let before = Counts::now(&dev)?;
    let set = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_UNBOUND, n),
        &format!("ENQUEUE {n} on unbound from the device IRQ"),
    )?;
    dev.flush(Target::All).must("FLUSH ALL")?;
    let by_id = results(&mut c, &dev)?;
    c.eq("results", by_id.len() as u64, u64::from(n));
    check_items(&mut c, &by_id, set, RUST_WQ_Q_UNBOUND, false, None);
    before.check_raised(&mut c, &dev, u64::from(n.div_ceil(RUST_WQ_IRQ_BATCH)))?;
    c.done()
}

/// The driver's static item, the tutorial's `schedule_work(&work)` from the
/// handler: each interrupt queues it unless it is still pending, and it runs
/// once for each time it was queued.
fn device_irq_static_item(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let i0 = dev.info().must("INFO")?;
    let calls = 40u64;
    for k in 0..calls {
        enq(
            &dev,
            EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).tag(k),
            "ENQUEUE 1 from the device IRQ",
        )?;
    }
    dev.flush(Target::All).must("FLUSH ALL")?;
    // The static item is on system_percpu_wq: wait until it has caught up.
    let deadline = Instant::now() + Duration::from_secs(10);
    let i1 = loop {
        let i = dev.info().must("INFO")?;
        if i.device_bh_runs == i.device_bh_queued || Instant::now() > deadline {
            break i;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let irqs = i1.device_irqs - i0.device_irqs;
    let queued = i1.device_bh_queued - i0.device_bh_queued;
    let ran = i1.device_bh_runs - i0.device_bh_runs;
    c.eq("device interrupts", irqs, calls);
    c.check((1..=irqs).contains(&queued), || {
        format!("static item queued {queued} times by {irqs} interrupts: expected 1..={irqs}")
    });
    c.eq("static item runs = times queued", ran, queued);
    crate::diag(&format!(
        "{irqs} interrupts queued the static item {queued} times (the others found it pending); it ran {ran} times"
    ));
    let by_id = results(&mut c, &dev)?;
    c.eq("results", by_id.len() as u64, calls);
    c.done()
}

/// The PCI address of the bound edu device (the link in the driver's directory).
pub(crate) fn bound_address() -> Result<String, Outcome> {
    let dir = io(std::fs::read_dir(DRIVER_DIR), &format!("read {DRIVER_DIR}"))?;
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        // 0000:00:04.0
        if name.len() == 12 && name.as_bytes()[4] == b':' && name.as_bytes()[10] == b'.' {
            return Ok(name);
        }
    }
    fail(format!("{DRIVER_DIR} lists no bound device"))
}

/// Writes `addr` to the driver's `bind` or `unbind` file.
pub(crate) fn sysfs_write(what: &str, addr: &str) -> Result<(), Outcome> {
    io(
        std::fs::write(format!("{DRIVER_DIR}/{what}"), addr),
        &format!("write {addr} to {DRIVER_DIR}/{what}"),
    )
}

/// Unbinding the device through sysfs while calls raise its interrupt and
/// items are queued: every accepted item runs exactly once, every refused call
/// (ENODEV) leaves nothing behind, the flag then gives ENODEV and INFO says no
/// device; binding it again gives a working device.
fn device_irq_unbind_rebind(ctx: &Ctx) -> TestResult {
    let mut c = Checker::new();
    let probe = ctx.open()?;
    bound_device(&probe)?;
    let addr = bound_address()?;
    let stop = AtomicBool::new(false);
    let accepted = AtomicU64::new(0);
    let refused = AtomicU64::new(0);
    let mut failures = Vec::new();
    std::thread::scope(|s| -> Result<(), Outcome> {
        let mut workers = Vec::new();
        for t in 0..3u32 {
            let (stop, accepted, refused) = (&stop, &accepted, &refused);
            let dev = ctx.open()?;
            workers.push(s.spawn(move || -> Result<Device, String> {
                let mut k = 0u64;
                let give_up = Instant::now() + Duration::from_secs(30);
                // Until stopped, and then until a call was refused (the unbind is seen).
                while !stop.load(Ordering::Relaxed)
                    || (refused.load(Ordering::Relaxed) == 0 && Instant::now() < give_up)
                {
                    let q = ALL_QUEUES[(k as usize + t as usize) % ALL_QUEUES.len()];
                    let a = EnqueueArgs::new(q, 1 + (k % 3) as u32)
                        .delay_us(if k.is_multiple_of(2) { 0 } else { 2_000 })
                        .tag(k)
                        .from_device_irq(true);
                    match dev.enqueue(a) {
                        Ok(_) => {
                            accepted.fetch_add(u64::from(a.count), Ordering::Relaxed);
                        }
                        Err(e) if e.0 == ENODEV => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                        }
                        Err(e) => return Err(format!("thread {t}: ENQUEUE: {e:?}")),
                    }
                    k += 1;
                }
                Ok(dev)
            }));
        }
        std::thread::sleep(Duration::from_millis(300));
        let unbound = sysfs_write("unbind", &addr);
        stop.store(true, Ordering::Relaxed);
        let mut devs = Vec::new();
        for w in workers {
            match w.join() {
                Ok(Ok(dev)) => devs.push(dev),
                Ok(Err(e)) => failures.push(e),
                Err(_) => failures.push("a thread panicked".into()),
            }
        }
        unbound?;
        // Every item that was accepted runs once; the refused calls left nothing.
        let mut ran = 0u64;
        let mut enqueued = 0u64;
        for dev in &devs {
            dev.flush(Target::All).must("FLUSH ALL")?;
            let by_id = results(&mut c, dev)?;
            for r in by_id.values() {
                c.check(r.flags & MASK & !RUST_WQ_RES_SLEPT == FROM_DEVICE, || {
                    format!("id {}: flags {}", r.id, format_flags(r.flags))
                });
            }
            ran += by_id.len() as u64;
            let st = dev.stats().must("STATS")?;
            c.eq("pending after FLUSH", st.pending, 0);
            enqueued += st.enqueued;
        }
        let acc = accepted.load(Ordering::Relaxed);
        c.eq("results = items of accepted calls", ran, acc);
        c.eq("STATS enqueued = items of accepted calls", enqueued, acc);
        crate::diag(&format!(
            "{acc} items accepted and run, {} calls refused with ENODEV during the unbind",
            refused.load(Ordering::Relaxed)
        ));
        Ok(())
    })?;
    for f in failures {
        c.fail(f);
    }
    // Unbound: the flag is ENODEV and changes nothing; INFO says so.
    let dev = ctx.open()?;
    let i = dev.info().must("INFO")?;
    c.eq("device_flags after unbind", i.device_flags, 0);
    c.eq("device_irq after unbind", i.device_irq, 0);
    for q in ALL_QUEUES {
        c.errno(
            &format!(
                "ENQUEUE on {} from the device IRQ, unbound",
                format_queue(q)
            ),
            dev.enqueue(EnqueueArgs::new(q, 2).from_device_irq(true)),
            ENODEV,
        );
    }
    c.stats("nothing enqueued while unbound", &dev, (0, 0, 0, 0));
    c.check(
        !std::path::Path::new(&format!("{DRIVER_DIR}/{addr}")).exists(),
        || format!("{DRIVER_DIR}/{addr} still exists after unbind"),
    );
    // Bind again: a new IRQ line and the flag works.
    sysfs_write("bind", &addr)?;
    let before = Counts::now(&dev)?;
    let set = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_PERCPU, 3),
        "ENQUEUE 3 from the device IRQ after rebinding",
    )?;
    dev.flush(Target::All).must("FLUSH ALL")?;
    let by_id = results(&mut c, &dev)?;
    check_items(&mut c, &by_id, set, RUST_WQ_Q_PERCPU, false, None);
    before.check_raised(&mut c, &dev, 1)?;
    c.done()
}

/// The device's interrupt seen from outside the module: the `irq_handler_*`
/// tracepoints of its IRQ and the `workqueue_*` tracepoints.  One ENQUEUE of
/// 130 items (3 interrupts) with the flag:
/// - when the call returns, the trace already holds its 130 queueings on
///   rust_wq_unbound (it returns once the batches are queued);
/// - every one of them is in hardirq context ('h' or 'H'), inside a handler of the
///   device's IRQ on that CPU, at most RUST_WQ_IRQ_BATCH per handler (the
///   results' FROM_HARDIRQ | FROM_DEVICE_IRQ);
/// - the handlers queued the static item on system_percpu_wq ("events") as
///   many times as INFO's device_bh_queued grew, and it started as many
///   times as device_bh_runs grew (workqueue_execute_start of that work);
/// - the chip column of the IRQ's line in /proc/interrupts says MSI exactly
///   when INFO's RUST_WQ_INFO_DEVICE_MSI does.
fn device_irq_by_trace(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let (irq, msi) = bound_device(&dev)?;
    let text = io(
        std::fs::read_to_string("/proc/interrupts"),
        "read /proc/interrupts",
    )?;
    let prefix = format!("{irq}:");
    match text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(prefix.as_str()))
    {
        Some(line) => {
            c.check(line.contains("MSI") == msi, || {
                format!("/proc/interrupts line {line:?}: INFO says MSI = {msi}")
            });
        }
        None => c.fail(format!("/proc/interrupts has no line for IRQ {irq}")),
    }
    // The static item idle before the trace starts.
    let deadline = Instant::now() + Duration::from_secs(10);
    let i0 = loop {
        let i = dev.info().must("INFO")?;
        if i.device_bh_runs == i.device_bh_queued || Instant::now() > deadline {
            break i;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let trace = match crate::util::Trace::start(&[
        "workqueue/workqueue_queue_work",
        "workqueue/workqueue_execute_start",
        "irq/irq_handler_entry",
        "irq/irq_handler_exit",
    ]) {
        Ok(t) => t,
        Err(e) => return crate::unavailable("tracing", format!("cannot trace: {e}")),
    };
    let n = 130u32;
    let set = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_UNBOUND, n),
        "ENQUEUE 130 unbound from the device IRQ",
    )?;
    // Read while tracing goes on: what was recorded before the call returned.
    let at_return = io(
        std::fs::read_to_string("/sys/kernel/tracing/trace"),
        "read /sys/kernel/tracing/trace",
    )?;
    let i1 = dev.info().must("INFO")?;
    dev.flush(Target::All).must("FLUSH ALL")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let i2 = loop {
        let i = dev.info().must("INFO")?;
        if i.device_bh_runs == i.device_bh_queued || Instant::now() > deadline {
            break i;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let text = trace.stop().map_err(|e| Outcome::Fail(vec![e]))?;
    drop(trace);
    let by_id = results(&mut c, &dev)?;
    check_items(&mut c, &by_id, set, RUST_WQ_Q_UNBOUND, false, None);
    let queued_at_return = at_return
        .lines()
        .filter(|l| l.contains("workqueue_queue_work") && l.contains("workqueue=rust_wq_unbound "))
        .count();
    c.eq(
        "queueings on rust_wq_unbound already traced when the ENQUEUE returned",
        queued_at_return,
        n as usize,
    );
    let entry = format!("irq={irq} name={IRQ_NAME}");
    let exit = format!("irq={irq} ret=");
    let mut in_handler: BTreeMap<u32, u32> = BTreeMap::new();
    let (mut items, mut most, mut handlers) = (0u32, 0u32, 0u64);
    let mut outside = Vec::new();
    let mut bh_work = None;
    let mut bh_queued = 0u64;
    let mut lines = Vec::new();
    for l in text.lines().filter_map(crate::util::trace_line) {
        lines.push((l.event, l.rest.to_string()));
        match l.event {
            "irq_handler_entry" if l.rest.starts_with(&entry) => {
                handlers += 1;
                in_handler.insert(l.cpu, 0);
            }
            "irq_handler_exit" if l.rest.starts_with(&exit) => {
                in_handler.remove(&l.cpu);
            }
            "workqueue_queue_work" if l.rest.contains("workqueue=rust_wq_unbound ") => {
                items += 1;
                match in_handler.get_mut(&l.cpu) {
                    Some(k) if hardirq(l.irq) => {
                        *k += 1;
                        most = most.max(*k);
                    }
                    _ => outside.push(format!("CPU {} context '{}'", l.cpu, l.irq)),
                }
            }
            "workqueue_queue_work"
                if l.rest.contains("workqueue=events ")
                    && hardirq(l.irq)
                    && in_handler.contains_key(&l.cpu) =>
            {
                bh_queued += 1;
                bh_work = l
                    .rest
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("struct="))
                    .map(str::to_string);
            }
            _ => {}
        }
    }
    c.eq("queueings on rust_wq_unbound", items, n);
    c.check(outside.is_empty(), || {
        format!(
            "{} items were queued outside a hardirq handler of IRQ {irq}: {:?}",
            outside.len(),
            &outside[..outside.len().min(5)]
        )
    });
    c.check(most > 0 && most <= RUST_WQ_IRQ_BATCH, || {
        format!("at most {most} items queued in one handler (expected 1..={RUST_WQ_IRQ_BATCH})")
    });
    c.check(handlers >= u64::from(n.div_ceil(RUST_WQ_IRQ_BATCH)), || {
        format!("{handlers} handler runs of IRQ {irq} traced, expected at least 3")
    });
    c.eq(
        "static item queueings on events inside the handler (trace) = INFO device_bh_queued growth",
        bh_queued,
        i1.device_bh_queued - i0.device_bh_queued,
    );
    let bh_runs = match &bh_work {
        Some(w) => {
            let tag = format!("work struct {w}:");
            lines
                .iter()
                .filter(|(e, r)| *e == "workqueue_execute_start" && r.starts_with(&tag))
                .count() as u64
        }
        None => 0,
    };
    c.eq(
        "static item starts (workqueue_execute_start) = INFO device_bh_runs growth",
        bh_runs,
        i2.device_bh_runs - i0.device_bh_runs,
    );
    c.done()
}

/// Whether the trace's irq column says hardirq context: 'h', or 'H' (a hard
/// interrupt that came during a softirq).
fn hardirq(col: char) -> bool {
    col == 'h' || col == 'H'
}

/// The device is driven alone: a second edu device (scripts/vm.sh adds two)
/// is refused at probe with EBUSY.  Seen from outside the module: in sysfs,
/// exactly one device of vendor 0x1234, device 0x11e8 has the driver
/// rust_wq_edu and the other has none; binding the other by hand through the
/// driver's `bind` file fails with EBUSY (the driver core's errno from the
/// probe) and leaves the first bound, with the same IRQ.
fn second_edu_refused_ebusy(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let (irq, _) = bound_device(&dev)?;
    let dir = io(
        std::fs::read_dir("/sys/bus/pci/devices"),
        "read /sys/bus/pci/devices",
    )?;
    let mut edus = Vec::new();
    for e in dir.flatten() {
        let p = e.path();
        let id = |f: &str| std::fs::read_to_string(p.join(f)).map(|s| s.trim().to_string());
        if id("vendor").ok().as_deref() == Some("0x1234")
            && id("device").ok().as_deref() == Some("0x11e8")
        {
            let driver = std::fs::read_link(p.join("driver"))
                .ok()
                .and_then(|l| l.file_name().map(|n| n.to_string_lossy().into_owned()));
            edus.push((e.file_name().to_string_lossy().into_owned(), driver));
        }
    }
    edus.sort();
    if edus.len() < 2 {
        return fail(format!(
            "{} edu devices in /sys/bus/pci/devices ({edus:?}): scripts/vm.sh adds two",
            edus.len()
        ));
    }
    let bound: Vec<_> = edus
        .iter()
        .filter(|(_, d)| d.as_deref() == Some(DRIVER_DIR_NAME))
        .collect();
    c.eq("edu devices bound to rust_wq_edu", bound.len(), 1);
    c.check(
        edus.iter()
            .all(|(_, d)| d.is_none() || d.as_deref() == Some(DRIVER_DIR_NAME)),
        || format!("edu devices and their drivers: {edus:?}"),
    );
    for (addr, _) in edus.iter().filter(|(_, d)| d.is_none()) {
        let r = std::fs::write(format!("{DRIVER_DIR}/bind"), addr);
        c.check(
            matches!(&r, Err(e) if e.raw_os_error() == Some(libc::EBUSY)),
            || format!("write {addr} to {DRIVER_DIR}/bind: {r:?}, expected EBUSY (one device at a time)"),
        );
        c.check(
            !std::path::Path::new(&format!("/sys/bus/pci/devices/{addr}/driver")).exists(),
            || format!("{addr} has a driver after the refused bind"),
        );
    }
    let (irq2, _) = bound_device(&dev)?;
    c.eq("INFO device_irq after the refused bind", irq2, irq);
    c.done()
}

/// One FROM_DEVICE_IRQ call at a time, module-wide, seen in the kernel's
/// tracepoints: two threads, each with its own file and queue
/// (rust_wq_unbound, rust_wq_percpu), make 5 calls of 130 items each at the
/// same time; each call takes 3 interrupts (64 + 64 + 2 items).  Labelling
/// each run of the device's handler by the queue its items went to, every
/// stretch of one label must be whole calls (a multiple of 3 handler runs,
/// sized 64, 64, 2 in turn): a batch of one call between two of the other's
/// would break it.
fn device_irq_one_call_at_a_time(ctx: &Ctx) -> TestResult {
    let mut c = Checker::new();
    let probe = ctx.open()?;
    let (irq, _) = bound_device(&probe)?;
    let cpu = ctx.online.first().copied().unwrap_or(0);
    let (a, b) = (ctx.open()?, ctx.open()?);
    let trace = match crate::util::Trace::start(&[
        "workqueue/workqueue_queue_work",
        "irq/irq_handler_entry",
        "irq/irq_handler_exit",
    ]) {
        Ok(t) => t,
        Err(e) => return crate::unavailable("tracing", format!("cannot trace: {e}")),
    };
    let results = std::thread::scope(|s| {
        let ta = s.spawn(|| -> Result<(), String> {
            for _ in 0..5 {
                a.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 130).from_device_irq(true))
                    .map_err(|e| format!("ENQUEUE 130 unbound from the device IRQ: {e}"))?;
            }
            Ok(())
        });
        let tb = s.spawn(|| -> Result<(), String> {
            for _ in 0..5 {
                b.enqueue(
                    EnqueueArgs::new(RUST_WQ_Q_PERCPU, 130)
                        .cpu(cpu)
                        .from_device_irq(true),
                )
                .map_err(|e| format!("ENQUEUE 130 percpu from the device IRQ: {e}"))?;
            }
            Ok(())
        });
        [ta.join(), tb.join()]
    });
    let text = trace.stop().map_err(|e| Outcome::Fail(vec![e]))?;
    drop(trace);
    for r in results {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => c.fail(e),
            Err(_) => c.fail("a thread panicked"),
        }
    }
    for d in [&a, &b] {
        d.flush(Target::All).must("FLUSH ALL")?;
        c.stats("each file: 650 items ran", d, (650, 650, 0, 0));
    }
    let entry = format!("irq={irq} name={IRQ_NAME}");
    let exit = format!("irq={irq} ret=");
    // Per CPU, the handler run in progress: (label, items).
    let mut open: BTreeMap<u32, (Option<&str>, u32)> = BTreeMap::new();
    let mut runs: Vec<(&str, u32)> = Vec::new();
    for l in text.lines().filter_map(crate::util::trace_line) {
        match l.event {
            "irq_handler_entry" if l.rest.starts_with(&entry) => {
                open.insert(l.cpu, (None, 0));
            }
            "irq_handler_exit" if l.rest.starts_with(&exit) => {
                if let Some((Some(label), n)) = open.remove(&l.cpu) {
                    runs.push((label, n));
                }
            }
            "workqueue_queue_work" => {
                let label = ["rust_wq_unbound", "rust_wq_percpu"]
                    .into_iter()
                    .find(|q| l.rest.contains(&format!("workqueue={q} ")));
                if let (Some(q), Some(run)) = (label, open.get_mut(&l.cpu)) {
                    if run.0.is_some_and(|p| p != q) {
                        c.fail(format!("one handler run queued items of both calls ({q})"));
                    }
                    run.0 = Some(q);
                    run.1 += 1;
                }
            }
            _ => {}
        }
    }
    c.eq(
        "handler runs that queued items (2 x 5 calls x 3)",
        runs.len(),
        30,
    );
    let mut k = 0;
    while k < runs.len() {
        let label = runs[k].0;
        let len = runs[k..].iter().take_while(|r| r.0 == label).count();
        let sizes: Vec<u32> = runs[k..k + len].iter().map(|r| r.1).collect();
        let whole = sizes.chunks(3).all(|ch| ch == [64, 64, 2]);
        c.check(whole, || {
            format!("handler runs {k}..{}: {len} in a row for {label}, items {sizes:?}: not whole calls (64, 64, 2): two calls' batches interleaved", k + len)
        });
        k += len;
    }
    c.done()
}
