// SPDX-License-Identifier: GPL-2.0

//! Suite `rust_wq_irq`: the bottom-half pattern for real. The layer's enqueue, delayed enqueue
//! (system and owned queues), `mod_delayed` and non-blocking cancel/disable are called from a
//! hard-interrupt handler ([`crate::irq_work::run_in_hardirq`]), with lockdep and the
//! atomic-sleep checks of the debug kernel on; each item then proves it ran in process context,
//! on a worker, and slept.
//!
//! It tests the workqueue layer, but lives beside [`run_in_hardirq`](super::run_in_hardirq),
//! a test helper of this module: the layer's own suites (`src/workqueue/tests/`) use nothing
//! outside the layer.

#[kernel::prelude::kunit_tests(rust_wq_irq)]
mod tests {
    use crate::irq_work::{
        run_in_hardirq,
        run_in_softirq, //
    };
    use crate::workqueue::tests::{
        slow_item,
        wait_until,
        DropCount, //
    };
    use crate::workqueue::{
        context::{
            in_worker,
            Context, //
        },
        cpu,
        impl_has_delayed_work,
        impl_has_work,
        new_delayed_work,
        new_work,
        system_bh,
        system_dfl,
        system_percpu,
        BhWorkItem,
        Delay,
        DelayedWork,
        DelayedWorkItem,
        Queue,
        Work,
        WorkItem, //
        Workqueue,
    };
    use core::sync::atomic::{
        AtomicU32,
        Ordering::SeqCst, //
    };
    use kernel::{
        prelude::*,
        sync::Arc,
        time::{
            delay::fsleep,
            Delta, //
        },
    };

    /// How long each item sleeps when it runs, in microseconds.
    const SLEEP_US: i64 = 200;

    /// What an item saw when it ran: set once, read by the test thread.
    struct Seen {
        runs: AtomicU32,
        /// `Context` as `ctx_code`, or `u32::MAX` before the run.
        ctx: AtomicU32,
        /// 1 if it ran on a workqueue worker running this very item.
        worker: AtomicU32,
        /// 1 if the sleep took at least `SLEEP_US`.
        slept: AtomicU32,
        cpu: AtomicU32,
    }

    fn ctx_code(c: Context) -> u32 {
        match c {
            Context::Task => 0,
            Context::SoftIrq => 1,
            Context::HardIrq => 2,
            Context::Nmi => 3,
        }
    }

    impl Seen {
        fn new() -> Self {
            Self {
                runs: AtomicU32::new(0),
                ctx: AtomicU32::new(u32::MAX),
                worker: AtomicU32::new(0),
                slept: AtomicU32::new(0),
                cpu: AtomicU32::new(u32::MAX),
            }
        }

        /// Records the context, then sleeps (a sleep in atomic context would be reported by the
        /// debug kernel) and records that it did.
        fn record(&self, current: bool) {
            self.ctx.store(ctx_code(Context::current()), SeqCst);
            self.worker.store(u32::from(in_worker() && current), SeqCst);
            self.cpu
                .store(kernel::cpu::CpuId::current().as_u32(), SeqCst);
            let t0 = crate::kthread::ktime_ns();
            fsleep(Delta::from_micros(SLEEP_US));
            let slept = crate::kthread::ktime_ns() - t0 >= SLEEP_US * 1000;
            self.slept.store(u32::from(slept), SeqCst);
            self.runs.fetch_add(1, SeqCst);
        }

        /// Waits for one run and checks it was in process context, on a worker, and slept.
        fn ran_in_process_context(&self) -> bool {
            wait_until(5000, || self.runs.load(SeqCst) == 1)
                && self.ctx.load(SeqCst) == ctx_code(Context::Task)
                && self.worker.load(SeqCst) == 1
                && self.slept.load(SeqCst) == 1
        }
    }

    /// A plain item.
    #[pin_data]
    struct P {
        #[pin]
        work: Work<P>,
        seen: Seen,
        _d: Option<DropCount>,
    }
    impl_has_work! { impl HasWork<Self> for P { self.work } }
    impl WorkItem for P {
        type Pointer = Arc<P>;
        fn run(this: Arc<P>) {
            this.seen.record(this.work.is_current());
        }
    }

    fn p(drops: Option<&'static AtomicU32>) -> Result<Arc<P>> {
        Arc::pin_init(
            pin_init!(P { work <- new_work!("irq::P::work"), seen: Seen::new(),
                _d: drops.map(DropCount) }),
            GFP_KERNEL,
        )
    }

