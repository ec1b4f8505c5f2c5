//! An ENQUEUE that fails in the middle, after some of its batches were queued from their
//! interrupts (header H:180-182 and H:199-202): the CPU it is pinned to goes offline between
//! two batches of a FROM_IRQ call, or the edu device is unbound between two interrupts of a
//! FROM_DEVICE_IRQ call. Either way the call fails (ENODEV) and none of its items runs.
//!
//! A race cannot be scheduled from userspace, so each test repeats it: calls of [`COUNT`]
//! items back to back, each between two trace marks, while another thread takes the CPU down
//! (or unbinds the device); the first call that fails is the one the change hit. The
//! `workqueue_queue_work` tracepoint (hardirq context, the call's queue) says how many of its
//! items were queued before it failed: a whole number of batches, fewer than [`COUNT`]. A
//! trial where that number is 0 (the change came before the call's first interrupt, or between
//! two calls) is repeated; the test fails if no trial hit the middle of a call. In every trial:
//! the results are exactly the items of the calls that succeeded (after FLUSH ALL), STATS
//! counts only them, and each call that succeeded has its [`COUNT`] queueings in the trace.

use crate::device_irq::{bound_address, bound_device, sysfs_write};
use crate::util::{drain, ids, marked_lines, trace_line, Trace};
use crate::{fail, Checker, Ctx, Must, Outcome, TestResult};
use libc::{EBUSY, ENODEV};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wqctl::abi::*;
use wqctl::{Device, EnqueueArgs, Target};

/// Items per call: 16 batches of RUST_WQ_IRQ_BATCH, so 16 interrupts.
const COUNT: u32 = 16 * RUST_WQ_IRQ_BATCH;
/// Trials before giving up on hitting the middle of a call (about one trial in four to eight
/// hits it: 60 all missing is below one in a thousand).
const TRIALS: u32 = 60;

/// One trial's outcome: the calls that succeeded (their first ids), and how many items of the
/// failed call the trace saw queued.
struct Trial {
    done: Vec<u64>,
    queued_by_failed: u64,
}

/// Counts the hardirq-context `workqueue_queue_work` events on `queue` (a workqueue name)
/// between the marks `{tag} begin` and `{tag} end`.
fn queued_between(text: &str, tag: &str, queue: &str) -> u64 {
    let needle = format!("workqueue={queue} ");
    marked_lines(text, tag)
        .into_iter()
        .filter_map(trace_line)
        .filter(|l| {
            l.event == "workqueue_queue_work"
                && (l.irq == 'h' || l.irq == 'H')
                && format!("{} ", l.rest).contains(&needle)
        })
        .count() as u64
}

