//! Safe userspace access to `/dev/rust_wq` (see `include/rust_wq.h`).
//!
//! [`Device`] wraps one open file of the device.  Work items belong to the
//! open file that enqueued them: dropping the `Device` (closing the file)
//! cancels whatever has not started yet.

pub mod abi;
pub mod hostile;
pub mod parse;
pub mod session;
pub mod summary;
pub mod testing;

use abi::*;
use std::ffi::c_void;
use std::fmt;
use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

/// An errno value returned by a failed system call.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

pub type Result<T> = std::result::Result<T, Errno>;

const ERRNO_NAMES: &[(i32, &str)] = &[
    (libc::EPERM, "EPERM"),
    (libc::ENOENT, "ENOENT"),
    (libc::ESRCH, "ESRCH"),
    (libc::EINTR, "EINTR"),
    (libc::EIO, "EIO"),
    (libc::ENXIO, "ENXIO"),
    (libc::E2BIG, "E2BIG"),
    (libc::ENOEXEC, "ENOEXEC"),
    (libc::EBADF, "EBADF"),
    (libc::ECHILD, "ECHILD"),
    (libc::EAGAIN, "EAGAIN"),
    (libc::ENOMEM, "ENOMEM"),
    (libc::EACCES, "EACCES"),
    (libc::EFAULT, "EFAULT"),
    (libc::EBUSY, "EBUSY"),
    (libc::EEXIST, "EEXIST"),
    (libc::ENODEV, "ENODEV"),
    (libc::ENOTDIR, "ENOTDIR"),
    (libc::EISDIR, "EISDIR"),
    (libc::EINVAL, "EINVAL"),
    (libc::ENFILE, "ENFILE"),
    (libc::EMFILE, "EMFILE"),
    (libc::ENOTTY, "ENOTTY"),
    (libc::ENOSPC, "ENOSPC"),
    (libc::EROFS, "EROFS"),
    (libc::EPIPE, "EPIPE"),
    (libc::ERANGE, "ERANGE"),
    (libc::EDEADLK, "EDEADLK"),
    (libc::ENOSYS, "ENOSYS"),
    (libc::EOVERFLOW, "EOVERFLOW"),
    (libc::EOPNOTSUPP, "EOPNOTSUPP"),
    (libc::ETIMEDOUT, "ETIMEDOUT"),
    (libc::ECANCELED, "ECANCELED"),
];

impl Errno {
    /// The errno of the last failed libc call on this thread.
    pub fn last() -> Self {
        Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }

    /// Symbolic name such as `ENOENT` (or `errno 123` if unknown).
    pub fn name(self) -> String {
        ERRNO_NAMES
            .iter()
            .find(|(n, _)| *n == self.0)
            .map_or_else(|| format!("errno {}", self.0), |(_, s)| (*s).to_string())
    }

    /// The C library's description, e.g. `No such file or directory`.
    pub fn description(self) -> String {
        let s = std::io::Error::from_raw_os_error(self.0).to_string();
        match s.rfind(" (os error ") {
            Some(i) => s[..i].to_string(),
            None => s,
        }
    }
}

