// SPDX-License-Identifier: GPL-2.0

//! The test work item of `/dev/rust_wq` and the result it leaves when it has run.

use super::{
    log,
    state::DeviceState, //
};
use crate::abi::{
    self,
    WorkResult, //
};
use crate::workqueue::context::Context;
use crate::workqueue::{
    self as wq,
    impl_has_delayed_work,
    DelayedWork,
    DelayedWorkItem, //
};
use core::sync::atomic::{
    AtomicI64,
    AtomicU32,
    AtomicU8,
    Ordering, //
};
use kernel::{
    device::Device,
    prelude::*,
    sync::Arc,
    time::{
        delay::fsleep,
        Delta,
        Instant,
        Monotonic, //
    },
};

/// The shortest sleep `fsleep` does by sleeping rather than busy-waiting.
const MIN_SLEEP_US: u64 = 11;

/// How often a work function sleeps again when the clock says its sleep ended early.
const MAX_SLEEP_ROUNDS: u32 = 8;

/// [`Item::state`]: the ENQUEUE call that made the item is still queueing the call's items.
pub(super) const ARMING: u8 = 0;
/// [`Item::state`]: the item may run.
pub(super) const GO: u8 = 1;
/// [`Item::state`]: the ENQUEUE call failed; the item must not run.
pub(super) const ABORTED: u8 = 2;

/// What an item needs of the open file it belongs to: `OpenFile` (`file.rs`) implements it.
///
/// Through this trait the file's module depends on the item's, never the other way round.
pub(super) trait ItemOwner: Send + Sync {
    /// Waits until the ENQUEUE call that made `item` has queued all its items. Returns
    /// `false` if that call failed: the item is then forgotten and must do nothing.
    fn wait_go(&self, item: &Arc<Item>) -> bool;

    /// Records a finished item and its result. Called by the item's work function.
    fn finished(&self, item: &Arc<Item>, result: WorkResult);

    /// The device-wide state (result sequence, log limit).
    fn device_state(&self) -> &DeviceState;

    /// The device, for log lines.
    fn device(&self) -> &Device;
}

/// One test work item, always a delayed work (queued at once when its delay is zero).
#[pin_data]
pub(crate) struct Item {
    #[pin]
    pub(super) dwork: DelayedWork<Item>,
    pub(super) id: u64,
    pub(super) tag: u64,
    pub(super) queue: u32,
    pub(super) cpu: u32,
    pub(super) sleep_us: u64,
    /// Whether the item prints its own dmesg line.
    pub(super) log: bool,
    /// `Some(n)` on the last item of a call of `n` items that prints a summary line.
    pub(super) batch_summary: Option<u32>,
    pub(super) enqueued_at: Instant<Monotonic>,
    /// When its timer is due (monotonic ns); 0 when queued at once. Changed under the file's
    /// `control` gate.
    pub(super) due_ns: AtomicI64,
    /// [`ARMING`], [`GO`] or [`ABORTED`]; changed under the file's `ledger` lock.
    ///
    /// A delayed item starts `ARMING`: if the ENQUEUE call fails half-way, none of its items
    /// may have run, even if a timer fired before the call could cancel it.
    pub(super) state: AtomicU8,
    /// `RES_FROM_*`: the context that queued (or armed) the item, stored before it is queued.
    pub(super) queued_from: AtomicU32,
    /// With `RES_FROM_DEVICE_IRQ`: the device's IRQ number (for the log line), else 0. Stored
    /// before `queued_from`.
    pub(super) queued_irq: AtomicU32,
    /// The open file the item belongs to.
    pub(super) file: Arc<dyn ItemOwner>,
}

impl_has_delayed_work! { impl HasDelayedWork for Item { self.dwork } }

impl DelayedWorkItem for Item {
    type Pointer = Arc<Item>;

