//! Helpers of the end-to-end tests: queues, ids, results, raw calls.

use crate::{fail, Checker, Ctx, Must, Outcome};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wqctl::abi::*;
use wqctl::parse::format_queue;
use wqctl::testing::RawBuf;
use wqctl::{format_results_table, Device, EnqueueArgs, Errno, Target};

pub use wqctl::testing::ALL_QUEUES;

/// A delay long enough that an item never runs by itself during a test.
pub const LONG_DELAY_US: u64 = 5_000_000;

pub fn ids(first: u64, count: u32) -> std::ops::Range<u64> {
    first..first + u64::from(count)
}

pub fn qn(q: u32) -> String {
    format_queue(q)
}

/// Reads all results of `dev`; a non-zero `dropped` is a failure.
pub fn drain(dev: &Device) -> Result<Vec<RustWqResult>, Outcome> {
    let (res, dropped) = dev.drain_results().must("RESULTS")?;
    if dropped != 0 {
        return fail(format!("RESULTS: expected dropped 0, seen {dropped}"));
    }
    Ok(res)
}

/// Checks that `res` holds exactly one result per id of `expected` and
/// nothing else; returns the results by id.
pub fn exactly(
    c: &mut Checker,
    what: &str,
    res: &[RustWqResult],
    expected: impl IntoIterator<Item = u64>,
) -> BTreeMap<u64, RustWqResult> {
    let expected: BTreeSet<u64> = expected.into_iter().collect();
    let errs_before = c.errs.len();
    let mut by_id = BTreeMap::new();
    for r in res {
        if by_id.insert(r.id, *r).is_some() {
            c.fail(format!("{what}: id {} has more than one result", r.id));
        }
        if !expected.contains(&r.id) {
            c.fail(format!(
                "{what}: unexpected result for id {} (expected ids {expected:?})",
                r.id
            ));
        }
    }
    let missing: Vec<u64> = expected
        .iter()
        .filter(|i| !by_id.contains_key(i))
        .copied()
        .collect();
    c.check(missing.is_empty(), || {
        format!(
            "{what}: expected one result for each of {} ids, missing {missing:?} ({} results seen)",
            expected.len(),
            res.len()
        )
    });
    if c.errs.len() > errs_before && res.len() <= 40 {
        for l in format_results_table(res).lines() {
            c.errs.push(format!("  {l}"));
        }
    }
    by_id
}

/// Polls RESULTS until `n` results arrived or `timeout` passed.  Each result
/// comes with the instant the RESULTS call that returned it had returned.
pub fn wait_results(
    dev: &Device,
    n: usize,
    timeout: Duration,
) -> Result<Vec<(RustWqResult, Instant)>, Outcome> {
    let start = Instant::now();
    let mut got = Vec::new();
    loop {
        let (res, dropped) = dev.results(64).must("RESULTS")?;
        let now = Instant::now();
        if dropped != 0 {
            return fail(format!("RESULTS: expected dropped 0, seen {dropped}"));
        }
        got.extend(res.into_iter().map(|r| (r, now)));
        if got.len() >= n || start.elapsed() > timeout {
            return Ok(got);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

pub fn flag_names(f: u32) -> String {
    wqctl::format_flags(f)
}

/// Issues `cmd` with a copy of `v` in a 512-byte buffer.
pub fn raw<T: Copy>(dev: &Device, cmd: u32, v: &T) -> Result<i32, Errno> {
    let mut b = RawBuf::with(v);
    // SAFETY: the buffer is 512 bytes, more than any size encoded in the
    // commands the tests use, and lives across the call.
    unsafe { dev.ioctl_raw(cmd, b.ptr()) }
}

pub const KERNEL_ADDR: usize = 0xffff_ffff_8100_0000;

pub fn enq(dev: &Device, a: EnqueueArgs, what: &str) -> Result<u64, Outcome> {
    let first = dev.enqueue(a).must(what)?;
    if first == 0 {
        return fail(format!("{what}: first_id is 0 (ids start at 1)"));
    }
    Ok(first)
}

/// One pending long-delayed item, for tests that need the kernel to reach
/// the id lookup (so that the errno can only come from argument checking).
pub fn one_pending(dev: &Device) -> Result<u64, Outcome> {
    enq(
        dev,
        EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).delay_us(LONG_DELAY_US),
        "ENQUEUE 1 item delayed 5s",
    )
}

pub fn valid_enqueue() -> RustWqEnqueue {
    EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1)
        .delay_us(LONG_DELAY_US)
        .to_raw()
}

/// Enqueues `n` items delayed 30 s on the unbound queue, in calls of at most
/// max_count.
pub fn fill_delayed(ctx: &Ctx, dev: &Device, mut n: u32) -> Result<(), Outcome> {
    let max_count = ctx.info.max_count.max(1);
    while n > 0 {
        let k = n.min(max_count);
        dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, k).delay_us(30_000_000))
            .must(&format!("ENQUEUE {k} delayed 30 s"))?;
        n -= k;
    }
    Ok(())
}

