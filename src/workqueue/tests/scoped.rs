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
            assert!(ran.as_ref().enqueue(&q));
            ran.as_ref().flush();
            assert!(!ran.as_ref().cancel_sync());
            assert_eq!(counter.load(SeqCst), 6);
            // Pending behind a slow item when dropped: cancelled, never runs.
            if let Ok(slow) = slow_item(100) {
                assert!(q.enqueue(slow).is_ok());
                stack_pin_init!(let dropped = s.work(|| {
                    counter.fetch_add(100, SeqCst);
                }));
                assert!(dropped.as_ref().enqueue(&q));
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
            assert!(late.as_ref().enqueue(system_dfl(), delay));
            assert!(late.as_ref().is_pending());
            assert!(late.as_ref().cancel_sync());
            assert!(late.as_ref().enqueue(system_dfl(), delay));
            // Dropped while its timer is armed.
        });
        fsleep(Delta::from_millis(150));
        assert_eq!(counter.load(SeqCst), 0);
        scope(|s| {
            stack_pin_init!(let soon = s.delayed_work(|| { counter.fetch_add(add, SeqCst); }));
            let delay = Delay::from_millis(5).unwrap_or(Delay::ZERO);
            assert!(soon.as_ref().enqueue(system_dfl(), delay));
            assert!(wait_until(5000, || counter.load(SeqCst) == add));
        });
        assert_eq!(counter.load(SeqCst), add);
        Ok(())
    }
}
