//! Basic behaviour: INFO, placement on CPUs, queues run their work, ordering, process context.

use crate::util::{drain, enq, exactly, flag_names, ids, qn, ALL_QUEUES};
use crate::{Checker, Ctx, Must, TestResult};
use std::collections::BTreeMap;
use wqctl::abi::*;
use wqctl::{EnqueueArgs, Target};

pub fn info(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    // Fill the output with garbage first: the kernel must overwrite all of it.
    let mut i: RustWqInfo = RustWqInfo {
        abi_version: !0,
        nr_cpu_ids: !0,
        max_count: !0,
        max_pending: !0,
        max_delay_us: !0,
        max_sleep_us: !0,
        online_cpus: !0,
        max_results: !0,
        device_irq: !0,
        device_flags: !0,
        device_irqs: !0,
        device_bh_queued: !0,
        device_bh_runs: !0,
    };
    dev.ioctl_with(RUST_WQ_IOC_INFO, &mut i).must("INFO")?;
    c.eq("abi_version", i.abi_version, RUST_WQ_ABI_VERSION);
    c.check(i.nr_cpu_ids >= 1, || {
        format!("nr_cpu_ids: expected >= 1, seen {}", i.nr_cpu_ids)
    });
    c.eq("max_count", i.max_count, RUST_WQ_MAX_COUNT);
    c.eq("max_pending", i.max_pending, RUST_WQ_MAX_PENDING);
    c.eq("max_delay_us", i.max_delay_us, RUST_WQ_MAX_DELAY_US);
    c.eq("max_sleep_us", i.max_sleep_us, RUST_WQ_MAX_SLEEP_US);
    c.eq("max_results", i.max_results, RUST_WQ_MAX_RESULTS);
    let known = RUST_WQ_INFO_DEVICE_BOUND | RUST_WQ_INFO_DEVICE_MSI;
    c.eq("device_flags unknown bits", i.device_flags & !known, 0);
    let bound = i.device_flags & RUST_WQ_INFO_DEVICE_BOUND != 0;
    c.check(bound == (i.device_irq != 0), || {
        format!(
            "device_irq {} with device_flags {:#x}: expected an IRQ number exactly when bound",
            i.device_irq, i.device_flags
        )
    });
    c.check(
        i.device_bh_runs <= i.device_bh_queued && i.device_bh_queued <= i.device_irqs,
        || {
            format!(
                "expected static item runs <= queued <= device interrupts, seen {} / {} / {}",
                i.device_bh_runs, i.device_bh_queued, i.device_irqs
            )
        },
    );
    c.check(i.online_cpus != 0, || {
        "online_cpus: expected at least one bit set, seen 0".into()
    });
    if i.nr_cpu_ids < 64 {
        let beyond = i.online_cpus & !((1u64 << i.nr_cpu_ids) - 1);
        c.check(beyond == 0, || {
            format!(
                "online_cpus {:#x} has bits at or above nr_cpu_ids {}",
                i.online_cpus, i.nr_cpu_ids
            )
        });
    }
    if let Ok(s) = std::fs::read_to_string("/sys/devices/system/cpu/online") {
        match wqctl::parse::parse_cpulist(&s) {
            Ok(list) => {
                let sys: u64 = list
                    .iter()
                    .filter(|&&c| c < 64)
                    .fold(0, |m, &c| m | (1 << c));
                c.check(sys == i.online_cpus, || {
                    format!(
                        "online_cpus: expected {sys:#x} (/sys/devices/system/cpu/online = {}), seen {:#x}",
                        s.trim(),
                        i.online_cpus
                    )
                });
            }
            Err(e) => c.fail(e),
        }
    }
    if let Ok(s) = std::fs::read_to_string("/sys/devices/system/cpu/possible") {
        if let Ok(list) = wqctl::parse::parse_cpulist(&s) {
            if let Some(max) = list.iter().max() {
                c.eq("nr_cpu_ids (last possible CPU + 1)", i.nr_cpu_ids, max + 1);
            }
        }
    }
    c.eq("INFO is stable between calls", dev.info().must("INFO")?, i);
    c.done()
}