    /// A tracked delayed item.
    #[pin_data]
    struct D {
        #[pin]
        w: DelayedWork<D>,
        seen: Seen,
        _d: Option<DropCount>,
    }
    impl_has_delayed_work! { impl HasDelayedWork for D { self.w } }
    impl DelayedWorkItem for D {
        type Pointer = Arc<D>;
        fn run(this: Arc<D>) {
            this.seen.record(this.w.is_current());
        }
    }

    fn d(drops: Option<&'static AtomicU32>) -> Result<Arc<D>> {
        Arc::pin_init(
            pin_init!(D { w <- new_delayed_work!("irq::D::w"), seen: Seen::new(),
                _d: drops.map(DropCount) }),
            GFP_KERNEL,
        )
    }

    /// A BH item: records the context it runs in (softirq), never sleeps.
    #[pin_data]
    struct Bh {
        #[pin]
        work: Work<Bh>,
        ctx: AtomicU32,
    }
    impl_has_work! { impl HasWork<Self> for Bh { self.work } }
    // SAFETY: `run` only updates atomics: it never sleeps.
    unsafe impl BhWorkItem for Bh {}
    impl WorkItem for Bh {
        type Pointer = Arc<Bh>;
        fn run(this: Arc<Bh>) {
            this.ctx.store(ctx_code(Context::current()), SeqCst);
        }
    }

    #[test]
    fn context_tells_task_softirq_and_hardirq_apart() -> Result {
        assert_eq!(Context::current(), Context::Task);
        for _ in 0..100 {
            assert_eq!(run_in_hardirq(Context::current)?, Context::HardIrq);
        }
        // Interrupts off in a task are still task context.
        {
            let _irq = kernel::interrupt::local_interrupt_disable();
            assert_eq!(Context::current(), Context::Task);
        }
        let b = Arc::pin_init(
            pin_init!(Bh { work <- new_work!("irq::Bh::work"), ctx: AtomicU32::new(u32::MAX) }),
            GFP_KERNEL,
        )?;
        assert!(system_bh().enqueue(b.clone()).is_ok());
        assert!(wait_until(5000, || b.ctx.load(SeqCst) != u32::MAX));
        assert_eq!(b.ctx.load(SeqCst), ctx_code(Context::SoftIrq));
        assert_eq!(
            [Context::Task, Context::SoftIrq, Context::HardIrq].map(Context::name),
            ["task", "softirq", "hardirq"]
        );
        // The closure borrows from the caller and its result comes back.
        let mut v = KVec::new();
        v.push(41u32, GFP_KERNEL)?;
        assert_eq!(run_in_hardirq(|| v[0] + 1)?, 42);
        Ok(())
    }

    #[test]
    fn enqueue_from_hardirq_on_every_queue_kind() -> Result {
        let percpu = Workqueue::builder()
            .percpu()
            .build(fmt!("rust_wq_t_irq_p"))?;
        let unbound = Workqueue::builder()
            .unbound()
            .build(fmt!("rust_wq_t_irq_u"))?;
        let ordered = Workqueue::builder()
            .ordered()
            .build(fmt!("rust_wq_t_irq_o"))?;
        let queues: [&Queue; 5] = [&percpu, &unbound, &ordered, system_percpu(), system_dfl()];
        for q in queues {
            let it = p(None)?;
            let queued = run_in_hardirq(|| (Context::current(), q.enqueue(it.clone()).is_ok()))?;
            assert_eq!(queued, (Context::HardIrq, true));
            assert!(it.seen.ran_in_process_context());
        }
        // A second enqueue of a pending item from the handler is refused and hands the pointer
        // back (it is dropped here, in the task).
        let slow = slow_item(50)?;
        let it = p(None)?;
        assert!(ordered.enqueue(slow.clone()).is_ok());
        let (first, again) = run_in_hardirq(|| {
            let first = ordered.enqueue(it.clone()).is_ok();
            (
                first,
                ordered.enqueue(it.clone()).map_err(|e| e.into_inner()),
            )
        })?;
        assert!(first);
        assert!(matches!(again, Err(ref back) if Arc::ptr_eq(back, &it)));
        drop(again);
        assert!(it.seen.ran_in_process_context());
        Ok(())
    }

    #[test]
    fn enqueue_on_from_hardirq_keeps_per_cpu_placement() -> Result {
        let percpu = Workqueue::builder()
            .percpu()
            .build(fmt!("rust_wq_t_irq_pc"))?;
        let mut checked = 0;
        for c in 0..cpu::nr_cpu_ids() {
            let Ok(id) = cpu::online_cpu(c) else { continue };
            for q in [&*percpu, system_percpu()] {
                let it = p(None)?;
                assert!(run_in_hardirq(|| q.enqueue_on(id, it.clone()).is_ok())?);
                assert!(it.seen.ran_in_process_context());
                assert_eq!(it.seen.cpu.load(SeqCst), c);
                checked += 1;
            }
        }
        assert!(checked >= 2);
        Ok(())
    }

