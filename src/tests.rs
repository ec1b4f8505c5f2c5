// SPDX-License-Identifier: GPL-2.0

//! The in-kernel KUnit suite `rust_wq`: every operation of [`crate::workqueue`] on a real kernel.
//!
//! Work functions run on worker threads, where a failed assertion would not be counted, so they
//! only record what they saw (atomics); the test thread waits (bounded) and asserts.

#[kernel::prelude::kunit_tests(rust_wq)]
mod suite {
    use crate::kthread::{
        Completion,
        KThread, //
    };
    use crate::workqueue::{
        self as wq,
        context,
        declare_work,
        ArcDelayedWork,
        ArcWork,
        Delay,
        DelayedWork,
        EnqueueError,
        Kind,
        OnlineCpu,
        PlainWork,
        Work,
        WorkItem,
        Workqueue, //
    };
    use core::sync::atomic::{
        AtomicBool,
        AtomicU32,
        AtomicU64,
        Ordering::SeqCst, //
    };
    use kernel::{
        prelude::*,
        sync::Arc,
        time::{
            delay::fsleep,
            Delta,
            Instant,
            Monotonic, //
        },
        workqueue::{
            impl_has_delayed_work,
            impl_has_work,
            new_delayed_work,
            new_work, //
        },
    };

    /// Polls `cond` every millisecond for up to `ms` milliseconds.
    fn wait_until(ms: u32, cond: impl Fn() -> bool) -> bool {
        for _ in 0..ms {
            if cond() {
                return true;
            }
            fsleep(Delta::from_millis(1));
        }
        cond()
    }

    /// Monotonic nanoseconds since boot.
    fn now_ns() -> u64 {
        crate::kthread::ktime_ns().max(0) as u64
    }

    /// A plain work item that records where, when and how often it ran.
    #[pin_data]
    struct Probe {
        #[pin]
        work: Work<Probe>,
        runs: AtomicU32,
        cpu: AtomicU32,
        in_worker: AtomicBool,
        slept: AtomicBool,
        started: AtomicBool,
        ran_at_ns: AtomicU64,
        sleep_ms: u32,
        /// Shared order log: the position this item ran at, and the overlap detector.
        order: Option<Arc<OrderLog>>,
        index: u32,
        misordered: AtomicBool,
    }

    impl_has_work! {
        impl HasWork<Self> for Probe { self.work }
    }
    impl PlainWork for Probe {}

    impl WorkItem for Probe {
        type Pointer = Arc<Probe>;

        fn run(this: Arc<Probe>) {
            this.started.store(true, SeqCst);
            this.ran_at_ns.store(now_ns(), SeqCst);
            this.cpu
                .store(kernel::cpu::CpuId::current().as_u32(), SeqCst);
            this.in_worker
                .store(context::in_worker() && this.is_current(), SeqCst);
            if let Some(log) = &this.order {
                if log.active.fetch_add(1, SeqCst) != 0 {
                    log.overlap.store(true, SeqCst);
                }
                let pos = log.next.fetch_add(1, SeqCst);
                if pos != this.index {
                    this.misordered.store(true, SeqCst);
                }
            }
            if this.sleep_ms > 0 {
                let t = Instant::<Monotonic>::now();
                fsleep(Delta::from_millis(i64::from(this.sleep_ms)));
                this.slept
                    .store(t.elapsed().as_millis() >= i64::from(this.sleep_ms), SeqCst);
            }
            if let Some(log) = &this.order {
                log.active.fetch_sub(1, SeqCst);
            }
            this.runs.fetch_add(1, SeqCst);
        }
    }

    struct OrderLog {
        next: AtomicU32,
        active: AtomicU32,
        overlap: AtomicBool,
    }