impl fmt::Display for Errno {
    /// `ENOENT (No such file or directory)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.description())
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Errno {}

impl From<std::io::Error> for Errno {
    fn from(e: std::io::Error) -> Self {
        Errno(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

/// Which items a FLUSH or CANCEL applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// All of this file's items (RUST_WQ_TARGET_ALL).
    All,
    /// The item with this id (RUST_WQ_TARGET_ID).
    Id(u64),
    /// All of this file's items on this queue (RUST_WQ_TARGET_QUEUE).
    Queue(u32),
}

impl Target {
    /// The ioctl argument for this target.
    pub fn to_raw(self) -> RustWqTarget {
        let mut t = RustWqTarget {
            version: RUST_WQ_ABI_VERSION,
            ..Default::default()
        };
        match self {
            Target::All => t.kind = RUST_WQ_TARGET_ALL,
            Target::Id(id) => {
                t.kind = RUST_WQ_TARGET_ID;
                t.id = id;
            }
            Target::Queue(q) => {
                t.kind = RUST_WQ_TARGET_QUEUE;
                t.queue = q;
            }
        }
        t
    }
}

/// Parameters of one ENQUEUE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnqueueArgs {
    pub queue: u32,
    /// A CPU number, or RUST_WQ_CPU_ANY.
    pub cpu: u32,
    pub count: u32,
    pub delay_us: u64,
    pub sleep_us: u64,
    pub tag: u64,
    /// Queue from a hard-IRQ handler (RUST_WQ_ENQ_F_FROM_IRQ).
    pub from_irq: bool,
    /// Queue from softirq context (RUST_WQ_ENQ_F_FROM_SOFTIRQ).
    pub from_softirq: bool,
}

impl Default for EnqueueArgs {
    fn default() -> Self {
        EnqueueArgs {
            queue: RUST_WQ_Q_PERCPU,
            cpu: RUST_WQ_CPU_ANY,
            count: 1,
            delay_us: 0,
            sleep_us: 0,
            tag: 0,
            from_irq: false,
            from_softirq: false,
        }
    }
}

impl EnqueueArgs {
    /// `count` items on `queue`, any CPU, no delay, no sleep, tag 0.
    pub fn new(queue: u32, count: u32) -> Self {
        EnqueueArgs {
            queue,
            count,
            ..Default::default()
        }
    }
    pub fn cpu(mut self, cpu: u32) -> Self {
        self.cpu = cpu;
        self
    }
    pub fn delay_us(mut self, us: u64) -> Self {
        self.delay_us = us;
        self
    }
    pub fn sleep_us(mut self, us: u64) -> Self {
        self.sleep_us = us;
        self
    }
    pub fn tag(mut self, tag: u64) -> Self {
        self.tag = tag;
        self
    }
    pub fn from_irq(mut self, from_irq: bool) -> Self {
        self.from_irq = from_irq;
        self
    }
    pub fn from_softirq(mut self, from_softirq: bool) -> Self {
        self.from_softirq = from_softirq;
        self
    }