    #[test]
    fn delayed_enqueue_from_hardirq_on_system_and_owned_queues() -> Result {
        let unbound = Workqueue::builder()
            .unbound()
            .build(fmt!("rust_wq_t_irq_du"))?;
        let percpu = Workqueue::builder()
            .percpu()
            .build(fmt!("rust_wq_t_irq_dp"))?;
        let (a, b, c) = (d(None)?, d(None)?, d(None)?);
        let short = Delay::from_millis(2)?;
        let last = cpu::nr_cpu_ids() - 1;
        let last = (0..=last)
            .rev()
            .find_map(|n| cpu::online_cpu(n).ok())
            .ok_or(ENODEV)?;
        let ok = run_in_hardirq(|| {
            [
                system_dfl().enqueue_delayed(a.clone(), short).is_ok(),
                unbound.enqueue_delayed(b.clone(), short).is_ok(),
                percpu.enqueue_delayed_on(last, c.clone(), short).is_ok(),
            ]
        })?;
        assert_eq!(ok, [true; 3]);
        for it in [&a, &b, &c] {
            assert!(it.seen.ran_in_process_context());
        }
        assert_eq!(c.seen.cpu.load(SeqCst), last.as_u32());
        // Armed from the handler on an owned queue: the queue knows it (and its drop would
        // cancel it).
        let e = d(None)?;
        let long = Delay::from_millis(30_000)?;
        assert!(run_in_hardirq(|| unbound
            .enqueue_delayed(e.clone(), long)
            .is_ok())?);
        assert_eq!(unbound.armed(), 1);
        assert!(e.w.cancel().is_some());
        assert_eq!(unbound.armed(), 0);
        Ok(())
    }

    #[test]
    fn mod_delayed_from_hardirq() -> Result {
        let q = Workqueue::builder()
            .unbound()
            .build(fmt!("rust_wq_t_irq_mod"))?;
        let pq = Workqueue::builder()
            .percpu()
            .build(fmt!("rust_wq_t_irq_modp"))?;
        let (a, b, c) = (d(None)?, d(None)?, d(None)?);
        let long = Delay::from_millis(30_000)?;
        let short = Delay::from_millis(1)?;
        assert!(q.enqueue_delayed(a.clone(), long).is_ok());
        let cpu0 = cpu::online_cpu(0)?;
        let r = run_in_hardirq(|| {
            [
                // Pending: only the timer moves.
                q.mod_delayed_cloned(&a, short),
                // Idle: queued with a clone made in the handler (no allocation).
                system_dfl().mod_delayed_cloned(&b, short),
                pq.mod_delayed_on(cpu0, c.clone(), short)
                    .map(|r| r.was_pending())
                    .map_err(|e| e.to_errno()),
            ]
        })?;
        assert_eq!(r, [Ok(true), Ok(false), Ok(false)]);
        for it in [&a, &b, &c] {
            assert!(it.seen.ran_in_process_context());
        }
        assert_eq!(c.seen.cpu.load(SeqCst), 0);
        // A disabled item: `EPERM` from the handler, nothing changed.
        assert!(a.w.disable().is_none());
        assert_eq!(
            run_in_hardirq(|| q.mod_delayed_cloned(&a, short))?,
            Err(EPERM)
        );
        assert!(!a.w.is_pending());
        assert!(a.w.enable());
        Ok(())
    }

    #[test]
    fn non_blocking_cancel_and_disable_from_hardirq() -> Result {
        static DROPS: AtomicU32 = AtomicU32::new(0);
        let q = Workqueue::builder()
            .ordered()
            .build(fmt!("rust_wq_t_irq_cancel"))?;
        let slow = slow_item(100)?;
        let plain = p(Some(&DROPS))?;
        let delayed = d(Some(&DROPS))?;
        assert!(q.enqueue(slow.clone()).is_ok());
        assert!(q.enqueue(plain.clone()).is_ok());
        assert!(q
            .enqueue_delayed(delayed.clone(), Delay::from_millis(30_000)?)
            .is_ok());
        assert_eq!(q.armed(), 1);
        // The pointers the queue held come back out of the handler and are dropped here.
        let (bp, bd, dis, en) = run_in_hardirq(|| {
            let bp = plain.work.cancel();
            let bd = delayed.w.cancel();
            // Disable/enable are non-blocking too; nothing is pending any more.
            let dis = plain.work.disable().is_none() && delayed.w.disable().is_none();
            let en = plain.work.enable() && delayed.w.enable();
            (bp, bd, dis, en)
        })?;
        assert!(bp.is_some() && bd.is_some() && dis && en);
        assert_eq!(q.armed(), 0);
        drop((bp, bd));
        q.flush();
        assert_eq!(slow.runs.load(SeqCst), 1);
        assert_eq!(plain.seen.runs.load(SeqCst), 0);
        assert_eq!(delayed.seen.runs.load(SeqCst), 0);
        drop((plain, delayed));
        // Every pointer the queue held was given back, none leaked.
        assert_eq!(DROPS.load(SeqCst), 2);
        Ok(())
    }

