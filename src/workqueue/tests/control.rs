// SPDX-License-Identifier: GPL-2.0

//! Suite `rust_wq_control`: run-time controls and queries (`set_max_active`, `queue_work_node`,
//! `workqueue_congested`, `work_busy`, `set_worker_desc`) and RCU work, with their error paths.

#[kernel::prelude::kunit_tests(rust_wq_control)]
mod tests {
    use super::super::{
        slow_item,
        wait_until, //
    };
    use crate::workqueue::{
        context,
        cpu,
        declare_work,
        impl_has_delayed_work,
        impl_has_rcu_work,
        impl_has_work,
        new_delayed_work,
        new_rcu_work,
        new_work,
        system_dfl,
        Delay,
        DelayedWork,
        DelayedWorkItem,
        EnqueueError,
        NodeError,
        RcuWork,
        RcuWorkItem,
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
        prelude::*,
        sync::Arc,
        time::{
            delay::{fsleep, udelay},
            Delta, //
        },
    };

    // ---- set_max_active, congestion, work_busy --------------------------------------------

    /// A plain item that runs until released (at most 10 s, so a failed test cannot hang the
    /// module's unload), recording that it started.
    #[pin_data]
    struct Gated {
        #[pin]
        work: Work<Gated>,
        started: AtomicBool,
        release: AtomicBool,
        runs: AtomicU32,
    }
    impl_has_work! { impl HasWork<Self> for Gated { self.work } }
    impl WorkItem for Gated {
        type Pointer = Arc<Gated>;
        fn run(this: Arc<Gated>) {
            this.started.store(true, SeqCst);
            for _ in 0..10_000 {
                if this.release.load(SeqCst) {
                    break;
                }
                fsleep(Delta::from_millis(1));
            }
            this.runs.fetch_add(1, SeqCst);
        }
    }

    fn gated() -> Result<Arc<Gated>> {
        Arc::pin_init(
            pin_init!(Gated {
                work <- new_work!("control::Gated::work"),
                started: AtomicBool::new(false),
                release: AtomicBool::new(false),
                runs: AtomicU32::new(0),
            }),
            GFP_KERNEL,
        )
    }

    #[test]
    fn set_max_active_changes_concurrency_and_refuses_bad_values() -> Result {
        let q = Workqueue::builder()
            .percpu()
            .max_active(1)?
            .build(fmt!("rust_wq_t_maxact"))?;
        let c = cpu::online_cpu(0)?;
        let first = gated()?;
        let second = gated()?;
        assert!(q.enqueue_on(c, first.clone()).is_ok());
        assert!(q.enqueue_on(c, second.clone()).is_ok());
        assert!(wait_until(5000, || first.started.load(SeqCst)));
        assert!(first.work.is_running());
        // max_active 1: the second one waits, so the queue is congested on that CPU.
        assert_eq!(q.is_congested(Some(c)), Ok(true));
        assert!(!second.started.load(SeqCst));
        assert!(second.work.is_pending() && !second.work.is_running());
        q.set_max_active(2)?;
        // Raised while the first still runs (it waits for its release): the second starts.
        assert!(wait_until(5000, || second.started.load(SeqCst)));
        assert!(first.work.is_running() && second.work.is_running());
        assert_eq!(q.is_congested(Some(c)), Ok(false));
        first.release.store(true, SeqCst);
        second.release.store(true, SeqCst);
        q.flush();
        assert_eq!(first.runs.load(SeqCst) + second.runs.load(SeqCst), 2);
        assert!(!first.work.is_running() && !second.work.is_running());
        assert_eq!(q.is_congested(None), Ok(false));

        // Bad values: EINVAL, nothing changed (C would clamp and log).
        assert_eq!(q.set_max_active(0), Err(EINVAL));
        assert_eq!(q.set_max_active(MAX_ACTIVE + 1), Err(EINVAL));
        assert_eq!(q.set_max_active(MAX_ACTIVE), Ok(()));
        // Ordered queues: C refuses with a WARN_ON; here EINVAL.
        let o = Workqueue::builder()
            .ordered()
            .build(fmt!("rust_wq_t_maxact_o"))?;
        assert_eq!(o.set_max_active(2), Err(EINVAL));
        let u = Workqueue::builder()
            .unbound()
            .build(fmt!("rust_wq_t_maxact_u"))?;
        assert_eq!(u.set_max_active(4), Ok(()));
        Ok(())
    }

