//! The end-to-end tests.  Each test opens its own file(s) of the device, so
//! that its work, results and counters start from zero.

use super::{fail, skip, unavailable, Checker, Ctx, Must, Outcome, TestFn, TestResult};
use libc::{EBUSY, EFAULT, EINVAL, ENODEV, ENOENT, ENOTTY};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::c_void;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use wqctl::abi::*;
use wqctl::parse::format_queue;
use wqctl::{format_results_table, BenchArgs, Device, EnqueueArgs, Errno, Target};

pub fn all() -> Vec<(&'static str, TestFn)> {
    let mut v: Vec<(&'static str, TestFn)> = vec![
        ("info", info),
        ("percpu_placement", percpu_placement),
        ("system_percpu_placement", system_percpu_placement),
        ("unbound_runs", unbound_runs),
        ("system_dfl_runs", system_dfl_runs),
        ("ordered_fifo", ordered_fifo),
        ("delay_never_early", delay_never_early),
        ("flush_waits", flush_waits),
        ("flush_by_id", flush_by_id),
        ("flush_by_queue", flush_by_queue),
        ("cancel_prevents_execution", cancel_prevents_execution),
        ("cancel_by_id", cancel_by_id),
        ("cancel_waits_for_running", cancel_waits_for_running),
        ("mod_delay", mod_delay),
        (
            "work_sleeps_in_process_context",
            work_sleeps_in_process_context,
        ),
        ("results_fifo_and_removal", results_fifo_and_removal),
        ("reset_clears", reset_clears),
        ("max_pending_ebusy", max_pending_ebusy),
        ("concurrent_8_threads", concurrent_8_threads),
        ("unknown_cmd_enotty", unknown_cmd_enotty),
        ("wrong_size_einval", wrong_size_einval),
        ("wrong_version_einval", wrong_version_einval),
        ("reserved_nonzero_einval", reserved_nonzero_einval),
        ("out_fields_ignored_on_input", out_fields_ignored_on_input),
        ("reserved_zeroed_on_output", reserved_zeroed_on_output),
        ("bad_pointer_efault", bad_pointer_efault),
        ("results_null_buf_einval", results_null_buf_einval),
        ("cpu_out_of_range_einval", cpu_out_of_range_einval),
        ("unknown_queue_einval", unknown_queue_einval),
        ("count_zero_einval", count_zero_einval),
        ("count_too_many_einval", count_too_many_einval),
        ("delay_too_long_einval", delay_too_long_einval),
        ("sleep_too_long_einval", sleep_too_long_einval),
        ("unknown_target_kind_einval", unknown_target_kind_einval),
        ("mod_delay_unknown_enoent", mod_delay_unknown_enoent),
        ("close_with_pending", close_with_pending),
        ("offline_cpu_enodev", offline_cpu_enodev),
        ("bench_runs", bench_runs),
        ("bench_bad_input_einval", bench_bad_input_einval),
        ("rmmod_refused_while_open", rmmod_refused_while_open),
        ("wrong_direction_einval", wrong_direction_einval),
        ("target_unused_field_einval", target_unused_field_einval),
        ("ebusy_partial_room", ebusy_partial_room),
        ("ebusy_counts_running", ebusy_counts_running),
        ("cancel_started_enoent_waits", cancel_started_enoent_waits),
        ("mod_delay_started_enoent", mod_delay_started_enoent),
        ("delay_zero_queues_at_once", delay_zero_queues_at_once),
        ("short_sleeps_round_up", short_sleeps_round_up),
        ("close_waits_for_running", close_waits_for_running),
        ("results_dropped_beyond_max", results_dropped_beyond_max),
        ("bench_one_at_a_time", bench_one_at_a_time),
    ];
    v.extend(super::irq::all());
    v
}

const ALL_QUEUES: [u32; 5] = [
    RUST_WQ_Q_PERCPU,
    RUST_WQ_Q_UNBOUND,
    RUST_WQ_Q_ORDERED,
    RUST_WQ_Q_SYSTEM_PERCPU,
    RUST_WQ_Q_SYSTEM_DFL,
];

/// A delay long enough that an item never runs by itself during a test.
const LONG_DELAY_US: u64 = 5_000_000;

fn ids(first: u64, count: u32) -> std::ops::Range<u64> {
    first..first + u64::from(count)
}

fn qn(q: u32) -> String {
    format_queue(q)
}

/// Reads all results of `dev`; a non-zero `dropped` is a failure.
fn drain(dev: &Device) -> Result<Vec<RustWqResult>, Outcome> {
    let (res, dropped) = dev.drain_results().must("RESULTS")?;
    if dropped != 0 {
        return fail(format!("RESULTS: expected dropped 0, seen {dropped}"));
    }
    Ok(res)
}

/// Checks that `res` holds exactly one result per id of `expected` and
/// nothing else; returns the results by id.
fn exactly(
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
fn wait_results(
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

fn flag_names(f: u32) -> String {
    wqctl::format_flags(f)
}

/// 512 bytes of 8-aligned memory for raw ioctls (larger than any size used).
#[repr(C, align(8))]
struct RawBuf([u8; 512]);

impl RawBuf {
    fn with<T: Copy>(v: &T) -> Box<RawBuf> {
        assert!(std::mem::size_of::<T>() <= 512);
        let mut b = Box::new(RawBuf([0; 512]));
        // SAFETY: T fits in the buffer; unaligned write of a Copy value.
        unsafe { std::ptr::write_unaligned(b.0.as_mut_ptr() as *mut T, *v) };
        b
    }
    fn ptr(&mut self) -> *mut c_void {
        self.0.as_mut_ptr() as *mut c_void
    }
}

/// Issues `cmd` with a copy of `v` in a 512-byte buffer.
fn raw<T: Copy>(dev: &Device, cmd: u32, v: &T) -> Result<i32, Errno> {
    let mut b = RawBuf::with(v);
    // SAFETY: the buffer is 512 bytes, more than any size encoded in the
    // commands the tests use, and lives across the call.
    unsafe { dev.ioctl_raw(cmd, b.ptr()) }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// Anonymous private mapping, unmapped on drop.
struct Pages {
    base: *mut u8,
    len: usize,
}

impl Pages {
    fn map(n: usize) -> Pages {
        let len = n * page_size();
        // SAFETY: anonymous mapping, no file or address hint.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(p != libc::MAP_FAILED, "mmap failed: {}", Errno::last());
        Pages {
            base: p as *mut u8,
            len,
        }
    }

    /// Unmaps the last page (so the mapping is followed by a hole).
    fn drop_last_page(&mut self) {
        let ps = page_size();
        assert!(self.len > ps);
        self.len -= ps;
        // SAFETY: the last page is part of our mapping and not referenced.
        unsafe { libc::munmap(self.base.add(self.len) as *mut c_void, ps) };
    }

    fn protect_read_only(&self) {
        // SAFETY: our mapping.
        let r = unsafe { libc::mprotect(self.base as *mut c_void, self.len, libc::PROT_READ) };
        assert_eq!(r, 0, "mprotect failed: {}", Errno::last());
    }

    fn write<T: Copy>(&self, offset: usize, v: &T) {
        assert!(offset + std::mem::size_of::<T>() <= self.len);
        // SAFETY: in bounds of our writable mapping.
        unsafe { std::ptr::write_unaligned(self.base.add(offset) as *mut T, *v) };
    }

    fn addr(&self, offset: usize) -> usize {
        self.base as usize + offset
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        // SAFETY: our mapping.
        unsafe { libc::munmap(self.base as *mut c_void, self.len) };
    }
}

/// An address that was mapped a moment ago and is not mapped any more.
fn unmapped_addr() -> usize {
    let p = Pages::map(1);
    let a = p.addr(0);
    drop(p);
    a
}

const KERNEL_ADDR: usize = 0xffff_ffff_8100_0000;

fn enq(dev: &Device, a: EnqueueArgs, what: &str) -> Result<u64, Outcome> {
    let first = dev.enqueue(a).must(what)?;
    if first == 0 {
        return fail(format!("{what}: first_id is 0 (ids start at 1)"));
    }
    Ok(first)
}

/// One pending long-delayed item, for tests that need the kernel to reach
/// the id lookup (so that the errno can only come from argument checking).
fn one_pending(dev: &Device) -> Result<u64, Outcome> {
    enq(
        dev,
        EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).delay_us(LONG_DELAY_US),
        "ENQUEUE 1 item delayed 5s",
    )
}

fn valid_enqueue() -> RustWqEnqueue {
    EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1)
        .delay_us(LONG_DELAY_US)
        .to_raw()
}

// ---------------------------------------------------------------------------

fn info(ctx: &Ctx) -> TestResult {
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
        reserved0: !0,
        reserved: [!0; 4],
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
    c.eq("reserved0 (zeroed on output)", i.reserved0, 0);
    c.eq("reserved (zeroed on output)", i.reserved, [0; 4]);
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

fn placement(ctx: &Ctx, queue: u32) -> TestResult {
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

fn percpu_placement(ctx: &Ctx) -> TestResult {
    placement(ctx, RUST_WQ_Q_PERCPU)
}

fn system_percpu_placement(ctx: &Ctx) -> TestResult {
    placement(ctx, RUST_WQ_Q_SYSTEM_PERCPU)
}

fn runs_on(ctx: &Ctx, queue: u32) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let first = enq(
        &dev,
        EnqueueArgs::new(queue, 4).sleep_us(100).tag(11),
        "ENQUEUE 4 cpu any",
    )?;
    let hint = *ctx.online.last().unwrap_or(&0);
    let pinned = enq(
        &dev,
        EnqueueArgs::new(queue, 1).cpu(hint).tag(12),
        &format!("ENQUEUE 1 cpu {hint}"),
    )?;
    let n = dev.flush(Target::All).must("FLUSH ALL")?;
    c.check(n <= 5, || {
        format!("FLUSH ALL count: expected <= 5, seen {n}")
    });
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
        c.check(r.seq >= 1, || format!("id {id}: seq 0 (seq starts at 1)"));
        // Only the four unpinned items were enqueued with sleep_us 100.
        c.check(*id == pinned || r.runtime_ns >= 100_000, || {
            format!("id {id}: runtime {} ns < sleep 100us", r.runtime_ns)
        });
    }
    c.stats("after flush", &dev, (5, 5, 0, 0));
    c.done()
}

fn unbound_runs(ctx: &Ctx) -> TestResult {
    runs_on(ctx, RUST_WQ_Q_UNBOUND)
}

fn system_dfl_runs(ctx: &Ctx) -> TestResult {
    runs_on(ctx, RUST_WQ_Q_SYSTEM_DFL)
}

fn ordered_fifo(ctx: &Ctx) -> TestResult {
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

fn delay_never_early(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let plan = [
        (10_000u64, RUST_WQ_Q_PERCPU),
        (30_000, RUST_WQ_Q_PERCPU),
        (50_000, RUST_WQ_Q_PERCPU),
        (20_000, RUST_WQ_Q_UNBOUND),
        (40_000, RUST_WQ_Q_SYSTEM_DFL),
        (25_000, RUST_WQ_Q_ORDERED),
        (15_000, RUST_WQ_Q_SYSTEM_PERCPU),
    ];
    let mut sent: HashMap<u64, (u64, Instant)> = HashMap::new();
    for (delay, q) in plan {
        let t0 = Instant::now();
        let id = enq(
            &dev,
            EnqueueArgs::new(q, 1).delay_us(delay),
            &format!("ENQUEUE {} delay {delay}us", qn(q)),
        )?;
        sent.insert(id, (delay, t0));
    }
    // No FLUSH here: it would fire the timers early.
    let got = wait_results(&dev, plan.len(), Duration::from_secs(5))?;
    let res: Vec<RustWqResult> = got.iter().map(|(r, _)| *r).collect();
    exactly(&mut c, "results within 5s", &res, sent.keys().copied());
    for (r, seen_at) in &got {
        if let Some(&(delay, t0)) = sent.get(&r.id) {
            c.check(r.latency_ns >= delay * 1000, || {
                format!(
                    "id {} ({}): delay {} us but latency_ns {} (early)",
                    r.id,
                    qn(r.queue),
                    delay,
                    r.latency_ns
                )
            });
            let wall = seen_at.duration_since(t0);
            c.check(wall >= Duration::from_micros(delay), || {
                format!("id {}: delay {delay} us but its result was visible {} us after the ENQUEUE call started", r.id, wall.as_micros())
            });
        }
    }
    c.done()
}

fn flush_waits(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let a = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_ORDERED, 4)
            .delay_us(LONG_DELAY_US)
            .sleep_us(20_000),
        "ENQUEUE 4 ordered",
    )?;
    let b = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 4)
            .delay_us(LONG_DELAY_US)
            .sleep_us(20_000),
        "ENQUEUE 4 unbound",
    )?;
    let t = Instant::now();
    let n = dev.flush(Target::All).must("FLUSH ALL")?;
    let el = t.elapsed();
    c.eq("FLUSH ALL count (all 8 delayed items were pending)", n, 8);
    c.check(el >= Duration::from_millis(80), || {
        format!(
            "FLUSH ALL returned after {} ms; 4 ordered items sleeping 20 ms each need >= 80 ms",
            el.as_millis()
        )
    });
    c.check(el < Duration::from_millis(4_500), || {
        format!(
            "FLUSH ALL took {} ms: the 5 s timers were not fired early",
            el.as_millis()
        )
    });
    // Immediately after FLUSH, every result must be there (no polling).
    let res = drain(&dev)?;
    let by_id = exactly(
        &mut c,
        "results right after FLUSH",
        &res,
        ids(a, 4).chain(ids(b, 4)),
    );
    for r in by_id.values() {
        c.check(r.runtime_ns >= 20_000_000, || {
            format!("id {}: runtime {} ns < sleep 20 ms", r.id, r.runtime_ns)
        });
        c.check(r.flags & RUST_WQ_RES_SLEPT != 0, || {
            format!("id {}: flags {} lack SLEPT", r.id, flag_names(r.flags))
        });
    }
    c.stats("after flush", &dev, (8, 8, 0, 0));
    c.eq(
        "second FLUSH ALL count",
        dev.flush(Target::All).must("FLUSH ALL")?,
        0,
    );
    c.done()
}