pub fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// The module-wide seq of a probe item run in `dev` (enqueued, flushed, read).
pub fn probe_seq(dev: &Device) -> Result<u64, Outcome> {
    let id = enq(dev, EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1), "ENQUEUE probe")?;
    dev.flush(Target::All).must("FLUSH ALL")?;
    let res = drain(dev)?;
    match res.iter().find(|r| r.id == id) {
        Some(r) => Ok(r.seq),
        None => fail(format!("probe id {id} has no result after FLUSH")),
    }
}

/// The delay of the items a close or CANCEL test leaves pending: long enough
/// that a close or CANCEL that waited for them is slower than
/// [`CLOSE_LIMIT`] by far, short enough that [`after_timers`] is cheap.
pub const PENDING_DELAY_US: u64 = 2_000_000;

/// A close of a file with items pending for [`PENDING_DELAY_US`] returns
/// within this (a correct one takes milliseconds; one that waited for the
/// timers at least the 2 s less the few ms since they were armed).
pub const CLOSE_LIMIT: Duration = Duration::from_millis(1_000);

/// Closes `dev`, whose pending items are delayed by [`PENDING_DELAY_US`],
/// and checks that the close took less than [`CLOSE_LIMIT`]: it cancels them
/// and does not wait for their delay.
pub fn closes_at_once(c: &mut Checker, dev: Device) {
    let t = Instant::now();
    drop(dev);
    let el = t.elapsed();
    c.check(el < CLOSE_LIMIT, || {
        format!(
            "close took {} ms (limit {} ms, items due {} ms after they were armed): it must cancel the pending items, not wait for them",
            el.as_millis(),
            CLOSE_LIMIT.as_millis(),
            PENDING_DELAY_US / 1000
        )
    });
}

/// The ordering point after every timer armed before this call by at most
/// `delay_us`: a sentinel item of `dev` delayed by `delay_us` + 1 s, whose
/// result is waited for (RESULTS every 20 ms, at most 30 s; never FLUSH,
/// which would fire it early).  Its timer expires after theirs, so an item
/// that should have been cancelled and still ran has run by then (it had a
/// 1 s head start): no timing window to miss it.  Returns the sentinel's
/// result; any other result read on the way is returned in `others`.
pub fn after_timers(
    dev: &Device,
    delay_us: u64,
    others: &mut Vec<RustWqResult>,
) -> Result<RustWqResult, Outcome> {
    sentinel(
        dev,
        EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).delay_us(delay_us + 1_000_000),
        others,
    )
}