pub fn placement(ctx: &Ctx, queue: u32) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let mut expect: BTreeMap<u64, u32> = BTreeMap::new();
    for &cpu in &ctx.online {
        let a = EnqueueArgs::new(queue, 2).cpu(cpu).tag(u64::from(cpu));
        let first = enq(&dev, a, &format!("ENQUEUE 2 on {} cpu {cpu}", qn(queue)))?;
        for id in ids(first, 2) {
            expect.insert(id, cpu);
        }
        let a = EnqueueArgs::new(queue, 1)
            .cpu(cpu)
            .delay_us(2_000)
            .tag(u64::from(cpu));
        let first = enq(
            &dev,
            a,
            &format!("ENQUEUE delayed 2ms on {} cpu {cpu}", qn(queue)),
        )?;
        expect.insert(first, cpu);
    }
    dev.flush(Target::All).must("FLUSH ALL")?;
    let res = drain(&dev)?;
    let by_id = exactly(&mut c, "results", &res, expect.keys().copied());
    for (id, r) in &by_id {
        if let Some(&cpu) = expect.get(id) {
            c.check(r.cpu == cpu, || {
                format!(
                    "id {id} pinned to CPU {cpu} on {}: ran on CPU {}",
                    qn(queue),
                    r.cpu
                )
            });
            c.eq(&format!("id {id} requested_cpu"), r.requested_cpu, cpu);
            c.eq(&format!("id {id} queue"), r.queue, queue);
            c.eq(&format!("id {id} tag"), r.tag, u64::from(cpu));
        }
    }
    let n = expect.len() as u64;
    c.stats("after flush", &dev, (n, n, 0, 0));
    c.done()
}

pub fn percpu_placement(ctx: &Ctx) -> TestResult {
    placement(ctx, RUST_WQ_Q_PERCPU)
}

pub fn system_percpu_placement(ctx: &Ctx) -> TestResult {
    placement(ctx, RUST_WQ_Q_SYSTEM_PERCPU)
}

fn runs_on(ctx: &Ctx, queue: u32) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    // Every item sleeps 200 ms: all five are unfinished when FLUSH picks its
    // items (a few ms after ENQUEUE), so it waits for exactly five.
    let first = enq(
        &dev,
        EnqueueArgs::new(queue, 4).sleep_us(200_000).tag(11),
        "ENQUEUE 4 cpu any",
    )?;
    let hint = *ctx.online.last().unwrap_or(&0);
    let pinned = enq(
        &dev,
        EnqueueArgs::new(queue, 1)
            .cpu(hint)
            .sleep_us(200_000)
            .tag(12),
        &format!("ENQUEUE 1 cpu {hint}"),
    )?;
    let n = dev.flush(Target::All).must("FLUSH ALL")?;
    c.eq("FLUSH ALL count (items waited for)", n, 5);
    let res = drain(&dev)?;
    let by_id = exactly(&mut c, "results", &res, ids(first, 4).chain([pinned]));
    for (id, r) in &by_id {
        let (tag, req) = if *id == pinned {
            (12, hint)
        } else {
            (11, RUST_WQ_CPU_ANY)
        };
        c.eq(&format!("id {id} queue"), r.queue, queue);
        c.eq(&format!("id {id} tag"), r.tag, tag);
        c.eq(&format!("id {id} requested_cpu"), r.requested_cpu, req);
        c.check(r.cpu < ctx.info.nr_cpu_ids, || {
            format!("id {id}: cpu {} >= nr_cpu_ids", r.cpu)
        });
        c.check(r.flags & RUST_WQ_RES_PROCESS_CTX != 0, || {
            format!("id {id}: flags {} lack PROCESS_CTX", flag_names(r.flags))
        });
        c.check(r.runtime_ns >= 200_000_000, || {
            format!("id {id}: runtime {} ns < sleep 200 ms", r.runtime_ns)
        });
    }
    // seq is module-wide and taken once per item: five different numbers.
    let seqs: std::collections::BTreeSet<u64> = by_id.values().map(|r| r.seq).collect();
    c.check(seqs.len() == by_id.len() && !seqs.contains(&0), || {
        format!("seq of the five results: {seqs:?} (distinct, from 1)")
    });
    c.stats("after flush", &dev, (5, 5, 0, 0));
    c.done()
}

pub fn unbound_runs(ctx: &Ctx) -> TestResult {
    runs_on(ctx, RUST_WQ_Q_UNBOUND)
}

pub fn system_dfl_runs(ctx: &Ctx) -> TestResult {
    runs_on(ctx, RUST_WQ_Q_SYSTEM_DFL)
}

