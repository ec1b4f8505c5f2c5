//! End-to-end tests of RUST_WQ_ENQ_F_FROM_DEVICE_IRQ: items queued (or armed)
//! from the interrupt handler of QEMU's edu PCI device (scripts/vm.sh always
//! adds `-device edu`), the interrupt in /proc/interrupts, the driver's static
//! item, and unbinding and rebinding the device through sysfs.

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
        ("device_irq_unbind_rebind", device_irq_unbind_rebind),
    ]
}

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
fn bound_device(dev: &Device) -> Result<(u32, bool), Outcome> {
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
fn bound_address() -> Result<String, Outcome> {
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
fn sysfs_write(what: &str, addr: &str) -> Result<(), Outcome> {
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
