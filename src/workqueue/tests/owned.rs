// SPDX-License-Identifier: GPL-2.0

//! Suite `rust_wq_owned`: owned queues, the builder, placement, ordering, flush, drain, drop.

#[kernel::prelude::kunit_tests(rust_wq_owned)]
mod tests {
    use super::super::{
        slow_item,
        wait_until, //
    };
    use crate::kthread::KThread;
    use crate::workqueue::{
        context,
        cpu,
        impl_has_delayed_work,
        impl_has_work,
        new_delayed_work,
        new_work,
        system_percpu,
        Delay,
        DelayedWork,
        DelayedWorkItem,
        Work,
        WorkItem,
        Workqueue,
        MAX_ACTIVE, //
    };
    use core::sync::atomic::{
        AtomicBool,
        AtomicU32,
        Ordering::SeqCst, //
    };
    use kernel::{
        bindings,
        prelude::*,
        sync::{
            Arc,
            SpinLock, //
        },
        time::{
            delay::fsleep,
            Delta, //
        },
    };

    /// Records where it ran, in what context, and appends its index to a shared log.
    #[pin_data]
    struct Probe {
        #[pin]
        work: Work<Probe>,
        index: u32,
        sleep_ms: u32,
        runs: AtomicU32,
        cpu: AtomicU32,
        in_worker: AtomicBool,
        log: Option<Arc<Log>>,
    }
    impl_has_work! { impl HasWork<Self> for Probe { self.work } }

    /// Order of runs, and whether two ever overlapped.
    #[pin_data]
    struct Log {
        #[pin]
        order: SpinLock<KVec<u32>>,
        running: AtomicU32,
        overlap: AtomicBool,
    }

    impl WorkItem for Probe {
        type Pointer = Arc<Probe>;
        fn run(this: Arc<Probe>) {
            if let Some(l) = &this.log {
                if l.running.fetch_add(1, SeqCst) != 0 {
                    l.overlap.store(true, SeqCst);
                }
            }
            this.in_worker
                .store(context::in_worker() && this.work.is_current(), SeqCst);
            this.cpu
                .store(kernel::cpu::CpuId::current().as_u32(), SeqCst);
            if this.sleep_ms > 0 {
                fsleep(Delta::from_millis(i64::from(this.sleep_ms)));
            }
            if let Some(l) = &this.log {
                // Capacity is reserved by the test: no allocation here.
                let _ = l.order.lock().push_within_capacity(this.index);
                l.running.fetch_sub(1, SeqCst);
            }
            this.runs.fetch_add(1, SeqCst);
        }
    }

    fn probe(index: u32, sleep_ms: u32, log: Option<Arc<Log>>) -> Result<Arc<Probe>> {
        Arc::pin_init(
            pin_init!(Probe {
                work <- new_work!("Probe::work"),
                index,
                sleep_ms,
                runs: AtomicU32::new(0),
                cpu: AtomicU32::new(u32::MAX),
                in_worker: AtomicBool::new(false),
                log,
            }),
            GFP_KERNEL,
        )
    }

    #[test]
    fn owned_queue_enqueue_flush_drop() -> Result {
        let wq = Workqueue::builder()
            .percpu()
            .build(fmt!("rust_wq_t_basic"))?;
        let p = probe(0, 2, None)?;
        assert!(wq.enqueue(p.clone()).is_ok());
        wq.flush();
        assert_eq!(p.runs.load(SeqCst), 1);
        assert!(p.in_worker.load(SeqCst));
        // Dropping runs what is queued and waits for it.
        let q = probe(0, 20, None)?;
        assert!(wq.enqueue(q.clone()).is_ok());
        drop(wq);
        assert_eq!(q.runs.load(SeqCst), 1);
        Ok(())
    }

