// SPDX-License-Identifier: GPL-2.0

//! Suite `rust_wq_capi`: owned BH queues with several item types, `work_on_cpu` (and the
//! offline-CPU error paths), static delayed items (`declare_delayed_work!`).

#[kernel::prelude::kunit_tests(rust_wq_capi)]
mod tests {
    use super::super::{
        wait_until, //
    };
    use crate::workqueue::{
        context,
        cpu,
        declare_delayed_work,
        impl_has_work,
        jiffies,
        new_work,
        system_dfl,
        system_percpu,
        work_on_cpu,
        BhWorkItem,
        Delay,
        EnqueueError,
        Work,
        WorkItem, //
        Workqueue,
    };
    use core::sync::atomic::{
        AtomicBool,
        AtomicU32,
        AtomicU64,
        Ordering::SeqCst, //
    };
    use kernel::{
        cpu::CpuId,
        prelude::*,
        sync::Arc,
        time::{
            delay::fsleep,
            Delta, //
        },
    };

    /// The highest online CPU number.
    fn last_online() -> u32 {
        (0..cpu::nr_cpu_ids())
            .rev()
            .find(|&c| cpu::online_cpu(c).is_ok())
            .unwrap_or(0)
    }

    /// Takes a CPU offline for the guard's lifetime (`remove_cpu()` / `add_cpu()`, which exist
    /// only with `CONFIG_HOTPLUG_CPU`; the test kernel has it).
    #[cfg(CONFIG_HOTPLUG_CPU)]
    struct Offline(u32);

    #[cfg(CONFIG_HOTPLUG_CPU)]
    impl Offline {
        fn new(cpu: u32) -> Result<Self> {
            // SAFETY: `remove_cpu` takes the device-hotplug lock itself and may sleep (we may).
            kernel::error::to_result(unsafe { kernel::bindings::remove_cpu(cpu) })?;
            Ok(Offline(cpu))
        }
    }

    #[cfg(CONFIG_HOTPLUG_CPU)]
    impl Drop for Offline {
        fn drop(&mut self) {
            // SAFETY: As in `new`; brings back the CPU taken offline there. A failure would
            // leave it offline; later tests then see one CPU fewer, which they handle.
            let _ = unsafe { kernel::bindings::add_cpu(self.0) };
        }
    }

    // ---- Owned BH queues ------------------------------------------------------------------

    /// Two BH item types, each with its own lock class (own `new_work!` site).
    macro_rules! bh_type {
        ($name:ident, $site:literal) => {
            #[pin_data]
            struct $name {
                #[pin]
                work: Work<$name>,
                runs: AtomicU32,
                queued_on: AtomicU32,
                ran_on: AtomicU32,
                softirq: AtomicBool,
            }
            impl_has_work! { impl HasWork<Self> for $name { self.work } }
            // SAFETY: `run` only updates atomics: it never sleeps.
            unsafe impl BhWorkItem for $name {}
            impl WorkItem for $name {
                type Pointer = Arc<$name>;
                fn run(this: Arc<$name>) {
                    this.softirq.store(!context::in_worker(), SeqCst);
                    this.ran_on.store(CpuId::current().as_u32(), SeqCst);
                    this.runs.fetch_add(1, SeqCst);
                }
            }
            impl $name {
                fn new() -> Result<Arc<$name>> {
                    Arc::pin_init(
                        pin_init!($name {
                            work <- new_work!($site),
                            runs: AtomicU32::new(0),
                            queued_on: AtomicU32::new(u32::MAX),
                            ran_on: AtomicU32::new(u32::MAX - 1),
                            softirq: AtomicBool::new(false),
                        }),
                        GFP_KERNEL,
                    )
                }
            }
        };
    }
    bh_type!(BhA, "capi::BhA::work");
    bh_type!(BhB, "capi::BhB::work");

