//! What the module allocates and which of the layer's calls a benchmark makes, observed by
//! the kernel's own tracepoints (the allocator's `kmem:*` and lockdep's `lock:lock_acquire`),
//! not by anything the module reports about itself.

use crate::util::{field, fill_delayed, gettid, marked_lines, trace_line, Trace};
use crate::{Checker, Ctx, Outcome, TestResult};
use libc::EINVAL;
use std::collections::HashMap;
use wqctl::abi::*;
use wqctl::BenchArgs;

/// "A few hundred bytes" per item (include/rust_wq.h, Memory), read as at most this many.
const ITEM_BYTES_MAX: u64 = 512;

fn num(rest: &str, name: &str) -> u64 {
    field(rest, name).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// With FOOTPRINT_DUMP set in the environment: a histogram of the trace's allocations by
/// event, context, call site and size (to see what a failing bound is made of).
fn dump(what: &str, text: &str) {
    if std::env::var_os("FOOTPRINT_DUMP").is_none() {
        return;
    }
    let mut h: HashMap<String, u64> = HashMap::new();
    for l in text.lines().filter_map(trace_line) {
        let site = field(l.rest, "call_site").unwrap_or("?");
        let k = format!(
            "{} {} {} req={} alloc={}",
            l.event,
            l.irq,
            site,
            num(l.rest, "bytes_req"),
            num(l.rest, "bytes_alloc")
        );
        *h.entry(k).or_insert(0) += 1;
    }
    let mut v: Vec<_> = h.into_iter().collect();
    v.sort();
    for (k, n) in v {
        crate::diag(&format!("DUMP {what}: {n} x {k}"));
    }
}

fn trace(events: &[(&str, &str)]) -> Result<Trace, Outcome> {
    Trace::start_filtered(events).map_err(|e| Outcome::Fail(vec![format!("cannot trace: {e}")]))
}

fn stop(t: Trace) -> Result<String, Outcome> {
    let text = t.stop().map_err(|e| Outcome::Fail(vec![e]));
    drop(t);
    text
}

/// The events traced between each `sys_enter_ioctl` and its `sys_exit_ioctl` (the syscall
/// tracepoints print `sys_ioctl(fd: ...)` and `sys_ioctl -> 0x...`): the number of complete
/// calls and their events, or an error if a call has no end in the buffer.
fn in_ioctl(text: &str) -> Result<(usize, Vec<crate::util::TraceLine<'_>>), String> {
    let (mut inside, mut calls, mut out) = (false, 0, Vec::new());
    for l in text.lines() {
        if l.contains(": sys_ioctl(") {
            inside = true;
        } else if l.contains(": sys_ioctl -> ") {
            if inside {
                calls += 1;
            }
            inside = false;
        } else if let Some(t) = trace_line(l).filter(|_| inside) {
            out.push(t);
        }
    }
    if inside {
        return Err("the trace has an ioctl entry without its exit".into());
    }
    Ok((calls, out))
}

/// What the debug kernel allocates for its own bookkeeping of each object (kmemleak's
/// metadata, debugobjects' tracking of timers and work items): absent from a production
/// kernel, so not memory the module makes the kernel hold.
const DEBUG_ALLOCATORS: [&str; 2] = ["__alloc_object+", "kmem_alloc_batch+"];

/// Allocations made by `lines` and not freed by them, in process context: (bytes requested,
/// bytes allocated, allocations) of the module's, then bytes allocated by the debug kernel's
/// bookkeeping. A large kmalloc is traced twice (once inside the other) with one pointer: it
/// counts once.
struct Held {
    req: u64,
    alloc: u64,
    allocs: u64,
    debug: u64,
}

fn held(lines: &[crate::util::TraceLine<'_>]) -> Held {
    let mut live: HashMap<&str, (u64, u64, bool)> = HashMap::new();
    let mut allocs = 0;
    for l in lines {
        if l.irq != '.' {
            continue;
        }
        let Some(ptr) = field(l.rest, "ptr") else {
            continue;
        };
        match l.event {
            "kmalloc" | "kmem_cache_alloc" => {
                let site = field(l.rest, "call_site").unwrap_or("");
                let debug = DEBUG_ALLOCATORS.iter().any(|d| site.starts_with(d));
                let v = (num(l.rest, "bytes_req"), num(l.rest, "bytes_alloc"), debug);
                if live.insert(ptr, v).is_none() && !debug {
                    allocs += 1;
                }
            }
            "kfree" | "kmem_cache_free" => {
                live.remove(ptr);
            }
            _ => {}
        }
    }
    let mut h = Held {
        req: 0,
        alloc: 0,
        allocs,
        debug: 0,
    };
    for (req, alloc, debug) in live.into_values() {
        if debug {
            h.debug += alloc;
        } else {
            h.req += req;
            h.alloc += alloc;
        }
    }
    h
}

const ALLOC_EVENTS: [&str; 4] = [
    "kmem/kmalloc",
    "kmem/kmem_cache_alloc",
    "kmem/kfree",
    "kmem/kmem_cache_free",
];

/// Memory (H:41-44): an open file filled with max_pending items holds at most a few hundred
/// bytes per item, its lists included. Observed: the allocator's own tracepoints in the
/// calling thread (open and every ENQUEUE run there), allocations minus frees.
pub fn file_memory_by_trace(ctx: &Ctx) -> TestResult {
    let mut c = Checker::new();
    let pid = format!("common_pid == {}", gettid());
    let events: Vec<(&str, &str)> = ALLOC_EVENTS.iter().map(|e| (*e, pid.as_str())).collect();
    let t = trace(&events)?;
    let n = ctx.info.max_pending;
    let mark = t.mark("file begin").map_err(|e| Outcome::Fail(vec![e]));
    let dev = ctx.open();
    let filled = match &dev {
        Ok(d) => fill_delayed(ctx, d, n),
        Err(_) => Ok(()),
    };
    let _ = t.mark("file end");
    let text = stop(t)?;
    mark?;
    let dev = dev?;
    filled?;
    dump("file", &text);
    let h = held(
        &marked_lines(&text, "file")
            .into_iter()
            .filter_map(trace_line)
            .collect::<Vec<_>>(),
    );
    // The items (a few hundred bytes each), the results ring (64 bytes per result) and two
    // lists of max_pending pointers; the open file's own structures fit in the slack. Bytes
    // requested: what the allocator adds (its size classes, and slub_debug's red zones and
    // tracking in `make check`) is its own.
    let bound = u64::from(n) * ITEM_BYTES_MAX
        + u64::from(ctx.info.max_results) * 64
        + 2 * u64::from(ctx.info.max_pending) * 8
        + 64 * 1024;
    crate::diag(&format!(
        "file_memory_by_trace: open + {n} items: {} allocations, {} bytes requested ({} per \
         item), {} allocated; bound {bound}; debug-kernel bookkeeping {} more",
        h.allocs,
        h.req,
        h.req / u64::from(n.max(1)),
        h.alloc,
        h.debug
    ));
    c.check(h.allocs >= u64::from(n), || {
        format!(
            "{n} items were made but the trace shows {} allocations in the caller",
            h.allocs
        )
    });
    c.check(h.req <= bound, || {
        format!(
            "a file with {n} items holds {} bytes (requested), over {bound} ({ITEM_BYTES_MAX} \
             per item, 64 per result, two lists of max_pending pointers, 64 KiB)",
            h.req
        )
    });
    c.ok("RESET", dev.reset());
    c.done()
}

fn bench_args(op: u32, items: u32, threads: u32, start_latency: bool) -> BenchArgs {
    BenchArgs {
        path: RUST_WQ_BENCH_PERCPU,
        items,
        threads,
        start_latency,
        op,
    }
}

/// The number of kmalloc events of `text`.
fn kmallocs(text: &str) -> u64 {
    text.lines()
        .filter_map(trace_line)
        .filter(|l| l.event == "kmalloc")
        .count() as u64
}

/// BENCH memory (H:44-46, H:374-375, H:356-357): 32 bytes per round, nothing allocated over
/// the cap, and QUEUE_FRESH allocates a new item every round. Observed: the allocator's
/// kmalloc tracepoint in the caller and the bench kthreads ("rust_wq_bench/N").
pub fn bench_memory_by_trace(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let tid = gettid();
    let ours = format!("(common_pid == {tid} || comm ~ \"rust_wq_bench*\")");

    // Per round: the large buffers of two RT runs (one thread, start latency measured)
    // differ by the rounds' share. Small allocations (items, queues) do not depend on N.
    let big = format!("bytes_req >= 4000 && {ours}");
    let mut sums = Vec::new();
    let pid = format!("common_pid == {tid}");
    for n in [1000u32, 3000] {
        let t = trace(&[
            ("kmem/kmalloc", &big),
            ("syscalls/sys_enter_ioctl", &pid),
            ("syscalls/sys_exit_ioctl", &pid),
        ])?;
        let r = dev.bench(bench_args(RUST_WQ_BENCH_OP_RT, n, 1, true));
        let text = stop(t)?;
        dump("rt", &text);
        c.ok(&format!("BENCH RT 1 thread x {n} rounds"), r);
        // Every allocation of the run while the ioctl was in progress (the bench threads live
        // only then), once per pointer (frees are not traced here).
        let lines = in_ioctl(&text).map_err(|e| Outcome::Fail(vec![e]))?.1;
        sums.push(held(&lines).req);
    }
    let (d, dn) = (sums[1].saturating_sub(sums[0]), 2000u64);
    crate::diag(&format!(
        "bench_memory_by_trace: large allocations {} B (1000 rounds), {} B (3000 rounds): {} B per round",
        sums[0],
        sums[1],
        d / dn
    ));
    c.check(d <= 32 * dn && d >= 8 * dn, || {
        format!(
            "2000 more rounds allocated {d} more bytes in buffers of 4000 bytes or more: \
             expected between 8 and 32 per round"
        )
    });

    // Over the cap: EINVAL, and not one allocation in the caller's ioctl. The window is the
    // system call itself (its syscall tracepoints), in process context: the caller's own
    // page faults and heap growth around the call (a code page read over 9p, a brk) are not
    // the module's, nor is an interrupt that happens to arrive during the call.
    let online = ctx.online.len().max(1) as u64;
    let per = RUST_WQ_BENCH_MAX_TOTAL / online + 1;
    if per <= u64::from(RUST_WQ_BENCH_MAX_ITEMS) {
        let t = trace(&[
            ("kmem/kmalloc", &pid),
            ("kmem/kmem_cache_alloc", &pid),
            ("syscalls/sys_enter_ioctl", &pid),
            ("syscalls/sys_exit_ioctl", &pid),
        ])?;
        let r = dev.bench(bench_args(RUST_WQ_BENCH_OP_RT, per as u32, 0, false));
        let text = stop(t)?;
        dump("cap", &text);
        c.errno("BENCH RT over MAX_TOTAL", r, EINVAL);
        match in_ioctl(&text) {
            Ok((calls, lines)) => {
                let allocs = lines
                    .iter()
                    .filter(|l| l.event.starts_with("km") && l.irq == '.')
                    .count();
                c.check(calls == 1, || {
                    format!("expected the trace of one ioctl of the caller, saw {calls}")
                });
                c.check(allocs == 0, || {
                    format!(
                        "BENCH over MAX_TOTAL allocated {allocs} times in its ioctl before EINVAL"
                    )
                });
            }
            Err(e) => c.fail(e),
        }
    } else {
        crate::diag("bench_memory_by_trace: too few CPUs to exceed MAX_TOTAL (not run)");
    }

    // QUEUE_FRESH: one more allocation per round than QUEUE, in the bench kthread.
    let kthread = "comm ~ \"rust_wq_bench*\"";
    let mut count = Vec::new();
    for (name, op) in [
        ("QUEUE", RUST_WQ_BENCH_OP_QUEUE),
        ("QUEUE_FRESH", RUST_WQ_BENCH_OP_QUEUE_FRESH),
    ] {
        let t = trace(&[("kmem/kmalloc", kthread)])?;
        let r = dev.bench(bench_args(op, 300, 1, false));
        let text = stop(t)?;
        c.ok(&format!("BENCH {name} 300 rounds"), r);
        count.push(kmallocs(&text));
    }
    crate::diag(&format!(
        "bench_memory_by_trace: kthread allocations for 300 rounds: QUEUE {}, QUEUE_FRESH {}",
        count[0], count[1]
    ));
    c.check(count[1] >= count[0] + 300, || {
        format!(
            "QUEUE_FRESH made {} allocations in its kthread, QUEUE {}: not one new item per round",
            count[1], count[0]
        )
    });
    c.done()
}

/// BENCH path (H:378-380): delayed ops on the owned queues go through the tracked calls, which
/// register the item on the queue's armed list under its lock once and then arm it with no lock
/// (`armed.rs`); on the system queue they do not touch the list. Observed: lockdep's
/// lock_acquire tracepoint for the list's lock class in the benchmark's kthread.
pub fn bench_tracked_delayed_by_lockdep(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let filter = "name == \"ArmedList::head\" && comm ~ \"rust_wq_bench*\"";
    let rounds = 200;
    for (what, path, tracked) in [
        ("owned WQ_PERCPU", RUST_WQ_BENCH_PERCPU, true),
        ("owned rust_wq_bench", RUST_WQ_BENCH_UNBOUND_SYSFS, true),
        ("system_percpu_wq", RUST_WQ_BENCH_SYSTEM_PERCPU, false),
    ] {
        let t = trace(&[("lock/lock_acquire", filter)])?;
        let r = dev.bench(BenchArgs {
            path,
            ..bench_args(RUST_WQ_BENCH_OP_DELAYED, rounds, 1, false)
        });
        let text = stop(t)?;
        if c.ok(&format!("BENCH DELAYED on {what}"), r).is_none() {
            continue;
        }
        let n = text
            .lines()
            .filter_map(trace_line)
            .filter(|l| l.event == "lock_acquire")
            .count();
        // Tracked: the registration takes it (at least once), the arms do not (at most one
        // round in ten); untracked: never.
        let (lo, hi) = if tracked {
            (1, rounds as usize / 10)
        } else {
            (0, 0)
        };
        c.check((lo..=hi).contains(&n), || {
            format!("BENCH DELAYED {rounds} rounds on {what} took the armed list's lock {n} times, expected {lo}..={hi}")
        });
    }
    c.done()
}

/// The kernel calls one benchmark round makes, as the kernel's tracepoints count them in the
/// benchmark's own kthreads: items queued (`workqueue_queue_work`), delayed items' timers
/// started (`timer_start` of `delayed_work_timer_fn`) and timers cancelled (`timer_cancel`),
/// in the kthreads' own (process) context.
#[derive(Debug, PartialEq, Default)]
struct Calls {
    queued: u64,
    /// The `cpu` of the queued items' pool (a per-CPU queue's: the queueing CPU's).
    cpus: std::collections::BTreeSet<String>,
    armed: u64,
    cancelled: u64,
}

/// The calls among the trace's raw `lines` made in the threads whose name begins with `comm`,
/// in their own (process) context: an interrupt taken while a thread ran is traced with its
/// name, and the other side's threads (a benchmark thread still exiting) are not counted,
/// as a trace filtered on `comm` would not have recorded them.
fn calls(lines: &[&str], comm: &str) -> Calls {
    let mut k = Calls::default();
    for raw in lines {
        let Some(l) = trace_line(raw) else { continue };
        let task = raw.split_once(" [").map_or("", |(t, _)| t.trim());
        if !task.starts_with(comm) || l.irq != '.' {
            continue;
        }
        match l.event {
            "workqueue_queue_work" => {
                k.queued += 1;
                k.cpus
                    .insert(field(l.rest, "cpu").unwrap_or("?").to_string());
            }
            "timer_start" if l.rest.contains("function=delayed_work_timer_fn") => k.armed += 1,
            "timer_cancel" => k.cancelled += 1,
            _ => {}
        }
    }
    k
}

const CALL_EVENTS: [&str; 3] = [
    "workqueue/workqueue_queue_work",
    "timer/timer_start",
    "timer/timer_cancel",
];

/// BENCH ops (H:387-413) and the C twin (H:362-364): each op's rounds make the kernel calls
/// the op names, and the same ones as bench/rust_wq_ctwin.c's rounds. Observed: the
/// workqueue and timer tracepoints in the benchmark's kthreads ("rust_wq_bench/N") and in the
/// twin's ("ctwin/N"), the twin loaded from beside rust_wq.ko (RUST_WQ_KO); the CPU of the
/// pool each item went to shows the queue's kind (per-CPU: the queueing CPU).
pub fn bench_calls_match_c_twin_by_trace(ctx: &Ctx) -> TestResult {
    let Some(ko) = std::env::var_os("RUST_WQ_KO") else {
        return crate::fail("RUST_WQ_KO is not set: the C twin cannot be found");
    };
    let twin = std::path::Path::new(&ko).with_file_name("rust_wq_ctwin.ko");
    if !twin.exists() {
        return crate::fail(format!("{} does not exist", twin.display()));
    }
    let dev = ctx.open()?;
    let mut c = Checker::new();
    const N: u64 = 20;
    // (op, its number, path, twin's queue, items queued, timers armed by the round: at
    // least N each where the op's calls do so).
    let ops: [(&str, u32, u32, &str, bool, bool); 12] = [
        (
            "queue",
            RUST_WQ_BENCH_OP_QUEUE,
            RUST_WQ_BENCH_PERCPU,
            "percpu",
            true,
            false,
        ),
        (
            "queue-on",
            RUST_WQ_BENCH_OP_QUEUE_ON,
            RUST_WQ_BENCH_PERCPU,
            "percpu",
            true,
            false,
        ),
        (
            "delayed",
            RUST_WQ_BENCH_OP_DELAYED,
            RUST_WQ_BENCH_PERCPU,
            "percpu",
            false,
            true,
        ),
        (
            "mod-delayed",
            RUST_WQ_BENCH_OP_MOD_DELAYED,
            RUST_WQ_BENCH_PERCPU,
            "percpu",
            false,
            true,
        ),
        (
            "cancel-idle",
            RUST_WQ_BENCH_OP_CANCEL_IDLE,
            RUST_WQ_BENCH_PERCPU,
            "percpu",
            false,
            false,
        ),
        (
            "cancel-armed",
            RUST_WQ_BENCH_OP_CANCEL_ARMED,
            RUST_WQ_BENCH_PERCPU,
            "percpu",
            false,
            true,
        ),
        (
            "cancel-sync-idle",
            RUST_WQ_BENCH_OP_CANCEL_SYNC_IDLE,
            RUST_WQ_BENCH_PERCPU,
            "percpu",
            false,
            false,
        ),
        (
            "cancel-sync-armed",
            RUST_WQ_BENCH_OP_CANCEL_SYNC_ARMED,
            RUST_WQ_BENCH_PERCPU,
            "percpu",
            false,
            true,
        ),
        (
            "flush-idle",
            RUST_WQ_BENCH_OP_FLUSH_IDLE,
            RUST_WQ_BENCH_PERCPU,
            "percpu",
            false,
            false,
        ),
        (
            "disable",
            RUST_WQ_BENCH_OP_DISABLE,
            RUST_WQ_BENCH_PERCPU,
            "percpu",
            false,
            false,
        ),
        (
            "enable",
            RUST_WQ_BENCH_OP_ENABLE,
            RUST_WQ_BENCH_PERCPU,
            "percpu",
            false,
            false,
        ),
        (
            "static",
            RUST_WQ_BENCH_OP_STATIC,
            RUST_WQ_BENCH_SYSTEM_PERCPU,
            "system-percpu",
            true,
            false,
        ),
    ];
    // One trace for every op and both sides, each BENCH and each load of the twin between
    // marks of its own; the trace clock is CLOCK_MONOTONIC, so that the marks and the
    // events on other CPUs are in order. (A trace per op and side took 0.7 s each: the
    // buffer is resized for every trace.)
    let filter = "comm ~ \"rust_wq_bench*\" || comm ~ \"ctwin/*\"";
    let events: Vec<(&str, &str)> = CALL_EVENTS.iter().map(|e| (*e, filter)).collect();
    let t = Trace::start_filtered_mono(&events)
        .map_err(|e| Outcome::Fail(vec![format!("cannot trace: {e}")]))?;
    let marked = |tag: String, f: &dyn Fn() -> Result<(), String>| {
        t.mark(&format!("{tag} begin"))
            .and_then(|()| f())
            .and_then(|()| t.mark(&format!("{tag} end")))
            .map_err(|e| Outcome::Fail(vec![e]))
    };
    for (name, op, path, twin_q, _, _) in ops {
        marked(format!("rust {name}"), &|| {
            dev.bench(BenchArgs {
                path,
                ..bench_args(op, N as u32, 1, false)
            })
            .map(drop)
            .map_err(|e| format!("BENCH {name}: {e}"))
        })?;
        marked(format!("twin {name}"), &|| {
            let out = std::process::Command::new("insmod")
                .arg(&twin)
                .arg(format!("items={N}"))
                .arg(format!("runs={name}:{twin_q}"))
                .output()
                .map_err(|e| format!("insmod {}: {e}", twin.display()))?;
            // The twin runs at load and then refuses to stay loaded (EAGAIN).
            let err = String::from_utf8_lossy(&out.stderr);
            if out.status.success() || !err.contains("Resource temporarily unavailable") {
                return Err(format!(
                    "insmod of the C twin ({name}): {:?}, {err}",
                    out.status
                ));
            }
            Ok(())
        })?;
    }
    let text = stop(t)?;
    for (name, _, _, _, queues, arms) in ops {
        let side =
            |tag: &str, comm: &str| calls(&marked_lines(&text, &format!("{tag} {name}")), comm);
        let rust = side("rust", "rust_wq_bench");
        let cwin = side("twin", "ctwin/");
        crate::diag(&format!(
            "bench_calls_match_c_twin_by_trace: {name}: Rust {rust:?}, C twin {cwin:?}"
        ));
        c.check(rust == cwin, || {
            format!("{name}: the Rust rounds made {rust:?}, the C twin's {cwin:?}")
        });
        c.check(!queues || rust.queued >= N, || {
            format!("{name}: {N} rounds queued {} items", rust.queued)
        });
        c.check(!arms || rust.armed >= N, || {
            format!(
                "{name}: {N} rounds started {} delayed-work timers",
                rust.armed
            )
        });
        c.check(queues || arms || rust == Calls::default(), || {
            format!("{name}: {N} rounds of an op that queues nothing made {rust:?}")
        });
    }
    c.done()
}