/// Runs one trial: calls `args` on `dev` back to back, each between marks, until one fails
/// with ENODEV, while `disrupt` runs in another thread after `after`; then `restore`. The
/// trace covers the calls; the results, STATS and the trace are checked into `c`.
#[allow(clippy::too_many_arguments)]
fn trial(
    c: &mut Checker,
    t: &Trace,
    dev: &Device,
    args: EnqueueArgs,
    queue: &str,
    after: Duration,
    disrupt: &(dyn Fn() -> Result<(), Outcome> + Sync),
    restore: &dyn Fn() -> Result<(), Outcome>,
) -> Result<Trial, Outcome> {
    dev.reset().must("RESET")?;
    t.restart().map_err(|e| Outcome::Fail(vec![e]))?;
    let started = AtomicBool::new(false);
    let mut done = Vec::new();
    let mut others = Vec::new();
    let (calls, disrupted) = std::thread::scope(|s| {
        let d = s.spawn(|| {
            while !started.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
            std::thread::sleep(after);
            disrupt()
        });
        let give_up = Instant::now() + Duration::from_secs(20);
        let mut k = 0u32;
        let r = loop {
            if Instant::now() > give_up {
                break Err("no call failed within 20 s of the change".to_string());
            }
            let tag = format!("call {k}");
            if let Err(e) = t.mark(&format!("{tag} begin")) {
                break Err(e);
            }
            started.store(true, Ordering::Release);
            let r = dev.enqueue(args);
            if let Err(e) = t.mark(&format!("{tag} end")) {
                break Err(e);
            }
            match r {
                Ok(first) => done.push(first),
                Err(e) if e.0 == ENODEV => break Ok(k),
                // The file is full: let the items run (they are quick) and go on.
                Err(e) if e.0 == EBUSY => {
                    if let Err(e) = dev.flush(Target::All) {
                        break Err(format!("FLUSH ALL: {e}"));
                    }
                }
                Err(e) => break Err(format!("ENQUEUE {k}: {e}")),
            }
            // Keep the results ring from filling up.
            match dev.drain_results() {
                Ok((res, 0)) => others.extend(res),
                Ok((_, dropped)) => break Err(format!("RESULTS dropped {dropped}")),
                Err(e) => break Err(format!("RESULTS: {e}")),
            }
            k += 1;
        };
        started.store(true, Ordering::Release);
        (r, d.join())
    });
    let restored = restore();
    let text = t.stop();
    match disrupted {
        Ok(r) => r?,
        Err(_) => return fail("the disrupting thread panicked"),
    }
    restored?;
    let failed = calls.map_err(|e| Outcome::Fail(vec![e]))?;
    let text = text.map_err(|e| Outcome::Fail(vec![e]))?;
    dev.flush(Target::All).must("FLUSH ALL")?;
    others.extend(drain(dev)?);
    let what = format!("{} calls succeeded before call {failed} failed", done.len());
    let expected: BTreeSet<u64> = done.iter().flat_map(|&f| ids(f, COUNT)).collect();
    let seen: BTreeSet<u64> = others.iter().map(|r| r.id).collect();
    let stray: Vec<u64> = seen.difference(&expected).copied().collect();
    c.check(stray.is_empty(), || {
        format!(
            "{what}: {} results of items of no call that succeeded (the failed call's ran), ids {:?}...",
            stray.len(),
            &stray[..stray.len().min(8)]
        )
    });
    c.check(seen.len() == others.len(), || {
        format!("{what}: {} results for {} ids", others.len(), seen.len())
    });
    c.eq(
        &format!("results of the calls that succeeded ({what})"),
        expected.intersection(&seen).count(),
        expected.len(),
    );
    let st = dev.stats().must("STATS")?;
    c.eq(
        &format!("STATS enqueued ({what})"),
        st.enqueued,
        done.len() as u64 * u64::from(COUNT),
    );
    c.eq(&format!("STATS pending ({what})"), st.pending, 0);
    for k in 0..failed {
        let n = queued_between(&text, &format!("call {k}"), queue);
        // A call that met EBUSY queued nothing; every other one all its items.
        c.check(n == u64::from(COUNT) || n == 0, || {
            format!("call {k} succeeded, the trace shows {n} of its {COUNT} items queued")
        });
    }
    let n = queued_between(&text, &format!("call {failed}"), queue);
    c.check(
        n < u64::from(COUNT) && n.is_multiple_of(u64::from(RUST_WQ_IRQ_BATCH)),
        || {
            format!(
                "call {failed} failed with ENODEV, and the trace shows {n} of its items queued \
                 (expected whole batches of {RUST_WQ_IRQ_BATCH}, fewer than {COUNT})"
            )
        },
    );
    Ok(Trial {
        done,
        queued_by_failed: n,
    })
}