    #[test]
    fn owned_bh_queue_runs_several_items_of_two_types() -> Result {
        let q = Workqueue::builder().bh().build(fmt!("rust_wq_t_bh2"))?;
        let mut a = KVec::new();
        let mut b = KVec::new();
        for _ in 0..8 {
            a.push(BhA::new()?, GFP_KERNEL)?;
            b.push(BhB::new()?, GFP_KERNEL)?;
        }
        for (x, y) in a.iter().zip(b.iter()) {
            // Interrupts off: BH work of this CPU waits until they are on, and stays on it.
            let _irq = kernel::interrupt::local_interrupt_disable();
            let c = CpuId::current().as_u32();
            x.queued_on.store(c, SeqCst);
            y.queued_on.store(c, SeqCst);
            assert!(q.enqueue(x.clone()).is_ok());
            assert!(q.enqueue(y.clone()).is_ok());
            // Queued twice before it could run: refused, pointer back.
            assert!(matches!(
                q.enqueue(x.clone()),
                Err(EnqueueError::Pending(_))
            ));
        }
        q.flush();
        for x in a.iter() {
            assert_eq!(x.runs.load(SeqCst), 1);
            assert!(x.softirq.load(SeqCst));
            assert_eq!(x.ran_on.load(SeqCst), x.queued_on.load(SeqCst));
        }
        for y in b.iter() {
            assert_eq!(y.runs.load(SeqCst), 1);
            assert!(y.softirq.load(SeqCst));
            assert_eq!(y.ran_on.load(SeqCst), y.queued_on.load(SeqCst));
        }
        // Dropping the queue with items queued runs them (destroy_workqueue() drains).
        for x in a.iter() {
            assert!(q.enqueue(x.clone()).is_ok());
        }
        drop(q);
        for x in a {
            assert_eq!(x.runs.load(SeqCst), 2);
            // Only the test's reference is left: the queue gave every pointer back.
            assert!(Arc::into_unique_or_drop(x).is_some());
        }
        Ok(())
    }

    // ---- work_on_cpu ------------------------------------------------------------------------

    #[test]
    fn work_on_cpu_runs_on_each_online_cpu_and_returns() -> Result {
        let mut borrowed = KVec::new();
        for i in 0..16u64 {
            borrowed.push(i, GFP_KERNEL)?;
        }
        let mut tried = 0;
        for c in 0..cpu::nr_cpu_ids() {
            if cpu::online_cpu(c).is_err() {
                continue;
            }
            let mut calls = 0u32;
            let (ran_on, sum, worker) = work_on_cpu!(c, || {
                calls += 1;
                (
                    CpuId::current().as_u32(),
                    borrowed.iter().sum::<u64>(),
                    context::in_worker(),
                )
            })?;
            assert_eq!(ran_on, c);
            assert_eq!(sum, 120);
            assert!(worker);
            assert_eq!(calls, 1);
            tried += 1;
        }
        assert!(tried >= 1);
        // Invalid CPU numbers: EINVAL, closure not called.
        let called = AtomicBool::new(false);
        for bad in [cpu::nr_cpu_ids(), u32::MAX] {
            let r = work_on_cpu!(bad, || called.store(true, SeqCst));
            assert_eq!(r.err(), Some(EINVAL));
        }
        assert!(!called.load(SeqCst));
        Ok(())
    }

    /// A plain item that records the CPU it ran on.
    fn sd_fn() {
        SD_RUNS.fetch_add(1, SeqCst);
        SD_CPU.store(CpuId::current().as_u32(), SeqCst);
        SD_AT.store(jiffies(), SeqCst);
    }
    static SD_RUNS: AtomicU32 = AtomicU32::new(0);
    static SD_CPU: AtomicU32 = AtomicU32::new(u32::MAX);
    static SD_AT: AtomicU64 = AtomicU64::new(0);
    declare_delayed_work!(static SD = sd_fn);

    fn sdd_fn() {
        SDD_RUNS.fetch_add(1, SeqCst);
    }
    static SDD_RUNS: AtomicU32 = AtomicU32::new(0);
    declare_delayed_work!(static SDD = sdd_fn, deferrable);