    /// The ioctl argument for these parameters.
    pub fn to_raw(self) -> RustWqEnqueue {
        RustWqEnqueue {
            version: RUST_WQ_ABI_VERSION,
            queue: self.queue,
            cpu: self.cpu,
            count: self.count,
            delay_us: self.delay_us,
            sleep_us: self.sleep_us,
            tag: self.tag,
            flags: if self.from_irq {
                RUST_WQ_ENQ_F_FROM_IRQ
            } else {
                0
            } | if self.from_softirq {
                RUST_WQ_ENQ_F_FROM_SOFTIRQ
            } else {
                0
            },
            ..Default::default()
        }
    }
}

/// Parameters of one RUST_WQ_IOC_BENCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchArgs {
    /// RUST_WQ_BENCH_*.
    pub path: u32,
    /// Rounds per thread (1 .. RUST_WQ_BENCH_MAX_ITEMS).
    pub items: u32,
    /// 0: one thread per online CPU.
    pub threads: u32,
    /// Also measure queueing-to-start latency (RUST_WQ_BENCH_F_START_LATENCY).
    pub start_latency: bool,
    /// RUST_WQ_BENCH_OP_*: what is timed.
    pub op: u32,
}

impl BenchArgs {
    /// The ioctl argument for these parameters.
    pub fn to_raw(self) -> RustWqBench {
        RustWqBench {
            version: RUST_WQ_ABI_VERSION,
            path: self.path,
            threads: self.threads,
            items: self.items,
            flags: if self.start_latency {
                RUST_WQ_BENCH_F_START_LATENCY
            } else {
                0
            },
            op: self.op,
            ..Default::default()
        }
    }
}

/// The affinity scopes of an unbound workqueue, in the order
/// `lib/test_workqueue.c` runs them.
pub const BENCH_SCOPES: [&str; 6] = ["cpu", "smt", "cache_shard", "cache", "numa", "system"];

/// The sysfs file holding the affinity scope of the benchmark's unbound queue.
pub const BENCH_SCOPE_PATH: &str = "/sys/bus/workqueue/devices/rust_wq_bench/affinity_scope";

/// Sets the affinity scope of the `rust_wq_bench` queue (one of [`BENCH_SCOPES`])
/// by writing `scope_path` (normally [`BENCH_SCOPE_PATH`]).
pub fn set_bench_scope(scope_path: impl AsRef<Path>, scope: &str) -> Result<()> {
    if !BENCH_SCOPES.contains(&scope) {
        return Err(Errno(libc::EINVAL));
    }
    std::fs::write(scope_path, scope)?;
    Ok(())
}

/// One benchmark report as a JSON object; `scope` is included when given.
pub fn bench_json(b: &RustWqBench, scope: Option<&str>) -> String {
    let path =
        abi::bench_path_name(b.path).map_or_else(|| b.path.to_string(), |p| format!("\"{p}\""));
    let scope = scope.map_or_else(|| "null".to_string(), |s| format!("\"{s}\""));
    let op = abi::bench_op_name(b.op).map_or_else(|| b.op.to_string(), |o| format!("\"{o}\""));
    format!(
        "{{\"op\":{},\"path\":{},\"scope\":{},\"items\":{},\"threads\":{},\"start_latency\":{},\
         \"elapsed_ns\":{},\"items_per_sec\":{},\"queue_p50_ns\":{},\"queue_p90_ns\":{},\
         \"queue_p95_ns\":{},\"queue_p99_ns\":{},\"start_p50_ns\":{},\"start_p90_ns\":{},\
         \"start_p95_ns\":{}}}",
        op,
        path,
        scope,
        b.items,
        b.threads_run,
        b.flags & RUST_WQ_BENCH_F_START_LATENCY != 0,
        b.elapsed_ns,
        b.items_per_sec,
        b.queue_p50_ns,
        b.queue_p90_ns,
        b.queue_p95_ns,
        b.queue_p99_ns,
        b.start_p50_ns,
        b.start_p90_ns,
        b.start_p95_ns
    )
}

/// One benchmark report as one human-readable line, in the style of
/// `lib/test_workqueue.c`'s dmesg lines.
pub fn bench_line(b: &RustWqBench, scope: Option<&str>) -> String {
    let path = abi::bench_path_name(b.path).map_or_else(|| b.path.to_string(), str::to_string);
    let op = abi::bench_op_name(b.op).map_or_else(|| b.op.to_string(), str::to_string);
    let label = match scope {
        Some(s) => format!("{op} {path}/{s}"),
        None => format!("{op} {path}"),
    };
    let start = if b.flags & RUST_WQ_BENCH_F_START_LATENCY != 0 {
        format!(
            "start p50={} p90={} p95={} ns",
            b.start_p50_ns, b.start_p90_ns, b.start_p95_ns
        )
    } else {
        "start -".to_string()
    };
    format!(
        "{label:<30} {} items/sec  timed call p50={} p90={} p95={} p99={} ns  {start}  \
         threads={} items={} elapsed={} ns",
        b.items_per_sec,
        b.queue_p50_ns,
        b.queue_p90_ns,
        b.queue_p95_ns,
        b.queue_p99_ns,
        b.threads_run,
        b.items,
        b.elapsed_ns
    )
}

/// One open file of `/dev/rust_wq`.
#[derive(Debug)]
pub struct Device {
    fd: OwnedFd,
}

impl Device {
    /// Opens `path` read-write with O_CLOEXEC.
    pub fn open(path: impl AsRef<Path>) -> Result<Device> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)?;
        Ok(Device { fd: f.into() })
    }

    /// Opens the default device, RUST_WQ_DEVICE (`/dev/rust_wq`).
    pub fn open_default() -> Result<Device> {
        Self::open(RUST_WQ_DEVICE)
    }

    /// The raw file descriptor (still owned by this `Device`).
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Issues an arbitrary ioctl with an arbitrary pointer argument.
    ///
    /// Returns the non-negative return value, or the errno.
    ///
    /// # Safety
    /// If the kernel writes through `arg` (as the size/direction encoded in
    /// `cmd` permits), `arg` must point to that much writable memory that
    /// nothing else uses, or be an address the kernel will refuse (EFAULT).
    pub unsafe fn ioctl_raw(&self, cmd: u32, arg: *mut c_void) -> Result<i32> {
        // `as _`: the request type is c_ulong on glibc and c_int on musl.
        let r = libc::ioctl(self.fd.as_raw_fd(), cmd as _, arg);
        if r < 0 {
            Err(Errno::last())
        } else {
            Ok(r)
        }
    }

    /// Issues an arbitrary ioctl with an integer argument (used as the pointer).
    ///
    /// # Safety
    /// As [`Device::ioctl_raw`]: `arg` must be an address the kernel may write
    /// (per `cmd`), or one it will refuse.
    pub unsafe fn ioctl_addr(&self, cmd: u32, arg: usize) -> Result<i32> {
        self.ioctl_raw(cmd, arg as *mut c_void)
    }

    /// Issues `cmd` with a pointer to `arg`.  The size encoded in `cmd` must
    /// not exceed `size_of::<T>()` (checked: panics otherwise, as the kernel
    /// could write past `arg`).
    pub fn ioctl_with<T>(&self, cmd: u32, arg: &mut T) -> Result<i32> {
        assert!(
            ioc_size(cmd) <= std::mem::size_of::<T>(),
            "ioctl {cmd:#x} encodes {} bytes but the buffer has {}",
            ioc_size(cmd),
            std::mem::size_of::<T>()
        );
        // SAFETY: `arg` is valid for size_of::<T>() bytes, which covers the
        // size the kernel may read or write for this command.
        unsafe { self.ioctl_raw(cmd, arg as *mut T as *mut c_void) }
    }

    /// RUST_WQ_IOC_INFO.
    pub fn info(&self) -> Result<RustWqInfo> {
        let mut info = RustWqInfo::default();
        self.ioctl_with(RUST_WQ_IOC_INFO, &mut info)?;
        Ok(info)
    }

    /// RUST_WQ_IOC_ENQUEUE with a prepared argument (returns the filled-in struct).
    pub fn enqueue_raw(&self, mut arg: RustWqEnqueue) -> Result<RustWqEnqueue> {
        self.ioctl_with(RUST_WQ_IOC_ENQUEUE, &mut arg)?;
        Ok(arg)
    }

    /// RUST_WQ_IOC_ENQUEUE: returns the id of the first item; the items have
    /// ids first_id .. first_id + count - 1.
    pub fn enqueue(&self, args: EnqueueArgs) -> Result<u64> {
        Ok(self.enqueue_raw(args.to_raw())?.first_id)
    }

    /// RUST_WQ_IOC_FLUSH with a prepared argument.
    pub fn flush_raw(&self, mut arg: RustWqTarget) -> Result<RustWqTarget> {
        self.ioctl_with(RUST_WQ_IOC_FLUSH, &mut arg)?;
        Ok(arg)
    }

    /// RUST_WQ_IOC_FLUSH: returns how many items were waited for.
    pub fn flush(&self, target: Target) -> Result<u64> {
        Ok(self.flush_raw(target.to_raw())?.count)
    }

    /// RUST_WQ_IOC_CANCEL with a prepared argument.
    pub fn cancel_raw(&self, mut arg: RustWqTarget) -> Result<RustWqTarget> {
        self.ioctl_with(RUST_WQ_IOC_CANCEL, &mut arg)?;
        Ok(arg)
    }

    /// RUST_WQ_IOC_CANCEL: returns how many items were cancelled.
    pub fn cancel(&self, target: Target) -> Result<u64> {
        Ok(self.cancel_raw(target.to_raw())?.count)
    }

    /// RUST_WQ_IOC_MOD_DELAY with a prepared argument.
    pub fn mod_delay_raw(&self, mut arg: RustWqModDelay) -> Result<()> {
        self.ioctl_with(RUST_WQ_IOC_MOD_DELAY, &mut arg)?;
        Ok(())
    }

    /// RUST_WQ_IOC_MOD_DELAY: the pending item `id` now runs `delay_us` from now.
    pub fn mod_delay(&self, id: u64, delay_us: u64) -> Result<()> {
        self.mod_delay_raw(RustWqModDelay {
            version: RUST_WQ_ABI_VERSION,
            id,
            delay_us,
            ..Default::default()
        })
    }

    /// RUST_WQ_IOC_RESULTS: removes and returns up to `capacity` results,
    /// oldest first, and how many were dropped since the last call.
    ///
    /// A kernel that breaks the ABI by reporting more than `capacity` results,
    /// or by writing past them (a canary entry follows the buffer), gives
    /// `EOVERFLOW` (made here, not by the kernel) instead of a truncated list.
    pub fn results(&self, capacity: u32) -> Result<(Vec<RustWqResult>, u64)> {
        const CANARY: RustWqResult = RustWqResult {
            id: 0x5a5a_5a5a_5a5a_5a5a,
            tag: 0xa5a5_a5a5_a5a5_a5a5,
            seq: !0,
            latency_ns: !0,
            runtime_ns: !0,
            requested_cpu: !0,
            cpu: !0,
            queue: !0,
            flags: !0,
            reserved: 0x5a5a_5a5a_5a5a_5a5a,
        };
        let mut buf = vec![RustWqResult::default(); capacity as usize];
        buf.push(CANARY);
        let mut arg = RustWqResults {
            version: RUST_WQ_ABI_VERSION,
            capacity,
            buf: if capacity == 0 {
                0
            } else {
                buf.as_mut_ptr() as u64
            },
            ..Default::default()
        };
        // SAFETY: `arg` is a valid rust_wq_results and `buf` has room for
        // `capacity` results; both outlive the call.
        unsafe { self.ioctl_raw(RUST_WQ_IOC_RESULTS, &mut arg as *mut _ as *mut c_void)? };
        if arg.count > capacity || buf[capacity as usize] != CANARY {
            return Err(Errno(libc::EOVERFLOW));
        }
        buf.truncate(arg.count as usize);
        Ok((buf, arg.dropped))
    }

    /// Reads results until the kernel returns none; returns them and the
    /// total dropped count.
    pub fn drain_results(&self) -> Result<(Vec<RustWqResult>, u64)> {
        let mut all = Vec::new();
        let mut dropped = 0;
        loop {
            let (r, d) = self.results(256)?;
            dropped += d;
            if r.is_empty() {
                return Ok((all, dropped));
            }
            all.extend(r);
        }
    }

    /// RUST_WQ_IOC_STATS.
    pub fn stats(&self) -> Result<RustWqStats> {
        let mut s = RustWqStats::default();
        self.ioctl_with(RUST_WQ_IOC_STATS, &mut s)?;
        Ok(s)
    }

    /// RUST_WQ_IOC_BENCH with a prepared argument (returns the filled-in struct).
    /// Blocks until the benchmark has run.
    pub fn bench_raw(&self, mut arg: RustWqBench) -> Result<RustWqBench> {
        self.ioctl_with(RUST_WQ_IOC_BENCH, &mut arg)?;
        Ok(arg)
    }

    /// RUST_WQ_IOC_BENCH: runs the in-kernel workqueue benchmark and returns its report.
    pub fn bench(&self, args: BenchArgs) -> Result<RustWqBench> {
        self.bench_raw(args.to_raw())
    }

    /// Waits with poll(2) until the file has unread results (`POLLIN`) or
    /// `timeout` has passed (`None`: no limit).  Returns whether results are
    /// waiting; `Err(EINTR)` when a signal interrupted the wait.
    pub fn wait_readable(&self, timeout: Option<Duration>) -> Result<bool> {
        Ok(poll_fd(self.raw_fd(), libc::POLLIN, timeout)? & libc::POLLIN != 0)
    }

    /// RUST_WQ_IOC_RESET: cancel everything, drop results, zero counters.
    pub fn reset(&self) -> Result<()> {
        // SAFETY: _IO command, the argument is not used.
        unsafe { self.ioctl_raw(RUST_WQ_IOC_RESET, std::ptr::null_mut())? };
        Ok(())
    }
}