    #[test]
    fn enqueue_node_on_unbound_queues_only() -> Result {
        let u = Workqueue::builder()
            .unbound()
            .build(fmt!("rust_wq_t_node"))?;
        for node in [Some(0), None, Some(1000), Some(u32::MAX)] {
            let s = slow_item(0)?;
            assert!(u.enqueue_node(node, s.clone()).is_ok());
            s.work.flush();
            assert_eq!(s.runs.load(SeqCst), 1);
        }
        // Ordered queues are unbound too; a pending item is refused with its pointer.
        let o = Workqueue::builder()
            .ordered()
            .build(fmt!("rust_wq_t_node_o"))?;
        let head = gated()?;
        let s = slow_item(0)?;
        assert!(o.enqueue_node(Some(0), head.clone()).is_ok());
        assert!(o.enqueue_node(Some(0), s.clone()).is_ok());
        match o.enqueue_node(Some(0), s.clone()) {
            Err(e @ NodeError::Refused(EnqueueError::Pending(_))) => {
                assert_eq!(e.to_errno(), EBUSY);
                drop(e.into_inner());
            }
            _ => return Err(EINVAL),
        }
        head.release.store(true, SeqCst);
        o.flush();
        assert_eq!(s.runs.load(SeqCst), 1);
        // Per-CPU queues: EINVAL (C would WARN), pointer back, nothing queued.
        let p = Workqueue::builder()
            .percpu()
            .build(fmt!("rust_wq_t_node_p"))?;
        let s = slow_item(0)?;
        match p.enqueue_node(Some(0), s.clone()) {
            Err(e @ NodeError::NotUnbound(_)) => {
                assert_eq!(e.to_errno(), EINVAL);
                drop(e.into_inner());
            }
            _ => return Err(EINVAL),
        }
        assert!(!s.work.is_pending());
        assert!(Arc::into_unique_or_drop(s).is_some());
        Ok(())
    }

    /// A delayed item that blocks until released, and a static item that does the same.
    #[pin_data]
    struct Blocker {
        #[pin]
        w: DelayedWork<Blocker>,
        started: AtomicBool,
    }
    impl_has_delayed_work! { impl HasDelayedWork for Blocker { self.w } }
    static RELEASE: AtomicBool = AtomicBool::new(false);
    static STATIC_STARTED: AtomicBool = AtomicBool::new(false);
    fn wait_release() {
        for _ in 0..10_000 {
            if RELEASE.load(SeqCst) {
                break;
            }
            fsleep(Delta::from_millis(1));
        }
    }
    impl DelayedWorkItem for Blocker {
        type Pointer = Arc<Blocker>;
        fn run(this: Arc<Blocker>) {
            this.started.store(true, SeqCst);
            wait_release();
        }
    }
    fn static_blocker() {
        STATIC_STARTED.store(true, SeqCst);
        wait_release();
    }
    declare_work!(static STATIC_BLOCKER = static_blocker);

    #[test]
    fn is_running_for_delayed_and_static_items() -> Result {
        RELEASE.store(false, SeqCst);
        let q = Workqueue::builder()
            .unbound()
            .build(fmt!("rust_wq_t_busy"))?;
        let b = Arc::pin_init(
            pin_init!(Blocker { w <- new_delayed_work!("capi::Blocker::w"),
                started: AtomicBool::new(false) }),
            GFP_KERNEL,
        )?;
        assert!(!b.w.is_running() && !STATIC_BLOCKER.is_running());
        assert!(q
            .enqueue_delayed(b.clone(), Delay::from_millis(60_000)?)
            .is_ok());
        // Armed, not running.
        assert!(b.w.is_pending() && !b.w.is_running());
        assert_eq!(q.mod_delayed_cloned(&b, Delay::ZERO), Ok(true));
        assert!(STATIC_BLOCKER.enqueue(&q));
        assert!(wait_until(5000, || b.started.load(SeqCst)
            && STATIC_STARTED.load(SeqCst)));
        assert!(b.w.is_running() && !b.w.is_pending());
        assert!(STATIC_BLOCKER.is_running());
        RELEASE.store(true, SeqCst);
        q.flush();
        assert!(!b.w.is_running() && !STATIC_BLOCKER.is_running());
        Ok(())
    }

    // ---- set_worker_desc ------------------------------------------------------------------

    /// Sets a worker description, then waits until released.
    #[pin_data]
    struct Describer {
        #[pin]
        work: Work<Describer>,
        set: AtomicU32,
        release: AtomicBool,
    }
    impl_has_work! { impl HasWork<Self> for Describer { self.work } }
    impl WorkItem for Describer {
        type Pointer = Arc<Describer>;
        fn run(this: Arc<Describer>) {
            let too_long = context::set_worker_desc(format_args!("{:040}", 0));
            let ok = context::set_worker_desc(format_args!("rust_wq_desc:{}", 42));
            let code = match (too_long, ok) {
                (Err(e), Ok(true)) if e == EINVAL => 1,
                _ => 2,
            };
            this.set.store(code, SeqCst);
            for _ in 0..10_000 {
                if this.release.load(SeqCst) {
                    break;
                }
                fsleep(Delta::from_millis(1));
            }
        }
    }