fn flush_by_id(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let a = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 3).delay_us(LONG_DELAY_US),
        "ENQUEUE 3 delayed 5s",
    )?;
    let t = Instant::now();
    c.eq(
        "FLUSH id (middle) count",
        dev.flush(Target::Id(a + 1)).must("FLUSH ID")?,
        1,
    );
    c.check(t.elapsed() < Duration::from_secs(4), || {
        "FLUSH ID did not fire the timer early".into()
    });
    let res = drain(&dev)?;
    exactly(&mut c, "results after FLUSH ID", &res, [a + 1]);
    c.stats("after FLUSH ID", &dev, (3, 1, 0, 2));
    c.eq(
        "FLUSH of the same id again (not pending) count",
        dev.flush(Target::Id(a + 1)).must("FLUSH ID again")?,
        0,
    );
    c.eq(
        "FLUSH of a never-used id count",
        dev.flush(Target::Id(a + 1000)).must("FLUSH unknown ID")?,
        0,
    );
    c.eq(
        "CANCEL ALL count (the other two)",
        dev.cancel(Target::All).must("CANCEL ALL")?,
        2,
    );
    let res = drain(&dev)?;
    exactly(&mut c, "results after CANCEL ALL", &res, []);
    c.stats("at end", &dev, (3, 1, 2, 0));
    c.done()
}

fn flush_by_queue(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let d = LONG_DELAY_US;
    let u = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 2).delay_us(d),
        "ENQUEUE 2 unbound",
    )?;
    enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_PERCPU, 2).delay_us(d),
        "ENQUEUE 2 percpu",
    )?;
    enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_ORDERED, 1).delay_us(d),
        "ENQUEUE 1 ordered",
    )?;
    c.eq(
        "FLUSH QUEUE unbound count",
        dev.flush(Target::Queue(RUST_WQ_Q_UNBOUND))
            .must("FLUSH QUEUE unbound")?,
        2,
    );
    let res = drain(&dev)?;
    exactly(&mut c, "results after FLUSH QUEUE unbound", &res, ids(u, 2));
    c.eq(
        "FLUSH QUEUE system-dfl (none there) count",
        dev.flush(Target::Queue(RUST_WQ_Q_SYSTEM_DFL))
            .must("FLUSH QUEUE system-dfl")?,
        0,
    );
    c.stats("after FLUSH QUEUE", &dev, (5, 2, 0, 3));
    c.eq(
        "CANCEL QUEUE percpu count",
        dev.cancel(Target::Queue(RUST_WQ_Q_PERCPU))
            .must("CANCEL QUEUE percpu")?,
        2,
    );
    c.eq(
        "CANCEL ALL count",
        dev.cancel(Target::All).must("CANCEL ALL")?,
        1,
    );
    exactly(&mut c, "results at end", &drain(&dev)?, []);
    c.stats("at end", &dev, (5, 2, 3, 0));
    c.done()
}

fn cancel_prevents_execution(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    for q in ALL_QUEUES {
        enq(
            &dev,
            EnqueueArgs::new(q, 2).delay_us(2_000_000),
            &format!("ENQUEUE 2 on {} delayed 2s", qn(q)),
        )?;
    }
    c.eq(
        "CANCEL ALL count",
        dev.cancel(Target::All).must("CANCEL ALL")?,
        10,
    );
    c.eq(
        "FLUSH ALL count after CANCEL ALL",
        dev.flush(Target::All).must("FLUSH ALL")?,
        0,
    );
    exactly(&mut c, "results after cancel", &drain(&dev)?, []);
    c.stats("after cancel", &dev, (10, 0, 10, 0));
    // Past the original delay: the cancelled items must still not have run.
    std::thread::sleep(Duration::from_millis(2_200));
    exactly(&mut c, "results 2.2 s later", &drain(&dev)?, []);
    c.stats("2.2 s later", &dev, (10, 0, 10, 0));
    c.done()
}

fn cancel_by_id(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let a = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_PERCPU, 3).delay_us(2_000_000),
        "ENQUEUE 3 delayed 2s",
    )?;
    c.eq(
        "CANCEL id (middle) count",
        dev.cancel(Target::Id(a + 1)).must("CANCEL ID")?,
        1,
    );
    c.errno(
        "second CANCEL of the same id",
        dev.cancel(Target::Id(a + 1)),
        ENOENT,
    );
    let b = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1),
        "ENQUEUE 1 immediate",
    )?;
    let n = dev
        .flush(Target::Id(b))
        .must("FLUSH ID of the immediate item")?;
    c.check(n <= 1, || {
        format!("FLUSH ID count: expected 0 or 1, seen {n}")
    });
    exactly(&mut c, "results after FLUSH ID", &drain(&dev)?, [b]);
    c.errno(
        "CANCEL of an id that ran",
        dev.cancel(Target::Id(b)),
        ENOENT,
    );
    c.errno(
        "CANCEL of an id never issued",
        dev.cancel(Target::Id(b + 1000)),
        ENOENT,
    );
    c.errno("CANCEL of id 0", dev.cancel(Target::Id(0)), ENOENT);
    c.eq(
        "FLUSH ALL count (the two others)",
        dev.flush(Target::All).must("FLUSH ALL")?,
        2,
    );
    exactly(&mut c, "results at end", &drain(&dev)?, [a, a + 2]);
    c.stats("at end", &dev, (4, 3, 1, 0));
    c.done()
}

/// CANCEL of a running item does not count it, and returns only after it has
/// finished.  The item must have started by the time CANCEL is called: if
/// CANCEL counts it as cancelled (it had not started), it must then never run,
/// and the test tries again with a longer wait; an item that never starts
/// within the waits fails the test.
fn cancel_waits_for_running(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    const SLEEP_MS: u64 = 300;
    let (mut enqueued, mut cancelled, mut ran) = (0u64, 0u64, 0u64);
    let waits = [100u64, 200, 400, 800];
    for wait_ms in waits {
        let t0 = Instant::now();
        let id = enq(
            &dev,
            EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).sleep_us(SLEEP_MS * 1000),
            "ENQUEUE 1 sleeping 300ms",
        )?;
        enqueued += 1;
        std::thread::sleep(Duration::from_millis(wait_ms));
        let called = t0.elapsed();
        let n = dev.cancel(Target::All).must("CANCEL ALL")?;
        let returned = t0.elapsed();
        if n == 1 {
            // Counted as cancelled: it had not started, so it must never run.
            cancelled += 1;
            std::thread::sleep(Duration::from_millis(SLEEP_MS + 100));
            exactly(
                &mut c,
                &format!("results of id {id}, which CANCEL ALL counted as cancelled"),
                &drain(&dev)?,
                [],
            );
            continue;
        }
        c.eq("CANCEL ALL count (the only item is running)", n, 0);
        // CANCEL waited for the running item, so its result is there at once.
        let by_id = exactly(
            &mut c,
            "results right after CANCEL ALL",
            &drain(&dev)?,
            [id],
        );
        ran += 1;
        if let Some(r) = by_id.get(&id) {
            // latency_ns counts from inside the ENQUEUE call, after t0.
            let started = Duration::from_nanos(r.latency_ns);
            let finished = Duration::from_nanos(r.latency_ns + r.runtime_ns);
            c.check(started < called, || {
                format!(
                    "CANCEL ALL returned 0 (running) but the item started {} ms after ENQUEUE, after CANCEL was called at {} ms",
                    started.as_millis(),
                    called.as_millis()
                )
            });
            c.check(finished <= returned, || {
                format!(
                    "CANCEL ALL returned {} ms after ENQUEUE, before the running item finished (at >= {} ms)",
                    returned.as_millis(),
                    finished.as_millis()
                )
            });
        }
        break;
    }
    c.check(ran == 1, || {
        format!(
            "the item never started before CANCEL: {cancelled} attempts with waits of {waits:?} ms all cancelled it"
        )
    });
    c.stats("at end", &dev, (enqueued, ran, cancelled, 0));
    c.done()
}

fn mod_delay(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();

    // Longer to shorter: 5 s -> 10 ms; must run well before 5 s.
    let id = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_PERCPU, 1)
            .delay_us(LONG_DELAY_US)
            .tag(1),
        "ENQUEUE delayed 5s",
    )?;
    let t_mod = Instant::now();
    dev.mod_delay(id, 10_000).must("MOD_DELAY 5s -> 10ms")?;
    let got = wait_results(&dev, 1, Duration::from_millis(2_500))?;
    match got.first() {
        None => c.fail(format!(
            "MOD_DELAY to 10 ms: id {id} had not run {} ms later (original delay 5 s)",
            t_mod.elapsed().as_millis()
        )),
        Some((r, at)) => {
            c.eq("result id", r.id, id);
            c.check(r.latency_ns < 4_000_000_000, || {
                format!("latency {} ns: ran at the old 5 s delay", r.latency_ns)
            });
            c.check(r.latency_ns >= 10_000_000, || {
                format!("latency {} ns < new delay 10 ms", r.latency_ns)
            });
            let wall = at.duration_since(t_mod);
            c.check(wall >= Duration::from_millis(10), || {
                format!(
                    "result visible {} us after MOD_DELAY 10 ms (early)",
                    wall.as_micros()
                )
            });
        }
    }

    // Shorter to longer: 10 ms -> 300 ms; must not run before 300 ms from the change.
    let mut attempt = 0;
    let (id2, t_mod2) = loop {
        attempt += 1;
        let initial = if attempt == 1 { 10_000 } else { 100_000 };
        let id2 = enq(
            &dev,
            EnqueueArgs::new(RUST_WQ_Q_PERCPU, 1)
                .delay_us(initial)
                .tag(2),
            "ENQUEUE delayed 10ms",
        )?;
        let t = Instant::now();
        match dev.mod_delay(id2, 300_000) {
            Ok(()) => break (id2, t),
            Err(e) if e.0 == ENOENT && attempt == 1 => {
                // Already ran (slow machine): it must then have a result.
                dev.flush(Target::All).must("FLUSH ALL")?;
                let res = drain(&dev)?;
                exactly(
                    &mut c,
                    "ENOENT from MOD_DELAY means it ran: results",
                    &res,
                    [id2],
                );
            }
            Err(e) => {
                return fail(format!(
                    "MOD_DELAY 10ms -> 300ms of pending id {id2}: expected success, got {e}"
                ))
            }
        }
    };
    std::thread::sleep(Duration::from_millis(150).saturating_sub(t_mod2.elapsed()));
    let (early, _) = dev.results(8).must("RESULTS")?;
    c.check(early.is_empty(), || {
        format!("id {id2} ran within 150 ms of MOD_DELAY to 300 ms: {early:?}")
    });
    c.eq(
        "stats.pending 150 ms after MOD_DELAY to 300 ms",
        dev.stats().must("STATS")?.pending,
        1,
    );
    let got = wait_results(&dev, 1, Duration::from_secs(3))?;
    match got.first() {
        None => c.fail(format!(
            "id {id2} had not run 3 s after MOD_DELAY to 300 ms"
        )),
        Some((r, at)) => {
            c.eq("result id", r.id, id2);
            c.check(r.latency_ns >= 300_000_000, || {
                format!(
                    "latency {} ns < 300 ms after MOD_DELAY 10ms -> 300ms",
                    r.latency_ns
                )
            });
            let wall = at.duration_since(t_mod2);
            c.check(wall >= Duration::from_millis(300), || {
                format!(
                    "result visible {} ms after MOD_DELAY to 300 ms (early)",
                    wall.as_millis()
                )
            });
        }
    }

    // Delay 0: runs at once.
    let id3 = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1)
            .delay_us(LONG_DELAY_US)
            .tag(3),
        "ENQUEUE delayed 5s",
    )?;
    dev.mod_delay(id3, 0).must("MOD_DELAY 5s -> 0")?;
    let got = wait_results(&dev, 1, Duration::from_millis(2_500))?;
    c.check(got.iter().any(|(r, _)| r.id == id3), || {
        format!("MOD_DELAY to 0: id {id3} had not run 2.5 s later")
    });
    c.errno(
        "MOD_DELAY of the id that ran",
        dev.mod_delay(id3, 1_000),
        ENOENT,
    );
    c.done()
}

