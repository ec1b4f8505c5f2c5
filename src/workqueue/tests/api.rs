// SPDX-License-Identifier: GPL-2.0

//! Suite `rust_wq_api`: closure spawning, long queue names, a scoped item that re-queues itself,
//! generic item types in the field macros, and the documentation's examples, compiled and run.

#[kernel::prelude::kunit_tests(rust_wq_api)]
mod tests {
    use super::super::{
        wait_until,
        DropCount, //
    };
    use crate::workqueue::{
        context::{
            in_worker,
            Context, //
        },
        impl_has_delayed_work,
        impl_has_rcu_work,
        impl_has_work,
        new_delayed_work,
        new_rcu_work,
        new_work,
        scope,
        system_dfl,
        Delay,
        DelayedWork,
        DelayedWorkItem,
        RcuWork,
        RcuWorkItem,
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
    use pin_init::stack_pin_init;

    static SPAWN_DROPS: AtomicU32 = AtomicU32::new(0);

    /// Bit 0: the closure ran; bit 1: in a worker thread; bit 2: in task context.
    fn where_am_i() -> u32 {
        1 | if in_worker() { 2 } else { 0 } | if Context::current().is_task() { 4 } else { 0 }
    }

    #[test]
    fn try_spawn_runs_the_closure_in_a_worker_of_the_queue() -> Result {
        let seen = Arc::new(AtomicU32::new(0), GFP_KERNEL)?;
        let (s, drop_count) = (seen.clone(), DropCount(&SPAWN_DROPS));
        system_dfl().try_spawn(GFP_KERNEL, move || {
            let _moved_in = &drop_count;
            s.store(where_am_i(), SeqCst);
        })?;
        assert!(wait_until(5000, || SPAWN_DROPS.load(SeqCst) == 1));
        assert_eq!(seen.load(SeqCst), 7);

        // On an owned queue (through `Deref`): its `flush` waits for the closure, which shows
        // that the closure was queued there.
        let q = Workqueue::builder()
            .ordered()
            .build(fmt!("rust_wq_t_spawn"))?;
        let s = seen.clone();
        seen.store(0, SeqCst);
        q.try_spawn(GFP_KERNEL, move || {
            fsleep(Delta::from_millis(20));
            s.store(where_am_i(), SeqCst);
        })?;
        q.flush();
        assert_eq!(seen.load(SeqCst), 7);
        Ok(())
    }

    #[test]
    fn queue_names_of_any_length() -> Result {
        use crate::workqueue::builder::ShortName;
        use kernel::str::CString;
        // 63 bytes; C keeps 31 of them. `é` (2 bytes) straddles byte 31, so the layer cuts
        // before it rather than inside it.
        const LONG: &str = "rust_wq_t_a_queue_name_of_30_b\u{e9}_then_more_bytes_and_more_bytes";
        let shown = CString::try_from_fmt(format_args!("{}", ShortName(format_args!("{LONG}"))))?;
        assert_eq!(Some(shown.to_bytes()), LONG.as_bytes().get(..30));
        let short = CString::try_from_fmt(format_args!(
            "{}",
            ShortName(format_args!("rust_wq_t_{}", 7))
        ))?;
        assert_eq!(short.to_bytes(), b"rust_wq_t_7");
        // A queue with a name of 200 bytes works, and C does not warn (the log scan checks it).
        let q = Workqueue::builder()
            .unbound()
            .build(format_args!("{LONG}/{LONG}/{LONG}/{}", 12345))?;
        let seen = Arc::new(AtomicU32::new(0), GFP_KERNEL)?;
        let s = seen.clone();
        q.try_spawn(GFP_KERNEL, move || s.store(1, SeqCst))?;
        q.flush();
        assert_eq!(seen.load(SeqCst), 1);
        drop(q);
        // A NUL in the name is refused (C would end the name there).
        assert!(matches!(
            Workqueue::builder().percpu().build(format_args!("rust_wq\0t")),
            Err(e) if e == EINVAL
        ));
        Ok(())
    }

    #[test]
    fn scoped_item_requeues_itself_until_done_and_drop_stops_it() -> Result {
        let q = Workqueue::builder()
            .unbound()
            .build(fmt!("rust_wq_t_requeue"))?;
        let runs = AtomicU32::new(0);
        let forever = AtomicU32::new(0);
        let refused = AtomicU32::new(0);
        scope(|s| {
            // Re-queues itself until it has run 10 times, then stops; borrows `runs`.
            stack_pin_init!(let poll = s.requeue_work(&q, |r| {
                if runs.fetch_add(1, SeqCst) + 1 < 10 && !r.again() {
                    refused.fetch_add(1, SeqCst);
                }
            }));
            assert!(poll.as_ref().enqueue());
            assert!(wait_until(5000, || runs.load(SeqCst) >= 10));
            // It stopped by itself: nothing pending, so nothing to cancel.
            fsleep(Delta::from_millis(20));
            assert!(!poll.as_ref().cancel_sync());

            // Re-queues itself forever; its drop at the end of this block must stop it.
            stack_pin_init!(let spin = s.requeue_work(&q, |r| {
                forever.fetch_add(1, SeqCst);
                fsleep(Delta::from_micros(200));
                let _ = r.again();
            }));
            assert!(spin.as_ref().enqueue());
            assert!(wait_until(5000, || forever.load(SeqCst) >= 5));
        });
        let stopped_at = forever.load(SeqCst);
        fsleep(Delta::from_millis(30));
        assert_eq!(forever.load(SeqCst), stopped_at);
        assert_eq!(runs.load(SeqCst), 10);
        assert_eq!(refused.load(SeqCst), 0);
        Ok(())
    }

    /// A generic plain item.
    #[pin_data]
    struct Tagged<T> {
        #[pin]
        work: Work<Tagged<T>>,
        tag: T,
        seen: AtomicU32,
    }
    impl_has_work! { impl{T} HasWork<Self> for Tagged<T> { self.work } }
    impl<T: Into<u32> + Copy + Send + Sync + 'static> WorkItem for Tagged<T> {
        type Pointer = Arc<Self>;
        fn run(this: Arc<Self>) {
            this.seen.store(this.tag.into(), SeqCst);
        }
    }

