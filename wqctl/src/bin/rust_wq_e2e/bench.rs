//! BENCH: it runs, rejects bad input, one at a time.

use crate::{panic_message, Checker, Ctx, TestResult};
use libc::EINVAL;
use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};
use std::time::Instant;
use wqctl::abi::*;
use wqctl::{BenchArgs, Device};

const TRACEFS: &str = "/sys/kernel/tracing";

/// The `workqueue_queue_work` tracepoint, enabled while this value lives.
struct QueueWorkTrace;

impl QueueWorkTrace {
    fn write(file: &str, v: &str) -> Result<(), String> {
        std::fs::write(format!("{TRACEFS}/{file}"), v)
            .map_err(|e| format!("write {v:?} to {TRACEFS}/{file}: {e}"))
    }

    /// Mounts tracefs if needed, clears the buffer, enables the event.
    fn start() -> Result<QueueWorkTrace, String> {
        if !std::path::Path::new(&format!("{TRACEFS}/trace")).exists() {
            let _ = std::process::Command::new("mount")
                .args(["-t", "tracefs", "nodev", TRACEFS])
                .status();
        }
        Self::write("tracing_on", "0")?;
        Self::write("trace", "")?;
        Self::write("events/workqueue/workqueue_queue_work/enable", "1")?;
        Self::write("tracing_on", "1")?;
        Ok(QueueWorkTrace)
    }

    /// Stops tracing; per workqueue name, how many queue_work events had
    /// `function` containing `func`.
    fn stop(self, func: &str) -> Result<BTreeMap<String, u64>, String> {
        Self::write("tracing_on", "0")?;
        let text = std::fs::read_to_string(format!("{TRACEFS}/trace"))
            .map_err(|e| format!("read {TRACEFS}/trace: {e}"))?;
        let mut by_wq = BTreeMap::new();
        for l in text.lines().filter(|l| l.contains(func)) {
            if let Some(w) = l.split("workqueue=").nth(1) {
                let name = w.split_whitespace().next().unwrap_or("").to_string();
                *by_wq.entry(name).or_insert(0) += 1;
            }
        }
        if text.contains("LOST") {
            return Err("the trace buffer overflowed (LOST events)".into());
        }
        Ok(by_wq)
    }
}

impl Drop for QueueWorkTrace {
    fn drop(&mut self) {
        let _ = Self::write("tracing_on", "0");
        let _ = Self::write("events/workqueue/workqueue_queue_work/enable", "0");
        let _ = Self::write("trace", "");
    }
}

