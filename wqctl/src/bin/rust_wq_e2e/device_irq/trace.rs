//! The device's interrupt seen in the kernel's tracepoints: where and in which
//! context the handler queues, and one call at a time module-wide.

use super::*;

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
pub(super) fn device_irq_by_trace(ctx: &Ctx) -> TestResult {
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

/// One FROM_DEVICE_IRQ call at a time, module-wide, seen in the kernel's
/// tracepoints: two threads, each with its own file and queue
/// (rust_wq_unbound, rust_wq_percpu), make 5 calls of 130 items each at the
/// same time; each call takes 3 interrupts (64 + 64 + 2 items).  Labelling
/// each run of the device's handler by the queue its items went to, every
/// stretch of one label must be whole calls (a multiple of 3 handler runs,
/// sized 64, 64, 2 in turn): a batch of one call between two of the other's
/// would break it.
pub(super) fn device_irq_one_call_at_a_time(ctx: &Ctx) -> TestResult {
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
