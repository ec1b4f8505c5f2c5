//! Scenario `permissions`: the device is root-only (0600): a process that
//! dropped to nobody (uid/gid 65534, no supplementary groups) gets EACCES for
//! every open mode, while root can open it.

use crate::common::*;
use std::ffi::CString;
use std::os::unix::fs::MetadataExt;

const NOBODY: u32 = 65534;

pub fn run(opts: &Opts, rep: &mut Report) -> Result<(), Outcome> {
    let meta = std::fs::metadata(&opts.path)
        .map_err(|e| Outcome::Fail(vec![format!("stat {}: {e}", opts.path)]))?;
    rep.check(meta.mode() & 0o777 == 0o600 && meta.uid() == 0, || {
        format!(
            "{}: mode {:o} owner {}, expected 0600 root",
            opts.path,
            meta.mode() & 0o7777,
            meta.uid()
        )
    });
    drop(opts.open()?);
    let path = CString::new(opts.path.clone()).unwrap();
    let modes = [libc::O_RDWR, libc::O_RDONLY, libc::O_WRONLY];
    let mut fds = [0i32; 2];
    // SAFETY: plain pipe creation.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return fail("pipe failed");
    }
    // SAFETY: the child only calls async-signal-safe functions (setgroups,
    // setgid, setuid, open, close, write, _exit) before exiting.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return fail("fork failed");
    }
    if pid == 0 {
        // SAFETY: see above; all arguments are valid.
        unsafe {
            let mut out = [0i32; 4];
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(NOBODY) != 0
                || libc::setuid(NOBODY) != 0
            {
                out[0] = -1;
            } else {
                out[0] = libc::getuid() as i32;
                for (i, m) in modes.iter().enumerate() {
                    let fd = libc::open(path.as_ptr(), m | libc::O_CLOEXEC);
                    if fd >= 0 {
                        libc::close(fd);
                        out[i + 1] = 0;
                    } else {
                        out[i + 1] = *libc::__errno_location();
                    }
                }
            }
            libc::write(fds[1], out.as_ptr() as *const _, 16);
            libc::_exit(0);
        }
    }
    // SAFETY: closing our copy of the write end; reading into a local buffer.
    let mut out = [0i32; 4];
    let n = unsafe {
        libc::close(fds[1]);
        let n = libc::read(fds[0], out.as_mut_ptr() as *mut _, 16);
        libc::close(fds[0]);
        let mut st = 0;
        libc::waitpid(pid, &mut st, 0);
        n
    };
    if n != 16 {
        return fail("the child (uid 65534) reported nothing");
    }
    if out[0] < 0 {
        return fail("the child could not drop to uid/gid 65534");
    }
    rep.check(out[0] == NOBODY as i32, || {
        format!("child uid {} after setuid", out[0])
    });
    let names = ["O_RDWR", "O_RDONLY", "O_WRONLY"];
    for i in 0..3 {
        let e = out[i + 1];
        rep.check(e == libc::EACCES, || {
            format!(
                "open({}, {}) as uid 65534: {}, expected EACCES",
                opts.path,
                names[i],
                if e == 0 {
                    "succeeded".to_string()
                } else {
                    wqctl::Errno(e).to_string()
                }
            )
        });
    }
    rep.diag(format!(
        "3 opens as uid 65534 refused with EACCES (device mode {:o}, root opens it)",
        meta.mode() & 0o777
    ));
    Ok(())
}