    fn run(this: Arc<Item>) {
        if this.state.load(Ordering::Acquire) != GO && !this.file.wait_go(&this) {
            // Its ENQUEUE call failed: it did nothing and the file has forgotten it.
            return;
        }
        this.wait_until_due();
        let start = Instant::<Monotonic>::now();
        let cpu = kernel::cpu::CpuId::current().as_u32();
        let mut flags = this.queued_from.load(Ordering::Acquire);
        if wq::context::in_worker() && this.dwork.is_current() {
            flags |= abi::RES_PROCESS_CTX;
        }
        if this.sleep_us > 0 && this.sleep(start) {
            flags |= abi::RES_SLEPT;
        }
        let end = Instant::<Monotonic>::now();
        let device_state = this.file.device_state();
        let seq = device_state.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let result = WorkResult {
            id: this.id,
            tag: this.tag,
            seq,
            latency_ns: (start - this.enqueued_at).as_nanos().max(0) as u64,
            runtime_ns: (end - start).as_nanos().max(0) as u64,
            requested_cpu: this.cpu,
            cpu,
            queue: this.queue,
            flags,
            reserved: 0,
        };
        let dev = this.file.device();
        if this.log && device_state.log_limit.allow(dev) {
            log::work_line(dev, &result, this.queued_irq.load(Ordering::Relaxed));
        }
        if let Some(n) = this
            .batch_summary
            .filter(|_| device_state.log_limit.allow(dev))
        {
            log::batch_line(dev, &result, n);
        }
        this.file.finished(&this, result);
    }
}

impl Item {
    /// Waits until the monotonic clock has reached the item's due time.
    ///
    /// The timer counts jiffies, which under emulation can run slightly ahead of the
    /// monotonic clock the results use; the header promises "never early" in that clock, so
    /// wait out what is left (at most a few jiffies; a few rounds cover oversleeping noise).
    fn wait_until_due(&self) {
        for _ in 0..MAX_SLEEP_ROUNDS {
            let due = self.due_ns.load(Ordering::Relaxed);
            let left = due - crate::kthread::ktime_ns();
            if due == 0 || left <= 0 {
                break;
            }
            // At most `MAX_DELAY_US` in µs: fits.
            fsleep(Delta::from_micros((left + 999) / 1000));
        }
    }

    /// Sleeps `sleep_us`; returns whether the task was off the CPU (blocked) that long and at
    /// least that much time has passed since `start` (the result's `RES_SLEPT`).
    fn sleep(&self, start: Instant<Monotonic>) -> bool {
        // `sleep_us` is at most `MAX_SLEEP_US`, far below `i64::MAX / 1000`.
        let want_ns = (self.sleep_us * 1000) as i64;
        let cpu0 = crate::kthread::cpu_time_ns();
        let t0 = Instant::<Monotonic>::now();
        // Time off the CPU since `t0`: what the task spent blocked (asleep), plus any wait
        // for a CPU. A busy-wait stays on the CPU.
        let off_cpu = || {
            let on = crate::kthread::cpu_time_ns().saturating_sub(cpu0);
            t0.elapsed().as_nanos() - on.min(i64::MAX as u64) as i64
        };
        let mut off = 0;
        // Doubled after a round in which the task did not block: a sleep of a few
        // microseconds can end before the task has left the CPU (the timer fires first).
        let mut shift = 0;
        for _ in 0..MAX_SLEEP_ROUNDS {
            // `fsleep` busy-waits below 11 us, so shorter sleeps are rounded up to that. From
            // 20 ms on it sleeps in jiffies, which (under emulation) can end a little before
            // the monotonic clock has advanced as far: then sleep again for what is left.
            let left_ns = (want_ns - t0.elapsed().as_nanos()).max(want_ns - off);
            if left_ns <= 0 {
                break;
            }
            let us = (left_ns as u64).div_ceil(1000).max(MIN_SLEEP_US) << shift;
            fsleep(Delta::from_micros(us.min(abi::MAX_SLEEP_US) as i64));
            let now_off = off_cpu();
            if now_off < off + 1000 {
                shift += 1;
            }
            off = now_off;
        }
        off >= want_ns && start.elapsed().as_nanos() >= want_ns
    }
}

/// The `RES_FROM_*` flag of a context.
pub(super) fn from_flag(c: Context) -> u32 {
    match c {
        Context::Task => abi::RES_FROM_TASK,
        Context::SoftIrq => abi::RES_FROM_SOFTIRQ,
        // Nothing of this module queues from an NMI; count it as an interrupt if it ever did.
        Context::HardIrq | Context::Nmi => abi::RES_FROM_HARDIRQ,
    }
}

/// The monotonic time (ns) at which a timer armed now with `delay_us` is due; 0 for none.
pub(super) fn due_after(delay_us: u64) -> i64 {
    if delay_us == 0 {
        return 0;
    }
    // `delay_us` is at most `MAX_DELAY_US`: no overflow.
    crate::kthread::ktime_ns() + (delay_us * 1000) as i64
}