    /// A generic delayed item with two fields (ids 0 and 1), named in one macro call.
    #[pin_data]
    struct Twice<T> {
        #[pin]
        first: DelayedWork<Twice<T>>,
        #[pin]
        second: DelayedWork<Twice<T>, 1>,
        tag: T,
        seen: AtomicU32,
    }
    impl_has_delayed_work! {
        impl{T} HasDelayedWork<Self> for Twice<T> { self.first }
        impl{T: Copy} HasDelayedWork<Twice<T>, 1> for Twice<T> { self.second }
    }
    impl<T: Into<u32> + Copy + Send + Sync + 'static> DelayedWorkItem for Twice<T> {
        type Pointer = Arc<Self>;
        fn run(this: Arc<Self>) {
            this.seen.fetch_add(this.tag.into(), SeqCst);
        }
    }
    impl<T: Into<u32> + Copy + Send + Sync + 'static> DelayedWorkItem<1> for Twice<T> {
        type Pointer = Arc<Self>;
        fn run(this: Arc<Self>) {
            this.seen.fetch_add(1000 * this.tag.into(), SeqCst);
        }
    }

    /// A generic RCU item.
    #[pin_data]
    struct Freed<T> {
        #[pin]
        rwork: RcuWork<Freed<T>>,
        tag: T,
        seen: AtomicU32,
    }
    impl_has_rcu_work! { impl{T} HasRcuWork<Freed<T>> for Freed<T> { self.rwork } }
    impl<T: Into<u32> + Copy + Send + Sync + 'static> RcuWorkItem for Freed<T> {
        type Pointer = Arc<Self>;
        fn run(this: Arc<Self>) {
            this.seen.store(this.tag.into(), SeqCst);
        }
    }

    #[test]
    fn field_macros_take_generic_item_types() -> Result {
        let q = Workqueue::builder()
            .percpu()
            .build(fmt!("rust_wq_t_generic"))?;
        let plain = Arc::pin_init(
            pin_init!(Tagged { work <- new_work!("Tagged::work"), tag: 7u8, seen: AtomicU32::new(0) }),
            GFP_KERNEL,
        )?;
        let delayed = Arc::pin_init(
            pin_init!(Twice {
                first <- new_delayed_work!("Twice::first"),
                second <- new_delayed_work!("Twice::second"),
                tag: 3u16,
                seen: AtomicU32::new(0),
            }),
            GFP_KERNEL,
        )?;
        assert!(q.enqueue(plain.clone()).is_ok());
        let delay = Delay::from_millis(5)?;
        assert!(q.enqueue_delayed::<_, _, 0>(delayed.clone(), delay).is_ok());
        assert!(q.enqueue_delayed::<_, _, 1>(delayed.clone(), delay).is_ok());
        let rcu = Arc::pin_init(
            pin_init!(Freed { rwork <- new_rcu_work!("Freed::rwork"), tag: 9u8, seen: AtomicU32::new(0) }),
            GFP_KERNEL,
        )?;
        assert!(system_dfl().enqueue_rcu(rcu.clone()).is_ok());
        assert!(wait_until(5000, || delayed.seen.load(SeqCst) == 3003));
        assert!(wait_until(5000, || rcu.seen.load(SeqCst) == 9));
        q.flush();
        assert_eq!(plain.seen.load(SeqCst), 7);
        assert_eq!(delayed.seen.load(SeqCst), 3003);
        Ok(())
    }

    #[test]
    fn delays_and_errors_convert_from_the_kernel_crate_types() -> Result {
        use crate::workqueue::{arm::ArmError, EnqueueError, NodeError};
        // `Delta` to `Delay`: the same rounding as `from_micros`.
        assert_eq!(
            Delay::try_from(Delta::from_millis(5))?,
            Delay::from_millis(5)?
        );
        assert_eq!(
            Delay::try_from(Delta::from_micros(1))?,
            Delay::from_micros(1)?
        );
        assert_eq!(Delay::try_from(Delta::from_nanos(0))?, Delay::ZERO);
        assert_eq!(Delay::try_from(Delta::from_nanos(-1)).err(), Some(EINVAL));
        let too_long = Delta::from_micros(Delay::MAX_MICROS as i64 + 1);
        assert_eq!(Delay::try_from(too_long).err(), Some(EINVAL));
        // The errors of the layer convert to `Error` with `?` / `From`.
        assert_eq!(Error::from(ArmError::Offline(())), ENODEV);
        assert_eq!(
            Error::from(ArmError::Refused(EnqueueError::Disabled(()))),
            EPERM
        );
        assert_eq!(Error::from(EnqueueError::Pending(())), EBUSY);
        assert_eq!(Error::from(NodeError::NotUnbound(())), EINVAL);
        Ok(())
    }
}