impl AsRawFd for Device {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// poll(2) on one file descriptor: waits until one of `events` is ready or
/// `timeout` has passed (`None`: no limit; rounded up to whole milliseconds).
/// Returns the `revents` (0 on timeout).
pub fn poll_fd(fd: RawFd, events: i16, timeout: Option<Duration>) -> Result<i16> {
    let ms = match timeout {
        None => -1,
        Some(t) => t.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32,
    };
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: `p` is one valid pollfd for the duration of the call.
    let r = unsafe { libc::poll(&mut p, 1, ms) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(p.revents)
    }
}

/// The result flags and their names, in the order [`format_flags`] prints them.
const RESULT_FLAG_NAMES: [(u32, &str); 5] = [
    (RUST_WQ_RES_FROM_TASK, "FROM_TASK"),
    (RUST_WQ_RES_FROM_SOFTIRQ, "FROM_SOFTIRQ"),
    (RUST_WQ_RES_FROM_HARDIRQ, "FROM_HARDIRQ"),
    (RUST_WQ_RES_PROCESS_CTX, "PROCESS_CTX"),
    (RUST_WQ_RES_SLEPT, "SLEPT"),
];

/// Decodes result flags as `FROM_HARDIRQ|PROCESS_CTX|SLEPT` (or `-`).
pub fn format_flags(flags: u32) -> String {
    let mut v = Vec::new();
    let mut known = 0;
    for (bit, name) in RESULT_FLAG_NAMES {
        known |= bit;
        if flags & bit != 0 {
            v.push(name.to_string());
        }
    }
    let rest = flags & !known;
    if rest != 0 {
        v.push(format!("{rest:#x}"));
    }
    if v.is_empty() {
        "-".into()
    } else {
        v.join("|")
    }
}

/// The results table: `id tag seq queue req_cpu cpu latency_us runtime_us flags`.
pub fn format_results_table(results: &[RustWqResult]) -> String {
    let mut s = results_header() + "\n";
    for r in results {
        s += &result_row(r);
        s.push('\n');
    }
    s
}

/// The header line of [`format_results_table`] (without newline).
pub fn results_header() -> String {
    format!(
        "{:>6} {:>6} {:>8} {:<13} {:>7} {:>4} {:>11} {:>11} {}",
        "id", "tag", "seq", "queue", "req_cpu", "cpu", "latency_us", "runtime_us", "flags"
    )
}

/// One row of [`format_results_table`] (without newline).
pub fn result_row(r: &RustWqResult) -> String {
    format!(
        "{:>6} {:>6} {:>8} {:<13} {:>7} {:>4} {:>11} {:>11} {}",
        r.id,
        r.tag,
        r.seq,
        parse::format_queue(r.queue),
        parse::format_cpu(r.requested_cpu),
        r.cpu,
        r.latency_ns / 1000,
        r.runtime_ns / 1000,
        format_flags(r.flags)
    )
}

/// The context that queued an item, from its result flags: `hardirq`, `softirq`,
/// `task`, or `unknown` (a module that does not report it).
pub fn queued_from(flags: u32) -> &'static str {
    if flags & RUST_WQ_RES_FROM_HARDIRQ != 0 {
        "hardirq"
    } else if flags & RUST_WQ_RES_FROM_SOFTIRQ != 0 {
        "softirq"
    } else if flags & RUST_WQ_RES_FROM_TASK != 0 {
        "task"
    } else {
        "unknown"
    }
}