fn work_sleeps_in_process_context(ctx: &Ctx) -> TestResult {
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

fn results_fifo_and_removal(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let a = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_ORDERED, 5),
        "ENQUEUE 5 ordered",
    )?;
    dev.flush(Target::All).must("FLUSH ALL")?;
    let (r1, d1) = dev.results(2).must("RESULTS capacity 2")?;
    c.eq(
        "RESULTS capacity 2: ids (oldest first)",
        r1.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![a, a + 1],
    );
    let (r2, d2) = dev.results(10).must("RESULTS capacity 10")?;
    c.eq(
        "RESULTS capacity 10: ids (the rest)",
        r2.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![a + 2, a + 3, a + 4],
    );
    let (r3, _) = dev.results(10).must("RESULTS again")?;
    c.eq("RESULTS after all were read: count", r3.len(), 0);
    c.eq("dropped", (d1, d2), (0, 0));
    let seqs: Vec<u64> = r1.iter().chain(&r2).map(|r| r.seq).collect();
    c.check(seqs.windows(2).all(|w| w[0] < w[1]), || {
        format!("seq not increasing in result order: {seqs:?}")
    });
    c.stats("at end", &dev, (5, 5, 0, 0));
    c.done()
}

fn reset_clears(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 3).delay_us(LONG_DELAY_US),
        "ENQUEUE 3 delayed",
    )?;
    enq(&dev, EnqueueArgs::new(RUST_WQ_Q_PERCPU, 2), "ENQUEUE 2")?;
    dev.flush(Target::Queue(RUST_WQ_Q_PERCPU))
        .must("FLUSH QUEUE percpu")?;
    c.stats("before RESET", &dev, (5, 2, 0, 3));
    dev.reset().must("RESET")?;
    c.stats("after RESET", &dev, (0, 0, 0, 0));
    exactly(&mut c, "results after RESET (dropped)", &drain(&dev)?, []);
    c.eq(
        "FLUSH ALL count after RESET",
        dev.flush(Target::All).must("FLUSH ALL")?,
        0,
    );
    let b = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1),
        "ENQUEUE after RESET",
    )?;
    dev.flush(Target::All).must("FLUSH ALL")?;
    exactly(
        &mut c,
        "results of the item enqueued after RESET",
        &drain(&dev)?,
        [b],
    );
    c.stats("at end", &dev, (1, 1, 0, 0));
    c.done()
}

fn max_pending_ebusy(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let (max_pending, max_count) = (ctx.info.max_pending, ctx.info.max_count.max(1));
    let mut left = max_pending;
    while left > 0 {
        let n = left.min(max_count);
        if let Err(e) = dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, n).delay_us(30_000_000)) {
            let pending = dev.stats().map(|s| s.pending).unwrap_or(0);
            let _ = dev.cancel(Target::All);
            return fail(format!("ENQUEUE {n} with {pending} pending (max_pending {max_pending}): expected success, got {e}"));
        }
        left -= n;
    }
    c.eq(
        "stats.pending when full",
        dev.stats().must("STATS")?.pending,
        u64::from(max_pending),
    );
    c.errno(
        "ENQUEUE 1 more with max_pending pending",
        dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1)),
        EBUSY,
    );
    c.errno(
        "ENQUEUE 1 more delayed",
        dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_PERCPU, 1).delay_us(1_000)),
        EBUSY,
    );
    c.eq(
        "CANCEL ALL count",
        dev.cancel(Target::All).must("CANCEL ALL")?,
        u64::from(max_pending),
    );
    c.ok(
        "ENQUEUE after CANCEL ALL",
        dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1)),
    );
    dev.flush(Target::All).must("FLUSH ALL")?;
    let m = u64::from(max_pending);
    c.stats("at end", &dev, (m + 1, 1, m, 0));
    c.done()
}

/// xorshift64*: deterministic per-thread randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// CANCEL or MOD_DELAY of `id` failed with ENOENT: reads every result now (an
/// item that had started has finished by then) and remembers how many results
/// had been read, so that a result of `id` arriving later can be caught.
fn not_pending(
    dev: &Device,
    t: u64,
    id: u64,
    results: &mut Vec<RustWqResult>,
    seen: &mut HashSet<u64>,
    enoent: &mut HashMap<u64, usize>,
    errs: &mut Vec<String>,
) {
    match dev.drain_results() {
        Ok((r, dropped)) => {
            if dropped != 0 {
                errs.push(format!("thread {t}: RESULTS dropped {dropped}"));
            }
            for x in &r {
                seen.insert(x.id);
            }
            results.extend(r);
        }
        Err(e) => errs.push(format!("thread {t}: RESULTS: {e}")),
    }
    enoent.entry(id).or_insert(results.len());
}

fn concurrent_worker(
    path: &str,
    t: u64,
    online: &[u32],
    barrier: &Barrier,
) -> Result<Vec<RustWqResult>, Vec<String>> {
    let mut errs = Vec::new();
    let dev = match Device::open(path) {
        Ok(d) => d,
        Err(e) => {
            barrier.wait();
            return Err(vec![format!("thread {t}: open: {e}")]);
        }
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t + 1).wrapping_mul(0x1234_5678_9abc_def1));
    let mut known: HashMap<u64, (u64, u32)> = HashMap::new(); // id -> (tag, queue)
    let mut order: Vec<u64> = Vec::new();
    let mut cancelled: HashSet<u64> = HashSet::new();
    let mut cancelled_all = 0u64;
    let mut results: Vec<RustWqResult> = Vec::new();
    let mut seen: HashSet<u64> = HashSet::new();
    // id -> number of results read when CANCEL/MOD_DELAY said ENOENT for it.
    let mut enoent: HashMap<u64, usize> = HashMap::new();
    barrier.wait();
    for op in 0..30u64 {
        let tag = t * 1_000_000 + op;
        match rng.below(9) {
            0..=2 => {
                let q = ALL_QUEUES[rng.below(5) as usize];
                let cpu = if rng.below(2) == 0 {
                    RUST_WQ_CPU_ANY
                } else {
                    online[rng.below(online.len() as u64) as usize]
                };
                let n = 1 + rng.below(4) as u32;
                let mut a = EnqueueArgs::new(q, n)
                    .cpu(cpu)
                    .sleep_us(rng.below(300))
                    .tag(tag);
                if rng.below(2) == 0 {
                    a = a.delay_us(1_000 + rng.below(20_000));
                }
                match dev.enqueue(a) {
                    Ok(first) => {
                        if order.is_empty() && first != 1 {
                            errs.push(format!("thread {t}: first ENQUEUE of a fresh file returned first_id {first}, expected 1"));
                        }
                        for id in ids(first, n) {
                            if known.insert(id, (tag, q)).is_some() {
                                errs.push(format!(
                                    "thread {t}: id {id} was returned by two ENQUEUE calls"
                                ));
                            }
                            order.push(id);
                        }
                    }
                    Err(e) => errs.push(format!("thread {t}: ENQUEUE {a:?}: {e}")),
                }
            }
            3 => {
                if let Err(e) = dev.flush(Target::All) {
                    errs.push(format!("thread {t}: FLUSH ALL: {e}"));
                }
            }
            4 => {
                if order.is_empty() {
                    continue;
                }
                let id = order[rng.below(order.len() as u64) as usize];
                let done = seen.contains(&id) || cancelled.contains(&id);
                match dev.cancel(Target::Id(id)) {
                    Ok(1) if !done => {
                        cancelled.insert(id);
                    }
                    // The header: CANCEL by id of an item that is not pending fails with
                    // ENOENT; success means it was cancelled (count 1).
                    Ok(n) => errs.push(format!(
                        "thread {t}: CANCEL id {id} returned count {n}, expected 1 or ENOENT (already ran or cancelled: {done})"
                    )),
                    Err(e) if e.0 == ENOENT => {
                        not_pending(&dev, t, id, &mut results, &mut seen, &mut enoent, &mut errs)
                    }
                    Err(e) => errs.push(format!("thread {t}: CANCEL id {id}: {e}")),
                }
            }
            5 => {
                if order.is_empty() {
                    continue;
                }
                let id = order[rng.below(order.len() as u64) as usize];
                let done = seen.contains(&id) || cancelled.contains(&id);
                match dev.mod_delay(id, rng.below(20_000)) {
                    Ok(()) if done => errs.push(format!(
                        "thread {t}: MOD_DELAY id {id} succeeded but it already ran or was cancelled (expected ENOENT)"
                    )),
                    Ok(()) => {}
                    Err(e) if e.0 == ENOENT => {
                        // MOD_DELAY does not wait for an item that has started (header): wait
                        // for it here, so that "not pending" means "finished" as for CANCEL.
                        if let Err(e) = dev.flush(Target::Id(id)) {
                            errs.push(format!("thread {t}: FLUSH id {id}: {e}"));
                        }
                        not_pending(&dev, t, id, &mut results, &mut seen, &mut enoent, &mut errs)
                    }
                    Err(e) => errs.push(format!("thread {t}: MOD_DELAY id {id}: {e}")),
                }
            }
            6 => match dev.results(1 + rng.below(8) as u32) {
                Ok((r, dropped)) => {
                    if dropped != 0 {
                        errs.push(format!("thread {t}: RESULTS dropped {dropped}"));
                    }
                    for x in &r {
                        seen.insert(x.id);
                    }
                    results.extend(r);
                }
                Err(e) => errs.push(format!("thread {t}: RESULTS: {e}")),
            },
            7 => {
                if rng.below(3) == 0 {
                    match dev.cancel(Target::All) {
                        Ok(n) => cancelled_all += n,
                        Err(e) => errs.push(format!("thread {t}: CANCEL ALL: {e}")),
                    }
                } else if let Err(e) = dev.flush(Target::Queue(ALL_QUEUES[rng.below(5) as usize])) {
                    errs.push(format!("thread {t}: FLUSH QUEUE: {e}"));
                }
            }
            _ => std::thread::sleep(Duration::from_micros(rng.below(2_000))),
        }
    }
    if let Err(e) = dev.flush(Target::All) {
        errs.push(format!("thread {t}: final FLUSH ALL: {e}"));
    }
    match dev.drain_results() {
        Ok((r, dropped)) => {
            if dropped != 0 {
                errs.push(format!("thread {t}: RESULTS dropped {dropped}"));
            }
            results.extend(r);
        }
        Err(e) => errs.push(format!("thread {t}: RESULTS: {e}")),
    }
    // ENOENT meant "not pending": it had run (and finished: its result was
    // readable right away) or was cancelled; it must never run afterwards.
    for (i, r) in results.iter().enumerate() {
        if let Some(&at) = enoent.get(&r.id) {
            if i >= at {
                errs.push(format!(
                    "thread {t}: CANCEL/MOD_DELAY of id {} failed with ENOENT, but its result arrived only later: it was pending, or the call returned before it finished",
                    r.id
                ));
            }
        }
    }
    // Every id accounted for exactly once.
    let mut ran: HashSet<u64> = HashSet::new();
    for r in &results {
        if !ran.insert(r.id) {
            errs.push(format!("thread {t}: id {} has two results", r.id));
        }
        match known.get(&r.id) {
            None => errs.push(format!(
                "thread {t}: result for id {} that this file never enqueued",
                r.id
            )),
            Some(&(tag, q)) => {
                if r.tag != tag || r.queue != q {
                    errs.push(format!(
                        "thread {t}: id {}: result tag/queue {}/{} but enqueued with {tag}/{q}",
                        r.id, r.tag, r.queue
                    ));
                }
            }
        }
        if cancelled.contains(&r.id) {
            errs.push(format!(
                "thread {t}: id {} was cancelled (CANCEL returned 1) but ran",
                r.id
            ));
        }
    }
    let total = known.len() as u64;
    let accounted = ran.len() as u64 + cancelled.len() as u64 + cancelled_all;
    if accounted != total {
        errs.push(format!(
            "thread {t}: {total} ids enqueued but {} ran + {} cancelled by id + {cancelled_all} by CANCEL ALL = {accounted}",
            ran.len(),
            cancelled.len()
        ));
    }
    match dev.stats() {
        Ok(s) => {
            let want = (
                total,
                ran.len() as u64,
                cancelled.len() as u64 + cancelled_all,
                0,
                0,
            );
            let got = (
                s.enqueued,
                s.executed,
                s.cancelled,
                s.pending,
                s.results_dropped,
            );
            if want != got {
                errs.push(format!(
                    "thread {t}: stats (enqueued, executed, cancelled, pending, dropped): userspace saw {want:?}, kernel says {got:?}"
                ));
            }
        }
        Err(e) => errs.push(format!("thread {t}: STATS: {e}")),
    }
    if errs.is_empty() {
        Ok(results)
    } else {
        Err(errs)
    }
}