    fn probe(sleep_ms: u32, order: Option<Arc<OrderLog>>, index: u32) -> Result<Arc<Probe>> {
        Arc::pin_init(
            pin_init!(Probe {
                work <- new_work!("tests::Probe::work"),
                runs: AtomicU32::new(0),
                cpu: AtomicU32::new(u32::MAX),
                in_worker: AtomicBool::new(false),
                slept: AtomicBool::new(false),
                started: AtomicBool::new(false),
                ran_at_ns: AtomicU64::new(0),
                sleep_ms,
                order,
                index,
                misordered: AtomicBool::new(false),
            }),
            GFP_KERNEL,
        )
    }

    /// A delayed work item that records when and where it ran.
    #[pin_data]
    struct DProbe {
        #[pin]
        dwork: DelayedWork<DProbe>,
        runs: AtomicU32,
        cpu: AtomicU32,
        ran_at_ns: AtomicU64,
        ran_at_jiffies: AtomicU64,
        sleep_ms: u32,
    }

    impl_has_delayed_work! {
        impl HasDelayedWork<Self> for DProbe { self.dwork }
    }

    impl WorkItem for DProbe {
        type Pointer = Arc<DProbe>;

        fn run(this: Arc<DProbe>) {
            this.ran_at_ns.store(now_ns(), SeqCst);
            this.ran_at_jiffies.store(wq::jiffies(), SeqCst);
            this.cpu
                .store(kernel::cpu::CpuId::current().as_u32(), SeqCst);
            if this.sleep_ms > 0 {
                fsleep(Delta::from_millis(i64::from(this.sleep_ms)));
            }
            this.runs.fetch_add(1, SeqCst);
        }
    }

    fn dprobe(sleep_ms: u32) -> Result<Arc<DProbe>> {
        Arc::pin_init(
            pin_init!(DProbe {
                dwork <- new_delayed_work!("tests::DProbe::dwork"),
                runs: AtomicU32::new(0),
                cpu: AtomicU32::new(u32::MAX),
                ran_at_ns: AtomicU64::new(0),
                ran_at_jiffies: AtomicU64::new(0),
                sleep_ms,
            }),
            GFP_KERNEL,
        )
    }

    fn queue(kind: Kind, name: &str) -> Result<Pin<KBox<Workqueue>>> {
        KBox::pin_init(
            Workqueue::builder(kind).build(fmt!("rwq_t_{}", name)),
            GFP_KERNEL,
        )
    }

    /// `alloc_workqueue` / `queue_work` / `flush_workqueue` / `destroy_workqueue`.
    #[test]
    fn owned_queue_enqueue_flush_drop() -> Result {
        let wq = queue(Kind::PerCpu, "basic")?;
        let p = probe(0, None, 0)?;
        assert!(wq.enqueue(p.clone()).is_ok());
        wq.flush();
        assert_eq!(p.runs.load(SeqCst), 1);
        assert!(p.in_worker.load(SeqCst));
        drop(wq);
        assert_eq!(p.runs.load(SeqCst), 1);
        Ok(())
    }

    /// `create_workqueue` and `create_singlethread_workqueue` (ordered).
    #[test]
    fn create_and_singlethread() -> Result {
        let a = KBox::pin_init(Workqueue::create(fmt!("rwq_t_create")), GFP_KERNEL)?;
        let b = KBox::pin_init(
            Workqueue::create_singlethread(fmt!("rwq_t_single")),
            GFP_KERNEL,
        )?;
        let (p, q) = (probe(0, None, 0)?, probe(0, None, 0)?);
        assert!(a.enqueue(p.clone()).is_ok());
        assert!(b.enqueue(q.clone()).is_ok());
        a.flush();
        b.flush();
        assert_eq!(p.runs.load(SeqCst) + q.runs.load(SeqCst), 2);
        Ok(())
    }

