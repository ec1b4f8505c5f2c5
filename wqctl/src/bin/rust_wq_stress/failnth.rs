//! Scenario `failnth`: a systematic fault-injection sweep.  For each call
//! (open, close, and every ioctl in a few set-ups), fail its 1st, 2nd, 3rd...
//! fault-injection point (slab allocation: failslab with
//! /proc/thread-self/fail-nth, this thread only) until the call completes
//! without reaching an injected failure.
//!
//! After every injected failure: the call returned success or a documented
//! errno for it, STATS is consistent (enqueued = executed + cancelled +
//! pending), nothing hangs (each call is timed), and the next call on the
//! same file works (an ENQUEUE + FLUSH + RESULTS round trip).  Leaks are found
//! by kmemleak_clean afterwards.  The report counts the failure points reached
//! per call and what the call returned.
//!
//! Short (make check): one set-up per call.  Long (make stress): more
//! set-ups (counts, queues, CPUs, target kinds).

use crate::common::*;
use std::ffi::CString;
use std::time::{Duration, Instant};
use wqctl::abi::*;
use wqctl::hostile::{FailNth, FailslabSettings};
use wqctl::{Device, EnqueueArgs, Errno, Target};

/// Most points tried per call (a safety net: every call here has far fewer).
const MAX_POINTS: u32 = 2_000;

/// One call of the sweep, with the state it needs.
#[derive(Clone, Copy, Debug)]
enum Call {
    Open,
    Close,
    Info,
    Enqueue {
        q: u32,
        count: u32,
        delay_us: u64,
        cpu: u32,
    },
    Flush(u32),
    Cancel(u32),
    ModDelay,
    Results,
    Stats,
    Reset,
    Bench,
}

impl Call {
    fn name(&self) -> String {
        match self {
            Call::Open => "open".into(),
            Call::Close => "close".into(),
            Call::Info => "INFO".into(),
            Call::Enqueue {
                q,
                count,
                delay_us,
                cpu,
            } => format!(
                "ENQUEUE(q{q},n{count},{}{})",
                if *delay_us > 0 { "delayed" } else { "now" },
                if *cpu == RUST_WQ_CPU_ANY {
                    String::new()
                } else {
                    format!(",cpu{cpu}")
                }
            ),
            Call::Flush(k) => format!("FLUSH({})", kind_name(*k)),
            Call::Cancel(k) => format!("CANCEL({})", kind_name(*k)),
            Call::ModDelay => "MOD_DELAY".into(),
            Call::Results => "RESULTS".into(),
            Call::Stats => "STATS".into(),
            Call::Reset => "RESET".into(),
            Call::Bench => "BENCH".into(),
        }
    }

    /// The errnos the header documents for this call (besides success).
    fn allowed(&self) -> &'static [i32] {
        match self {
            Call::Open => &[libc::ENOMEM],
            Call::Enqueue { .. } | Call::Flush(_) | Call::ModDelay | Call::Bench => &[libc::ENOMEM],
            _ => &[],
        }
    }
}

fn kind_name(k: u32) -> &'static str {
    match k {
        RUST_WQ_TARGET_ALL => "all",
        RUST_WQ_TARGET_ID => "id",
        _ => "queue",
    }
}