fn concurrent_8_threads(ctx: &Ctx) -> TestResult {
    const THREADS: u64 = 8;
    let barrier = Arc::new(Barrier::new(THREADS as usize));
    let online: Arc<Vec<u32>> = Arc::new(if ctx.online.is_empty() {
        vec![0]
    } else {
        ctx.online.clone()
    });
    let mut handles = Vec::new();
    for t in 0..THREADS {
        let (path, b, on) = (ctx.path.clone(), barrier.clone(), online.clone());
        handles.push(std::thread::spawn(move || {
            concurrent_worker(&path, t, &on, &b)
        }));
    }
    let mut c = Checker::new();
    let mut seqs: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut total = 0;
    for (t, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(Ok(res)) => {
                total += res.len();
                for r in res {
                    if let Some((t2, id2)) = seqs.insert(r.seq, (t as u64, r.id)) {
                        c.fail(format!(
                            "seq {} used twice: thread {t2} id {id2} and thread {t} id {}",
                            r.seq, r.id
                        ));
                    }
                }
            }
            Ok(Err(errs)) => c.errs.extend(errs),
            Err(p) => c.fail(format!(
                "thread {t} panicked: {}",
                super::panic_message(&*p)
            )),
        }
    }
    c.check(total > 0, || "no item ran in any thread".into());
    c.done()
}

// ----------------------------------------------------------------- bad input

fn unknown_cmd_enotty(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let e = valid_enqueue();
    let cmds: [(&str, u32); 8] = [
        ("_IOR(0xBD, 0, info)", ior::<RustWqInfo>(0xBD, 0)),
        ("_IOWR(0xBD, 1, enqueue)", iowr::<RustWqEnqueue>(0xBD, 1)),
        ("_IOWR(0x00, 1, enqueue)", iowr::<RustWqEnqueue>(0x00, 1)),
        ("_IO(0xBD, 7)", io(0xBD, 7)),
        ("_IO(0xBC, 0x09)", io(RUST_WQ_IOC_MAGIC, 0x09)),
        (
            "_IOWR(0xBC, 0x09, enqueue)",
            iowr::<RustWqEnqueue>(RUST_WQ_IOC_MAGIC, 0x09),
        ),
        (
            "_IOR(0xBC, 0x7f, info)",
            ior::<RustWqInfo>(RUST_WQ_IOC_MAGIC, 0x7f),
        ),
        (
            "_IOWR(0xBC, 0xff, 64 bytes)",
            iowr::<[u8; 64]>(RUST_WQ_IOC_MAGIC, 0xff),
        ),
    ];
    for (name, cmd) in cmds {
        c.errno(&format!("{name} = {cmd:#x}"), raw(&dev, cmd, &e), ENOTTY);
    }
    c.stats("nothing was enqueued", &dev, (0, 0, 0, 0));
    c.done()
}

fn wrong_size_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let pending = one_pending(&dev)?;
    // A valid argument for each command, so that ignoring the size would succeed.
    let mut args: HashMap<u32, Box<RawBuf>> = HashMap::new();
    args.insert(RUST_WQ_IOC_INFO, RawBuf::with(&RustWqInfo::default()));
    args.insert(RUST_WQ_IOC_ENQUEUE, RawBuf::with(&valid_enqueue()));
    args.insert(
        RUST_WQ_IOC_FLUSH,
        RawBuf::with(&Target::Id(pending).to_raw()),
    );
    args.insert(
        RUST_WQ_IOC_CANCEL,
        RawBuf::with(&Target::Id(pending).to_raw()),
    );
    let md = RustWqModDelay {
        version: RUST_WQ_ABI_VERSION,
        id: pending,
        delay_us: LONG_DELAY_US,
        ..Default::default()
    };
    args.insert(RUST_WQ_IOC_MOD_DELAY, RawBuf::with(&md));
    args.insert(
        RUST_WQ_IOC_RESULTS,
        RawBuf::with(&RustWqResults {
            version: RUST_WQ_ABI_VERSION,
            ..Default::default()
        }),
    );
    args.insert(RUST_WQ_IOC_STATS, RawBuf::with(&RustWqStats::default()));
    args.insert(RUST_WQ_IOC_RESET, RawBuf::with(&0u64));
    args.insert(
        RUST_WQ_IOC_BENCH,
        RawBuf::with(&RustWqBench {
            version: RUST_WQ_ABI_VERSION,
            path: RUST_WQ_BENCH_PERCPU,
            items: 1,
            ..Default::default()
        }),
    );
    for (name, cmd) in ALL_IOCTLS {
        let size = ioc_size(cmd);
        let (dir, nr) = (ioc_dir(cmd), ioc_nr(cmd));
        let mut wrong: Vec<(u32, usize)> = vec![(dir, size + 8), (dir, size + 1)];
        if size >= 8 {
            wrong.push((dir, size - 8));
            wrong.push((dir, 0));
        } else {
            wrong.push((IOC_WRITE, 8));
        }
        for (d, s) in wrong {
            let bad = ioc(d, RUST_WQ_IOC_MAGIC, nr, s);
            let buf = args.get_mut(&cmd).expect("argument for every command");
            // SAFETY: 512-byte buffer, larger than any size used here.
            let r = unsafe { dev.ioctl_raw(bad, buf.ptr()) };
            c.errno(
                &format!("{name} with size {s} instead of {size} ({bad:#x})"),
                r,
                EINVAL,
            );
        }
    }
    c.stats("only the one pending item exists", &dev, (1, 0, 0, 1));
    c.done()
}

fn wrong_version_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let pending = one_pending(&dev)?;
    let mut buf = [RustWqResult::default(); 4];
    for v in [0u32, RUST_WQ_ABI_VERSION + 1, u32::MAX] {
        let mut e = valid_enqueue();
        e.version = v;
        c.errno(
            &format!("ENQUEUE version {v}"),
            raw(&dev, RUST_WQ_IOC_ENQUEUE, &e),
            EINVAL,
        );
        let mut t = Target::Id(pending).to_raw();
        t.version = v;
        c.errno(
            &format!("FLUSH version {v}"),
            raw(&dev, RUST_WQ_IOC_FLUSH, &t),
            EINVAL,
        );
        c.errno(
            &format!("CANCEL version {v}"),
            raw(&dev, RUST_WQ_IOC_CANCEL, &t),
            EINVAL,
        );
        let mut t = Target::All.to_raw();
        t.version = v;
        c.errno(
            &format!("CANCEL ALL version {v}"),
            raw(&dev, RUST_WQ_IOC_CANCEL, &t),
            EINVAL,
        );
        let md = RustWqModDelay {
            version: v,
            id: pending,
            delay_us: 1_000,
            ..Default::default()
        };
        c.errno(
            &format!("MOD_DELAY version {v}"),
            raw(&dev, RUST_WQ_IOC_MOD_DELAY, &md),
            EINVAL,
        );
        let rs = RustWqResults {
            version: v,
            capacity: 4,
            buf: buf.as_mut_ptr() as u64,
            ..Default::default()
        };
        c.errno(
            &format!("RESULTS version {v}"),
            raw(&dev, RUST_WQ_IOC_RESULTS, &rs),
            EINVAL,
        );
    }
    c.stats(
        "only the one pending item exists, untouched",
        &dev,
        (1, 0, 0, 1),
    );
    c.done()
}

fn reserved_nonzero_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let pending = one_pending(&dev)?;
    let mut buf = [RustWqResult::default(); 4];
    for (i, val) in [(0usize, 1u64), (1, 1 << 63)] {
        let mut e = valid_enqueue();
        // ENQUEUE's reserved[0] became `flags` (see irq.rs): set the last word.
        e.reserved[i.min(e.reserved.len() - 1)] = val;
        c.errno(
            &format!("ENQUEUE reserved[{i}]={val:#x}"),
            raw(&dev, RUST_WQ_IOC_ENQUEUE, &e),
            EINVAL,
        );
        let mut t = Target::Id(pending).to_raw();
        t.reserved[i] = val;
        c.errno(
            &format!("FLUSH reserved[{i}]"),
            raw(&dev, RUST_WQ_IOC_FLUSH, &t),
            EINVAL,
        );
        c.errno(
            &format!("CANCEL reserved[{i}]"),
            raw(&dev, RUST_WQ_IOC_CANCEL, &t),
            EINVAL,
        );
        let mut md = RustWqModDelay {
            version: RUST_WQ_ABI_VERSION,
            id: pending,
            delay_us: 1_000,
            ..Default::default()
        };
        md.reserved[i] = val;
        c.errno(
            &format!("MOD_DELAY reserved[{i}]"),
            raw(&dev, RUST_WQ_IOC_MOD_DELAY, &md),
            EINVAL,
        );
        let mut rs = RustWqResults {
            version: RUST_WQ_ABI_VERSION,
            capacity: 4,
            buf: buf.as_mut_ptr() as u64,
            ..Default::default()
        };
        rs.reserved[i] = val;
        c.errno(
            &format!("RESULTS reserved[{i}]"),
            raw(&dev, RUST_WQ_IOC_RESULTS, &rs),
            EINVAL,
        );
    }
    let mut t = Target::Id(pending).to_raw();
    t.pad = 1;
    c.errno("FLUSH pad=1", raw(&dev, RUST_WQ_IOC_FLUSH, &t), EINVAL);
    c.errno("CANCEL pad=1", raw(&dev, RUST_WQ_IOC_CANCEL, &t), EINVAL);
    let md = RustWqModDelay {
        version: RUST_WQ_ABI_VERSION,
        pad: 1,
        id: pending,
        delay_us: 1_000,
        ..Default::default()
    };
    c.errno(
        "MOD_DELAY pad=1",
        raw(&dev, RUST_WQ_IOC_MOD_DELAY, &md),
        EINVAL,
    );
    let rs = RustWqResults {
        version: RUST_WQ_ABI_VERSION,
        capacity: 4,
        buf: buf.as_mut_ptr() as u64,
        pad: 1,
        ..Default::default()
    };
    c.errno("RESULTS pad=1", raw(&dev, RUST_WQ_IOC_RESULTS, &rs), EINVAL);
    c.stats(
        "only the one pending item exists, untouched",
        &dev,
        (1, 0, 0, 1),
    );
    c.done()
}