    #[test]
    fn worker_desc_set_in_workers_only_and_errors() -> Result {
        // Outside a worker: nothing to describe (C does nothing), too long is still EINVAL.
        assert_eq!(context::set_worker_desc(format_args!("x")), Ok(false));
        assert_eq!(
            context::set_worker_desc(format_args!("{:032}", 7)),
            Err(EINVAL)
        );
        assert_eq!(context::set_worker_desc(format_args!("a\0b")), Err(EINVAL));
        let d = Arc::pin_init(
            pin_init!(Describer {
                work <- new_work!("capi::Describer::work"),
                set: AtomicU32::new(0),
                release: AtomicBool::new(false),
            }),
            GFP_KERNEL,
        )?;
        assert!(system_dfl().enqueue(d.clone()).is_ok());
        assert!(wait_until(5000, || d.set.load(SeqCst) != 0));
        assert_eq!(d.set.load(SeqCst), 1);
        assert!(d.work.is_running());
        // Hold it a moment: `ps` or a task dump taken meanwhile shows the description
        // (`kworker/..+rust_wq_desc:42`); README "Seeing a worker description".
        fsleep(Delta::from_millis(200));
        d.release.store(true, SeqCst);
        d.work.flush();
        assert!(!d.work.is_running());
        Ok(())
    }

    // ---- RCU work ---------------------------------------------------------------------------

    #[pin_data]
    struct Rcu {
        #[pin]
        rwork: RcuWork<Rcu>,
        runs: AtomicU32,
        in_worker: AtomicBool,
    }
    impl_has_rcu_work! { impl HasRcuWork for Rcu { self.rwork } }
    impl RcuWorkItem for Rcu {
        type Pointer = Arc<Rcu>;
        fn run(this: Arc<Rcu>) {
            this.in_worker
                .store(context::in_worker() && this.rwork.is_current(), SeqCst);
            // Process context: may sleep.
            fsleep(Delta::from_millis(1));
            this.runs.fetch_add(1, SeqCst);
        }
    }

    fn rcu_item() -> Result<Arc<Rcu>> {
        Arc::pin_init(
            pin_init!(Rcu {
                rwork <- new_rcu_work!("capi::Rcu::rwork"),
                runs: AtomicU32::new(0),
                in_worker: AtomicBool::new(false),
            }),
            GFP_KERNEL,
        )
    }

    #[test]
    fn rcu_work_runs_after_the_grace_period() -> Result {
        let r = rcu_item()?;
        {
            let _reader = kernel::sync::rcu::read_lock();
            assert!(system_dfl().enqueue_rcu(r.clone()).is_ok());
            // Pending: refused, pointer back.
            match system_dfl().enqueue_rcu(r.clone()) {
                Err(EnqueueError::Pending(p)) => drop(p),
                _ => return Err(EINVAL),
            }
            // No grace period can end while this reader runs: the item must not run.
            for _ in 0..30 {
                udelay(Delta::from_millis(1));
            }
            assert_eq!(r.runs.load(SeqCst), 0);
            assert!(r.rwork.is_pending());
        }
        assert!(r.rwork.flush());
        assert_eq!(r.runs.load(SeqCst), 1);
        assert!(r.in_worker.load(SeqCst));
        assert!(!r.rwork.is_pending() && !r.rwork.is_running());
        assert!(!r.rwork.flush());

        // On an owned queue: dropping it waits for the grace period and runs the item.
        let q = Workqueue::builder()
            .unbound()
            .build(fmt!("rust_wq_t_rcu"))?;
        assert!(q.enqueue_rcu(r.clone()).is_ok());
        drop(q);
        assert_eq!(r.runs.load(SeqCst), 2);

        // drain() too (C would warn if the callback queued into a draining queue).
        let mut q = Workqueue::builder()
            .percpu()
            .build(fmt!("rust_wq_t_rcu2"))?;
        assert!(q.enqueue_rcu(r.clone()).is_ok());
        q.drain();
        assert_eq!(r.runs.load(SeqCst), 3);
        drop(q);
        // Every queueing gave its pointer back: only the test's reference is left.
        assert!(Arc::into_unique_or_drop(r).is_some());
        Ok(())
    }
}