    /// The builder sets exactly one of per-CPU and unbound, and rejects bad `max_active`.
    #[test]
    fn builder_flags_and_limits() -> Result {
        let percpu = Workqueue::builder(Kind::PerCpu)
            .highpri()
            .cpu_intensive()
            .raw_flags();
        assert_eq!(
            percpu & kernel::bindings::wq_flags_WQ_PERCPU,
            kernel::bindings::wq_flags_WQ_PERCPU
        );
        assert_eq!(percpu & kernel::bindings::wq_flags_WQ_UNBOUND, 0);
        let unbound = Workqueue::builder(Kind::Unbound)
            .sysfs()
            .power_efficient()
            .freezable()
            .raw_flags();
        assert_eq!(unbound & kernel::bindings::wq_flags_WQ_PERCPU, 0);
        assert_ne!(unbound & kernel::bindings::wq_flags_WQ_UNBOUND, 0);
        assert!(Workqueue::builder(Kind::PerCpu)
            .max_active(wq::MAX_ACTIVE + 1)
            .is_err());
        assert!(Workqueue::builder(Kind::Ordered).max_active(2).is_err());
        let b = Workqueue::builder(Kind::Unbound)
            .mem_reclaim()
            .max_active(wq::MAX_ACTIVE)?;
        let q = KBox::pin_init(b.build(fmt!("rwq_t_flags_{}", 7)), GFP_KERNEL)?;
        let p = probe(0, None, 0)?;
        assert!(q.enqueue(p.clone()).is_ok());
        q.flush();
        assert_eq!(p.runs.load(SeqCst), 1);
        Ok(())
    }

    /// `queue_work_on`: an item queued on a CPU of a per-CPU queue runs there, for every
    /// online CPU.
    #[test]
    fn percpu_placement_every_online_cpu() -> Result {
        let wq = queue(Kind::PerCpu, "place")?;
        let mut tested = 0;
        for cpu in 0..wq::nr_cpu_ids() {
            if !wq::cpu_online(cpu) {
                continue;
            }
            let p = probe(0, None, 0)?;
            {
                let on = OnlineCpu::get(cpu)?;
                assert_eq!(on.id(), cpu);
                assert!(wq.enqueue_on(&on, p.clone()).is_ok());
            }
            p.flush();
            assert_eq!(p.runs.load(SeqCst), 1);
            assert_eq!(p.cpu.load(SeqCst), cpu);
            let s = probe(0, None, 0)?;
            {
                let on = OnlineCpu::get(cpu)?;
                assert!(wq::system_percpu().enqueue_on(&on, s.clone()).is_ok());
            }
            s.flush();
            assert_eq!(s.runs.load(SeqCst), 1);
            assert_eq!(s.cpu.load(SeqCst), cpu);
            tested += 1;
        }
        assert!(tested >= 1);
        Ok(())
    }

    /// A CPU number out of range is an error, not a kernel warning.
    #[test]
    fn bad_cpu_is_an_error() {
        assert_eq!(OnlineCpu::get(wq::nr_cpu_ids()).err(), Some(EINVAL));
        assert_eq!(OnlineCpu::get(u32::MAX).err(), Some(EINVAL));
        assert!(!wq::cpu_online(wq::nr_cpu_ids()));
    }

    /// Re-queueing a pending item is refused (no double queueing) and hands the item back.
    #[test]
    fn requeue_while_pending_is_refused() -> Result {
        let wq = queue(Kind::Unbound, "requeue")?;
        let d = dprobe(0)?;
        assert!(wq
            .enqueue_delayed(d.clone(), Delay::from_millis(10_000)?)
            .is_ok());
        assert!(d.is_pending());
        assert!(matches!(
            wq.enqueue_delayed(d.clone(), Delay::from_millis(1)?),
            Err(EnqueueError::Pending(_))
        ));
        // The immediate path refuses it too.
        assert!(wq.enqueue(d.clone()).is_err());
        assert!(d.cancel_sync());
        assert!(!d.is_pending());
        assert_eq!(d.runs.load(SeqCst), 0);
        Ok(())
    }