pub fn ordered_fifo(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    const N: u32 = 32;
    const SLEEP_US: u64 = 1_000;
    // Tolerance for the start-time reconstruction (the per-item enqueue
    // timestamps may differ by the time it takes to create the items).
    const TOL_NS: u64 = 300_000;
    let first = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_ORDERED, N)
            .sleep_us(SLEEP_US)
            .tag(1),
        "ENQUEUE 32 ordered",
    )?;
    let first2 = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_ORDERED, 4).tag(2),
        "ENQUEUE 4 more ordered",
    )?;
    c.check(
        first2 + 4 <= first || first2 >= first + u64::from(N),
        || {
            format!(
                "second ENQUEUE ids {first2}.. overlap the first call's ids {first}..{}",
                first + u64::from(N) - 1
            )
        },
    );
    dev.flush(Target::All).must("FLUSH ALL")?;
    let res = drain(&dev)?;
    let by_id = exactly(&mut c, "results", &res, ids(first, N).chain(ids(first2, 4)));
    let mut prev: Option<&RustWqResult> = None;
    for r in by_id.values() {
        if let Some(p) = prev {
            c.check(r.seq > p.seq, || {
                format!(
                    "FIFO: id {} has seq {} but the earlier id {} has seq {}",
                    r.id, r.seq, p.id, p.seq
                )
            });
            if r.tag == 1 {
                // Same ENQUEUE call: latency is measured from the same call,
                // so start times are comparable.
                let prev_end = p.latency_ns + p.runtime_ns;
                c.check(r.latency_ns + TOL_NS >= prev_end, || {
                    format!(
                        "overlap: id {} started at +{} us but id {} ran until +{} us (ordered queue runs one at a time)",
                        r.id,
                        r.latency_ns / 1000,
                        p.id,
                        prev_end / 1000
                    )
                });
            }
        }
        if r.tag == 1 {
            c.check(r.runtime_ns >= SLEEP_US * 1000, || {
                format!("id {}: runtime {} ns < sleep 1ms", r.id, r.runtime_ns)
            });
        }
        c.eq(&format!("id {} queue", r.id), r.queue, RUST_WQ_Q_ORDERED);
        prev = Some(r);
    }
    c.done()
}

pub fn work_sleeps_in_process_context(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let mut all = Vec::new();
    for q in ALL_QUEUES {
        let id = enq(
            &dev,
            EnqueueArgs::new(q, 1).sleep_us(2_000),
            &format!("ENQUEUE on {} sleep 2ms", qn(q)),
        )?;
        all.push(id);
    }
    dev.flush(Target::All).must("FLUSH ALL")?;
    let by_id = exactly(&mut c, "results", &drain(&dev)?, all);
    for r in by_id.values() {
        let want = RUST_WQ_RES_PROCESS_CTX | RUST_WQ_RES_SLEPT;
        c.check(r.flags & want == want, || {
            format!(
                "id {} on {}: flags {}, expected PROCESS_CTX|SLEPT",
                r.id,
                qn(r.queue),
                flag_names(r.flags)
            )
        });
        c.check(r.runtime_ns >= 2_000_000, || {
            format!(
                "id {} on {}: runtime {} ns < 2 ms",
                r.id,
                qn(r.queue),
                r.runtime_ns
            )
        });
    }
    c.done()
}

/// Which workqueue each queue kind is, seen from outside the module: the
/// `workqueue_queue_work` tracepoint of an item enqueued by this thread (a
/// work function of the module, `[rust_wq]`) names its workqueue (the module's own "rust_wq_percpu", "rust_wq_unbound",
/// "rust_wq_ordered"; the kernel's system_percpu_wq "events" and
/// system_dfl_wq "events_unbound").  On the per-CPU kinds, asked for the last
/// online CPU, the event's `cpu=` is that CPU and the item's
/// `workqueue_execute_start` is traced on it.
pub fn queue_names_by_trace(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let last = ctx.online.last().copied().unwrap_or(0);
    let plan = [
        (RUST_WQ_Q_PERCPU, "rust_wq_percpu", Some(last)),
        (RUST_WQ_Q_UNBOUND, "rust_wq_unbound", None),
        (RUST_WQ_Q_ORDERED, "rust_wq_ordered", None),
        (RUST_WQ_Q_SYSTEM_PERCPU, "events", Some(last)),
        (RUST_WQ_Q_SYSTEM_DFL, "events_unbound", None),
    ];
    let tid = crate::util::gettid();
    for (q, name, cpu) in plan {
        let trace = match crate::util::Trace::start(&[
            "workqueue/workqueue_queue_work",
            "workqueue/workqueue_execute_start",
        ]) {
            Ok(t) => t,
            Err(e) => return crate::unavailable("tracing", format!("cannot trace: {e}")),
        };
        let mut a = EnqueueArgs::new(q, 1);
        if let Some(cpu) = cpu {
            a = a.cpu(cpu);
        }
        enq(&dev, a, &format!("ENQUEUE 1 on {}", qn(q)))?;
        dev.flush(Target::All).must("FLUSH ALL")?;
        let text = trace.stop().map_err(|e| crate::Outcome::Fail(vec![e]))?;
        drop(trace);
        drain(&dev)?;
        let lines: Vec<_> = text.lines().filter_map(crate::util::trace_line).collect();
        let mine: Vec<_> = lines
            .iter()
            .filter(|l| {
                l.event == "workqueue_queue_work" && l.pid == tid && l.rest.contains(" [rust_wq] ")
            })
            .collect();
        let names: Vec<&str> = mine
            .iter()
            .filter_map(|l| {
                l.rest
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("workqueue="))
            })
            .collect();
        c.check(names == [name], || {
            format!("{}: this thread's queue_work events name the workqueues {names:?}, expected [{name:?}]", qn(q))
        });
        let (Some(cpu), Some(ev)) = (cpu, mine.first()) else {
            continue;
        };
        let field = |k: &str| {
            ev.rest
                .split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .and_then(|v| v.parse::<u32>().ok())
        };
        c.eq(
            &format!("{}: queue_work cpu= (asked for CPU {cpu})", qn(q)),
            field("cpu="),
            Some(cpu),
        );
        let work = ev
            .rest
            .split_whitespace()
            .find_map(|w| w.strip_prefix("struct="));
        let ran_on: Vec<u32> = match work {
            Some(w) => {
                let tag = format!("work struct {w}:");
                lines
                    .iter()
                    .filter(|l| l.event == "workqueue_execute_start" && l.rest.starts_with(&tag))
                    .map(|l| l.cpu)
                    .collect()
            }
            None => Vec::new(),
        };
        c.check(ran_on == [cpu], || {
            format!("{}: the item's workqueue_execute_start was traced on CPUs {ran_on:?}, expected [{cpu}]", qn(q))
        });
    }
    c.done()
}

