// SPDX-License-Identifier: GPL-2.0

//! Suite `rust_wq_scoped`: items that borrow stack data, cancelled when dropped.

#[kernel::prelude::kunit_tests(rust_wq_scoped)]
mod tests {
    use super::super::{
        slow_item,
        wait_until, //
    };
    use crate::workqueue::{
        scope,
        system_dfl,
        Delay,
        Workqueue, //
    };
    use core::sync::atomic::{
        AtomicBool,
        AtomicU32,
        Ordering::SeqCst, //
    };
    use kernel::{
        prelude::*,
        time::{
            delay::fsleep,
            Delta, //
        },
    };
    use pin_init::stack_pin_init;

    #[test]
    fn scoped_work_borrows_the_stack_and_is_cancelled_on_drop() -> Result {
        let q = Workqueue::builder()
            .ordered()
            .build(fmt!("rust_wq_t_scoped"))?;
        let counter = AtomicU32::new(0);
        let stack_data = [1u32, 2, 3];
        scope(|s| {
            // Runs: adds the borrowed array's sum.
            stack_pin_init!(let ran = s.work(|| {
                counter.fetch_add(stack_data.iter().sum::<u32>(), SeqCst);
            }));
            assert_eq!(ran.as_ref().enqueue(&q), Ok(true));
            ran.as_ref().flush();
            assert!(!ran.as_ref().cancel_sync());
            assert_eq!(counter.load(SeqCst), 6);
            // Pending behind a slow item when dropped: cancelled, never runs.
            if let Ok(slow) = slow_item(100) {
                assert!(q.enqueue(slow).is_ok());
                stack_pin_init!(let dropped = s.work(|| {
                    counter.fetch_add(100, SeqCst);
                }));
                assert_eq!(dropped.as_ref().enqueue(&q), Ok(true));
                // `dropped` goes out of scope here, pending: its drop cancels it.
            }
        });
        q.flush();
        assert_eq!(counter.load(SeqCst), 6);
        Ok(())
    }

    #[test]
    fn scoped_delayed_work_borrows_the_stack_and_is_cancelled_on_drop() -> Result {
        let counter = AtomicU32::new(0);
        let add = 7u32;
        scope(|s| {
            stack_pin_init!(let late = s.delayed_work(|| { counter.fetch_add(add, SeqCst); }));
            let delay = Delay::from_millis(50).unwrap_or(Delay::ZERO);
            assert_eq!(late.as_ref().enqueue(system_dfl(), delay), Ok(true));
            assert!(late.as_ref().is_pending());
            assert!(late.as_ref().cancel_sync());
            assert_eq!(late.as_ref().enqueue(system_dfl(), delay), Ok(true));
            // Dropped while its timer is armed.
        });
        fsleep(Delta::from_millis(150));
        assert_eq!(counter.load(SeqCst), 0);
        scope(|s| {
            stack_pin_init!(let soon = s.delayed_work(|| { counter.fetch_add(add, SeqCst); }));
            let delay = Delay::from_millis(5).unwrap_or(Delay::ZERO);
            assert_eq!(soon.as_ref().enqueue(system_dfl(), delay), Ok(true));
            assert!(wait_until(5000, || counter.load(SeqCst) == add));
        });
        assert_eq!(counter.load(SeqCst), add);
        Ok(())
    }

    /// A scoped item running on one queue and queued on another meanwhile (C allows that: its
    /// non-reentrancy holds per queue) had two instances, and its drop's `cancel_work_sync()`
    /// waited only on the last queue's pool: the drop returned while the first instance still
    /// ran on the item's memory. A scoped item is now bound to the first queue it is queued
    /// on, so its drop waits for every instance.
    #[test]
    fn scoped_work_dropped_while_running_on_another_queue_waits_for_it() -> Result {
        // Two queues on different worker pools (per-CPU and unbound: C shares a pool only
        // between queues of one kind with equal attributes).
        let qa = Workqueue::builder()
            .percpu()
            .build(fmt!("rust_wq_t_scoped_a"))?;
        let qb = Workqueue::builder()
            .unbound()
            .build(fmt!("rust_wq_t_scoped_b"))?;
        let runs = AtomicU32::new(0);
        let finished = AtomicU32::new(0);
        let started = AtomicBool::new(false);
        let release = AtomicBool::new(false);
        let mut finished_at_drop = u32::MAX;
        let mut started_in_time = false;
        let mut second = Ok(true);
        scope(|s| {
            // Lets the first instance finish, 300 ms after it is armed.
            stack_pin_init!(let opener = s.delayed_work(|| release.store(true, SeqCst)));
            {
                stack_pin_init!(let w = s.work(|| {
                    if runs.fetch_add(1, SeqCst) == 0 {
                        started.store(true, SeqCst);
                        let _ = wait_until(5000, || release.load(SeqCst));
                    }
                    finished.fetch_add(1, SeqCst);
                }));
                let first = w.as_ref().enqueue(&qa);
                started_in_time = first == Ok(true) && wait_until(5000, || started.load(SeqCst));
                // Running on `qa`: offer it to `qb` too (refused: bound to `qa`).
                second = w.as_ref().enqueue(&qb);
                let delay = Delay::from_millis(300).unwrap_or(Delay::ZERO);
                let _ = opener.as_ref().enqueue(system_dfl(), delay);
                // `w` is dropped here: no instance may be running once its drop returns.
            }
            finished_at_drop = finished.load(SeqCst);
            release.store(true, SeqCst);
        });
        qa.flush();
        qb.flush();
        assert!(started_in_time);
        assert_eq!(second, Err(EINVAL));
        assert_eq!(finished_at_drop, runs.load(SeqCst));
        Ok(())
    }
}