fn out_fields_ignored_on_input(ctx: &Ctx) -> TestResult {
    // The header makes only version and reserved/pad fields input-checked
    // ("every reserved/pad field must be zero on input (else EINVAL)"); its
    // EINVAL list has no entry for out fields, so garbage there is accepted.
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let mut e = EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).to_raw();
    e.first_id = 0xdead_beef;
    let r = c.ok("ENQUEUE with garbage in first_id (an out field; the header's EINVAL list does not cover it)", dev.enqueue_raw(e));
    let mut t = Target::All.to_raw();
    t.count = 12345;
    if let Some(t) = c.ok("FLUSH ALL with garbage in count (out)", dev.flush_raw(t)) {
        c.check(t.count <= 1, || {
            format!("FLUSH ALL count: expected 0 or 1, seen {}", t.count)
        });
        c.eq("FLUSH out: reserved", t.reserved, [0, 0]);
    }
    let mut buf = [RustWqResult::default(); 4];
    let mut rs = RustWqResults {
        version: RUST_WQ_ABI_VERSION,
        capacity: 4,
        buf: buf.as_mut_ptr() as u64,
        count: 77,
        dropped: 88,
        ..Default::default()
    };
    c.ok(
        "RESULTS with garbage in count/dropped (out)",
        dev.ioctl_with(RUST_WQ_IOC_RESULTS, &mut rs),
    );
    c.eq("RESULTS count", rs.count, 1);
    c.eq("RESULTS dropped", rs.dropped, 0);
    if let Some(e) = r {
        c.eq("result id", buf[0].id, e.first_id);
    }
    if let Some(e) = r {
        c.eq("ENQUEUE out: reserved", e.reserved, [0]);
        c.eq("ENQUEUE out: flags unchanged", e.flags, 0);
    }
    // CANCEL: nothing is pending (the item ran), so the count is 0 whatever
    // the input said.
    let mut t = Target::All.to_raw();
    t.count = 999;
    if let Some(t) = c.ok("CANCEL ALL with garbage in count (out)", dev.cancel_raw(t)) {
        c.eq("CANCEL ALL count (nothing pending)", t.count, 0);
        c.eq("CANCEL out: pad/reserved", (t.pad, t.reserved), (0, [0, 0]));
    }
    // CANCEL of one pending item with garbage in count: count 1.
    let id = one_pending(&dev)?;
    let mut t = Target::Id(id).to_raw();
    t.count = 0xdead;
    if let Some(t) = c.ok("CANCEL id with garbage in count (out)", dev.cancel_raw(t)) {
        c.eq("CANCEL id count", t.count, 1);
    }
    // BENCH: every out field holds garbage on input.
    let b = RustWqBench {
        version: RUST_WQ_ABI_VERSION,
        path: RUST_WQ_BENCH_PERCPU,
        threads: 1,
        items: 10,
        flags: 0,
        threads_run: 77,
        elapsed_ns: !0,
        items_per_sec: !0,
        queue_p50_ns: 1,
        queue_p90_ns: 2,
        queue_p95_ns: 3,
        start_p50_ns: !0,
        start_p90_ns: !0,
        start_p95_ns: !0,
        op: RUST_WQ_BENCH_OP_RT,
        pad: 0,
        queue_p99_ns: 4,
        reserved: [0; 2],
    };
    if let Some(o) = c.ok("BENCH with garbage in its out fields", dev.bench_raw(b)) {
        c.eq("BENCH threads_run", o.threads_run, 1);
        c.check(o.elapsed_ns != !0 && o.items_per_sec != !0, || {
            format!(
                "BENCH elapsed_ns {} items_per_sec {}: the input garbage was kept",
                o.elapsed_ns, o.items_per_sec
            )
        });
        c.eq(
            "BENCH start_p* (not measured without the flag: 0)",
            (o.start_p50_ns, o.start_p90_ns, o.start_p95_ns),
            (0, 0, 0),
        );
        c.eq(
            "BENCH in fields unchanged on output",
            (o.version, o.path, o.threads, o.items, o.flags),
            (b.version, b.path, b.threads, b.items, b.flags),
        );
        c.eq("BENCH out: reserved", o.reserved, [0; 2]);
    }
    c.stats("at end", &dev, (2, 1, 1, 0));
    c.done()
}

fn reserved_zeroed_on_output(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let id = enq(&dev, EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1), "ENQUEUE")?;
    dev.flush(Target::All).must("FLUSH ALL")?;
    let mut s = RustWqStats {
        reserved: [!0; 3],
        ..Default::default()
    };
    dev.ioctl_with(RUST_WQ_IOC_STATS, &mut s).must("STATS")?;
    c.eq("STATS reserved", s.reserved, [0; 3]);
    c.eq("STATS executed", s.executed, 1);
    let garbage = RustWqResult {
        id: !0,
        tag: !0,
        seq: !0,
        latency_ns: !0,
        runtime_ns: !0,
        requested_cpu: !0 - 1,
        cpu: !0,
        queue: !0,
        flags: !0,
        reserved: !0,
    };
    let mut buf = [garbage; 2];
    let mut rs = RustWqResults {
        version: RUST_WQ_ABI_VERSION,
        capacity: 2,
        buf: buf.as_mut_ptr() as u64,
        ..Default::default()
    };
    dev.ioctl_with(RUST_WQ_IOC_RESULTS, &mut rs)
        .must("RESULTS")?;
    c.eq("RESULTS count", rs.count, 1);
    c.eq("result id", buf[0].id, id);
    c.eq("result reserved (zeroed on output)", buf[0].reserved, 0);
    c.eq(
        "result requested_cpu",
        buf[0].requested_cpu,
        RUST_WQ_CPU_ANY,
    );
    c.check(
        buf[0].flags & !(RUST_WQ_RES_PROCESS_CTX | RUST_WQ_RES_SLEPT | RUST_WQ_RES_FROM_TASK) == 0,
        || format!("result flags {:#x} has undefined bits", buf[0].flags),
    );
    c.eq(
        "second buffer entry untouched (count was 1)",
        buf[1],
        garbage,
    );
    c.eq(
        "RESULTS out: pad/reserved",
        (rs.pad, rs.reserved),
        (0, [0, 0]),
    );
    c.done()
}

fn bad_pointer_efault(ctx: &Ctx) -> TestResult {
    let mut c = Checker::new();
    let dev = ctx.open()?;
    let ps = page_size();
    // A struct that starts 8 bytes before the end of a mapping.
    let mut straddle = Pages::map(2);
    straddle.drop_last_page();
    let unmapped = unmapped_addr();
    let addrs: [(&str, usize); 4] = [
        ("NULL", 0),
        ("an unmapped page", unmapped),
        ("a kernel address", KERNEL_ADDR),
        (
            "a struct crossing into an unmapped page",
            straddle.addr(ps - 8),
        ),
    ];
    one_pending(&dev)?;
    for (what, addr) in addrs {
        for (name, cmd) in ALL_IOCTLS {
            if cmd == RUST_WQ_IOC_RESET {
                continue;
            }
            if addr == straddle.addr(ps - 8) {
                // Make the readable part as valid as possible.
                let head: [u32; 2] = if cmd == RUST_WQ_IOC_ENQUEUE
                    || cmd == RUST_WQ_IOC_MOD_DELAY
                    || cmd == RUST_WQ_IOC_RESULTS
                {
                    [RUST_WQ_ABI_VERSION, 0]
                } else if cmd == RUST_WQ_IOC_FLUSH || cmd == RUST_WQ_IOC_CANCEL {
                    [RUST_WQ_ABI_VERSION, RUST_WQ_TARGET_ALL]
                } else {
                    [0, 0]
                };
                straddle.write(ps - 8, &head);
            }
            // SAFETY: the address is invalid or (straddle) our own scratch page.
            let r = unsafe { dev.ioctl_addr(cmd, addr) };
            c.errno(&format!("{name} with {what} ({addr:#x})"), r, EFAULT);
        }
    }
    c.stats("nothing enqueued, flushed or cancelled", &dev, (1, 0, 0, 1));

    // Read-only argument: the kernel can read it but cannot write the result back.
    type Fill = Box<dyn Fn(&Pages)>;
    let bench = RustWqBench {
        version: RUST_WQ_ABI_VERSION,
        path: RUST_WQ_BENCH_PERCPU,
        threads: 1,
        items: 1,
        ..Default::default()
    };
    let info_args: [(&str, u32, Fill); 6] = [
        (
            "INFO",
            RUST_WQ_IOC_INFO,
            Box::new(|p: &Pages| p.write(0, &RustWqInfo::default())),
        ),
        (
            "STATS",
            RUST_WQ_IOC_STATS,
            Box::new(|p: &Pages| p.write(0, &RustWqStats::default())),
        ),
        (
            "FLUSH ALL",
            RUST_WQ_IOC_FLUSH,
            Box::new(|p: &Pages| p.write(0, &Target::All.to_raw())),
        ),
        (
            "CANCEL ALL",
            RUST_WQ_IOC_CANCEL,
            Box::new(|p: &Pages| p.write(0, &Target::All.to_raw())),
        ),
        (
            "ENQUEUE",
            RUST_WQ_IOC_ENQUEUE,
            Box::new(|p: &Pages| p.write(0, &valid_enqueue())),
        ),
        (
            "BENCH",
            RUST_WQ_IOC_BENCH,
            Box::new(move |p: &Pages| p.write(0, &bench)),
        ),
    ];
    for (name, cmd, fill) in info_args {
        let dev2 = ctx.open()?;
        let page = Pages::map(1);
        fill(&page);
        page.protect_read_only();
        // SAFETY: our read-only page; the kernel must refuse to write it.
        let r = unsafe { dev2.ioctl_addr(cmd, page.addr(0)) };
        c.errno(&format!("{name} with a read-only argument"), r, EFAULT);
        if cmd == RUST_WQ_IOC_ENQUEUE {
            // The header promises the write-back is checked before anything is enqueued.
            c.stats(
                "ENQUEUE with a read-only argument enqueued nothing",
                &dev2,
                (0, 0, 0, 0),
            );
        }
    }

    // RESULTS consumes nothing on EFAULT: a result is waiting while RESULTS
    // gets a bad buffer, or a read-only argument struct (the count cannot be
    // written back); afterwards the result must still be there.
    let dev3 = ctx.open()?;
    let waiting = enq(&dev3, EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1), "ENQUEUE")?;
    dev3.flush(Target::All).must("FLUSH ALL")?;
    let ro = Pages::map(1);
    ro.protect_read_only();
    for (what, buf) in [
        ("an unmapped page", unmapped_addr()),
        ("a kernel address", KERNEL_ADDR),
        ("a read-only page", ro.addr(0)),
    ] {
        let rs = RustWqResults {
            version: RUST_WQ_ABI_VERSION,
            capacity: 1,
            buf: buf as u64,
            ..Default::default()
        };
        c.errno(
            &format!("RESULTS with buf = {what} ({buf:#x})"),
            raw(&dev3, RUST_WQ_IOC_RESULTS, &rs),
            EFAULT,
        );
    }
    let mut good = [RustWqResult::default(); 4];
    let arg = Pages::map(1);
    arg.write(
        0,
        &RustWqResults {
            version: RUST_WQ_ABI_VERSION,
            capacity: 4,
            buf: good.as_mut_ptr() as u64,
            ..Default::default()
        },
    );
    arg.protect_read_only();
    // SAFETY: a read-only page holding a valid argument whose buffer `good`
    // (4 results) lives across the call.
    let r = unsafe { dev3.ioctl_addr(RUST_WQ_IOC_RESULTS, arg.addr(0)) };
    c.errno(
        "RESULTS with a read-only argument struct (valid buffer)",
        r,
        EFAULT,
    );
    exactly(
        &mut c,
        "the waiting result after RESULTS failed with EFAULT (nothing consumed)",
        &drain(&dev3)?,
        [waiting],
    );
    c.done()
}

fn results_null_buf_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let id = enq(&dev, EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1), "ENQUEUE")?;
    dev.flush(Target::All).must("FLUSH ALL")?;
    for cap in [1u32, 8, u32::MAX] {
        let rs = RustWqResults {
            version: RUST_WQ_ABI_VERSION,
            capacity: cap,
            buf: 0,
            ..Default::default()
        };
        c.errno(
            &format!("RESULTS buf NULL capacity {cap}"),
            raw(&dev, RUST_WQ_IOC_RESULTS, &rs),
            EINVAL,
        );
    }
    let mut rs = RustWqResults {
        version: RUST_WQ_ABI_VERSION,
        capacity: 0,
        buf: 0,
        ..Default::default()
    };
    if c.ok(
        "RESULTS buf NULL capacity 0",
        dev.ioctl_with(RUST_WQ_IOC_RESULTS, &mut rs),
    )
    .is_some()
    {
        c.eq("RESULTS capacity 0: count", rs.count, 0);
    }
    let (res, _) = dev.results(4).must("RESULTS capacity 4")?;
    c.eq(
        "the waiting result is still there, ids",
        res.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![id],
    );
    c.done()
}

fn enqueue_rejected(ctx: &Ctx, cases: &[(String, RustWqEnqueue)], errno: i32) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    for (what, e) in cases {
        c.errno(what, raw(&dev, RUST_WQ_IOC_ENQUEUE, e), errno);
    }
    c.stats("nothing was enqueued", &dev, (0, 0, 0, 0));
    c.done()
}

fn cpu_out_of_range_einval(ctx: &Ctx) -> TestResult {
    let nr = ctx.info.nr_cpu_ids;
    let mut cases = Vec::new();
    for cpu in [nr, 4096, nr.saturating_add(1), 0xffff_fffe] {
        if cpu < nr {
            continue;
        }
        for q in ALL_QUEUES {
            let e = EnqueueArgs::new(q, 1).cpu(cpu).to_raw();
            cases.push((
                format!("ENQUEUE on {} cpu {cpu} (nr_cpu_ids {nr})", qn(q)),
                e,
            ));
        }
        let e = EnqueueArgs::new(RUST_WQ_Q_PERCPU, 1)
            .cpu(cpu)
            .delay_us(1_000)
            .to_raw();
        cases.push((format!("ENQUEUE delayed on percpu cpu {cpu}"), e));
    }
    enqueue_rejected(ctx, &cases, EINVAL)
}