    #[test]
    fn create_and_singlethread_are_what_c_makes() -> Result {
        let a = Workqueue::create(fmt!("rust_wq_t_create"))?;
        let b = Workqueue::create_singlethread(fmt!("rust_wq_t_single"))?;
        let order = KVec::with_capacity(8, GFP_KERNEL)?;
        let log = Arc::pin_init(
            pin_init!(Log { order <- kernel::new_spinlock!(order),
                running: AtomicU32::new(0), overlap: AtomicBool::new(false) }),
            GFP_KERNEL,
        )?;
        let p = probe(0, 0, None)?;
        assert!(a.enqueue(p.clone()).is_ok());
        a.flush();
        assert_eq!(p.runs.load(SeqCst), 1);
        // The single-thread queue runs its items one at a time, in order.
        let mut items = KVec::new();
        for i in 0..6 {
            let it = probe(i, 3, Some(log.clone()))?;
            assert!(b.enqueue(it.clone()).is_ok());
            items.push(it, GFP_KERNEL)?;
        }
        b.flush();
        assert!(!log.overlap.load(SeqCst));
        assert_eq!(&log.order.lock()[..], &[0, 1, 2, 3, 4, 5]);
        Ok(())
    }

    #[test]
    fn builder_flags_limits_and_names() -> Result {
        let f = Workqueue::builder()
            .percpu()
            .highpri()
            .cpu_intensive()
            .raw_flags();
        assert_ne!(f & bindings::wq_flags_WQ_PERCPU, 0);
        assert_eq!(f & bindings::wq_flags_WQ_UNBOUND, 0);
        let f = Workqueue::builder()
            .unbound()
            .sysfs()
            .freezable()
            .raw_flags();
        assert_eq!(f & bindings::wq_flags_WQ_PERCPU, 0);
        assert_ne!(f & bindings::wq_flags_WQ_UNBOUND, 0);
        let f = Workqueue::builder().bh().highpri().raw_flags();
        assert_ne!(f & bindings::wq_flags_WQ_BH, 0);
        assert!(Workqueue::builder()
            .percpu()
            .max_active(MAX_ACTIVE + 1)
            .is_err());
        // A name longer than C keeps is accepted (the layer shortens it; C does not warn).
        let long = Workqueue::builder()
            .unbound()
            .build(fmt!("rust_wq_t_{}", "0123456789012345678901234567890123"));
        assert!(long.is_ok());
        drop(long);
        let q = Workqueue::builder()
            .unbound()
            .mem_reclaim()
            .max_active(MAX_ACTIVE)?
            .build(fmt!("rust_wq_t_{}", 7))?;
        let p = probe(0, 0, None)?;
        assert!(q.enqueue(p.clone()).is_ok());
        q.flush();
        assert_eq!(p.runs.load(SeqCst), 1);
        Ok(())
    }

    #[test]
    fn percpu_placement_every_online_cpu() -> Result {
        let wq = Workqueue::builder()
            .percpu()
            .build(fmt!("rust_wq_t_place"))?;
        let mut tested = 0;
        for c in 0..cpu::nr_cpu_ids() {
            let Ok(id) = cpu::online_cpu(c) else { continue };
            let p = probe(0, 0, None)?;
            assert!(wq.enqueue_on(id, p.clone()).is_ok());
            p.work.flush();
            assert_eq!(p.cpu.load(SeqCst), c);
            let s = probe(0, 0, None)?;
            assert!(system_percpu().enqueue_on(id, s.clone()).is_ok());
            s.work.flush();
            assert_eq!(s.cpu.load(SeqCst), c);
            tested += 1;
        }
        assert!(tested >= 1);
        assert_eq!(cpu::cpu_id(cpu::nr_cpu_ids()).err(), Some(EINVAL));
        Ok(())
    }

    #[test]
    fn enqueue_on_with_preemption_disabled() -> Result {
        let wq = Workqueue::builder()
            .percpu()
            .build(fmt!("rust_wq_t_preempt"))?;
        let p = probe(0, 0, None)?;
        let here = {
            // Interrupts (and so preemption) off: `CpuId::current()` is stable, and queueing
            // must neither sleep nor take the CPU-hotplug lock.
            let _irq = kernel::interrupt::local_interrupt_disable();
            let here = kernel::cpu::CpuId::current();
            assert!(wq.enqueue_on(here, p.clone()).is_ok());
            here
        };
        p.work.flush();
        assert_eq!(p.cpu.load(SeqCst), here.as_u32());
        Ok(())
    }

