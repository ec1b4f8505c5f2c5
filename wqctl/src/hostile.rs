//! Tools for tests that act as a hostile user: systematic fault injection with
//! `/proc/thread-self/fail-nth`, and forked children to kill while they wait
//! in the kernel.
//!
//! Fault injection: [`FailNth::call`] makes the N-th fault-injection point
//! (here: slab allocation, failslab) of one system call of this thread fail,
//! and tells whether the call reached it.  [`FailslabSettings`] makes failslab
//! consider sleeping allocations (GFP_KERNEL, which it ignores by default) and
//! keeps it quiet, and restores the settings when dropped.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

const FAILSLAB: &str = "/sys/kernel/debug/failslab";

/// Mounts debugfs if failslab's directory is not visible.
pub fn mount_debugfs() {
    if !std::path::Path::new(FAILSLAB).exists() {
        let _ = std::process::Command::new("mount")
            .args(["-t", "debugfs", "debugfs", "/sys/kernel/debug"])
            .status();
    }
}

/// failslab set up for fail-nth: sleeping allocations can fail, no random
/// failures, no stack dump per failure.  Restores the old values on drop.
pub struct FailslabSettings(Vec<(String, String)>);

impl FailslabSettings {
    /// Returns `None` when failslab is not available (CONFIG_FAILSLAB,
    /// CONFIG_FAULT_INJECTION_DEBUG_FS).
    pub fn apply() -> Option<Self> {
        mount_debugfs();
        let want = [
            ("probability", "0"),
            ("times", "-1"),
            ("verbose", "0"),
            ("ignore-gfp-wait", "N"),
            ("task-filter", "N"),
        ];
        let mut saved = Vec::new();
        for (k, _) in want {
            let p = format!("{FAILSLAB}/{k}");
            saved.push((
                p.clone(),
                std::fs::read_to_string(&p).ok()?.trim().to_string(),
            ));
        }
        let s = FailslabSettings(saved);
        for (k, v) in want {
            std::fs::write(format!("{FAILSLAB}/{k}"), v).ok()?;
        }
        Some(s)
    }
}

impl Drop for FailslabSettings {
    fn drop(&mut self) {
        for (p, v) in self.0.iter().rev() {
            let _ = std::fs::write(p, v);
        }
    }
}

/// `/proc/thread-self/fail-nth` of the calling thread, opened once (opening
/// it later would itself allocate).  Use it from the thread that opened it.
pub struct FailNth(File);

impl FailNth {
    pub fn open() -> io::Result<Self> {
        Ok(FailNth(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/proc/thread-self/fail-nth")?,
        ))
    }

    /// Writes `n` with one pwrite(2) at offset 0.
    fn write(&self, n: u32) -> io::Result<()> {
        self.0.write_at(n.to_string().as_bytes(), 0)?;
        Ok(())
    }

    /// Reads the value with one pread(2) at offset 0.
    fn read(&self) -> io::Result<u32> {
        let mut buf = [0u8; 32];
        let r = self.0.read_at(&mut buf, 0)?;
        let s = std::str::from_utf8(&buf[..r]).unwrap_or("");
        s.trim()
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("fail-nth: {s:?}")))
    }

    /// Runs `f` (one system call, nothing that allocates in userspace
    /// first) with its `n`-th fault-injection point failing (`n` >= 1).
    /// Returns `f`'s value and whether the point was reached (the failure
    /// was injected).
    pub fn call<T>(&self, n: u32, f: impl FnOnce() -> T) -> io::Result<(T, bool)> {
        self.write(n)?;
        let v = f();
        let left = self.read()?;
        // Disarm if not reached, so that nothing later fails by surprise.
        if left != 0 {
            self.write(0)?;
        }
        Ok((v, left == 0))
    }

    /// How many fault-injection points one run of `f` passes.
    pub fn count<T>(&self, f: impl FnOnce() -> T) -> io::Result<(T, u32)> {
        const BIG: u32 = 1_000_000;
        self.write(BIG)?;
        let v = f();
        let left = self.read()?;
        self.write(0)?;
        Ok((v, BIG.saturating_sub(left)))
    }
}

/// A forked child process, killed (SIGKILL) and reaped when dropped.
pub struct Child {
    pub pid: libc::pid_t,
    reaped: bool,
}

/// Forks a child that runs `f`, which calls its argument once it is ready
/// (set up, about to block); returns once the child is ready, or with an
/// error if it exited or did not get ready within `timeout`.  The child ends
/// with `_exit(code)` where `code` is what `f` returned.
///
/// Only call this while the calling process has one thread.
pub fn fork_ready(timeout: Duration, f: impl FnOnce(&dyn Fn()) -> i32) -> Result<Child, String> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", io::Error::last_os_error()));
    }
    let (rd, wr) = (fds[0], fds[1]);
    // SAFETY: the caller promises a single-threaded process; the child only
    // runs `f` and then `_exit`s.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: closing our copy of the read end.
        unsafe { libc::close(rd) };
        let ready = || {
            // SAFETY: one byte from a live buffer to the pipe.
            unsafe { libc::write(wr, b"r".as_ptr() as *const libc::c_void, 1) };
        };
        let code = f(&ready);
        // SAFETY: ends the child without running the parent's atexit/drops.
        unsafe { libc::_exit(code) };
    }
    // SAFETY: closing our copy of the write end.
    unsafe { libc::close(wr) };
    let mut child = Child { pid, reaped: false };
    let mut p = libc::pollfd {
        fd: rd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, timeout.as_millis() as i32) };
    let mut b = [0u8; 1];
    // SAFETY: reads one byte into a live buffer (returns 0 at EOF).
    let got = n > 0 && unsafe { libc::read(rd, b.as_mut_ptr() as *mut libc::c_void, 1) } == 1;
    // SAFETY: our read end.
    unsafe { libc::close(rd) };
    if !got {
        let st = child.wait_dead(Duration::from_millis(100));
        return Err(format!(
            "child {pid} did not get ready within {} ms (exit status: {st:?})",
            timeout.as_millis()
        ));
    }
    Ok(child)
}

impl Child {
    /// Sends `sig`.
    pub fn signal(&self, sig: i32) {
        // SAFETY: signals our own child.
        unsafe { libc::kill(self.pid, sig) };
    }

    /// Waits up to `timeout` for the child to end; returns its wait status.
    pub fn wait_dead(&mut self, timeout: Duration) -> Option<i32> {
        let t = Instant::now();
        loop {
            let mut st = 0;
            // SAFETY: waits for our own child, without blocking.
            let r = unsafe { libc::waitpid(self.pid, &mut st, libc::WNOHANG) };
            if r == self.pid {
                self.reaped = true;
                return Some(st);
            }
            if r < 0 || t.elapsed() >= timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Sends SIGKILL and returns how long the child took to be gone (its
    /// files closed: the kernel's release ran), or `None` after `timeout`.
    pub fn kill_and_time(&mut self, timeout: Duration) -> Option<Duration> {
        let t = Instant::now();
        self.signal(libc::SIGKILL);
        self.wait_dead(timeout).map(|_| t.elapsed())
    }

    /// Whether it is still running (not exited).
    pub fn alive(&mut self) -> bool {
        !self.reaped && self.wait_dead(Duration::ZERO).is_none()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            self.signal(libc::SIGKILL);
            // Blocking: a child stuck in the kernel must not be left behind
            // unreaped, but do not wait forever either.
            let _ = self.wait_dead(Duration::from_secs(120));
        }
    }
}
