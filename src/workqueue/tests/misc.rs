// SPDX-License-Identifier: GPL-2.0

//! Suite `rust_wq_misc`: static work, BH queues, work from interrupt-disabled sections.

#[kernel::prelude::kunit_tests(rust_wq_misc)]
mod tests {
    use super::super::{
        slow_item,
        wait_until, //
    };
    use crate::workqueue::{
        declare_work,
        impl_has_work,
        new_work,
        system_bh,
        system_percpu,
        BhWorkItem,
        Work,
        WorkItem, //
        Workqueue,
    };
    use core::sync::atomic::{
        AtomicBool,
        AtomicU32,
        Ordering::SeqCst, //
    };
    use kernel::{prelude::*, sync::Arc};

    static STATIC_RUNS: AtomicU32 = AtomicU32::new(0);
    fn static_fn() {
        STATIC_RUNS.fetch_add(1, SeqCst);
    }
    declare_work!(static STATIC_ITEM = static_fn);

    #[test]
    fn declare_work_static_item() {
        assert!(STATIC_ITEM.schedule());
        STATIC_ITEM.flush();
        assert_eq!(STATIC_RUNS.load(SeqCst), 1);
        assert!(!STATIC_ITEM.is_pending());
        assert!(!STATIC_ITEM.cancel_sync());
    }

    /// A BH item: never sleeps, records its context.
    #[pin_data]
    struct Bh {
        #[pin]
        work: Work<Bh>,
        softirq: AtomicBool,
        runs: AtomicU32,
    }
    impl_has_work! { impl HasWork<Self> for Bh { self.work } }
    // SAFETY: `run` only updates atomics: it never sleeps.
    unsafe impl BhWorkItem for Bh {}
    impl WorkItem for Bh {
        type Pointer = Arc<Bh>;
        fn run(this: Arc<Bh>) {
            // Not in a worker thread: BH items run in softirq context, which the layer's
            // `Context` (C's `in_serving_softirq()`) must say.
            use crate::workqueue::context::{
                in_worker,
                Context, //
            };
            this.softirq.store(
                !in_worker() && Context::current() == Context::SoftIrq,
                SeqCst,
            );
            this.runs.fetch_add(1, SeqCst);
        }
    }

    fn bh_item() -> Result<Arc<Bh>> {
        Arc::pin_init(
            pin_init!(Bh { work <- new_work!("Bh::work"), softirq: AtomicBool::new(false),
                runs: AtomicU32::new(0) }),
            GFP_KERNEL,
        )
    }

    #[test]
    fn bh_queues_run_items_in_softirq() -> Result {
        let a = bh_item()?;
        assert!(system_bh().enqueue(a.clone()).is_ok());
        assert!(wait_until(5000, || a.runs.load(SeqCst) == 1));
        assert!(a.softirq.load(SeqCst));
        let q = Workqueue::builder().bh().build(fmt!("rust_wq_t_bh"))?;
        let b = bh_item()?;
        assert!(q.enqueue(b.clone()).is_ok());
        q.flush();
        assert_eq!(b.runs.load(SeqCst), 1);
        assert!(b.softirq.load(SeqCst));
        Ok(())
    }

    #[test]
    fn cancel_from_an_interrupt_disabled_section() -> Result {
        let q = Workqueue::builder()
            .ordered()
            .build(fmt!("rust_wq_t_irqcancel"))?;
        let slow = slow_item(100)?;
        let s2 = slow_item(0)?;
        assert!(q.enqueue(slow.clone()).is_ok());
        assert!(q.enqueue(s2.clone()).is_ok());
        let back = {
            let _irq = kernel::interrupt::local_interrupt_disable();
            // Non-blocking: allowed with interrupts off (lockdep and atomic-sleep checks on).
            let back = s2.work.cancel();
            let again = s2.work.disable();
            assert!(again.is_none());
            assert!(s2.work.enable());
            back
        };
        assert!(back.is_some());
        drop(back);
        q.flush();
        assert_eq!(slow.runs.load(SeqCst), 1);
        assert_eq!(s2.runs.load(SeqCst), 0);
        // Static items too.
        assert!(STATIC_ITEM.enqueue(&q) || STATIC_ITEM.is_pending());
        {
            let _irq = kernel::interrupt::local_interrupt_disable();
            let _ = STATIC_ITEM.cancel();
        }
        q.flush();
        Ok(())
    }

    #[test]
    fn delay_conversions() -> Result {
        use crate::workqueue::Delay;
        assert_eq!(Delay::from_micros(0)?, Delay::ZERO);
        assert!(Delay::from_micros(1)?.jiffies() >= 2);
        assert!(Delay::from_micros(Delay::MAX_MICROS + 1).is_err());
        let j = Delay::from_millis(1000)?.jiffies();
        assert_eq!(j, Delay::from_jiffies(j).jiffies());
        Ok(())
    }

    #[test]
    fn every_system_queue_runs_an_item() -> Result {
        use crate::workqueue::{
            system_dfl,
            system_dfl_long,
            system_freezable,
            system_freezable_power_efficient,
            system_highpri,
            system_long,
            system_power_efficient,
            EnqueueError, //
        };
        let queues = [
            system_percpu(),
            system_dfl(),
            system_highpri(),
            system_long(),
            system_dfl_long(),
            system_freezable(),
            system_power_efficient(),
            system_freezable_power_efficient(),
        ];
        for q in queues {
            let s = slow_item(0)?;
            assert!(q.enqueue(s.clone()).is_ok());
            s.work.flush();
            assert_eq!(s.runs.load(SeqCst), 1);
        }
        let b = bh_item()?;
        assert!(crate::workqueue::system_bh_highpri()
            .enqueue(b.clone())
            .is_ok());
        assert!(wait_until(5000, || b.runs.load(SeqCst) == 1));
        // A refusal hands the pointer back: queue twice behind a slow item.
        let q = Workqueue::builder()
            .power_efficient()
            .max_active(1)?
            .build(fmt!("rust_wq_t_pe"))?;
        let slow = slow_item(20)?;
        let s = slow_item(0)?;
        assert!(q.enqueue(slow.clone()).is_ok());
        assert!(q.enqueue(s.clone()).is_ok());
        let back = match q.enqueue(s.clone()) {
            Err(e @ EnqueueError::Pending(_)) => e.into_inner(),
            _ => return Err(EINVAL),
        };
        drop(back);
        q.flush();
        assert_eq!(s.runs.load(SeqCst), 1);
        Ok(())
    }
}