    /// Cancelling an idle item reports that nothing was pending; flushing an empty queue returns.
    #[test]
    fn cancel_idle_and_flush_empty() -> Result {
        let wq = queue(Kind::PerCpu, "idle")?;
        let p = probe(0, None, 0)?;
        assert!(!p.cancel_sync());
        assert!(!p.flush());
        assert!(!p.is_pending());
        let d = dprobe(0)?;
        assert!(!d.cancel_sync());
        assert!(!d.flush());
        wq.flush();
        wq.drain();
        Ok(())
    }

    /// `cancel_work_sync` of a pending item: it never runs and its reference comes back.
    #[test]
    fn cancel_pending_plain_item() -> Result {
        let wq = queue(Kind::Ordered, "cancel")?;
        let blocker = probe(50, None, 0)?;
        let p = probe(0, None, 0)?;
        assert!(wq.enqueue(blocker.clone()).is_ok());
        assert!(wq.enqueue(p.clone()).is_ok());
        assert!(p.is_pending());
        assert!(p.cancel_sync());
        wq.flush();
        assert_eq!(p.runs.load(SeqCst), 0);
        assert_eq!(blocker.runs.load(SeqCst), 1);
        Ok(())
    }

    /// Work runs in process context and may sleep.
    #[test]
    fn work_sleeps_in_process_context() -> Result {
        let wq = queue(Kind::PerCpu, "sleep")?;
        let p = probe(5, None, 0)?;
        assert!(wq.enqueue(p.clone()).is_ok());
        assert!(p.flush());
        assert!(p.in_worker.load(SeqCst));
        assert!(p.slept.load(SeqCst));
        assert!(!context::in_worker());
        Ok(())
    }

    /// An ordered queue runs items one at a time, in queueing order.
    #[test]
    fn ordered_queue_runs_in_order() -> Result {
        let wq = queue(Kind::Ordered, "order")?;
        let log = Arc::new(
            OrderLog {
                next: AtomicU32::new(0),
                active: AtomicU32::new(0),
                overlap: AtomicBool::new(false),
            },
            GFP_KERNEL,
        )?;
        let mut items = KVec::new();
        for i in 0..16 {
            let p = probe(if i % 4 == 0 { 2 } else { 0 }, Some(log.clone()), i)?;
            assert!(wq.enqueue(p.clone()).is_ok());
            items.push(p, GFP_KERNEL)?;
        }
        wq.flush();
        assert_eq!(log.next.load(SeqCst), 16);
        assert!(!log.overlap.load(SeqCst));
        for p in items.iter() {
            assert!(!p.misordered.load(SeqCst));
            assert_eq!(p.runs.load(SeqCst), 1);
        }
        Ok(())
    }

    /// `queue_delayed_work`: never early, by the kernel's clock (jiffies) and by monotonic time.
    #[test]
    fn delays_are_never_early() -> Result {
        let wq = queue(Kind::PerCpu, "delay")?;
        for ms in [1u32, 8, 20, 40] {
            let d = dprobe(0)?;
            let delay = Delay::from_millis(ms)?;
            let t0 = now_ns();
            let j0 = wq::jiffies();
            assert!(wq.enqueue_delayed(d.clone(), delay).is_ok());
            assert!(wait_until(2000, || d.runs.load(SeqCst) == 1));
            let waited_j = d.ran_at_jiffies.load(SeqCst).wrapping_sub(j0);
            assert!(waited_j >= delay.jiffies() as u64 - 1);
            let waited_ns = d.ran_at_ns.load(SeqCst) - t0;
            assert!(waited_ns >= u64::from(ms) * 1_000_000);
        }
        Ok(())
    }

    /// `queue_delayed_work_on`: a delayed item on a CPU runs there.
    #[test]
    fn delayed_on_cpu() -> Result {
        let wq = queue(Kind::PerCpu, "dcpu")?;
        for cpu in 0..wq::nr_cpu_ids() {
            if !wq::cpu_online(cpu) {
                continue;
            }
            let d = dprobe(0)?;
            {
                let on = OnlineCpu::get(cpu)?;
                assert!(wq
                    .enqueue_delayed_on(&on, d.clone(), Delay::from_millis(2)?)
                    .is_ok());
            }
            assert!(wait_until(2000, || d.runs.load(SeqCst) == 1));
            assert_eq!(d.cpu.load(SeqCst), cpu);
        }
        Ok(())
    }