/// Enqueues one item (`args`, count 1) and waits for its result without
/// FLUSH (see [`after_timers`]); other results read meanwhile go to `others`.
pub fn sentinel(
    dev: &Device,
    args: EnqueueArgs,
    others: &mut Vec<RustWqResult>,
) -> Result<RustWqResult, Outcome> {
    let delay_us = args.delay_us;
    let id = enq(dev, args, "ENQUEUE the sentinel")?;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(30) {
        for r in drain(dev)? {
            if r.id == id {
                return Ok(r);
            }
            others.push(r);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    fail(format!(
        "the sentinel (id {id}, delayed {} ms) left no result within 30 s",
        delay_us / 1000
    ))
}

/// Tracing through tracefs while this value lives: the events named
/// (`group/event`) enabled, the buffer cleared; dropped, it turns them off.
pub struct Trace {
    events: Vec<String>,
    /// Events given a filter (reset to none on drop).
    filtered: Vec<String>,
    /// The buffer size to restore on drop, when [`Trace::start_filtered`] grew it.
    old_kb: Option<String>,
    /// `trace_marker`, opened before tracing starts (so that a mark allocates nothing).
    marker: Option<std::fs::File>,
    /// The trace clock was set to `mono` (restored to `local` on drop).
    mono: bool,
}

impl Trace {
    const DIR: &'static str = "/sys/kernel/tracing";
    /// Per-CPU buffer of [`Trace::start_filtered`] (KiB).
    pub const BIG_KB: u64 = 8192;

    fn write(file: &str, v: &str) -> Result<(), String> {
        std::fs::write(format!("{}/{file}", Self::DIR), v)
            .map_err(|e| format!("write {v:?} to {}/{file}: {e}", Self::DIR))
    }

    /// Mounts tracefs if needed, clears the buffer, enables `events`, starts.
    pub fn start(events: &[&str]) -> Result<Trace, String> {
        Self::start_clock(events, false)
    }

    /// [`Trace::start`] with the trace clock `mono` (CLOCK_MONOTONIC, see
    /// [`mono_ns`]), so that [`TraceLine::ts_ns`] compares with this process's
    /// clock.
    pub fn start_mono(events: &[&str]) -> Result<Trace, String> {
        Self::start_clock(events, true)
    }

    /// [`Trace::start`] with a filter per event (`events/EVENT/filter` syntax,
    /// e.g. `common_pid == 42`); an empty filter records every instance. The
    /// per-CPU buffer is made at least [`Trace::BIG_KB`] for the trace's life.
    pub fn start_filtered(events: &[(&str, &str)]) -> Result<Trace, String> {
        Self::start_filtered_clock(events, false)
    }

    /// [`Trace::start_filtered`] with the trace clock `mono` (see [`Trace::start_mono`]).
    pub fn start_filtered_mono(events: &[(&str, &str)]) -> Result<Trace, String> {
        Self::start_filtered_clock(events, true)
    }

    fn start_filtered_clock(events: &[(&str, &str)], mono: bool) -> Result<Trace, String> {
        let names: Vec<&str> = events.iter().map(|(e, _)| *e).collect();
        let old_kb = std::fs::read_to_string(format!("{}/buffer_size_kb", Self::DIR))
            .map_err(|e| format!("read buffer_size_kb: {e}"))?;
        let old_kb = old_kb.split_whitespace().next().unwrap_or("").to_string();
        let grow = old_kb.parse::<u64>().map_or(true, |kb| kb < Self::BIG_KB);
        if grow {
            Self::write("buffer_size_kb", &Self::BIG_KB.to_string())?;
        }
        let mut filtered = Vec::new();
        for (e, f) in events {
            if !f.is_empty() {
                Self::write(&format!("events/{e}/filter"), f)?;
                filtered.push(e.to_string());
            }
        }
        let mut t = Self::start_clock(&names, mono);
        if let Ok(t) = &mut t {
            t.filtered = filtered;
            t.old_kb = grow.then_some(old_kb);
        } else {
            for e in &filtered {
                let _ = Self::write(&format!("events/{e}/filter"), "0");
            }
        }
        t
    }

    fn start_clock(events: &[&str], mono: bool) -> Result<Trace, String> {
        if !std::path::Path::new(&format!("{}/trace", Self::DIR)).exists() {
            let _ = std::process::Command::new("mount")
                .args(["-t", "tracefs", "nodev", Self::DIR])
                .status();
        }
        let t = Trace {
            events: events.iter().map(|e| e.to_string()).collect(),
            filtered: Vec::new(),
            old_kb: None,
            marker: std::fs::OpenOptions::new()
                .write(true)
                .open(format!("{}/trace_marker", Self::DIR))
                .ok(),
            mono,
        };
        Self::write("tracing_on", "0")?;
        if mono {
            Self::write("trace_clock", "mono")?;
        }
        Self::write("trace", "")?;
        for e in &t.events {
            Self::write(&format!("events/{e}/enable"), "1")?;
        }
        Self::write("tracing_on", "1")?;
        Ok(t)
    }

    /// Writes `text` into the trace (a `tracing_mark_write` line), through a file opened
    /// at the start: the write allocates nothing in the caller.
    pub fn mark(&self, text: &str) -> Result<(), String> {
        use std::io::Write;
        let mut f = self.marker.as_ref().ok_or("trace_marker is not open")?;
        f.write_all(text.as_bytes())
            .map_err(|e| format!("write to trace_marker: {e}"))
    }

    /// Empties the buffer and traces again (after [`Trace::stop`]), keeping the events, the
    /// filters and the buffer's size.
    pub fn restart(&self) -> Result<(), String> {
        Self::write("tracing_on", "0")?;
        Self::write("trace", "")?;
        Self::write("tracing_on", "1")
    }

    /// Stops tracing and returns the buffer's text (an error if events were lost).
    pub fn stop(&self) -> Result<String, String> {
        Self::write("tracing_on", "0")?;
        let text = std::fs::read_to_string(format!("{}/trace", Self::DIR))
            .map_err(|e| format!("read {}/trace: {e}", Self::DIR))?;
        if text.contains("LOST") {
            return Err("the trace buffer overflowed (LOST events)".into());
        }
        // "# entries-in-buffer/entries-written: 12/15": older events were overwritten.
        if let Some(v) = text
            .lines()
            .find_map(|l| l.strip_prefix("# entries-in-buffer/entries-written: "))
        {
            let kept = v.split_whitespace().next().unwrap_or("");
            if let Some((a, b)) = kept.split_once('/') {
                if a != b {
                    return Err(format!(
                        "the trace buffer overflowed ({a} of {b} events kept)"
                    ));
                }
            }
        }
        Ok(text)
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        let _ = Self::write("tracing_on", "0");
        for e in &self.events {
            let _ = Self::write(&format!("events/{e}/enable"), "0");
        }
        for e in &self.filtered {
            let _ = Self::write(&format!("events/{e}/filter"), "0");
        }
        if let Some(kb) = &self.old_kb {
            let _ = Self::write("buffer_size_kb", kb);
        }
        let _ = Self::write("trace", "");
        if self.mono {
            let _ = Self::write("trace_clock", "local");
        }
    }
}

/// CLOCK_MONOTONIC in nanoseconds (the trace clock `mono`).
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The calling thread's id (the pid column of its trace lines).
pub fn gettid() -> u32 {
    // SAFETY: no arguments.
    unsafe { libc::gettid() as u32 }
}

/// One line of a trace: the CPU, the hardirq/softirq column of the flags
/// (`h`, `s`, `H`, `.`...), the event name and the rest.
pub struct TraceLine<'a> {
    /// The task's pid (the interrupted task's in interrupt context).
    pub pid: u32,
    /// The timestamp, in ns of the trace clock (microsecond resolution).
    pub ts_ns: u64,
    pub cpu: u32,
    pub irq: char,
    pub event: &'a str,
    pub rest: &'a str,
}

/// The raw lines of `text` (a trace) between the marks `{tag} begin` and `{tag} end`
/// ([`Trace::mark`]), the marks left out; [`trace_line`] parses them.
pub fn marked_lines<'a>(text: &'a str, tag: &str) -> Vec<&'a str> {
    let (begin, end) = (format!("{tag} begin"), format!("{tag} end"));
    let mut inside = false;
    let mut out = Vec::new();
    for raw in text.lines() {
        match trace_line(raw) {
            Some(l) if l.event == "tracing_mark_write" && l.rest.trim() == begin => inside = true,
            Some(l) if l.event == "tracing_mark_write" && l.rest.trim() == end => inside = false,
            Some(_) if inside => out.push(raw),
            _ => {}
        }
    }
    out
}