fn calls(opts: &Opts, cpu: u32) -> Vec<Call> {
    let mut v = vec![
        Call::Open,
        Call::Close,
        Call::Info,
        Call::Enqueue {
            q: RUST_WQ_Q_UNBOUND,
            count: 4,
            delay_us: 0,
            cpu: RUST_WQ_CPU_ANY,
        },
        Call::Enqueue {
            q: RUST_WQ_Q_ORDERED,
            count: 4,
            delay_us: 5_000_000,
            cpu: RUST_WQ_CPU_ANY,
        },
        Call::Flush(RUST_WQ_TARGET_ALL),
        Call::Cancel(RUST_WQ_TARGET_ALL),
        Call::ModDelay,
        Call::Results,
        Call::Stats,
        Call::Reset,
        Call::Bench,
    ];
    if opts.long {
        for q in [
            RUST_WQ_Q_PERCPU,
            RUST_WQ_Q_UNBOUND,
            RUST_WQ_Q_SYSTEM_PERCPU,
            RUST_WQ_Q_SYSTEM_DFL,
        ] {
            v.push(Call::Enqueue {
                q,
                count: 64,
                delay_us: 5_000_000,
                cpu,
            });
        }
        v.push(Call::Enqueue {
            q: RUST_WQ_Q_PERCPU,
            count: 256,
            delay_us: 0,
            cpu,
        });
        v.push(Call::Flush(RUST_WQ_TARGET_ID));
        v.push(Call::Flush(RUST_WQ_TARGET_QUEUE));
        v.push(Call::Cancel(RUST_WQ_TARGET_ID));
        v.push(Call::Cancel(RUST_WQ_TARGET_QUEUE));
    }
    v
}

/// Per-call buffers, made before the injection so that the call itself is
/// the only system call between arming fail-nth and reading it back.
struct Prepared {
    enqueue: RustWqEnqueue,
    target: RustWqTarget,
    mod_delay: RustWqModDelay,
    results: RustWqResults,
    results_buf: Vec<RustWqResult>,
    stats: RustWqStats,
    info: RustWqInfo,
    bench: RustWqBench,
    path: CString,
    /// The file to close (Close only).
    close_fd: i32,
}

/// Sets up `dev` for `call` (pending items, results) and the arguments.
fn prepare(opts: &Opts, dev: &Device, call: Call) -> Result<Prepared, String> {
    let e = |w: &str, r: Errno| format!("{w} (set-up): {r}");
    // Four delayed items on the unbound queue, and two results.
    let first = dev
        .enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 4).delay_us(5_000_000))
        .map_err(|r| e("ENQUEUE", r))?;
    dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_SYSTEM_DFL, 2))
        .map_err(|r| e("ENQUEUE", r))?;
    dev.flush(Target::Queue(RUST_WQ_Q_SYSTEM_DFL))
        .map_err(|r| e("FLUSH", r))?;
    let mut p = Prepared {
        enqueue: RustWqEnqueue::default(),
        target: RustWqTarget::default(),
        mod_delay: RustWqModDelay {
            version: RUST_WQ_ABI_VERSION,
            id: first,
            delay_us: 4_000_000,
            ..Default::default()
        },
        results: RustWqResults::default(),
        results_buf: vec![RustWqResult::default(); 16],
        stats: RustWqStats::default(),
        info: RustWqInfo::default(),
        bench: wqctl::BenchArgs {
            op: wqctl::abi::RUST_WQ_BENCH_OP_RT,
            path: RUST_WQ_BENCH_PERCPU,
            items: 10,
            threads: 0,
            start_latency: true,
        }
        .to_raw(),
        path: CString::new(opts.path.clone()).map_err(|_| "device path has a NUL".to_string())?,
        close_fd: -1,
    };
    p.results = RustWqResults {
        version: RUST_WQ_ABI_VERSION,
        capacity: 16,
        buf: p.results_buf.as_mut_ptr() as u64,
        ..Default::default()
    };
    match call {
        Call::Enqueue {
            q,
            count,
            delay_us,
            cpu,
        } => {
            p.enqueue = EnqueueArgs::new(q, count)
                .delay_us(delay_us)
                .sleep_us(0)
                .cpu(cpu)
                .to_raw();
        }
        Call::Flush(k) | Call::Cancel(k) => {
            p.target = match k {
                RUST_WQ_TARGET_ALL => Target::All,
                RUST_WQ_TARGET_ID => Target::Id(first + 1),
                _ => Target::Queue(RUST_WQ_Q_UNBOUND),
            }
            .to_raw();
        }
        Call::Close => {
            let d = Device::open(&opts.path).map_err(|r| e("open", r))?;
            d.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 4).delay_us(5_000_000))
                .map_err(|r| e("ENQUEUE", r))?;
            d.enqueue(EnqueueArgs::new(RUST_WQ_Q_ORDERED, 2).sleep_us(20_000))
                .map_err(|r| e("ENQUEUE", r))?;
            // SAFETY: duplicates a descriptor we own; `d` is closed right after, so the
            // duplicate holds the last reference and closing it releases the file.
            p.close_fd = unsafe { libc::dup(d.raw_fd()) };
            if p.close_fd < 0 {
                return Err(format!("dup: {}", Errno::last()));
            }
        }
        _ => {}
    }
    Ok(p)
}