fn unknown_queue_einval(ctx: &Ctx) -> TestResult {
    let mut cases = Vec::new();
    for q in [RUST_WQ_Q_COUNT, RUST_WQ_Q_COUNT + 1, 0x100, u32::MAX] {
        let mut e = valid_enqueue();
        e.queue = q;
        cases.push((format!("ENQUEUE queue {q}"), e));
    }
    enqueue_rejected(ctx, &cases, EINVAL)?;
    let dev = ctx.open()?;
    let mut c = Checker::new();
    one_pending(&dev)?;
    for q in [RUST_WQ_Q_COUNT, u32::MAX] {
        c.errno(
            &format!("FLUSH QUEUE {q}"),
            dev.flush(Target::Queue(q)),
            EINVAL,
        );
        c.errno(
            &format!("CANCEL QUEUE {q}"),
            dev.cancel(Target::Queue(q)),
            EINVAL,
        );
    }
    c.stats("the pending item is untouched", &dev, (1, 0, 0, 1));
    c.done()
}

fn count_zero_einval(ctx: &Ctx) -> TestResult {
    let cases: Vec<(String, RustWqEnqueue)> = ALL_QUEUES
        .iter()
        .map(|&q| {
            (
                format!("ENQUEUE count 0 on {}", qn(q)),
                EnqueueArgs::new(q, 0).to_raw(),
            )
        })
        .collect();
    enqueue_rejected(ctx, &cases, EINVAL)
}

fn count_too_many_einval(ctx: &Ctx) -> TestResult {
    let m = ctx.info.max_count;
    let cases = vec![
        (
            format!("ENQUEUE count max_count+1 = {}", m + 1),
            EnqueueArgs::new(RUST_WQ_Q_UNBOUND, m + 1)
                .delay_us(LONG_DELAY_US)
                .to_raw(),
        ),
        (
            "ENQUEUE count u32::MAX".to_string(),
            EnqueueArgs::new(RUST_WQ_Q_UNBOUND, u32::MAX)
                .delay_us(LONG_DELAY_US)
                .to_raw(),
        ),
    ];
    enqueue_rejected(ctx, &cases, EINVAL)?;
    // The limit itself is accepted.
    let dev = ctx.open()?;
    let mut c = Checker::new();
    c.ok(
        "ENQUEUE count max_count",
        dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, m).delay_us(LONG_DELAY_US)),
    );
    c.eq(
        "CANCEL ALL count",
        dev.cancel(Target::All).must("CANCEL ALL")?,
        u64::from(m),
    );
    c.done()
}

fn delay_too_long_einval(ctx: &Ctx) -> TestResult {
    let m = ctx.info.max_delay_us;
    let cases = vec![
        (
            format!("ENQUEUE delay max+1 = {}", m + 1),
            EnqueueArgs::new(RUST_WQ_Q_PERCPU, 1)
                .delay_us(m + 1)
                .to_raw(),
        ),
        (
            "ENQUEUE delay u64::MAX".to_string(),
            EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1)
                .delay_us(u64::MAX)
                .to_raw(),
        ),
        (
            "ENQUEUE delay 2^63 on ordered".to_string(),
            EnqueueArgs::new(RUST_WQ_Q_ORDERED, 1)
                .delay_us(1 << 63)
                .to_raw(),
        ),
    ];
    enqueue_rejected(ctx, &cases, EINVAL)?;
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let id = c.ok(
        "ENQUEUE delay max_delay_us",
        dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).delay_us(m)),
    );
    if let Some(id) = id {
        c.errno("MOD_DELAY delay max+1", dev.mod_delay(id, m + 1), EINVAL);
        c.errno(
            "MOD_DELAY delay u64::MAX",
            dev.mod_delay(id, u64::MAX),
            EINVAL,
        );
        c.ok("MOD_DELAY delay max_delay_us", dev.mod_delay(id, m));
        c.stats("the item is still pending", &dev, (1, 0, 0, 1));
        c.eq(
            "CANCEL id count",
            dev.cancel(Target::Id(id)).must("CANCEL ID")?,
            1,
        );
    }
    c.done()
}

fn sleep_too_long_einval(ctx: &Ctx) -> TestResult {
    let m = ctx.info.max_sleep_us;
    let cases = vec![
        (
            format!("ENQUEUE sleep max+1 = {}", m + 1),
            EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1)
                .sleep_us(m + 1)
                .to_raw(),
        ),
        (
            "ENQUEUE sleep u64::MAX".to_string(),
            EnqueueArgs::new(RUST_WQ_Q_PERCPU, 1)
                .sleep_us(u64::MAX)
                .to_raw(),
        ),
    ];
    enqueue_rejected(ctx, &cases, EINVAL)?;
    let dev = ctx.open()?;
    let mut c = Checker::new();
    c.ok(
        "ENQUEUE sleep max_sleep_us (delayed, then cancelled)",
        dev.enqueue(
            EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1)
                .sleep_us(m)
                .delay_us(LONG_DELAY_US),
        ),
    );
    c.eq(
        "CANCEL ALL count",
        dev.cancel(Target::All).must("CANCEL ALL")?,
        1,
    );
    c.done()
}

fn unknown_target_kind_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    one_pending(&dev)?;
    for kind in [3u32, 0x100, u32::MAX] {
        let t = RustWqTarget {
            version: RUST_WQ_ABI_VERSION,
            kind,
            ..Default::default()
        };
        c.errno(
            &format!("FLUSH kind {kind}"),
            raw(&dev, RUST_WQ_IOC_FLUSH, &t),
            EINVAL,
        );
        c.errno(
            &format!("CANCEL kind {kind}"),
            raw(&dev, RUST_WQ_IOC_CANCEL, &t),
            EINVAL,
        );
    }
    c.stats("the pending item is untouched", &dev, (1, 0, 0, 1));
    c.done()
}

fn mod_delay_unknown_enoent(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let ran = enq(&dev, EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1), "ENQUEUE")?;
    dev.flush(Target::All).must("FLUSH ALL")?;
    let cancelled = one_pending(&dev)?;
    c.eq(
        "CANCEL id",
        dev.cancel(Target::Id(cancelled)).must("CANCEL ID")?,
        1,
    );
    c.errno("MOD_DELAY id 0", dev.mod_delay(0, 1_000), ENOENT);
    c.errno(
        "MOD_DELAY of an id never issued",
        dev.mod_delay(cancelled + 1000, 1_000),
        ENOENT,
    );
    c.errno(
        "MOD_DELAY of an id that ran",
        dev.mod_delay(ran, 1_000),
        ENOENT,
    );
    c.errno(
        "MOD_DELAY of a cancelled id",
        dev.mod_delay(cancelled, 1_000),
        ENOENT,
    );
    c.errno("MOD_DELAY of u64::MAX", dev.mod_delay(u64::MAX, 0), ENOENT);
    // Ids are per file: an id pending only in another file is unknown here.
    let other = ctx.open()?;
    let f = enq(
        &other,
        EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 4).delay_us(LONG_DELAY_US),
        "ENQUEUE 4 in another file",
    )?;
    let foreign = f + 3;
    if foreign > cancelled {
        c.errno(
            "MOD_DELAY of an id pending only in another file",
            dev.mod_delay(foreign, 1_000),
            ENOENT,
        );
        c.errno(
            "CANCEL of an id pending only in another file",
            dev.cancel(Target::Id(foreign)),
            ENOENT,
        );
        c.eq(
            "FLUSH of an id pending only in another file: count",
            dev.flush(Target::Id(foreign)).must("FLUSH ID")?,
            0,
        );
        c.stats("the other file is untouched", &other, (4, 0, 0, 4));
    }
    c.stats("at end", &dev, (2, 1, 1, 0));
    c.done()
}

fn close_with_pending(ctx: &Ctx) -> TestResult {
    let mut c = Checker::new();
    // Seq of one item, to see later whether anything else ran meanwhile.
    let probe = |dev: &Device| -> Result<u64, Outcome> {
        let id = enq(dev, EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1), "ENQUEUE probe")?;
        dev.flush(Target::All).must("FLUSH ALL")?;
        let res = drain(dev)?;
        match res.iter().find(|r| r.id == id) {
            Some(r) => Ok(r.seq),
            None => fail(format!("probe id {id} has no result after FLUSH")),
        }
    };
    let a = ctx.open()?;
    enq(
        &a,
        EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 4).delay_us(1_000_000),
        "ENQUEUE 4 unbound delayed 1s",
    )?;
    let cpu0 = ctx.online.first().copied().unwrap_or(0);
    enq(
        &a,
        EnqueueArgs::new(RUST_WQ_Q_PERCPU, 4)
            .cpu(cpu0)
            .delay_us(1_000_000),
        "ENQUEUE 4 percpu delayed 1s",
    )?;
    enq(
        &a,
        EnqueueArgs::new(RUST_WQ_Q_ORDERED, 2).delay_us(LONG_DELAY_US),
        "ENQUEUE 2 ordered delayed 5s",
    )?;
    c.stats("before close", &a, (10, 0, 0, 10));
    let t = Instant::now();
    drop(a);
    let el = t.elapsed();
    c.check(el < Duration::from_millis(900), || {
        format!(
            "close took {} ms: it must cancel the pending items, not wait for them",
            el.as_millis()
        )
    });

    let b = ctx.open()?;
    c.stats("fresh file after reopen", &b, (0, 0, 0, 0));
    c.ok("INFO on the new file", b.info());
    let first = b
        .enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1))
        .must("ENQUEUE on the new file")?;
    c.eq("first id of a fresh file", first, 1);
    b.flush(Target::All).must("FLUSH ALL")?;
    drain(&b)?;
    let s1 = probe(&b)?;
    // Past the 1 s delay of the closed file's items: had they not been
    // cancelled, they would have taken seq numbers in between.
    std::thread::sleep(Duration::from_millis(1_200));
    let s2 = probe(&b)?;
    c.check(s2 == s1 + 1, || {
        format!("module-wide seq went from {s1} to {s2} while only this test used the module: items of the closed file ran")
    });
    c.done()
}

/// Brings a CPU back online when dropped.
struct OnlineGuard(String);

impl Drop for OnlineGuard {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::write(&self.0, "1").is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("rust_wq_e2e: could not write 1 to {}", self.0);
    }
}

fn offline_cpu_enodev(ctx: &Ctx) -> TestResult {
    let mut found = None;
    for n in (1..ctx.info.nr_cpu_ids.min(64)).rev() {
        let p = format!("/sys/devices/system/cpu/cpu{n}/online");
        if std::path::Path::new(&p).exists() && ctx.online.contains(&n) {
            found = Some((n, p));
            break;
        }
    }
    let Some((n, path)) = found else {
        return unavailable(
            "hotplug",
            "no /sys/devices/system/cpu/cpuN/online for an online CPU N > 0 (no CPU hotplug)",
        );
    };
    let dev = ctx.open()?;
    let mut c = Checker::new();
    // A delayed item pinned to N, to be moved by MOD_DELAY while N is offline.
    let pinned = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_PERCPU, 1)
            .cpu(n)
            .delay_us(LONG_DELAY_US),
        &format!("ENQUEUE delayed 5s on percpu cpu {n}"),
    )?;
    if let Err(e) = std::fs::write(&path, "0") {
        dev.cancel(Target::All).must("CANCEL ALL")?;
        return unavailable("hotplug", format!("cannot offline CPU {n} ({path}): {e}"));
    }
    let guard = OnlineGuard(path.clone());
    let i = dev.info().must("INFO")?;
    c.check(i.online_cpus & (1 << n) == 0, || {
        format!(
            "INFO online_cpus {:#x} still has offline CPU {n}",
            i.online_cpus
        )
    });
    for q in ALL_QUEUES {
        c.errno(
            &format!("ENQUEUE on {} cpu {n} (offline)", qn(q)),
            dev.enqueue(EnqueueArgs::new(q, 1).cpu(n)),
            ENODEV,
        );
    }
    c.errno(
        &format!("ENQUEUE delayed on percpu cpu {n} (offline)"),
        dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_PERCPU, 1).cpu(n).delay_us(1_000)),
        ENODEV,
    );
    c.stats(
        "nothing enqueued while offline (the pinned delayed item is pending)",
        &dev,
        (1, 0, 0, 1),
    );
    // The header: MOD_DELAY takes the item off its queue; when it cannot be
    // queued again (its CPU is offline: ENODEV) it stays cancelled and is
    // counted as cancelled.
    c.errno(
        &format!("MOD_DELAY of id {pinned}, pinned to offline cpu {n}"),
        dev.mod_delay(pinned, 1_000),
        ENODEV,
    );
    c.stats(
        "after MOD_DELAY failed with ENODEV (the item stays cancelled)",
        &dev,
        (1, 0, 1, 0),
    );
    c.errno(
        "MOD_DELAY again of the item MOD_DELAY left cancelled",
        dev.mod_delay(pinned, 1_000),
        ENOENT,
    );
    drop(guard);
    let t = Instant::now();
    while dev
        .info()
        .map(|i| i.online_cpus & (1 << n) == 0)
        .unwrap_or(true)
        && t.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let i = dev.info().must("INFO")?;
    c.check(i.online_cpus & (1 << n) != 0, || {
        format!(
            "INFO online_cpus {:#x} lacks CPU {n} after onlining it",
            i.online_cpus
        )
    });
    if let Some(first) = c.ok(
        &format!("ENQUEUE on percpu cpu {n} after onlining"),
        dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_PERCPU, 2).cpu(n)),
    ) {
        dev.flush(Target::All).must("FLUSH ALL")?;
        // The item MOD_DELAY left cancelled never runs (FLUSH ALL would
        // otherwise have fired its timer).
        let by_id = exactly(
            &mut c,
            "results after onlining (none of the cancelled pinned item)",
            &drain(&dev)?,
            ids(first, 2),
        );
        for r in by_id.values() {
            c.eq(&format!("id {} ran on cpu", r.id), r.cpu, n);
        }
        c.stats("at end", &dev, (3, 2, 1, 0));
    }
    c.done()
}

