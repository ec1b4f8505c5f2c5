//! [`Device`]: one open file of `/dev/rust_wq` and its ioctls.

use crate::abi::*;
use crate::{BenchArgs, EnqueueArgs, Errno, Result, Target};
use std::ffi::c_void;
use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

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

    /// Issues `cmd` with a pointer to `arg` (as [`Device::ioctl_with`]) and
    /// returns `arg` as the kernel left it.
    fn ioctl_inout<T>(&self, cmd: u32, mut arg: T) -> Result<T> {
        self.ioctl_with(cmd, &mut arg)?;
        Ok(arg)
    }

    /// RUST_WQ_IOC_INFO.
    pub fn info(&self) -> Result<RustWqInfo> {
        self.ioctl_inout(RUST_WQ_IOC_INFO, RustWqInfo::default())
    }

    /// RUST_WQ_IOC_ENQUEUE with a prepared argument (returns the filled-in struct).
    pub fn enqueue_raw(&self, arg: RustWqEnqueue) -> Result<RustWqEnqueue> {
        self.ioctl_inout(RUST_WQ_IOC_ENQUEUE, arg)
    }

    /// RUST_WQ_IOC_ENQUEUE: returns the id of the first item; the items have
    /// ids first_id .. first_id + count - 1.
    pub fn enqueue(&self, args: EnqueueArgs) -> Result<u64> {
        Ok(self.enqueue_raw(args.to_raw())?.first_id)
    }

    /// RUST_WQ_IOC_FLUSH with a prepared argument.
    pub fn flush_raw(&self, arg: RustWqTarget) -> Result<RustWqTarget> {
        self.ioctl_inout(RUST_WQ_IOC_FLUSH, arg)
    }

    /// RUST_WQ_IOC_FLUSH: returns how many items were waited for.
    pub fn flush(&self, target: Target) -> Result<u64> {
        Ok(self.flush_raw(target.to_raw())?.count)
    }

    /// RUST_WQ_IOC_CANCEL with a prepared argument.
    pub fn cancel_raw(&self, arg: RustWqTarget) -> Result<RustWqTarget> {
        self.ioctl_inout(RUST_WQ_IOC_CANCEL, arg)
    }

    /// RUST_WQ_IOC_CANCEL: returns how many items were cancelled.
    pub fn cancel(&self, target: Target) -> Result<u64> {
        Ok(self.cancel_raw(target.to_raw())?.count)
    }

    /// RUST_WQ_IOC_MOD_DELAY with a prepared argument.
    pub fn mod_delay_raw(&self, arg: RustWqModDelay) -> Result<()> {
        self.ioctl_inout(RUST_WQ_IOC_MOD_DELAY, arg).map(drop)
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
        self.ioctl_inout(RUST_WQ_IOC_STATS, RustWqStats::default())
    }

    /// RUST_WQ_IOC_BENCH with a prepared argument (returns the filled-in struct).
    /// Blocks until the benchmark has run.
    pub fn bench_raw(&self, arg: RustWqBench) -> Result<RustWqBench> {
        self.ioctl_inout(RUST_WQ_IOC_BENCH, arg)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