/// One result as a JSON object (hand-written; all values are numbers or
/// plain ASCII strings, so no escaping is needed).
pub fn result_json(r: &RustWqResult) -> String {
    let req = if r.requested_cpu == RUST_WQ_CPU_ANY {
        "\"any\"".to_string()
    } else {
        r.requested_cpu.to_string()
    };
    format!(
        "{{\"id\":{},\"tag\":{},\"seq\":{},\"queue\":\"{}\",\"requested_cpu\":{},\"cpu\":{},\
         \"latency_ns\":{},\"runtime_ns\":{},\"flags\":{},\"process_ctx\":{},\"slept\":{},\
         \"queued_from\":\"{}\"}}",
        r.id,
        r.tag,
        r.seq,
        parse::format_queue(r.queue),
        req,
        r.cpu,
        r.latency_ns,
        r.runtime_ns,
        r.flags,
        r.flags & RUST_WQ_RES_PROCESS_CTX != 0,
        r.flags & RUST_WQ_RES_SLEPT != 0,
        queued_from(r.flags)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_display() {
        assert_eq!(
            Errno(libc::ENOENT).to_string(),
            "ENOENT (No such file or directory)"
        );
        assert_eq!(Errno(libc::EINVAL).to_string(), "EINVAL (Invalid argument)");
        assert_eq!(Errno(libc::ENOTTY).name(), "ENOTTY");
        assert_eq!(Errno(9999).name(), "errno 9999");
    }

    #[test]
    fn target_encoding() {
        let t = Target::Id(7).to_raw();
        assert_eq!(
            (t.version, t.kind, t.id, t.queue),
            (1, RUST_WQ_TARGET_ID, 7, 0)
        );
        let t = Target::Queue(RUST_WQ_Q_ORDERED).to_raw();
        assert_eq!(
            (t.kind, t.queue, t.id),
            (RUST_WQ_TARGET_QUEUE, RUST_WQ_Q_ORDERED, 0)
        );
        assert_eq!(Target::All.to_raw().kind, RUST_WQ_TARGET_ALL);
    }

    #[test]
    fn enqueue_encoding() {
        let e = EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 3)
            .cpu(2)
            .delay_us(5)
            .sleep_us(6)
            .tag(9)
            .to_raw();
        assert_eq!(e.version, RUST_WQ_ABI_VERSION);
        assert_eq!(
            (e.queue, e.cpu, e.count, e.delay_us, e.sleep_us, e.tag),
            (1, 2, 3, 5, 6, 9)
        );
        assert_eq!((e.first_id, e.flags, e.reserved), (0, 0, [0]));
        let e = EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 3)
            .from_irq(true)
            .to_raw();
        assert_eq!(e.flags, RUST_WQ_ENQ_F_FROM_IRQ);
        let e = EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 3)
            .from_softirq(true)
            .to_raw();
        assert_eq!(e.flags, RUST_WQ_ENQ_F_FROM_SOFTIRQ);
        assert_eq!(EnqueueArgs::default().cpu, RUST_WQ_CPU_ANY);
    }

    #[test]
    fn open_missing_device_reports_errno() {
        let e = Device::open("/nonexistent/rust_wq").unwrap_err();
        assert_eq!(e, Errno(libc::ENOENT));
    }

    #[test]
    fn poll_fd_reports_readiness_and_times_out() {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let t = std::time::Instant::now();
        assert_eq!(
            poll_fd(fds[0], libc::POLLIN, Some(Duration::from_millis(20))),
            Ok(0)
        );
        assert!(t.elapsed() >= Duration::from_millis(20));
        // SAFETY: writes one byte from a valid buffer to our pipe.
        assert_eq!(unsafe { libc::write(fds[1], b"x".as_ptr().cast(), 1) }, 1);
        assert_eq!(poll_fd(fds[0], libc::POLLIN, None), Ok(libc::POLLIN));
        // SAFETY: our descriptors, closed once.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        assert_eq!(
            poll_fd(fds[0], libc::POLLIN, Some(Duration::ZERO)),
            Ok(libc::POLLNVAL)
        );
    }

    #[test]
    fn ioctl_on_wrong_file_is_enotty() {
        let d = Device::open("/dev/null").unwrap();
        assert_eq!(d.info().unwrap_err(), Errno(libc::ENOTTY));
    }

    #[test]
    fn bench_encoding_and_output() {
        let raw = BenchArgs {
            path: RUST_WQ_BENCH_PERCPU,
            items: 1000,
            threads: 2,
            start_latency: true,
            op: RUST_WQ_BENCH_OP_RT,
        }
        .to_raw();
        assert_eq!(
            (raw.version, raw.path, raw.items, raw.threads, raw.flags),
            (
                RUST_WQ_ABI_VERSION,
                1,
                1000,
                2,
                RUST_WQ_BENCH_F_START_LATENCY
            )
        );
        assert_eq!((raw.threads_run, raw.op, raw.reserved), (0, 0, [0; 2]));
        let b = RustWqBench {
            threads_run: 4,
            items_per_sec: 12345,
            queue_p50_ns: 8000,
            start_p95_ns: 99,
            ..raw
        };
        let j = bench_json(&b, Some("cache"));
        assert!(j.starts_with(
            "{\"op\":\"rt\",\"path\":\"percpu\",\"scope\":\"cache\",\"items\":1000,\"threads\":4,"
        ));
        assert!(j.contains("\"items_per_sec\":12345"));
        assert!(j.contains("\"start_latency\":true"));
        assert!(j.ends_with("\"start_p95_ns\":99}"));
        assert!(bench_json(&b, None).contains("\"scope\":null"));
        let l = bench_line(&b, Some("cache"));
        assert!(l.starts_with("rt percpu/cache "));
        let d = RustWqBench {
            op: RUST_WQ_BENCH_OP_CANCEL_ARMED,
            queue_p99_ns: 77,
            ..b
        };
        assert!(bench_json(&d, None).starts_with("{\"op\":\"cancel-armed\","));
        assert!(bench_json(&d, None).contains("\"queue_p99_ns\":77,"));
        assert!(bench_line(&d, None).contains("p99=77"));
        assert!(l.contains("12345 items/sec"));
        assert!(l.contains("p50=8000"));
        assert!(l.contains("threads=4"));
        assert!(bench_line(&RustWqBench::default(), None).contains("start -"));
    }

    #[test]
    fn bench_scope_is_validated_and_written() {
        let f = std::env::temp_dir().join(format!("wqctl-scope-{}", std::process::id()));
        assert_eq!(set_bench_scope(&f, "bogus"), Err(Errno(libc::EINVAL)));
        set_bench_scope(&f, "cache_shard").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "cache_shard");
        let _ = std::fs::remove_file(&f);
        assert_eq!(
            set_bench_scope("/nonexistent/affinity_scope", "cpu"),
            Err(Errno(libc::ENOENT))
        );
    }

    #[test]
    fn table_and_json() {
        let r = RustWqResult {
            id: 1,
            tag: 7,
            seq: 3,
            latency_ns: 20_500_000,
            runtime_ns: 1_000,
            requested_cpu: RUST_WQ_CPU_ANY,
            cpu: 2,
            queue: RUST_WQ_Q_SYSTEM_DFL,
            flags: RUST_WQ_RES_PROCESS_CTX | RUST_WQ_RES_SLEPT,
            reserved: 0,
        };
        let t = format_results_table(&[r]);
        assert!(t.lines().next().unwrap().contains("latency_us"));
        assert!(t.contains("system-dfl"));
        assert!(t.contains("20500"));
        assert!(t.contains("PROCESS_CTX|SLEPT"));
        let j = result_json(&r);
        assert!(j.starts_with("{\"id\":1,\"tag\":7,"));
        assert!(j.contains("\"requested_cpu\":\"any\""));
        assert!(j.ends_with("\"queued_from\":\"unknown\"}"));
        assert_eq!(format_flags(0), "-");
        assert_eq!(format_flags(0x40), "0x40");
        let f = RUST_WQ_RES_FROM_HARDIRQ | RUST_WQ_RES_PROCESS_CTX | RUST_WQ_RES_SLEPT;
        assert_eq!(format_flags(f), "FROM_HARDIRQ|PROCESS_CTX|SLEPT");
        assert_eq!(format_flags(RUST_WQ_RES_FROM_TASK | 0x80), "FROM_TASK|0x80");
        assert_eq!(queued_from(f), "hardirq");
        assert_eq!(queued_from(RUST_WQ_RES_FROM_SOFTIRQ), "softirq");
        assert_eq!(queued_from(RUST_WQ_RES_FROM_TASK), "task");
        assert!(
            result_json(&RustWqResult { flags: f, ..r }).contains("\"queued_from\":\"hardirq\"")
        );
    }
}