/// RUST_WQ_IOC_BENCH runs on every path with one thread per online CPU, on the
/// queue that path names (the workqueue_queue_work tracepoint shows where its
/// items went), and reports consistent numbers.
pub fn bench_runs(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let online = ctx.online.len() as u32;
    for (path, wq_name) in [
        (RUST_WQ_BENCH_UNBOUND_SYSFS, "rust_wq_bench"),
        // The per-CPU path uses a WQ_PERCPU queue made for the run (header).
        (RUST_WQ_BENCH_PERCPU, "rust_wq_bench_pcpu"),
        (RUST_WQ_BENCH_SYSTEM_PERCPU, "events"),
    ] {
        for start_latency in [false, true] {
            let args = BenchArgs {
                path,
                items: 50,
                threads: 0,
                start_latency,
                op: RUST_WQ_BENCH_OP_RT,
            };
            let what = format!("BENCH path {path} start_latency {start_latency}");
            let trace = match QueueWorkTrace::start() {
                Ok(t) => Some(t),
                Err(e) => {
                    if wqctl::testing::required("tracing") {
                        c.fail(format!("{what}: cannot trace workqueue_queue_work: {e}"));
                    } else {
                        // Said, not silent: this part of the test did not run.
                        crate::diag(&format!(
                            "bench_runs: {what}: queue placement NOT checked (no tracing: {e})"
                        ));
                    }
                    None
                }
            };
            let t0 = Instant::now();
            let r = dev.bench(args);
            let wall = t0.elapsed();
            let queued = trace.map(|t| t.stop("BenchItem"));
            let Some(b) = c.ok(&what, r) else { continue };
            c.eq(&format!("{what}: threads_run"), b.threads_run, online);
            let total = u128::from(b.threads_run) * u128::from(args.items);
            c.check(b.elapsed_ns > 0, || format!("{what}: elapsed_ns 0"));
            c.check(u128::from(b.elapsed_ns) <= wall.as_nanos(), || {
                format!(
                    "{what}: elapsed_ns {} is longer than the whole ioctl ({} ns)",
                    b.elapsed_ns,
                    wall.as_nanos()
                )
            });
            if b.elapsed_ns > 0 {
                let want = total * 1_000_000_000 / u128::from(b.elapsed_ns);
                c.check(u128::from(b.items_per_sec) == want, || {
                    format!(
                        "{what}: items_per_sec {} but threads_run {} x items {} / elapsed {} ns = {want}",
                        b.items_per_sec, b.threads_run, args.items, b.elapsed_ns
                    )
                });
            }
            c.check(
                b.queue_p50_ns > 0
                    && b.queue_p50_ns <= b.queue_p90_ns
                    && b.queue_p90_ns <= b.queue_p95_ns,
                || {
                    format!(
                        "{what}: queue percentiles {}/{}/{}",
                        b.queue_p50_ns, b.queue_p90_ns, b.queue_p95_ns
                    )
                },
            );
            if start_latency {
                c.check(
                    b.start_p50_ns > 0
                        && b.start_p50_ns <= b.start_p90_ns
                        && b.start_p90_ns <= b.start_p95_ns,
                    || {
                        format!(
                            "{what}: start percentiles {}/{}/{}",
                            b.start_p50_ns, b.start_p90_ns, b.start_p95_ns
                        )
                    },
                );
            } else {
                c.eq(
                    &format!("{what}: start percentiles (not measured)"),
                    (b.start_p50_ns, b.start_p90_ns, b.start_p95_ns),
                    (0, 0, 0),
                );
            }
            match queued {
                None => {}
                Some(Err(e)) => c.fail(format!("{what}: trace: {e}")),
                Some(Ok(by_wq)) => {
                    let want: BTreeMap<String, u64> =
                        [(wq_name.to_string(), total as u64)].into_iter().collect();
                    c.check(by_wq == want, || {
                        format!(
                            "{what}: the benchmark's items were queued on {by_wq:?} (workqueue_queue_work events), expected {want:?}"
                        )
                    });
                }
            }
        }
    }
    let one = BenchArgs {
        path: RUST_WQ_BENCH_PERCPU,
        items: 20,
        threads: 1,
        start_latency: false,
        op: RUST_WQ_BENCH_OP_RT,
    };
    if let Some(b) = c.ok("BENCH with threads 1", dev.bench(one)) {
        c.eq("BENCH with threads 1: threads_run", b.threads_run, 1);
    }
    // Every other operation, on every path, times its call: queue-fresh and delayed-par on one
    // thread per online CPU, the single-call ones on one thread; queue, queue-fresh and delayed
    // also through upstream's API and with boxed items. A drop run exists on the per-CPU path
    // only.
    for path in [
        RUST_WQ_BENCH_UNBOUND_SYSFS,
        RUST_WQ_BENCH_PERCPU,
        RUST_WQ_BENCH_SYSTEM_PERCPU,
    ] {
        let variants = [
            0,
            RUST_WQ_BENCH_F_UPSTREAM,
            RUST_WQ_BENCH_F_KBOX,
            RUST_WQ_BENCH_F_UPSTREAM | RUST_WQ_BENCH_F_KBOX,
        ];
        for ((name, op), flags) in BENCH_OPS
            .iter()
            .skip(1)
            .flat_map(|o| variants.iter().map(move |f| (o, *f)))
        {
            if flags != 0 && !bench_op_has_variants(*op) {
                continue;
            }
            let args = BenchArgs {
                path,
                items: 20,
                threads: 0,
                start_latency: false,
                op: *op,
            }
            .to_raw();
            let args = RustWqBench { flags, ..args };
            let what = format!("BENCH path {path} op {name} flags {flags:#x}");
            if *op == RUST_WQ_BENCH_OP_DROP_ARMED && path != RUST_WQ_BENCH_PERCPU {
                c.errno(&what, dev.bench_raw(args), EINVAL);
                continue;
            }
            if let Some(b) = c.ok(&what, dev.bench_raw(args)) {
                let threads =
                    if *op == RUST_WQ_BENCH_OP_QUEUE_FRESH || *op == RUST_WQ_BENCH_OP_DELAYED_PAR {
                        online
                    } else {
                        1
                    };
                c.eq(&format!("{what}: flags"), b.flags, flags);
                c.eq(&format!("{what}: threads_run"), b.threads_run, threads);
                c.eq(&format!("{what}: op"), b.op, *op);
                c.check(
                    b.queue_p99_ns > 0
                        && b.queue_p50_ns <= b.queue_p90_ns
                        && b.queue_p90_ns <= b.queue_p95_ns
                        && b.queue_p95_ns <= b.queue_p99_ns,
                    || {
                        format!(
                            "{what}: percentiles {}/{}/{}/{}",
                            b.queue_p50_ns, b.queue_p90_ns, b.queue_p95_ns, b.queue_p99_ns
                        )
                    },
                );
            }
        }
    }
    c.stats(
        "BENCH enqueues nothing of the file's own",
        &dev,
        (0, 0, 0, 0),
    );
    c.done()
}

