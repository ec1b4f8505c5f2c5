//! `wqctl demo`: a self-checking tour of the queues.

use crate::{op, Failure};
use std::collections::BTreeMap;
use std::time::Duration;
use wqctl::abi::*;
use wqctl::parse::{self, format_cpu, format_queue};
use wqctl::{format_results_table, Device, EnqueueArgs, Target};

/// What the demo expects of one enqueued item.
pub(crate) struct Expect {
    pub(crate) queue: u32,
    pub(crate) cpu: u32,
    pub(crate) from: &'static str,
}

pub(crate) fn demo(dev: &Device) -> Result<bool, Failure> {
    let info = op("info", dev.info())?;
    let cpus = parse::cpus_in_mask(info.online_cpus, info.nr_cpu_ids);
    if cpus.is_empty() {
        return Err(Failure::msg("info: no online CPU reported"));
    }
    println!(
        "rust_wq demo: ABI {}, {} possible CPU id(s), online: {}",
        info.abi_version,
        info.nr_cpu_ids,
        parse::format_cpus(&cpus)
    );
    let mut expect: BTreeMap<u64, Expect> = BTreeMap::new();
    let mut add = |args: EnqueueArgs| -> Result<(), Failure> {
        let what = format!(
            "enqueue ({} cpu {})",
            format_queue(args.queue),
            format_cpu(args.cpu)
        );
        let first = op(&what, dev.enqueue(args))?;
        for id in first..first + u64::from(args.count) {
            expect.insert(
                id,
                Expect {
                    queue: args.queue,
                    cpu: args.cpu,
                    from: if args.from_irq {
                        "hardirq"
                    } else if args.from_softirq {
                        "softirq"
                    } else {
                        "task"
                    },
                },
            );
        }
        Ok(())
    };
    for &c in &cpus {
        add(EnqueueArgs::new(RUST_WQ_Q_PERCPU, 1)
            .cpu(c)
            .tag(u64::from(c)))?;
    }
    add(EnqueueArgs::new(RUST_WQ_Q_SYSTEM_PERCPU, 2).tag(100))?;
    add(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).tag(200))?;
    add(EnqueueArgs::new(RUST_WQ_Q_PERCPU, 1)
        .delay_us(20_000)
        .tag(300))?;
    // The bottom-half pattern: queued from a hard-IRQ handler, run on a worker that sleeps.
    add(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1)
        .sleep_us(1000)
        .from_irq(true)
        .tag(400))?;
    // The same from softirq context (a BH work item).
    add(EnqueueArgs::new(RUST_WQ_Q_SYSTEM_DFL, 1)
        .sleep_us(1000)
        .from_softirq(true)
        .tag(500))?;
    // Give the delayed item time to run on its own (FLUSH would fire its timer early).
    std::thread::sleep(Duration::from_millis(60));
    let flushed = op("flush", dev.flush(Target::All))?;
    let (res, dropped) = op("results", dev.drain_results())?;
    print!("{}", format_results_table(&res));

    let mut ok = true;
    let mut seen = BTreeMap::new();
    for r in &res {
        *seen.entry(r.id).or_insert(0u32) += 1;
        match expect.get(&r.id) {
            None => {
                ok = false;
                println!("FAIL: result for unknown id {}", r.id);
            }
            Some(e) => {
                if r.queue != e.queue {
                    ok = false;
                    println!(
                        "FAIL: id {} ran on queue {}, expected {}",
                        r.id,
                        format_queue(r.queue),
                        format_queue(e.queue)
                    );
                }
                if e.cpu != RUST_WQ_CPU_ANY && r.cpu != e.cpu {
                    ok = false;
                    println!(
                        "FAIL: id {} was pinned to CPU {} but ran on CPU {}",
                        r.id, e.cpu, r.cpu
                    );
                }
                let from = e.from;
                if wqctl::queued_from(r.flags) != from {
                    ok = false;
                    println!(
                        "FAIL: id {} was queued from {}, expected {from}",
                        r.id,
                        wqctl::queued_from(r.flags)
                    );
                }
                let bh = RUST_WQ_RES_PROCESS_CTX | RUST_WQ_RES_SLEPT;
                if from != "task" && r.flags & bh != bh {
                    ok = false;
                    println!(
                        "FAIL: id {} (queued from {from}) did not run in process context and sleep",
                        r.id
                    );
                }
            }
        }
    }
    for (id, n) in &seen {
        if *n > 1 {
            ok = false;
            println!("FAIL: id {id} has {n} results");
        }
    }
    for id in expect.keys() {
        if !seen.contains_key(id) {
            ok = false;
            println!("FAIL: id {id} did not run");
        }
    }
    if dropped > 0 {
        ok = false;
        println!("FAIL: {dropped} result(s) dropped");
    }
    let from_irq = expect.values().filter(|e| e.from == "hardirq").count();
    let from_softirq = expect.values().filter(|e| e.from == "softirq").count();
    println!(
        "{}: {} item(s) enqueued, {} result(s), {} waited for by flush, {} pinned to their CPU, \
         {} queued from a hard-IRQ handler and {} from softirq, run on a worker that slept",
        if ok { "PASS" } else { "FAIL" },
        expect.len(),
        res.len(),
        flushed,
        cpus.len(),
        from_irq,
        from_softirq
    );
    Ok(ok)
}