/// A field `name=value` of a trace line's text.
pub fn field<'a>(rest: &'a str, name: &str) -> Option<&'a str> {
    rest.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
}

/// Parses `  task-pid  [001] d.h1.  12.345678: event: rest`.
pub fn trace_line(l: &str) -> Option<TraceLine<'_>> {
    let open = l.find("] ")?;
    let (task, cpu) = l[..open].rsplit_once('[')?;
    let cpu = cpu.parse().ok()?;
    let pid = task.trim_end().rsplit('-').next()?.parse().ok()?;
    let mut it = l[open + 2..].split_whitespace();
    let flags = it.next()?;
    let irq = flags.chars().nth(2)?;
    let (head, tail) = l.split_once(": ")?;
    let (s, us) = head.split_whitespace().last()?.split_once('.')?;
    let ts_ns = s.parse::<u64>().ok()? * 1_000_000_000 + us.parse::<u64>().ok()? * 1000;
    let (event, rest) = tail.split_once(": ")?;
    Some(TraceLine {
        pid,
        ts_ns,
        cpu,
        irq,
        event,
        rest,
    })
}

/// SIGUSR1 taken since the last [`CatchUsr1::install`] or [`CatchUsr1::reset`].
static USR1_TAKEN: AtomicU64 = AtomicU64::new(0);

extern "C" fn count_usr1(_: i32) {
    USR1_TAKEN.fetch_add(1, Ordering::SeqCst);
}

/// A SIGUSR1 handler that counts the signals, with `SA_RESTART` or without, installed for the
/// whole process until the guard is dropped, which restores the default action. The tests
/// that interrupt a waiting call send it to one thread (`pthread_kill`).
pub struct CatchUsr1(());

impl CatchUsr1 {
    pub fn install(restart: bool) -> CatchUsr1 {
        USR1_TAKEN.store(0, Ordering::SeqCst);
        // SAFETY: `sa` is a zeroed `sigaction` (no flags, an empty mask) given a handler that
        // only increments an atomic, which is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = count_usr1 as extern "C" fn(i32) as usize;
            sa.sa_flags = if restart { libc::SA_RESTART } else { 0 };
            libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
        }
        CatchUsr1(())
    }

    /// The signals the handler took since it was installed or reset.
    pub fn taken(&self) -> u64 {
        USR1_TAKEN.load(Ordering::SeqCst)
    }

    pub fn reset(&self) {
        USR1_TAKEN.store(0, Ordering::SeqCst);
    }
}

impl Drop for CatchUsr1 {
    fn drop(&mut self) {
        // SAFETY: back to the default action for SIGUSR1.
        unsafe { libc::signal(libc::SIGUSR1, libc::SIG_DFL) };
    }
}