fn refcnt() -> Option<i64> {
    std::fs::read_to_string("/sys/module/rust_wq/refcnt")
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn rmmod_refused_while_open(ctx: &Ctx) -> TestResult {
    let Some(ko) = std::env::var_os("RUST_WQ_KO") else {
        return skip("RUST_WQ_KO is not set");
    };
    let mut c = Checker::new();
    let before = refcnt();
    let dev = ctx.open()?;
    let during = refcnt();
    if let (Some(b), Some(d)) = (before, during) {
        c.check(d > b, || format!("/sys/module/rust_wq/refcnt: {b} before open, {d} with the file open (expected more)"));
    }
    let out = match std::process::Command::new("rmmod").arg("rust_wq").output() {
        Ok(o) => o,
        Err(e) => return fail(format!("cannot run rmmod: {e}")),
    };
    if out.status.success() {
        c.fail(
            "rmmod rust_wq succeeded while /dev/rust_wq was open (expected EBUSY / non-zero exit)",
        );
        drop(dev);
        let re = std::process::Command::new("insmod").arg(&ko).status();
        c.fail(format!(
            "re-inserted {} to continue: {re:?}",
            ko.to_string_lossy()
        ));
        return c.done();
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    super::diag(&format!("rmmod refused as expected: {}", stderr.trim()));
    c.ok("INFO after the refused rmmod", dev.info());
    drop(dev);
    if let Some(b) = before {
        let t = Instant::now();
        while refcnt() != Some(b) && t.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(10));
        }
        c.eq(
            "/sys/module/rust_wq/refcnt after close (unload allowed again)",
            refcnt(),
            Some(b),
        );
    }
    c.check(std::path::Path::new("/sys/module/rust_wq").exists(), || {
        "module vanished".into()
    });
    c.done()
}

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
fn bench_runs(ctx: &Ctx) -> TestResult {
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
    // Every other operation, on every path, times its call: queue-fresh on one thread per
    // online CPU, the single-call ones on one thread.
    for path in [
        RUST_WQ_BENCH_UNBOUND_SYSFS,
        RUST_WQ_BENCH_PERCPU,
        RUST_WQ_BENCH_SYSTEM_PERCPU,
    ] {
        for (name, op) in BENCH_OPS.iter().skip(1) {
            let args = BenchArgs {
                path,
                items: 20,
                threads: 0,
                start_latency: false,
                op: *op,
            };
            let what = format!("BENCH path {path} op {name}");
            if let Some(b) = c.ok(&what, dev.bench(args)) {
                let threads = if *op == RUST_WQ_BENCH_OP_QUEUE_FRESH {
                    online
                } else {
                    1
                };
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
fn bench_bad_input_einval(ctx: &Ctx) -> TestResult {
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
    ];
    for (what, b) in cases {
        c.errno(&format!("BENCH {what}"), dev.bench_raw(b), EINVAL);
    }
    c.done()
}

// ------------------------------------------------------- header promises

/// A valid argument for each command, so that only the encoding can be wrong.
fn valid_args(pending: u64) -> HashMap<u32, Box<RawBuf>> {
    let mut args: HashMap<u32, Box<RawBuf>> = HashMap::new();
    args.insert(RUST_WQ_IOC_INFO, RawBuf::with(&RustWqInfo::default()));
    args.insert(RUST_WQ_IOC_ENQUEUE, RawBuf::with(&valid_enqueue()));
    args.insert(
        RUST_WQ_IOC_FLUSH,
        RawBuf::with(&Target::Id(pending).to_raw()),
    );
    args.insert(
        RUST_WQ_IOC_CANCEL,
        RawBuf::with(&Target::Id(pending).to_raw()),
    );
    args.insert(
        RUST_WQ_IOC_MOD_DELAY,
        RawBuf::with(&RustWqModDelay {
            version: RUST_WQ_ABI_VERSION,
            id: pending,
            delay_us: LONG_DELAY_US,
            ..Default::default()
        }),
    );
    args.insert(
        RUST_WQ_IOC_RESULTS,
        RawBuf::with(&RustWqResults {
            version: RUST_WQ_ABI_VERSION,
            ..Default::default()
        }),
    );
    args.insert(RUST_WQ_IOC_STATS, RawBuf::with(&RustWqStats::default()));
    args.insert(RUST_WQ_IOC_RESET, RawBuf::with(&0u64));
    args.insert(
        RUST_WQ_IOC_BENCH,
        RawBuf::with(&RustWqBench {
            version: RUST_WQ_ABI_VERSION,
            path: RUST_WQ_BENCH_PERCPU,
            items: 1,
            ..Default::default()
        }),
    );
    args
}

/// The header: a known command nr with the right size but another direction
/// is EINVAL (not ENOTTY, and never executed).
fn wrong_direction_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let pending = one_pending(&dev)?;
    let mut args = valid_args(pending);
    let dirs = [IOC_NONE, IOC_READ, IOC_WRITE, IOC_READ | IOC_WRITE];
    for (name, cmd) in ALL_IOCTLS {
        let (dir, nr, size) = (ioc_dir(cmd), ioc_nr(cmd), ioc_size(cmd));
        for d in dirs.into_iter().filter(|&d| d != dir) {
            let bad = ioc(d, RUST_WQ_IOC_MAGIC, nr, size);
            let buf = args.get_mut(&cmd).expect("argument for every command");
            // SAFETY: 512-byte buffer, larger than any size used here.
            let r = unsafe { dev.ioctl_raw(bad, buf.ptr()) };
            c.errno(
                &format!("{name} with direction {d} instead of {dir}, size {size} ({bad:#x})"),
                r,
                EINVAL,
            );
        }
    }
    c.stats("only the one pending item exists", &dev, (1, 0, 0, 1));
    c.done()
}

/// The header: FLUSH/CANCEL with a non-zero `queue` or `id` that the target
/// kind does not use is EINVAL.
fn target_unused_field_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let pending = one_pending(&dev)?;
    let base = RustWqTarget {
        version: RUST_WQ_ABI_VERSION,
        ..Default::default()
    };
    let cases = [
        (
            "ALL with queue 1",
            RustWqTarget {
                kind: RUST_WQ_TARGET_ALL,
                queue: RUST_WQ_Q_UNBOUND,
                ..base
            },
        ),
        (
            "ALL with the pending id",
            RustWqTarget {
                kind: RUST_WQ_TARGET_ALL,
                id: pending,
                ..base
            },
        ),
        (
            "ID with queue 1",
            RustWqTarget {
                kind: RUST_WQ_TARGET_ID,
                id: pending,
                queue: RUST_WQ_Q_UNBOUND,
                ..base
            },
        ),
        (
            "QUEUE unbound with the pending id",
            RustWqTarget {
                kind: RUST_WQ_TARGET_QUEUE,
                queue: RUST_WQ_Q_UNBOUND,
                id: pending,
                ..base
            },
        ),
    ];
    for (what, t) in cases {
        c.errno(
            &format!("FLUSH {what}"),
            raw(&dev, RUST_WQ_IOC_FLUSH, &t),
            EINVAL,
        );
        c.errno(
            &format!("CANCEL {what}"),
            raw(&dev, RUST_WQ_IOC_CANCEL, &t),
            EINVAL,
        );
    }
    c.stats(
        "the pending item is untouched (not flushed, not cancelled)",
        &dev,
        (1, 0, 0, 1),
    );
    c.done()
}

/// Enqueues `n` items delayed 30 s on the unbound queue, in calls of at most
/// max_count.
fn fill_delayed(ctx: &Ctx, dev: &Device, mut n: u32) -> Result<(), Outcome> {
    let max_count = ctx.info.max_count.max(1);
    while n > 0 {
        let k = n.min(max_count);
        dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, k).delay_us(30_000_000))
            .must(&format!("ENQUEUE {k} delayed 30 s"))?;
        n -= k;
    }
    Ok(())
}

/// The header: EBUSY when the unfinished items plus `count` would exceed
/// max_pending, with nothing enqueued, even when part of the call would fit.
fn ebusy_partial_room(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let max = ctx.info.max_pending;
    fill_delayed(ctx, &dev, max - 5)?;
    let m = u64::from(max);
    c.errno(
        "ENQUEUE 10 with room for 5",
        dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_PERCPU, 10)),
        EBUSY,
    );
    c.stats(
        "nothing of the refused call was enqueued",
        &dev,
        (m - 5, 0, 0, m - 5),
    );
    c.ok(
        "ENQUEUE 5 delayed with room for exactly 5",
        dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_PERCPU, 5).delay_us(30_000_000)),
    );
    c.errno(
        "ENQUEUE 1 when full",
        dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_ORDERED, 1)),
        EBUSY,
    );
    c.eq(
        "CANCEL ALL count",
        dev.cancel(Target::All).must("CANCEL ALL")?,
        m,
    );
    c.stats("at end", &dev, (m, 0, m, 0));
    c.done()
}

/// The header: a running item is unfinished, so it counts against max_pending.
/// max_pending - 2 delayed items, one sleeping item that has started, one more
/// delayed item (now max_pending unfinished, one of them running): ENQUEUE 1
/// more must fail with EBUSY.  Whether the sleeping item had started by then
/// is read from its result afterwards; if it had not, the test tries again
/// with a longer wait (an item that never starts fails it).
fn ebusy_counts_running(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let max = ctx.info.max_pending;
    let m = u64::from(max);
    fill_delayed(ctx, &dev, max - 2)?;
    let waits = [200u64, 400, 800];
    let (mut sleepers, mut lasts) = (0u64, 0u64);
    let mut conclusive = false;
    for wait_ms in waits {
        let t0 = Instant::now();
        let running = enq(
            &dev,
            EnqueueArgs::new(RUST_WQ_Q_ORDERED, 1).sleep_us(ctx.info.max_sleep_us),
            "ENQUEUE 1 sleeping max_sleep_us",
        )?;
        sleepers += 1;
        std::thread::sleep(Duration::from_millis(wait_ms));
        let last = c
            .ok(
                "ENQUEUE 1 delayed, the last one that fits",
                dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).delay_us(30_000_000)),
            )
            .unwrap_or(0);
        let busy_at = t0.elapsed();
        c.errno(
            "ENQUEUE 1 with max_pending unfinished (one of them sleeping)",
            dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1)),
            EBUSY,
        );
        // Make room again for the next attempt, and collect the sleeper.
        if last != 0 {
            lasts += 1;
            c.eq(
                "CANCEL of the last delayed item",
                dev.cancel(Target::Id(last)).must("CANCEL id")?,
                1,
            );
        }
        dev.flush(Target::Id(running)).must("FLUSH id")?;
        let by_id = exactly(&mut c, "results", &drain(&dev)?, [running]);
        if let Some(r) = by_id.get(&running) {
            let (start, end) = (
                Duration::from_nanos(r.latency_ns),
                Duration::from_nanos(r.latency_ns + r.runtime_ns),
            );
            if start < busy_at {
                // It had started: it was running at the EBUSY call.
                c.check(end > busy_at, || {
                    format!(
                        "the sleeping item ran from {} to {} ms, the EBUSY call was at {} ms",
                        start.as_millis(),
                        end.as_millis(),
                        busy_at.as_millis()
                    )
                });
                conclusive = true;
                break;
            }
        }
        if !c.errs.is_empty() {
            break;
        }
    }
    c.check(conclusive, || {
        format!("the sleeping item never started before the EBUSY call (waits of {waits:?} ms)")
    });
    let cancelled = dev.cancel(Target::All).must("CANCEL ALL")?;
    c.eq("CANCEL ALL count (the filling items)", cancelled, m - 2);
    c.stats(
        "at end",
        &dev,
        (m - 2 + sleepers + lasts, sleepers, m - 2 + lasts, 0),
    );
    c.done()
}