    #[test]
    #[cfg(CONFIG_HOTPLUG_CPU)]
    fn offline_cpu_is_enodev_everywhere() -> Result {
        let last = last_online();
        if last == 0 {
            // One CPU online: nothing can be taken offline; the other cases cover the rest.
            return Ok(());
        }
        let id = cpu::cpu_id(last)?;
        let called = AtomicBool::new(false);
        {
            let _off = Offline::new(last)?;
            assert_eq!(cpu::online_cpu(last).err(), Some(ENODEV));
            let r = work_on_cpu!(last, || called.store(true, SeqCst));
            assert_eq!(r.err(), Some(ENODEV));
            assert_eq!(
                SD.enqueue_on(id, system_percpu(), Delay::ZERO).err(),
                Some(ENODEV)
            );
            assert!(!SD.is_pending());
            // A possible but offline CPU still has per-CPU queue state: not an error.
            assert_eq!(system_percpu().is_congested(Some(id)), Ok(false));
        }
        assert!(!called.load(SeqCst));
        // Back online: the same calls work.
        assert!(wait_until(5000, || cpu::online_cpu(last).is_ok()));
        // Let the tick settle: right after a CPU comes back, `jiffies` can lag and then catch
        // up in a jump, which would make the next test's jiffy-based timers look early.
        fsleep(Delta::from_millis(200));
        assert_eq!(work_on_cpu!(last, || CpuId::current().as_u32())?, last);
        Ok(())
    }

    // ---- Static delayed items -------------------------------------------------------------

    #[test]
    fn declare_delayed_work_static_items() -> Result {
        let base = SD_RUNS.load(SeqCst);
        let far = Delay::from_millis(60_000)?;
        assert!(SD.schedule(far));
        assert!(SD.is_pending());
        // Already pending: C's `false`.
        assert!(!SD.schedule(far));
        // Re-timed to 20 ms from now: never early (in jiffies, the timers' clock).
        let delay = Delay::from_millis(20)?;
        let start = jiffies();
        assert!(SD.mod_delayed(system_percpu(), delay));
        assert!(wait_until(5000, || SD_RUNS.load(SeqCst) == base + 1));
        assert!(SD_AT.load(SeqCst) - start >= delay.jiffies() as u64);
        assert!(!SD.is_pending());

        // mod_delayed: idle -> queued far away; then re-timed to now.
        assert!(!SD.mod_delayed(system_dfl(), far));
        assert!(SD.is_pending());
        assert!(SD.mod_delayed(system_dfl(), Delay::ZERO));
        assert!(wait_until(5000, || SD_RUNS.load(SeqCst) == base + 2));

        // cancel_sync of an armed item: it never runs.
        assert!(SD.schedule(far));
        assert!(SD.cancel_sync());
        assert!(!SD.cancel_sync());
        assert!(SD.schedule(far));
        assert!(SD.cancel());
        fsleep(Delta::from_millis(20));
        assert_eq!(SD_RUNS.load(SeqCst), base + 2);

        // `_on`: runs on that CPU.
        let last = cpu::online_cpu(last_online())?;
        assert_eq!(SD.enqueue_on(last, system_percpu(), far), Ok(true));
        assert_eq!(SD.enqueue_on(last, system_percpu(), far), Ok(false));
        // Fires the timer now, on the CPU it was aimed at, and waits. (Its `bool` says whether
        // the item was still queued when `flush_work()` looked: racy once the timer is fired.)
        SD.flush();
        assert_eq!(SD_RUNS.load(SeqCst), base + 3);
        assert_eq!(SD_CPU.load(SeqCst), last.as_u32());
        assert!(!SD.flush());

        // The deferrable flavour (DECLARE_DEFERRABLE_WORK).
        assert!(SDD.is_deferrable());
        assert!(!SD.is_deferrable());
        assert!(SDD.schedule(Delay::from_millis(10)?));
        SDD.flush();
        assert_eq!(SDD_RUNS.load(SeqCst), 1);
        assert!(!SD.is_running() && !SDD.is_running());
        Ok(())
    }
}
