// SPDX-License-Identifier: GPL-2.0

//! The per-item dmesg lines of the test work, and their module-wide rate limit.

use crate::abi::{
    self,
    WorkResult, //
};
use crate::workqueue::context::Context;
use core::sync::atomic::{
    AtomicU64,
    Ordering, //
};
use kernel::{
    device::Device,
    prelude::*, //
};

/// Per-item dmesg lines are printed for the first this many items of each enqueue call.
pub(super) const LOG_ITEMS_PER_BATCH: u32 = 4;

/// A module-wide limit on the per-item dmesg lines: at most [`LogLimit::BURST`] a second.
///
/// Lines over the limit are counted and reported in one line when the next second starts.
pub(super) struct LogLimit {
    /// The second (of monotonic time since boot) the current budget belongs to.
    window: AtomicU64,
    used: AtomicU64,
    suppressed: AtomicU64,
}

impl LogLimit {
    const BURST: u64 = 20;

    pub(super) fn new() -> Self {
        Self {
            window: AtomicU64::new(0),
            used: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Returns whether one more line may be printed now (on `dev`, which also reports what
    /// was suppressed).
    pub(super) fn allow(&self, dev: &Device) -> bool {
        let sec = crate::kthread::ktime_ns().max(0) as u64 / 1_000_000_000;
        let win = self.window.load(Ordering::Relaxed);
        if sec != win
            && self
                .window
                .compare_exchange(win, sec, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.used.store(0, Ordering::Relaxed);
            let n = self.suppressed.swap(0, Ordering::Relaxed);
            if n > 0 {
                dev_info!(
                    dev,
                    "{} per-item work lines suppressed (over {} a second)\n",
                    n,
                    Self::BURST
                );
            }
        }
        if self.used.fetch_add(1, Ordering::Relaxed) < Self::BURST {
            true
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

/// Prints the line of one finished item; `irq` is the device IRQ that queued it, if
/// `RES_FROM_DEVICE_IRQ`.
pub(super) fn work_line(dev: &Device, result: &WorkResult, irq: u32) {
    let req_cpu = match result.requested_cpu {
        abi::CPU_ANY => -1,
        c => i64::from(c),
    };
    let process_ctx = (result.flags & abi::RES_PROCESS_CTX) != 0;
    let slept = (result.flags & abi::RES_SLEPT) != 0;
    dev_info!(
        dev,
        "work id={} tag={} queue={} req_cpu={} (-1: any) cpu={} latency={}us runtime={}us seq={} queued_from={} process_ctx={} slept={}\n",
        result.id,
        result.tag,
        queue_name(result.queue),
        req_cpu,
        result.cpu,
        result.latency_ns / 1000,
        result.runtime_ns / 1000,
        result.seq,
        QueuedFrom(result.flags, irq),
        process_ctx,
        slept,
    );
}

/// Prints the summary line of a batch of `n` items, when its last item has run.
pub(super) fn batch_line(dev: &Device, last: &WorkResult, n: u32) {
    dev_info!(
        dev,
        "work batch tag={} queue={}: last of {} items ran (id={}, cpu={}); per-item lines for the first {} only\n",
        last.tag,
        queue_name(last.queue),
        n,
        last.id,
        last.cpu,
        LOG_ITEMS_PER_BATCH,
    );
}

/// The `queued_from=` value of a work line: the context's name, or `device_irq irq=N` for an
/// item queued by the `edu` device's interrupt handler.
struct QueuedFrom(u32, u32);

impl kernel::fmt::Display for QueuedFrom {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.0 & abi::RES_FROM_DEVICE_IRQ != 0 {
            write!(f, "device_irq irq={}", self.1)
        } else {
            f.write_str(from_name(self.0))
        }
    }
}

/// The name of the context in result `flags`, for the log.
fn from_name(flags: u32) -> &'static str {
    if flags & abi::RES_FROM_HARDIRQ != 0 {
        Context::HardIrq.name()
    } else if flags & abi::RES_FROM_SOFTIRQ != 0 {
        Context::SoftIrq.name()
    } else {
        Context::Task.name()
    }
}

/// The name of the queue `q` (`RUST_WQ_Q_*`), for the log.
fn queue_name(q: u32) -> &'static str {
    match q {
        abi::Q_PERCPU => "percpu",
        abi::Q_UNBOUND => "unbound",
        abi::Q_ORDERED => "ordered",
        abi::Q_SYSTEM_PERCPU => "system_percpu",
        abi::Q_SYSTEM_DFL => "system_dfl",
        _ => "?",
    }
}