/// What `started_enoent` exercises: CANCEL by id or MOD_DELAY.
#[derive(Clone, Copy, PartialEq)]
enum NotPendingCall {
    Cancel,
    ModDelay,
}

/// The header: CANCEL by id / MOD_DELAY of an item that has started fails
/// with ENOENT, and returns only after the item has finished.  If the call
/// finds the item still pending (it had not started), it is undone and tried
/// again with a longer wait; an item that never starts fails the test.
fn started_enoent(ctx: &Ctx, call: NotPendingCall) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    const SLEEP_MS: u64 = 400;
    let name = match call {
        NotPendingCall::Cancel => "CANCEL id",
        NotPendingCall::ModDelay => "MOD_DELAY",
    };
    let (mut enqueued, mut cancelled, mut ran) = (0u64, 0u64, 0u64);
    let waits = [150u64, 300, 600, 1200];
    for wait_ms in waits {
        let t0 = Instant::now();
        let id = enq(
            &dev,
            EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).sleep_us(SLEEP_MS * 1000),
            "ENQUEUE 1 sleeping 400 ms",
        )?;
        enqueued += 1;
        std::thread::sleep(Duration::from_millis(wait_ms));
        let called = t0.elapsed();
        let r = match call {
            NotPendingCall::Cancel => dev.cancel(Target::Id(id)).map(Some),
            NotPendingCall::ModDelay => dev.mod_delay(id, LONG_DELAY_US).map(|()| None),
        };
        let returned = t0.elapsed();
        match r {
            Ok(Some(n)) if n != 1 => {
                c.fail(format!(
                    "CANCEL of id {id} (sleeping, probably running) succeeded with count {n}: expected count 1 (it had not started) or ENOENT (it had)"
                ));
                dev.flush(Target::All).must("FLUSH ALL")?;
                return c.done();
            }
            Ok(_) => {
                // Still pending: it had not started.  Undo and retry.
                if call == NotPendingCall::ModDelay {
                    c.eq(
                        "CANCEL of the item MOD_DELAY delayed by 5 s",
                        dev.cancel(Target::Id(id)).must("CANCEL id")?,
                        1,
                    );
                }
                cancelled += 1;
                continue;
            }
            Err(e) if e.0 == ENOENT => {}
            Err(e) => {
                c.fail(format!(
                    "{name} of running id {id}: expected ENOENT, got {e}"
                ));
                dev.flush(Target::All).must("FLUSH ALL")?;
                return c.done();
            }
        }
        ran += 1;
        if call == NotPendingCall::ModDelay {
            // MOD_DELAY does not wait for a running item (header): wait for it here.
            dev.flush(Target::All).must("FLUSH ALL")?;
        }
        // It finished before the call returned (CANCEL), or before FLUSH returned (MOD_DELAY):
        // its result is there at once.
        let by_id = exactly(
            &mut c,
            &format!("results right after {name} failed with ENOENT"),
            &drain(&dev)?,
            [id],
        );
        if let Some(r) = by_id.get(&id) {
            let started = Duration::from_nanos(r.latency_ns);
            let finished = Duration::from_nanos(r.latency_ns + r.runtime_ns);
            c.check(started < called, || {
                format!(
                    "{name} failed with ENOENT at {} ms, but the item started only at {} ms (it was pending)",
                    called.as_millis(),
                    started.as_millis()
                )
            });
            c.check(
                call == NotPendingCall::ModDelay || finished <= returned,
                || {
                    format!(
                        "{name} returned at {} ms, before the running item finished (>= {} ms)",
                        returned.as_millis(),
                        finished.as_millis()
                    )
                },
            );
        }
        break;
    }
    c.check(ran == 1, || {
        format!("the item never started before {name}: waits of {waits:?} ms")
    });
    c.stats("at end", &dev, (enqueued, ran, cancelled, 0));
    c.done()
}

fn cancel_started_enoent_waits(ctx: &Ctx) -> TestResult {
    started_enoent(ctx, NotPendingCall::Cancel)
}

fn mod_delay_started_enoent(ctx: &Ctx) -> TestResult {
    started_enoent(ctx, NotPendingCall::ModDelay)
}

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// The header: delay_us 0 queues at once, while any other delay waits for a
/// timer (at least one jiffy).  No FLUSH here: it would fire the timers early.
/// Compared as a ratio of the medians, each item enqueued alone.
fn delay_zero_queues_at_once(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    const ROUNDS: usize = 15;
    let mut lat = [Vec::new(), Vec::new()];
    for round in 0..ROUNDS {
        for (k, delay) in [0u64, 1].into_iter().enumerate() {
            let q = ALL_QUEUES[round % ALL_QUEUES.len()];
            let id = enq(
                &dev,
                EnqueueArgs::new(q, 1).delay_us(delay),
                &format!("ENQUEUE on {} delay {delay} us", qn(q)),
            )?;
            let got = wait_results(&dev, 1, Duration::from_secs(2))?;
            match got.first() {
                Some((r, _)) if r.id == id => lat[k].push(r.latency_ns),
                _ => {
                    c.fail(format!(
                        "id {id} (delay {delay} us on {}): no result within 2 s without FLUSH",
                        qn(q)
                    ));
                    return c.done();
                }
            }
        }
    }
    let (m0, m1) = (median(&mut lat[0]), median(&mut lat[1]));
    crate::diag(&format!(
        "delay_zero_queues_at_once: median latency {m0} ns with delay 0, {m1} ns with delay 1 us"
    ));
    c.check(m0.saturating_mul(3) < m1, || {
        format!(
            "median latency with delay_us 0 is {m0} ns, with delay_us 1 {m1} ns: delay 0 must queue at once, not after a timer (expected < 1/3)"
        )
    });
    c.done()
}

/// The header: sleep_us 1..10 sleep 11 us (the kernel busy-waits below
/// that), and the item really slept (SLEPT); sleep_us 0 does not sleep.
fn short_sleeps_round_up(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let mut want = BTreeMap::new();
    for sleep in [0u64, 1, 5, 10, 11] {
        let id = enq(
            &dev,
            EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 2)
                .sleep_us(sleep)
                .tag(sleep),
            &format!("ENQUEUE 2 sleeping {sleep} us"),
        )?;
        want.insert(id, sleep);
        want.insert(id + 1, sleep);
    }
    dev.flush(Target::All).must("FLUSH ALL")?;
    let by_id = exactly(&mut c, "results", &drain(&dev)?, want.keys().copied());
    for (id, r) in &by_id {
        let sleep = want[id];
        if sleep == 0 {
            c.check(r.flags & RUST_WQ_RES_SLEPT == 0, || {
                format!(
                    "id {id} (sleep_us 0): flags {} has SLEPT",
                    flag_names(r.flags)
                )
            });
        } else {
            c.check(r.runtime_ns >= 11_000, || {
                format!(
                    "id {id} (sleep_us {sleep}): runtime {} ns < 11 us",
                    r.runtime_ns
                )
            });
            c.check(r.flags & RUST_WQ_RES_SLEPT != 0, || {
                format!(
                    "id {id} (sleep_us {sleep}): flags {} lack SLEPT",
                    flag_names(r.flags)
                )
            });
        }
    }
    c.done()
}

/// The module-wide seq of a probe item run in `dev` (enqueued, flushed, read).
fn probe_seq(dev: &Device) -> Result<u64, Outcome> {
    let id = enq(dev, EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1), "ENQUEUE probe")?;
    dev.flush(Target::All).must("FLUSH ALL")?;
    let res = drain(dev)?;
    match res.iter().find(|r| r.id == id) {
        Some(r) => Ok(r.seq),
        None => fail(format!("probe id {id} has no result after FLUSH")),
    }
}

/// The header: closing the file waits for what is running.  Seen through the
/// module-wide seq (taken when an item finishes): a probe in another file
/// right after the close must come after the running item of the closed file.
fn close_waits_for_running(ctx: &Ctx) -> TestResult {
    let mut c = Checker::new();
    let b = ctx.open()?;
    const SLEEP_MS: u64 = 500;
    let waits = [150u64, 300, 600];
    for wait_ms in waits {
        let s1 = probe_seq(&b)?;
        let a = ctx.open()?;
        enq(
            &a,
            EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).sleep_us(SLEEP_MS * 1000),
            "ENQUEUE 1 sleeping 500 ms",
        )?;
        std::thread::sleep(Duration::from_millis(wait_ms));
        let t = Instant::now();
        drop(a);
        let el = t.elapsed();
        let s2 = probe_seq(&b)?;
        std::thread::sleep(Duration::from_millis(SLEEP_MS + 200));
        let s3 = probe_seq(&b)?;
        match (s2 - s1, s3 - s2) {
            // The item ran, and had finished when close returned.
            (2, 1) => {
                c.check(el >= Duration::from_millis(SLEEP_MS / 4), || {
                    format!(
                        "close returned after {} ms although the item had been sleeping {SLEEP_MS} ms for only ~{wait_ms} ms",
                        el.as_millis()
                    )
                });
                return c.done();
            }
            // It finished only after close had returned.
            (1, 2) => {
                c.fail(format!(
                    "close returned after {} ms while the file's item was still running (it finished later: module-wide seq {s1} -> {s2} -> {s3})",
                    el.as_millis()
                ));
                return c.done();
            }
            // Cancelled before it started: try again with a longer wait.
            (1, 1) => continue,
            (d1, d2) => {
                c.fail(format!(
                    "unexpected module-wide seq steps {d1}, {d2} ({s1} -> {s2} -> {s3}): is something else using the module?"
                ));
                return c.done();
            }
        }
    }
    c.fail(format!(
        "the item never started before close: waits of {waits:?} ms"
    ));
    c.done()
}

/// The header: more than max_results results waiting: the oldest are
/// dropped; RESULTS says how many in `dropped` (once), STATS counts them in
/// `results_dropped` (since open), and the newest max_results are kept.
fn results_dropped_beyond_max(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let (max_results, max_pending, max_count) = (
        u64::from(ctx.info.max_results),
        ctx.info.max_pending,
        ctx.info.max_count,
    );
    let extra = u64::from(max_pending);
    let total = max_results + extra;
    let mut left = total;
    let mut first = None;
    while left > 0 {
        let mut batch = left.min(u64::from(max_pending));
        while batch > 0 {
            let k = batch.min(u64::from(max_count)) as u32;
            let f = enq(&dev, EnqueueArgs::new(RUST_WQ_Q_UNBOUND, k), "ENQUEUE")?;
            first.get_or_insert(f);
            batch -= u64::from(k);
            left -= u64::from(k);
        }
        dev.flush(Target::All).must("FLUSH ALL")?;
    }
    let first = first.unwrap_or(1);
    let s = dev.stats().must("STATS")?;
    c.eq(
        "STATS (enqueued, executed, pending)",
        (s.enqueued, s.executed, s.pending),
        (total, total, 0),
    );
    c.eq(
        "STATS results_dropped with max_results + max_pending results waiting",
        s.results_dropped,
        extra,
    );
    let mut kept = Vec::new();
    let (r, d) = dev.results(4096).must("RESULTS")?;
    c.eq("first RESULTS: dropped", d, extra);
    kept.extend(r);
    loop {
        let (r, d) = dev.results(4096).must("RESULTS")?;
        c.eq("later RESULTS: dropped", d, 0);
        if r.is_empty() {
            break;
        }
        kept.extend(r);
    }
    c.eq("results kept", kept.len() as u64, max_results);
    // Each batch ran completely before the next was enqueued, so the newest
    // max_results results are those of the ids after the first `extra`
    // (within a batch, the unbound queue may run them in any order).
    let mut ids: Vec<u64> = kept.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    let newest: Vec<u64> = (first + extra..first + total).collect();
    c.check(ids == newest, || {
        format!(
            "the kept results are not those of the newest ids {}..{} (lowest ids seen {:?})",
            first + extra,
            first + total - 1,
            &ids[..ids.len().min(5)]
        )
    });
    c.eq(
        "STATS results_dropped after reading (counts since open)",
        dev.stats().must("STATS")?.results_dropped,
        extra,
    );
    c.done()
}

/// The header: one benchmark runs at a time (others wait).  Two BENCH calls
/// from two files at once: the wall time they take together is at least the
/// sum of their own elapsed times.
fn bench_one_at_a_time(ctx: &Ctx) -> TestResult {
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
            Err(p) => c.fail(format!("panicked: {}", super::panic_message(&*p))),
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