/// Repeats [`trial`] until the middle of a call was hit, with the change started after 0, 0.2,
/// 0.4, ... 1.8 times the time one call takes (measured first), so that it lands in every
/// phase of the first two calls.
fn until_mid_call(
    c: &mut Checker,
    dev: &Device,
    args: EnqueueArgs,
    queue: &str,
    disrupt: &(dyn Fn() -> Result<(), Outcome> + Sync),
    restore: &dyn Fn() -> Result<(), Outcome>,
) -> TestResult {
    dev.reset().must("RESET")?;
    let t0 = Instant::now();
    dev.enqueue(args).must("ENQUEUE (to time one call)")?;
    let one = t0.elapsed();
    dev.flush(Target::All).must("FLUSH ALL")?;
    // One trace for every trial (emptied before each): resizing its buffer takes long.
    let filter = format!("workqueue == \"{queue}\"");
    let t = Trace::start_filtered_mono(&[("workqueue/workqueue_queue_work", filter.as_str())])
        .map_err(|e| Outcome::Fail(vec![format!("cannot trace: {e}")]))?;
    let mut seen = Vec::new();
    for i in 0..TRIALS {
        let after = one * (i % 10) / 5;
        let tr = trial(c, &t, dev, args, queue, after, disrupt, restore)?;
        seen.push(format!("{}+{}", tr.done.len(), tr.queued_by_failed));
        if !c.errs.is_empty() {
            break;
        }
        if tr.queued_by_failed > 0 {
            crate::diag(&format!(
                "one call {} us; trial {}: {} items of the failed call had been queued (calls that succeeded + items of the failed one, per trial: {})",
                one.as_micros(),
                i + 1,
                tr.queued_by_failed,
                seen.join(" ")
            ));
            return Ok(());
        }
    }
    if c.errs.is_empty() {
        c.fail(format!(
            "no trial of {TRIALS} failed in the middle of a call (calls that succeeded + items of the failed one, per trial: {})",
            seen.join(" ")
        ));
    }
    Ok(())
}

/// #97: a FROM_IRQ call pinned to a CPU that goes offline between two of its interrupts.
pub fn from_irq_offline_mid_call_runs_nothing(ctx: &Ctx) -> TestResult {
    let Some(n) = ctx
        .online
        .iter()
        .rev()
        .copied()
        .find(|&n| n > 0 && std::path::Path::new(&online_path(n)).exists())
    else {
        return crate::unavailable("hotplug", "no hot-pluggable online CPU N > 0");
    };
    let dev = ctx.open()?;
    let mut c = Checker::new();
    // The calls raise their interrupts on CPU 0, which stays online.
    crate::irq::pin_to(0)?;
    let path = online_path(n);
    let args = EnqueueArgs::new(RUST_WQ_Q_PERCPU, COUNT)
        .cpu(n)
        .from_irq(true);
    let disrupt = || write(&path, "0");
    let restore = || {
        write(&path, "1")?;
        let t = Instant::now();
        while dev
            .info()
            .map(|i| i.online_cpus & (1 << n) == 0)
            .unwrap_or(true)
        {
            if t.elapsed() > Duration::from_secs(5) {
                return fail(format!("cpu {n} not online 5 s after writing 1 to {path}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    };
    let r = until_mid_call(&mut c, &dev, args, "rust_wq_percpu", &disrupt, &restore);
    unpin();
    r?;
    c.done()
}

/// #59: a FROM_DEVICE_IRQ call while the edu device is unbound between two of its interrupts.
pub fn device_irq_unbind_mid_call_runs_nothing(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    bound_device(&dev)?;
    let addr = bound_address()?;
    let mut c = Checker::new();
    let args = EnqueueArgs::new(RUST_WQ_Q_UNBOUND, COUNT).from_device_irq(true);
    let disrupt = || sysfs_write("unbind", &addr);
    let restore = || {
        sysfs_write("bind", &addr)?;
        bound_device(&dev).map(drop)
    };
    until_mid_call(&mut c, &dev, args, "rust_wq_unbound", &disrupt, &restore)?;
    c.done()
}

fn online_path(n: u32) -> String {
    format!("/sys/devices/system/cpu/cpu{n}/online")
}

fn write(path: &str, v: &str) -> Result<(), Outcome> {
    std::fs::write(path, v).or_else(|e| fail(format!("write {v} to {path}: {e}")))
}

/// Lets the calling thread run on every CPU again.
fn unpin() {
    // SAFETY: a cpu_set_t with every CPU set is a valid set of the right size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for cpu in 0..libc::CPU_SETSIZE as usize {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}