    /// `mod_delayed_work`: shortening a long delay makes the item run soon; on an idle item it
    /// queues it.
    #[test]
    fn mod_delayed_changes_the_delay() -> Result {
        let wq = queue(Kind::Unbound, "mod")?;
        let d = dprobe(0)?;
        assert!(wq
            .enqueue_delayed(d.clone(), Delay::from_millis(30_000)?)
            .is_ok());
        assert!(wq.mod_delayed(&d, Delay::from_millis(1)?)?);
        assert!(wait_until(2000, || d.runs.load(SeqCst) == 1));
        // Idle now: `mod_delayed` queues it (returns false).
        assert!(!wq.mod_delayed(&d, Delay::ZERO)?);
        assert!(wait_until(2000, || d.runs.load(SeqCst) == 2));
        // And on a system queue (`'static`).
        let s = dprobe(0)?;
        assert!(!wq::system_dfl().mod_delayed(&s, Delay::from_millis(1)?));
        assert!(wait_until(2000, || s.runs.load(SeqCst) == 1));
        Ok(())
    }

    /// Dropping a queue with armed delayed work cancels it: no use after free, no run, no leak.
    #[test]
    fn drop_queue_with_armed_delayed_work() -> Result {
        let wq = queue(Kind::PerCpu, "armed")?;
        let a = dprobe(0)?;
        let b = dprobe(0)?;
        assert!(wq
            .enqueue_delayed(a.clone(), Delay::from_millis(20_000)?)
            .is_ok());
        {
            let on = OnlineCpu::get(0)?;
            assert!(wq
                .enqueue_delayed_on(&on, b.clone(), Delay::from_millis(30_000)?)
                .is_ok());
        }
        assert!(a.is_pending() && b.is_pending());
        drop(wq);
        assert!(!a.is_pending() && !b.is_pending());
        fsleep(Delta::from_millis(20));
        assert_eq!(a.runs.load(SeqCst) + b.runs.load(SeqCst), 0);
        Ok(())
    }