/// Makes the call once; the return value is the errno (0 for success).
fn invoke(dev: &Device, call: Call, p: &mut Prepared) -> i32 {
    let r: Result<i32, Errno> = match call {
        Call::Open => {
            // SAFETY: a NUL-terminated path.
            let fd = unsafe { libc::open(p.path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
            if fd < 0 {
                Err(Errno::last())
            } else {
                p.close_fd = fd;
                Ok(0)
            }
        }
        Call::Close => {
            // SAFETY: closes the descriptor we own.
            let r = unsafe { libc::close(p.close_fd) };
            p.close_fd = -1;
            if r < 0 {
                Err(Errno::last())
            } else {
                Ok(0)
            }
        }
        Call::Info => dev.ioctl_with(RUST_WQ_IOC_INFO, &mut p.info),
        Call::Enqueue { .. } => dev.ioctl_with(RUST_WQ_IOC_ENQUEUE, &mut p.enqueue),
        Call::Flush(_) => dev.ioctl_with(RUST_WQ_IOC_FLUSH, &mut p.target),
        Call::Cancel(_) => dev.ioctl_with(RUST_WQ_IOC_CANCEL, &mut p.target),
        Call::ModDelay => dev.ioctl_with(RUST_WQ_IOC_MOD_DELAY, &mut p.mod_delay),
        Call::Results => dev.ioctl_with(RUST_WQ_IOC_RESULTS, &mut p.results),
        Call::Stats => dev.ioctl_with(RUST_WQ_IOC_STATS, &mut p.stats),
        // SAFETY: RESET takes no argument.
        Call::Reset => unsafe { dev.ioctl_addr(RUST_WQ_IOC_RESET, 0) },
        Call::Bench => dev.ioctl_with(RUST_WQ_IOC_BENCH, &mut p.bench),
    };
    match r {
        Ok(_) => 0,
        Err(e) => e.0,
    }
}

/// After a call: STATS consistent, and the file works.
fn after(dev: &Device, what: &str) -> Result<(), String> {
    let s = dev.stats().map_err(|e| format!("{what}: STATS: {e}"))?;
    if s.enqueued != s.executed + s.cancelled + s.pending {
        return Err(format!(
            "{what}: STATS inconsistent: enqueued {} executed {} cancelled {} pending {}",
            s.enqueued, s.executed, s.cancelled, s.pending
        ));
    }
    let id = dev
        .enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1))
        .map_err(|e| format!("{what}: next ENQUEUE: {e}"))?;
    dev.flush(Target::Id(id))
        .map_err(|e| format!("{what}: next FLUSH: {e}"))?;
    let (res, _) = dev
        .drain_results()
        .map_err(|e| format!("{what}: next RESULTS: {e}"))?;
    if !res.iter().any(|r| r.id == id) {
        return Err(format!("{what}: the next item (id {id}) left no result"));
    }
    dev.reset().map_err(|e| format!("{what}: RESET: {e}"))?;
    Ok(())
}