    #[test]
    fn a_whole_batch_from_one_interrupt() -> Result {
        static DROPS: AtomicU32 = AtomicU32::new(0);
        const N: usize = 64;
        let q = Workqueue::builder()
            .unbound()
            .build(fmt!("rust_wq_t_irq_batch"))?;
        let mut plain = KVec::with_capacity(N, GFP_KERNEL)?;
        let mut delayed = KVec::with_capacity(N, GFP_KERNEL)?;
        for _ in 0..N {
            plain.push(p(Some(&DROPS))?, GFP_KERNEL)?;
            delayed.push(d(Some(&DROPS))?, GFP_KERNEL)?;
        }
        let short = Delay::from_millis(5)?;
        let queued = run_in_hardirq(|| {
            let mut n = 0;
            for (a, b) in plain.iter().zip(delayed.iter()) {
                n += usize::from(q.enqueue(a.clone()).is_ok());
                n += usize::from(q.enqueue_delayed(b.clone(), short).is_ok());
            }
            n
        })?;
        assert_eq!(queued, 2 * N);
        for it in plain.iter() {
            assert!(it.seen.ran_in_process_context());
        }
        for it in delayed.iter() {
            assert!(it.seen.ran_in_process_context());
        }
        q.flush();
        drop(plain);
        drop(delayed);
        assert!(wait_until(5000, || DROPS.load(SeqCst) == 2 * N as u32));
        Ok(())
    }

    #[test]
    fn owned_queue_dropped_in_hardirq_is_destroyed_on_a_worker() -> Result {
        static DROPS: AtomicU32 = AtomicU32::new(0);
        let q = Workqueue::builder()
            .unbound()
            .build(fmt!("rust_wq_t_irq_drop"))?;
        let armed = d(Some(&DROPS))?;
        let queued = p(Some(&DROPS))?;
        assert!(q
            .enqueue_delayed(armed.clone(), Delay::from_millis(30_000)?)
            .is_ok());
        assert!(q.enqueue(queued.clone()).is_ok());
        // `destroy_workqueue()` sleeps: dropped in the handler, the queue cancels its armed
        // timer there (non-blocking) and hands the destruction to `system_dfl_wq`.
        run_in_hardirq(move || drop(q))?;
        Workqueue::wait_reaped();
        assert!(!armed.w.is_pending());
        assert_eq!(armed.seen.runs.load(SeqCst), 0);
        // The queued item ran before the queue was destroyed (destroy drains it).
        assert!(queued.seen.ran_in_process_context());
        drop((armed, queued));
        assert_eq!(DROPS.load(SeqCst), 2);
        Ok(())
    }

    #[test]
    fn the_same_from_softirq() -> Result {
        for _ in 0..20 {
            assert_eq!(run_in_softirq(Context::current)?, Context::SoftIrq);
        }
        let q = Workqueue::builder()
            .unbound()
            .build(fmt!("rust_wq_t_irq_soft"))?;
        let (a, b, c) = (p(None)?, d(None)?, d(None)?);
        let short = Delay::from_millis(2)?;
        let long = Delay::from_millis(30_000)?;
        let r = run_in_softirq(|| {
            [
                q.enqueue(a.clone()).is_ok(),
                q.enqueue_delayed(b.clone(), short).is_ok(),
                system_dfl().enqueue_delayed(c.clone(), long).is_ok(),
                q.mod_delayed_cloned(&c, short) == Ok(true),
            ]
        })?;
        assert_eq!(r, [true; 4]);
        assert!(a.seen.ran_in_process_context());
        assert!(b.seen.ran_in_process_context());
        assert!(c.seen.ran_in_process_context());
        // Non-blocking cancel from softirq gives the pointer back.
        assert!(q.enqueue_delayed(b.clone(), long).is_ok());
        let back = run_in_softirq(|| b.w.cancel())?;
        assert!(back.is_some());
        assert_eq!(q.armed(), 0);
        Ok(())
    }
}