/// RUST_WQ_IOC_BENCH rejects bad fields with EINVAL.
pub fn bench_bad_input_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let good = RustWqBench {
        version: RUST_WQ_ABI_VERSION,
        path: RUST_WQ_BENCH_PERCPU,
        items: 1,
        ..Default::default()
    };
    let cases = [
        ("unknown path 3", RustWqBench { path: 3, ..good }),
        ("items 0", RustWqBench { items: 0, ..good }),
        (
            "items above the maximum",
            RustWqBench {
                items: RUST_WQ_BENCH_MAX_ITEMS + 1,
                ..good
            },
        ),
        (
            "unknown flag",
            RustWqBench {
                flags: 1 << 5,
                ..good
            },
        ),
        ("version 2", RustWqBench { version: 2, ..good }),
        (
            "reserved set",
            RustWqBench {
                reserved: [0, 1],
                ..good
            },
        ),
        ("pad set", RustWqBench { pad: 1, ..good }),
        (
            "unknown op",
            RustWqBench {
                op: RUST_WQ_BENCH_OP_COUNT,
                ..good
            },
        ),
        (
            "threads 2 with a single-call op",
            RustWqBench {
                op: RUST_WQ_BENCH_OP_QUEUE,
                threads: 2,
                ..good
            },
        ),
        (
            "start latency with a single-call op",
            RustWqBench {
                op: RUST_WQ_BENCH_OP_QUEUE,
                flags: RUST_WQ_BENCH_F_START_LATENCY,
                ..good
            },
        ),
        (
            "upstream with an op upstream cannot do",
            RustWqBench {
                op: RUST_WQ_BENCH_OP_CANCEL_ARMED,
                flags: RUST_WQ_BENCH_F_UPSTREAM,
                ..good
            },
        ),
        (
            "kbox with the round trip",
            RustWqBench {
                op: RUST_WQ_BENCH_OP_RT,
                flags: RUST_WQ_BENCH_F_KBOX,
                ..good
            },
        ),
        (
            "drop-armed on the system queue",
            RustWqBench {
                op: RUST_WQ_BENCH_OP_DROP_ARMED,
                path: RUST_WQ_BENCH_SYSTEM_PERCPU,
                ..good
            },
        ),
        (
            "drop-armed above its most items",
            RustWqBench {
                op: RUST_WQ_BENCH_OP_DROP_ARMED,
                items: RUST_WQ_BENCH_DROP_MAX_ITEMS + 1,
                ..good
            },
        ),
        (
            "threads 2 with drop-armed",
            RustWqBench {
                op: RUST_WQ_BENCH_OP_DROP_ARMED,
                threads: 2,
                ..good
            },
        ),
    ];
    for (what, b) in cases {
        c.errno(&format!("BENCH {what}"), dev.bench_raw(b), EINVAL);
    }
    c.done()
}

