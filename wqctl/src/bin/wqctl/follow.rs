//! Following results as they arrive with poll(2) (`results --follow`, `run`).

use crate::cli::RunOpts;
use crate::commands::{dropped_text, enqueue_spec, enqueued_json};
use crate::{op, Failure, Out};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wqctl::abi::*;
use wqctl::summary::Summary;
use wqctl::{result_json, result_row, results_header, Device};

/// Set by the SIGINT handler while results are followed.
pub(crate) static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_sig: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// While alive, Ctrl-C (SIGINT) interrupts poll(2) (no SA_RESTART) and sets
/// [`INTERRUPTED`] instead of killing the process.
pub(crate) struct SigintGuard {
    pub(crate) old: libc::sigaction,
}

impl SigintGuard {
    fn install() -> Option<Self> {
        INTERRUPTED.store(false, Ordering::SeqCst);
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value,
        // filled in below; `on_sigint` only stores to an atomic, which is
        // async-signal-safe; `old` receives the previous action.
        unsafe {
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut new.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGINT, &new, &mut old) != 0 {
                return None;
            }
            Some(SigintGuard { old })
        }
    }
}

impl Drop for SigintGuard {
    fn drop(&mut self) {
        // SAFETY: restores the action saved by `install`.
        unsafe { libc::sigaction(libc::SIGINT, &self.old, std::ptr::null_mut()) };
    }
}

/// Why following stopped.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// Nothing is pending any more and every result was read.
    Done,
    Timeout,
    Interrupted,
}

impl End {
    pub(crate) fn name(self) -> &'static str {
        match self {
            End::Done => "done",
            End::Timeout => "timeout",
            End::Interrupted => "interrupted",
        }
    }
}

pub(crate) struct Followed {
    pub(crate) results: Vec<RustWqResult>,
    pub(crate) dropped: u64,
    /// Items still pending at the end.
    pub(crate) pending: u64,
    pub(crate) end: End,
    pub(crate) elapsed: Duration,
}

/// Clears the progress line (a no-op without one).
pub(crate) fn clear_progress(shown: &mut bool) {
    if *shown {
        eprint!("\r\x1b[K");
        *shown = false;
    }
}

/// Prints results as they arrive until nothing is pending, `timeout`, or
/// Ctrl-C.  Waits with poll(2) (at most 1 s at a time, so that items
/// cancelled meanwhile by someone else cannot make it wait forever; 200 ms
/// with a progress line).  `total`: the number the progress line counts to
/// (default: done + pending).  `json`: one JSON line per result.
pub(crate) fn follow(
    dev: &Device,
    timeout: Option<Duration>,
    total: Option<u64>,
    json: bool,
    quiet: bool,
    progress: bool,
) -> Result<Followed, Failure> {
    let start = Instant::now();
    let _sigint = SigintGuard::install();
    let mut results = Vec::new();
    let mut dropped = 0;
    let mut shown = false;
    if !json && !quiet {
        println!("{}", results_header());
    }
    let emit = |res: &[RustWqResult]| {
        for r in res.iter().filter(|_| !quiet) {
            if json {
                println!("{{\"cmd\":\"results\",\"result\":{}}}", result_json(r));
            } else {
                println!("{}", result_row(r));
            }
        }
    };
    let (end, pending) = loop {
        let (res, d) = op("results", dev.drain_results())?;
        dropped += d;
        if !res.is_empty() {
            clear_progress(&mut shown);
        }
        emit(&res);
        results.extend(res);
        let st = op("stats", dev.stats())?;
        if st.pending == 0 {
            // Finishing items store their result and leave `pending` in one
            // step: everything is readable now.
            let (res, d) = op("results", dev.drain_results())?;
            dropped += d;
            emit(&res);
            results.extend(res);
            break (End::Done, 0);
        }
        if INTERRUPTED.load(Ordering::SeqCst) {
            break (End::Interrupted, st.pending);
        }
        let elapsed = start.elapsed();
        let left = match timeout {
            Some(t) if elapsed >= t => break (End::Timeout, st.pending),
            Some(t) => t - elapsed,
            None => Duration::MAX,
        };
        if progress {
            let done = results.len() as u64;
            let total = total.unwrap_or(done + st.pending);
            eprint!(
                "\r\x1b[Kdone {done}/{total}  pending {}  elapsed {:.1} s",
                st.pending,
                elapsed.as_secs_f64()
            );
            shown = true;
        }
        let tick = if progress {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(1)
        };
        match dev.wait_readable(Some(left.min(tick))) {
            Ok(_) => {}
            Err(e) if e.0 == libc::EINTR => {}
            Err(e) => {
                clear_progress(&mut shown);
                return op("poll", Err(e));
            }
        }
    };
    clear_progress(&mut shown);
    Ok(Followed {
        results,
        dropped,
        pending,
        end,
        elapsed: start.elapsed(),
    })
}

/// `wqctl run`: enqueue, follow, summarise.
pub(crate) fn run(dev: &Device, o: &RunOpts, out: Out) -> Result<bool, Failure> {
    let start = Instant::now();
    let calls = enqueue_spec(dev, &o.spec, out)?;
    let total: u64 = calls.iter().map(|(a, _)| u64::from(a.count)).sum();
    let json = o.json || out.json;
    if json {
        println!(
            "{{\"cmd\":\"run\",\"ok\":true,\"enqueued\":{}}}",
            enqueued_json(&calls)
        );
    }
    let f = follow(
        dev,
        o.timeout.map(Duration::from_micros),
        Some(total),
        json,
        o.quiet,
        out.tty,
    )?;
    let elapsed = start.elapsed();
    let sum = Summary::of(&f.results);
    let ran = f.results.len() as u64;
    let ok = f.end == End::Done && ran == total && f.dropped == 0;
    if json {
        println!(
            "{{\"cmd\":\"run\",\"ok\":{ok},\"end\":\"{}\",\"enqueued\":{total},\"ran\":{ran},\"pending\":{},\"dropped\":{},\"elapsed_ns\":{},\"summary\":{}}}",
            f.end.name(),
            f.pending,
            f.dropped,
            elapsed.as_nanos(),
            sum.json()
        );
    } else {
        println!(
            "run {}: {total} item(s) enqueued, {ran} ran in {:.3} s, {} pending{}{}",
            f.end.name(),
            elapsed.as_secs_f64(),
            f.pending,
            if f.pending > 0 {
                " (cancelled at exit)"
            } else {
                ""
            },
            dropped_text(f.dropped)
        );
        print!("{}", sum.table());
    }
    Ok(ok)
}
