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

mod binding;
mod trace;

pub(crate) use binding::{bound_address, sysfs_write};
use binding::{device_irq_unbind_rebind, second_edu_refused_ebusy};
use trace::{device_irq_by_trace, device_irq_one_call_at_a_time};

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