/// SLEPT seen from outside the module: six items on the ordered queue (one
/// at a time, in seq order), sleeping 20 ms and 0 in turn.  The `sched_switch`
/// tracepoint shows whether the worker running an item left the CPU blocked
/// (prev_state S or D, not preempted) between the item's
/// `workqueue_execute_start` and `workqueue_execute_end`; every result that
/// says SLEPT must have been so, and the items that slept 20 ms say SLEPT.
pub fn slept_off_cpu_by_trace(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let trace = match crate::util::Trace::start(&[
        "workqueue/workqueue_execute_start",
        "workqueue/workqueue_execute_end",
        "sched/sched_switch",
    ]) {
        Ok(t) => t,
        Err(e) => return crate::unavailable("tracing", format!("cannot trace: {e}")),
    };
    let mut sleeps = BTreeMap::new();
    for k in 0..6u64 {
        let sleep = if k % 2 == 0 { 20_000 } else { 0 };
        let id = enq(
            &dev,
            EnqueueArgs::new(RUST_WQ_Q_ORDERED, 1).sleep_us(sleep),
            "ENQUEUE 1 ordered",
        )?;
        sleeps.insert(id, sleep);
    }
    dev.flush(Target::All).must("FLUSH ALL")?;
    let text = trace.stop().map_err(|e| crate::Outcome::Fail(vec![e]))?;
    drop(trace);
    let mut res = drain(&dev)?;
    res.sort_by_key(|r| r.seq);
    // Per worker pid: whether the item it runs has blocked so far.
    let mut running: BTreeMap<u32, bool> = BTreeMap::new();
    let mut windows = Vec::new();
    for l in text.lines().filter_map(crate::util::trace_line) {
        match l.event {
            "workqueue_execute_start" if l.rest.contains(" [rust_wq]") => {
                running.insert(l.pid, false);
            }
            "workqueue_execute_end" if l.rest.contains(" [rust_wq]") => {
                if let Some(blocked) = running.remove(&l.pid) {
                    windows.push(blocked);
                }
            }
            "sched_switch" => {
                let field = |k: &str| {
                    l.rest
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix(k))
                        .map(str::to_string)
                };
                let pid = field("prev_pid=").and_then(|p| p.parse::<u32>().ok());
                let state = field("prev_state=").unwrap_or_default();
                if let Some(b) = pid.and_then(|p| running.get_mut(&p)) {
                    if state.starts_with('S') || state.starts_with('D') {
                        *b = true;
                    }
                }
            }
            _ => {}
        }
    }
    c.eq("items traced from start to end", windows.len(), res.len());
    c.eq("results", res.len(), 6);
    for (r, blocked) in res.iter().zip(&windows) {
        let slept = r.flags & RUST_WQ_RES_SLEPT != 0;
        let sleep = sleeps.get(&r.id).copied().unwrap_or(0);
        c.check(!slept || *blocked, || {
            format!("id {} (sleep {sleep} us) says SLEPT, but its worker never left the CPU blocked while it ran (sched_switch)", r.id)
        });
        c.check(sleep == 0 || slept, || {
            format!(
                "id {} slept {sleep} us but its result does not say SLEPT: {}",
                r.id,
                flag_names(r.flags)
            )
        });
    }
    c.done()
}