/// The header: one benchmark runs at a time (others wait).  Two BENCH calls
/// from two files at once: the wall time they take together is at least the
/// sum of their own elapsed times.
pub fn bench_one_at_a_time(ctx: &Ctx) -> TestResult {
    let mut c = Checker::new();
    let args = BenchArgs {
        op: wqctl::abi::RUST_WQ_BENCH_OP_RT,
        path: RUST_WQ_BENCH_PERCPU,
        items: 1_000,
        threads: 0,
        start_latency: false,
    };
    let barrier = Arc::new(Barrier::new(2));
    let t0 = Instant::now();
    let hs: Vec<_> = (0..2)
        .map(|_| {
            let (path, b) = (ctx.path.clone(), barrier.clone());
            std::thread::spawn(move || -> Result<RustWqBench, String> {
                let dev = Device::open(&path).map_err(|e| format!("open: {e}"))?;
                b.wait();
                dev.bench(args).map_err(|e| format!("BENCH: {e}"))
            })
        })
        .collect();
    let mut el = Vec::new();
    for h in hs {
        match h.join() {
            Ok(Ok(b)) => el.push(b.elapsed_ns),
            Ok(Err(e)) => c.fail(e),
            Err(p) => c.fail(format!("panicked: {}", panic_message(&*p))),
        }
    }
    let wall = t0.elapsed().as_nanos() as u64;
    if el.len() == 2 {
        let sum = el[0] + el[1];
        c.check(wall >= sum, || {
            format!(
                "two BENCH calls at once took {wall} ns together, less than the sum of their elapsed times {} + {} ns: they overlapped",
                el[0], el[1]
            )
        });
    }
    c.done()
}

/// Where the benchmark's kthreads run, seen from outside the module: the CPU
/// column of the `workqueue_queue_work` events of its items (the CPU the
/// queueing thread was on).  RT with `threads` 2 (fewer than the online
/// CPUs) on the per-CPU path: exactly the first two online CPUs ("from CPU 0
/// on, at most threads"), `items` queueings each; QUEUE and QUEUE_ON: every
/// queueing from the first online CPU (one kthread bound there).  And the
/// UNBOUND_SYSFS path's queue is in sysfs (WQ_SYSFS) with its affinity_scope,
/// and is not per-CPU (WQ_UNBOUND).
pub fn bench_cpus_by_trace(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let sysfs = "/sys/bus/workqueue/devices/rust_wq_bench";
    let read =
        |f: &str| std::fs::read_to_string(format!("{sysfs}/{f}")).map(|s| s.trim().to_string());
    c.check(read("affinity_scope").is_ok_and(|s| !s.is_empty()), || {
        format!("{sysfs}/affinity_scope: {:?}", read("affinity_scope"))
    });
    c.eq(
        &format!("{sysfs}/per_cpu"),
        read("per_cpu").ok(),
        Some("0".to_string()),
    );
    let first = ctx.online.first().copied().unwrap_or(0);
    let mut runs: Vec<(String, BenchArgs, BTreeMap<u32, u64>)> = Vec::new();
    if ctx.online.len() >= 3 {
        runs.push((
            "RT, threads 2".into(),
            BenchArgs {
                path: RUST_WQ_BENCH_PERCPU,
                items: 20,
                threads: 2,
                start_latency: false,
                op: RUST_WQ_BENCH_OP_RT,
            },
            ctx.online.iter().take(2).map(|&cpu| (cpu, 20)).collect(),
        ));
    } else {
        crate::diag("bench_cpus_by_trace: fewer than 3 online CPUs: RT with threads 2 not run");
    }
    for (name, op) in [
        ("QUEUE", RUST_WQ_BENCH_OP_QUEUE),
        ("QUEUE_ON", RUST_WQ_BENCH_OP_QUEUE_ON),
    ] {
        runs.push((
            name.into(),
            BenchArgs {
                path: RUST_WQ_BENCH_PERCPU,
                items: 20,
                threads: 0,
                start_latency: false,
                op,
            },
            [(first, 20)].into_iter().collect(),
        ));
    }
    for (what, args, want) in runs {
        let trace = match crate::util::Trace::start(&["workqueue/workqueue_queue_work"]) {
            Ok(t) => t,
            Err(e) => return crate::unavailable("tracing", format!("cannot trace: {e}")),
        };
        let r = dev.bench(args);
        let text = trace.stop().map_err(|e| crate::Outcome::Fail(vec![e]));
        drop(trace);
        let text = text?;
        if c.ok(&format!("BENCH {what}"), r).is_none() {
            continue;
        }
        let mut by_cpu: BTreeMap<u32, u64> = BTreeMap::new();
        for l in text.lines().filter_map(crate::util::trace_line) {
            if l.event == "workqueue_queue_work" && l.rest.contains("BenchItem") {
                *by_cpu.entry(l.cpu).or_insert(0) += 1;
            }
        }
        c.check(by_cpu == want, || {
            format!("BENCH {what}: its items were queued from CPUs {by_cpu:?} (CPU: events), expected {want:?}")
        });
    }
    c.done()
}