    #[test]
    fn drop_waits_for_running_work() -> Result {
        let wq = Workqueue::builder()
            .unbound()
            .build(fmt!("rust_wq_t_running"))?;
        let s = slow_item(50)?;
        assert!(wq.enqueue(s.clone()).is_ok());
        fsleep(Delta::from_millis(10));
        drop(wq);
        assert_eq!(s.runs.load(SeqCst), 1);
        Ok(())
    }

    /// A delayed item that counts its runs.
    #[pin_data]
    struct Timed {
        #[pin]
        w: DelayedWork<Timed>,
        runs: AtomicU32,
    }
    impl_has_delayed_work! { impl HasDelayedWork for Timed { self.w } }
    impl DelayedWorkItem for Timed {
        type Pointer = Arc<Timed>;
        fn run(this: Arc<Timed>) {
            this.runs.fetch_add(1, SeqCst);
        }
    }

    /// An owned queue's drop cancels the items whose *timers* aim at it. C leaves an item's
    /// `dwork->wq` as it was when the item is queued with no delay (`__queue_delayed_work()`
    /// queues it at once), so an item armed on an owned queue, cancelled, and then queued with
    /// no delay on a system queue still names the owned queue there; it stays registered on
    /// that queue's armed list too (registrations are sticky). The drop must leave it queued
    /// where it is: it runs. A kthread bound to one CPU queues it on that CPU and drops the
    /// owned queue before it sleeps, so the item is still waiting for its worker then.
    #[test]
    fn dropping_a_queue_leaves_an_item_queued_elsewhere_with_no_delay() -> Result {
        const ROUNDS: u32 = 100;
        let c = cpu::online_cpu(0)?;
        // [rounds done, items that never ran, rounds whose item waited until the drop, done]
        let counts = Arc::new([const { AtomicU32::new(0) }; 4], GFP_KERNEL)?;
        let n = counts.clone();
        let t = KThread::spawn_on(c, c"rust_wq_stale", move |_stop| {
            let long = Delay::from_millis(30_000).unwrap_or(Delay::ZERO);
            for _ in 0..ROUNDS {
                let Ok(q) = Workqueue::builder()
                    .unbound()
                    .build(fmt!("rust_wq_t_stale"))
                else {
                    break;
                };
                let Ok(it) = Arc::pin_init(
                    pin_init!(Timed { w <- new_delayed_work!("Timed::w"), runs: AtomicU32::new(0) }),
                    GFP_KERNEL,
                ) else {
                    break;
                };
                // Armed on the owned queue (`dwork->wq` names it), and taken back.
                drop(q.enqueue_delayed(it.clone(), long));
                drop(it.w.cancel());
                // Queued at once on this CPU's pool: its worker cannot run before we sleep.
                if system_percpu()
                    .enqueue_delayed_on(c, it.clone(), Delay::ZERO)
                    .is_err()
                {
                    break;
                }
                if it.runs.load(SeqCst) == 0 {
                    n[2].fetch_add(1, SeqCst);
                }
                drop(q);
                // Neither run nor pending any more: it was cancelled, its pointer dropped.
                let lost = it.runs.load(SeqCst) == 0 && !it.w.is_pending();
                if lost || !wait_until(5000, || it.runs.load(SeqCst) == 1) {
                    n[1].fetch_add(1, SeqCst);
                    drop(it.w.cancel());
                }
                n[0].fetch_add(1, SeqCst);
            }
            n[3].store(1, SeqCst);
        })?;
        // Bounded: each round waits at most 5 s for its item.
        while counts[3].load(SeqCst) == 0 {
            fsleep(Delta::from_millis(10));
        }
        drop(t);
        let ld = |k: usize| counts[k].load(SeqCst);
        pr_info!(
            "stale dwork->wq: {} rounds, {} waited until the drop, {} never ran\n",
            ld(0),
            ld(2),
            ld(1)
        );
        assert_eq!(ld(0), ROUNDS);
        // Conclusive: the drop found the item still queued in some rounds.
        assert!(ld(2) > 0);
        assert_eq!(ld(1), 0);
        Ok(())
    }
}