pub fn run(opts: &Opts, rep: &mut Report) -> Result<(), Outcome> {
    let _settings = match FailslabSettings::apply() {
        Some(s) => s,
        None => {
            return unavailable(
                "failslab",
                "failslab not available (CONFIG_FAILSLAB, FAULT_INJECTION_DEBUG_FS)",
            )
        }
    };
    let f = FailNth::open()
        .map_err(|e| Outcome::Fail(vec![format!("open /proc/thread-self/fail-nth: {e}")]))?;
    let dev = opts.open()?;
    let info = dev.info().must("INFO")?;
    let cpu = wqctl::parse::cpus_in_mask(info.online_cpus, info.nr_cpu_ids)
        .last()
        .copied()
        .unwrap_or(0);
    let t0 = Instant::now();
    let mut lines = Vec::new();
    let mut total_points = 0;
    for call in calls(opts, cpu) {
        let name = call.name();
        let mut tally = Tally::default();
        let mut reached = 0;
        let mut slowest = Duration::ZERO;
        let mut n = 1;
        loop {
            if n > MAX_POINTS {
                rep.fail(format!(
                    "{name}: still reaching failure points after {MAX_POINTS}"
                ));
                break;
            }
            let mut p = prepare(opts, &dev, call).map_err(|e| Outcome::Fail(vec![e]))?;
            let t = Instant::now();
            let (errno, hit) = f
                .call(n, || invoke(&dev, call, &mut p))
                .map_err(|e| Outcome::Fail(vec![format!("fail-nth: {e}")]))?;
            let el = t.elapsed();
            slowest = slowest.max(el);
            if p.close_fd >= 0 {
                // SAFETY: a descriptor this sweep opened.
                unsafe { libc::close(p.close_fd) };
            }
            let what = format!("{name} with failure point {n}");
            if el > Duration::from_secs(10) {
                rep.fail(format!("{what}: took {} ms", el.as_millis()));
            }
            if errno != 0 && !call.allowed().contains(&errno) {
                rep.fail(format!(
                    "{what}: returned {} (not documented for it)",
                    Errno(errno)
                ));
            }
            if let Err(e) = after(&dev, &what) {
                rep.fail(e);
                break;
            }
            if !hit {
                tally.add("completed", 1);
                break;
            }
            reached += 1;
            tally.add(
                if errno == 0 {
                    "ok".to_string()
                } else {
                    Errno(errno).name()
                },
                1,
            );
            n += 1;
        }
        total_points += reached;
        lines.push(format!(
            "{name}: {reached} points reached -> {} (slowest {} ms)",
            tally
                .0
                .iter()
                .filter(|(k, _)| *k != "completed")
                .map(|(k, v)| format!("{k} x{v}"))
                .collect::<Vec<_>>()
                .join(", "),
            slowest.as_millis()
        ));
    }
    rep.diag(format!(
        "{total_points} failure points injected over {} calls in {:.1} s",
        lines.len(),
        t0.elapsed().as_secs_f64()
    ));
    for l in lines {
        rep.diag(l);
    }
    Ok(())
}

/// KUnit's module-test filter, set to match nothing during the insmod sweep
/// (the module's KUnit suite would otherwise run, and be swept, at every
/// successful load); restored on drop.
struct KunitFilter(Option<String>);

impl KunitFilter {
    const PATH: &'static str = "/sys/module/kunit/parameters/filter_glob";

    fn match_nothing() -> Self {
        let old = std::fs::read_to_string(Self::PATH)
            .ok()
            .map(|s| s.trim().to_string());
        if old.is_some() {
            let _ = std::fs::write(Self::PATH, "rust_wq_failnth_no_suite");
        }
        KunitFilter(old)
    }
}

impl Drop for KunitFilter {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            let v = if old == "(null)" { "" } else { old.as_str() };
            let _ = std::fs::write(Self::PATH, v);
        }
    }
}