    /// Sets its flag when dropped.
    struct Flag(Arc<AtomicBool>);

    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, SeqCst);
        }
    }

    /// A delayed item that reports when it is freed.
    #[pin_data]
    struct Tracked {
        #[pin]
        dwork: DelayedWork<Tracked>,
        _flag: Flag,
    }

    impl_has_delayed_work! {
        impl HasDelayedWork<Self> for Tracked { self.dwork }
    }

    impl WorkItem for Tracked {
        type Pointer = Arc<Tracked>;

        fn run(_this: Arc<Tracked>) {}
    }

    /// An owned queue remembers an armed item until it finds it idle; `prune` (or `flush`)
    /// forgets a cancelled one at once, so the item is freed.
    #[test]
    fn prune_releases_cancelled_items() -> Result {
        let wq = queue(Kind::Unbound, "prune")?;
        let freed = Arc::new(AtomicBool::new(false), GFP_KERNEL)?;
        let flag = Flag(freed.clone());
        let d = Arc::pin_init(
            pin_init!(Tracked {
                dwork <- new_delayed_work!("tests::Tracked::dwork"),
                _flag: flag,
            }),
            GFP_KERNEL,
        )?;
        assert!(wq
            .enqueue_delayed(d.clone(), Delay::from_millis(30_000)?)
            .is_ok());
        assert!(d.cancel_sync());
        drop(d);
        assert!(!freed.load(SeqCst));
        wq.prune();
        assert!(freed.load(SeqCst));
        Ok(())
    }

    /// Dropping a queue with running and queued work waits for all of it.
    #[test]
    fn drop_queue_with_running_work() -> Result {
        let wq = KBox::pin_init(
            Workqueue::builder(Kind::PerCpu)
                .max_active(1)?
                .build(fmt!("rwq_t_running")),
            GFP_KERNEL,
        )?;
        let first = probe(30, None, 0)?;
        let second = probe(5, None, 0)?;
        let on = OnlineCpu::get(0)?;
        assert!(wq.enqueue_on(&on, first.clone()).is_ok());
        assert!(wq.enqueue_on(&on, second.clone()).is_ok());
        drop(on);
        assert!(wait_until(2000, || first.started.load(SeqCst)));
        drop(wq);
        assert_eq!(first.runs.load(SeqCst), 1);
        assert_eq!(second.runs.load(SeqCst), 1);
        Ok(())
    }

    /// `drain_workqueue` waits for work that its own items queue meanwhile.
    #[test]
    fn drain_waits_for_chained_work() -> Result {
        let wq = Arc::pin_init(
            Workqueue::builder(Kind::Unbound).build(fmt!("rwq_t_drain")),
            GFP_KERNEL,
        )?;
        let wq2 = wq.clone();
        let c = Arc::pin_init(
            pin_init!(Chain {
                work <- new_work!("tests::Chain::work"),
                left: AtomicU32::new(5),
                runs: AtomicU32::new(0),
                wq: wq2,
            }),
            GFP_KERNEL,
        )?;
        assert!(wq.enqueue(c.clone()).is_ok());
        wq.drain();
        assert_eq!(c.runs.load(SeqCst), 6);
        // Break the cycle item -> queue before the queue goes.
        drop(c);
        Ok(())
    }

    #[pin_data]
    struct Chain {
        #[pin]
        work: Work<Chain>,
        left: AtomicU32,
        runs: AtomicU32,
        wq: Arc<Workqueue>,
    }

    impl_has_work! {
        impl HasWork<Self> for Chain { self.work }
    }

    impl WorkItem for Chain {
        type Pointer = Arc<Chain>;

        fn run(this: Arc<Chain>) {
            this.runs.fetch_add(1, SeqCst);
            if this.left.load(SeqCst) > 0 {
                this.left.fetch_sub(1, SeqCst);
                let q = this.wq.clone();
                // Chained queueing on a draining queue is allowed from its own items.
                let _ = q.enqueue(this);
            }
        }
    }

    /// `schedule_work` / `schedule_delayed_work`, and the safe replacement for
    /// `flush_scheduled_work`: flush one's own items.
    #[test]
    fn schedule_work_and_flush_own_items() -> Result {
        let mut items = KVec::new();
        for _ in 0..4 {
            let p = probe(1, None, 0)?;
            assert!(wq::system_percpu().enqueue(p.clone()).is_ok());
            items.push(p, GFP_KERNEL)?;
        }
        let d = dprobe(0)?;
        assert!(wq::system_percpu()
            .enqueue_delayed(d.clone(), Delay::from_millis(5_000)?)
            .is_ok());
        for p in items.iter() {
            p.flush();
            assert_eq!(p.runs.load(SeqCst), 1);
        }
        // `flush` of a delayed item fires its timer at once and waits. (5 s: the timer must
        // not have fired by itself while the items above were flushed, slow as the VM may be.)
        assert!(d.flush());
        assert_eq!(d.runs.load(SeqCst), 1);
        for q in [
            wq::system_dfl(),
            wq::system_highpri(),
            wq::system_long(),
            wq::system_power_efficient(),
        ] {
            let p = probe(0, None, 0)?;
            assert!(q.enqueue(p.clone()).is_ok());
            p.flush();
            assert_eq!(p.runs.load(SeqCst), 1);
        }
        Ok(())
    }

    /// A work item that never sleeps, allowed on the BH queue.
    #[pin_data]
    struct BhProbe {
        #[pin]
        work: Work<BhProbe>,
        runs: AtomicU32,
        in_worker: AtomicBool,
    }

    impl_has_work! {
        impl HasWork<Self> for BhProbe { self.work }
    }
    impl wq::BhWorkItem for BhProbe {}

    impl WorkItem for BhProbe {
        type Pointer = Arc<BhProbe>;

        fn run(this: Arc<BhProbe>) {
            this.in_worker.store(context::in_worker(), SeqCst);
            this.runs.fetch_add(1, SeqCst);
        }
    }

    /// The BH system queue runs marked items in softirq context, not in a worker thread.
    #[test]
    fn system_bh_runs_in_softirq() -> Result {
        let p = Arc::pin_init(
            pin_init!(BhProbe {
                work <- new_work!("tests::BhProbe::work"),
                runs: AtomicU32::new(0),
                in_worker: AtomicBool::new(true),
            }),
            GFP_KERNEL,
        )?;
        assert!(wq::system_bh().enqueue(p.clone()).is_ok());
        assert!(wait_until(2000, || p.runs.load(SeqCst) == 1));
        assert!(!p.in_worker.load(SeqCst));
        Ok(())
    }

    static STATIC_RUNS: AtomicU32 = AtomicU32::new(0);

    fn static_fn() {
        STATIC_RUNS.fetch_add(1, SeqCst);
    }

    declare_work!(static STATIC_ITEM = static_fn);

    /// `DECLARE_WORK`: a static item, no allocation; queue, flush, cancel.
    #[test]
    fn declare_work_static_item() {
        let before = STATIC_RUNS.load(SeqCst);
        assert!(!STATIC_ITEM.cancel_sync());
        assert!(STATIC_ITEM.schedule());
        STATIC_ITEM.flush();
        assert_eq!(STATIC_RUNS.load(SeqCst), before + 1);
        assert!(STATIC_ITEM.enqueue(wq::system_dfl()));
        STATIC_ITEM.flush();
        assert!(!STATIC_ITEM.is_pending());
        assert_eq!(STATIC_RUNS.load(SeqCst), before + 2);
    }

    /// A kthread bound to a CPU runs there; a counting completion lets one waiter per
    /// `complete()` through.
    #[test]
    fn kthread_bound_and_counting_completion() -> Result {
        let mut last = 0;
        for cpu in 0..wq::nr_cpu_ids() {
            if wq::cpu_online(cpu) {
                last = cpu;
            }
        }
        let done = Arc::pin_init(Completion::new(), GFP_KERNEL)?;
        let seen = Arc::new(AtomicU32::new(u32::MAX), GFP_KERNEL)?;
        let (d, s) = (done.clone(), seen.clone());
        let on = OnlineCpu::get(last)?;
        let t = KThread::spawn_on(&on, c"rwq_test/%u", move || {
            s.store(kernel::cpu::CpuId::current().as_u32(), SeqCst);
            d.complete();
            d.complete();
        })?;
        drop(on);
        done.wait();
        done.wait();
        assert_eq!(seen.load(SeqCst), last);
        drop(t);
        Ok(())
    }

    /// The benchmark's percentiles index a sorted copy as `lib/test_workqueue.c` does.
    #[test]
    fn bench_percentiles() {
        let mut v = [9u64, 1, 8, 2, 7, 3, 6, 4, 5, 0];
        assert_eq!(crate::bench::percentiles(&mut v), [5, 9, 9]);
        assert_eq!(v, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let mut e: [u64; 0] = [];
        assert_eq!(crate::bench::percentiles(&mut e), [0, 0, 0]);
    }

    /// `Delay` conversions round up and never shorten.
    #[test]
    fn delay_conversions() -> Result {
        assert_eq!(Delay::from_micros(0)?, Delay::ZERO);
        assert!(Delay::from_micros(1)?.jiffies() >= 2);
        assert!(Delay::from_micros(Delay::MAX_MICROS + 1).is_err());
        let j = Delay::from_millis(1000)?.jiffies();
        assert_eq!(j, Delay::from_jiffies(j).jiffies());
        Ok(())
    }
}