/// H:350-355: RT threads that are done sleep, not spin, until the last one is. Observed with
/// the scheduler's `sched_waking` tracepoint (in the waker's context; trace clock mono): after the last item a bench
/// kthread queued (`workqueue_queue_work` from a `rust_wq_bench/N` thread), the caller's
/// thread wakes the done kthreads to let them exit. A thread that spun would be running, and
/// would not be woken. The last thread to finish may not have gone to sleep yet when it is
/// released, so at least half of the threads must be woken so.
pub fn bench_done_threads_sleep_by_trace(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let threads = ctx.online.len().min(4) as u32;
    if threads < 2 {
        return crate::fail("fewer than 2 online CPUs: no thread can wait for another");
    }
    let tid = crate::util::gettid();
    let kthreads = "comm ~ \"rust_wq_bench*\"";
    let woken_by_me = format!("{kthreads} && common_pid == {tid}");
    let t = crate::util::Trace::start_filtered_mono(&[
        ("workqueue/workqueue_queue_work", kthreads),
        ("sched/sched_waking", &woken_by_me),
    ])
    .map_err(|e| crate::Outcome::Fail(vec![format!("cannot trace: {e}")]))?;
    let r = dev.bench(BenchArgs {
        path: RUST_WQ_BENCH_PERCPU,
        items: 200,
        threads,
        start_latency: false,
        op: RUST_WQ_BENCH_OP_RT,
    });
    let text = t.stop().map_err(|e| crate::Outcome::Fail(vec![e]));
    drop(t);
    let text = text?;
    let Some(out) = c.ok(&format!("BENCH RT {threads} threads x 200"), r) else {
        return c.done();
    };
    let lines: Vec<_> = text.lines().filter_map(crate::util::trace_line).collect();
    let last_queued = lines
        .iter()
        .filter(|l| l.event == "workqueue_queue_work")
        .map(|l| l.ts_ns)
        .max()
        .unwrap_or(u64::MAX);
    let mut woken: Vec<u32> = lines
        .iter()
        .filter(|l| l.event == "sched_waking" && l.ts_ns >= last_queued)
        .filter_map(|l| {
            l.rest
                .split_whitespace()
                .find_map(|w| w.strip_prefix("pid="))
                .and_then(|p| p.parse().ok())
        })
        .collect();
    woken.sort_unstable();
    woken.dedup();
    crate::diag(&format!(
        "bench_done_threads_sleep_by_trace: {} threads ran; after the last item, the caller woke {} of them",
        out.threads_run,
        woken.len()
    ));
    c.eq("threads run", out.threads_run, threads);
    c.check(2 * woken.len() as u32 >= out.threads_run, || {
        format!(
            "after the last item the caller woke {} of {} bench threads: the others did not sleep",
            woken.len(),
            out.threads_run
        )
    });
    c.done()
}