/// Whether anything of the module is still registered.
fn module_leftovers() -> Vec<String> {
    let mut v = Vec::new();
    if std::path::Path::new("/sys/module/rust_wq").exists() {
        v.push("/sys/module/rust_wq".to_string());
    }
    if let Ok(d) = std::fs::read_dir("/sys/bus/workqueue/devices") {
        for e in d.flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            if n.starts_with("rust_wq") {
                v.push(format!("/sys/bus/workqueue/devices/{n}"));
            }
        }
    }
    v
}

fn delete_module() -> Result<(), Errno> {
    // SAFETY: a NUL-terminated module name; O_NONBLOCK fails at once if in use.
    let r = unsafe {
        libc::syscall(
            libc::SYS_delete_module,
            c"rust_wq".as_ptr(),
            libc::O_NONBLOCK,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// Scenario `failnth_insmod` (module unloaded before, left unloaded): the
/// module load (finit_module) with its 1st, 2nd, ... fault-injection point
/// failing.  A failed load must leave nothing registered; a load that
/// succeeded must work and unload.
pub fn run_insmod(opts: &Opts, rep: &mut Report) -> Result<(), Outcome> {
    let Some(ko) = opts.ko.clone() else {
        return skip("no module file (RUST_WQ_KO or --ko)");
    };
    if !module_leftovers().is_empty() {
        return fail(format!(
            "the module must be unloaded first: {:?}",
            module_leftovers()
        ));
    }
    let _settings = match FailslabSettings::apply() {
        Some(s) => s,
        None => return unavailable("failslab", "failslab not available"),
    };
    let _kunit = KunitFilter::match_nothing();
    let file =
        std::fs::File::open(&ko).map_err(|e| Outcome::Fail(vec![format!("open {ko}: {e}")]))?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    let f = FailNth::open()
        .map_err(|e| Outcome::Fail(vec![format!("open /proc/thread-self/fail-nth: {e}")]))?;
    let t0 = Instant::now();
    let mut tally = Tally::default();
    let max = opts.pick(400u32, MAX_POINTS);
    for n in 1..=max {
        let (r, hit) = f
            .call(n, || {
                // SAFETY: a valid fd and an empty, NUL-terminated parameter string.
                let r = unsafe { libc::syscall(libc::SYS_finit_module, fd, c"".as_ptr(), 0) };
                if r < 0 {
                    Err(Errno::last())
                } else {
                    Ok(())
                }
            })
            .map_err(|e| Outcome::Fail(vec![format!("fail-nth: {e}")]))?;
        let what = format!("insmod with failure point {n}");
        match r {
            Ok(()) => {
                // Loaded: it must work, and unload.
                match Device::open(&opts.path) {
                    Ok(dev) => {
                        if let Err(e) = after(&dev, &what) {
                            rep.fail(e);
                        }
                    }
                    Err(e) => rep.fail(format!("{what}: loaded, but open {}: {e}", opts.path)),
                }
                let mut unloaded = false;
                for _ in 0..50 {
                    if delete_module().is_ok() {
                        unloaded = true;
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                if !unloaded {
                    return fail(format!("{what}: loaded, but rmmod failed"));
                }
            }
            Err(e) => {
                if e.0 != libc::ENOMEM {
                    tally.add(format!("insmod:{}", e.name()), 1);
                }
            }
        }
        let left = module_leftovers();
        if !left.is_empty() {
            return fail(format!("{what} ({r:?}): left behind {left:?}"));
        }
        if !hit {
            rep.diag(format!(
                "insmod: {} failure points reached -> {}; completed at point {n} ({:.1} s)",
                n - 1,
                tally.joined(),
                t0.elapsed().as_secs_f64()
            ));
            return Ok(());
        }
        tally.add(
            match r {
                Ok(()) => "ok".to_string(),
                Err(e) => e.name(),
            },
            1,
        );
    }
    rep.diag(format!(
        "insmod: stopped after {max} failure points ({}; {:.1} s)",
        tally.joined(),
        t0.elapsed().as_secs_f64()
    ));
    Ok(())
}
