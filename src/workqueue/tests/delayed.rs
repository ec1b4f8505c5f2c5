// SPDX-License-Identifier: GPL-2.0

//! Suite `rust_wq_delayed`: tracked delayed work on owned and system queues.

#[kernel::prelude::kunit_tests(rust_wq_delayed)]
mod tests {
    use super::super::{
        wait_until,
        DropCount, //
    };
    use crate::kthread::KThread;
    use crate::workqueue::{
        cpu,
        impl_has_delayed_work,
        jiffies,
        new_delayed_work,
        system_dfl,
        Delay,
        DelayedWork,
        DelayedWorkItem,
        Workqueue, //
    };
    use core::sync::atomic::{
        AtomicBool,
        AtomicU32,
        AtomicU64,
        Ordering::SeqCst, //
    };
    use kernel::{
        new_spinlock_irq,
        prelude::*,
        sync::{
            Arc, //
        },
        time::{
            delay::fsleep,
            Delta,
            Instant,
            Monotonic, //
        },
    };

    /// A delayed item that counts its runs and records where and when it ran.
    #[pin_data]
    struct D {
        #[pin]
        w: DelayedWork<D>,
        runs: AtomicU32,
        cpu: AtomicU32,
        ran_jiffies: AtomicU64,
        drops: Option<DropCount>,
    }
    impl_has_delayed_work! { impl HasDelayedWork for D { self.w } }
    impl DelayedWorkItem for D {
        type Pointer = Arc<D>;
        fn run(this: Arc<D>) {
            this.ran_jiffies.store(jiffies(), SeqCst);
            this.cpu
                .store(kernel::cpu::CpuId::current().as_u32(), SeqCst);
            this.runs.fetch_add(1, SeqCst);
        }
    }

    fn d(drops: Option<&'static AtomicU32>) -> Result<Arc<D>> {
        Arc::pin_init(
            pin_init!(D {
                w <- new_delayed_work!("D::w"),
                runs: AtomicU32::new(0),
                cpu: AtomicU32::new(u32::MAX),
                ran_jiffies: AtomicU64::new(0),
                drops: drops.map(DropCount),
            }),
            GFP_KERNEL,
        )
    }

    fn owned(name: &str) -> Result<Workqueue> {
        Workqueue::builder()
            .unbound()
            .build(fmt!("rust_wq_t_{}", name))
    }

    #[test]
    fn owned_delayed_calls_with_spinlock_held_and_irqs_off() -> Result {
        let q = owned("irqoff")?;
        let a = d(None)?;
        let b = d(None)?;
        let lock = KBox::pin_init(new_spinlock_irq!(0u32, "test::lock"), GFP_KERNEL)?;
        let long = Delay::from_millis(30_000)?;
        {
            // Interrupts are off and a spinlock is held: any sleep or sleeping allocation in
            // these calls is reported by the debug kernel (DEBUG_ATOMIC_SLEEP, lockdep).
            let mut g: kernel::sync::SpinLockIrqGuard<'_, u32> = lock.lock();
            assert!(q.enqueue_delayed(a.clone(), long).is_ok());
            assert_eq!(
                q.mod_delayed_cloned(&a, Delay::from_millis(20_000)?),
                Ok(true)
            );
            assert_eq!(q.mod_delayed_cloned(&b, long), Ok(false));
            assert!(system_dfl().enqueue_delayed(b.clone(), long).is_err());
            assert!(a.w.cancel().is_some());
            assert!(b.w.disable().is_some());
            assert!(b.w.enable());
            *g += 1;
        }
        assert_eq!(q.armed(), 0);
        assert!(!a.w.is_pending() && !b.w.is_pending());
        assert_eq!(a.runs.load(SeqCst) + b.runs.load(SeqCst), 0);
        Ok(())
    }

    #[test]
    fn dropping_a_spares_an_item_since_queued_on_b() -> Result {
        let a = owned("a")?;
        let b = Workqueue::builder().ordered().build(fmt!("rust_wq_t_b"))?;
        let it = d(None)?;
        // Armed on A (C writes `dwork->wq = A`), runs from A.
        assert!(a
            .enqueue_delayed(it.clone(), Delay::from_millis(1)?)
            .is_ok());
        assert!(wait_until(5000, || it.runs.load(SeqCst) == 1));
        it.w.flush();
        // Now queued at once on B behind a long item, so it is pending on B when A goes.
        let slow = super::super::slow_item(200)?;
        assert!(b.enqueue(slow.clone()).is_ok());
        assert!(b.enqueue_delayed(it.clone(), Delay::ZERO).is_ok());
        assert!(it.w.is_pending());
        drop(a);
        b.flush();
        assert_eq!(it.runs.load(SeqCst), 2);
        Ok(())
    }

    #[test]
    fn drain_fires_armed_timers_without_warning_or_leak() -> Result {
        static DROPS: AtomicU32 = AtomicU32::new(0);
        let mut q = owned("drain")?;
        let mut items = KVec::new();
        for _ in 0..16 {
            let it = d(Some(&DROPS))?;
            assert!(q
                .enqueue_delayed(it.clone(), Delay::from_millis(20_000)?)
                .is_ok());
            items.push(it, GFP_KERNEL)?;
        }
        assert_eq!(q.armed(), 16);
        q.drain();
        assert_eq!(q.armed(), 0);
        for it in items.iter() {
            assert_eq!(it.runs.load(SeqCst), 1);
        }
        drop(items);
        assert_eq!(DROPS.load(SeqCst), 16);
        Ok(())
    }

    #[test]
    fn dropping_a_queue_with_10000_armed_items_cancels_all() -> Result {
        static DROPS: AtomicU32 = AtomicU32::new(0);
        const N: usize = 10_000;
        let q = owned("10k")?;
        let mut items = KVVec::with_capacity(N, GFP_KERNEL)?;
        let long = Delay::from_millis(60_000)?;
        for _ in 0..N {
            let it = d(Some(&DROPS))?;
            assert!(q.enqueue_delayed(it.clone(), long).is_ok());
            items.push(it, GFP_KERNEL)?;
        }
        let armed = q.armed();
        drop(q);
        // A timer the drop left armed keeps its item pending (and its reference held): no wait
        // is needed to see it. (`dropping_a_queue_cancels_short_timers...` waits past timers.)
        let pending = items.iter().filter(|it| it.w.is_pending()).count();
        let ran = items.iter().filter(|it| it.runs.load(SeqCst) != 0).count();
        // A failed assertion ends the case without dropping anything: take back every timer the
        // drop left armed first, or it would fire into the freed queue (and, after the module is
        // unloaded, into freed module text), crashing a later test instead of failing this one.
        let left = items.iter().filter_map(|it| it.w.cancel()).count();
        drop(items);
        let drops = DROPS.load(SeqCst);
        assert_eq!(armed, N);
        assert_eq!(pending, 0);
        assert_eq!(ran, 0);
        assert_eq!(left, 0);
        // Every reference the queue held was given back: all items are freed.
        assert_eq!(drops, N as u32);
        Ok(())
    }

    #[test]
    fn an_item_pending_on_one_owned_queue_stays_tracked_there() -> Result {
        static DROPS: AtomicU32 = AtomicU32::new(0);
        let q1 = owned("track1")?;
        let q2 = owned("track2")?;
        let x = d(Some(&DROPS))?;
        let long = Delay::from_millis(30_000)?;
        assert!(q1.enqueue_delayed(x.clone(), long).is_ok());
        // Pending on q1: an arm on q2 is refused, and must leave the item registered on q1
        // (q1's drop would miss it otherwise, and its timer fire into the freed queue).
        assert!(q2.enqueue_delayed(x.clone(), long).is_err());
        assert_eq!((q1.armed(), q2.armed()), (1, 0));
        // A re-timing on q2 moves it there, registration included.
        assert_eq!(q2.mod_delayed_cloned(&x, long), Ok(true));
        assert_eq!((q1.armed(), q2.armed()), (0, 1));
        drop(q1);
        let pending_after_q1 = x.w.is_pending();
        drop(q2);
        let pending_after_q2 = x.w.is_pending();
        // Should an assertion fail, take the timer back first (it would fire into a freed queue).
        let left = x.w.cancel().is_some();
        assert!(pending_after_q1);
        assert!(!pending_after_q2 && !left);
        assert_eq!(x.runs.load(SeqCst), 0);
        // q2's drop gave the queue's pointer back: this is the last reference.
        drop(x);
        assert_eq!(DROPS.load(SeqCst), 1);
        Ok(())
    }

    #[test]
    fn an_item_dropped_while_registered_leaves_the_list() -> Result {
        let q = owned("unreg")?;
        let x = d(None)?;
        let y = d(None)?;
        let long = Delay::from_millis(30_000)?;
        for it in [&x, &y] {
            assert!(q.enqueue_delayed(it.clone(), long).is_ok());
            assert!(it.w.cancel().is_some());
        }
        // Idle and still registered (so the next arm on `q` takes no lock), but not armed.
        assert_eq!((q.armed(), q.armed_check()), (0, Some(2)));
        // The item's drop unregisters it: the list never holds freed memory.
        drop(x);
        assert_eq!(q.armed_check(), Some(1));
        // Armed again through its registration: tracked, and the drop cancels it.
        assert!(q.enqueue_delayed(y.clone(), long).is_ok());
        assert_eq!((q.armed(), q.armed_check()), (1, Some(1)));
        drop(q);
        let left = y.w.cancel().is_some();
        assert!(!left);
        Ok(())
    }

    #[test]
    fn an_item_freed_by_its_run_during_the_arms_window() -> Result {
        static DROPS: AtomicU32 = AtomicU32::new(0);
        const N: u32 = 1000;
        let q = owned("window")?;
        let long = Delay::from_millis(30_000)?;
        for _ in 0..N {
            let it = d(Some(&DROPS))?;
            // Registered first, so that the arm below is the window alone (armed.rs, rule 2).
            assert!(q.enqueue_delayed(it.clone(), long).is_ok());
            assert!(it.w.cancel().is_some());
            // The queue gets the only reference: a worker on another CPU may run the item and
            // drop it while this CPU is still in the window; the drop waits for the window
            // (rule 5) instead of freeing memory the window still counts down in.
            assert!(q.enqueue_delayed(it, Delay::ZERO).is_ok());
        }
        q.flush();
        assert!(wait_until(5000, || DROPS.load(SeqCst) == N));
        assert_eq!(q.armed_check(), Some(0));
        Ok(())
    }

    #[test]
    fn items_freed_while_their_queue_is_dropped() -> Result {
        static DROPS: AtomicU32 = AtomicU32::new(0);
        const N: usize = 2000;
        const ROUNDS: u32 = 5;
        let long = Delay::from_millis(30_000)?;
        let c = cpu::online_cpu(0)?;
        for _ in 0..ROUNDS {
            DROPS.store(0, SeqCst);
            let q = owned("freeq")?;
            let mut items = KVVec::with_capacity(N, GFP_KERNEL)?;
            for i in 0..N {
                let it = d(Some(&DROPS))?;
                assert!(q.enqueue_delayed(it.clone(), long).is_ok());
                // Every other item idle again, still registered on `q`: the thread's reference
                // is its last, and its drop unregisters it while the queue's drop walks the list.
                if i % 2 == 0 {
                    assert!(it.w.cancel().is_some());
                }
                items.push(it, GFP_KERNEL)?;
            }
            let (go, done) = (
                Arc::new(AtomicBool::new(false), GFP_KERNEL)?,
                Arc::new(AtomicBool::new(false), GFP_KERNEL)?,
            );
            let (g, dn) = (go.clone(), done.clone());
            let t = KThread::spawn_on(c, c"rust_wq_freeq", move |stop| {
                while !g.load(SeqCst) && !stop.should_stop() {
                    crate::kthread::yield_cpu();
                }
                drop(items);
                dn.store(true, SeqCst);
                while !stop.should_stop() {
                    crate::kthread::yield_cpu();
                }
            })?;
            go.store(true, SeqCst);
            drop(q);
            assert!(wait_until(5000, || done.load(SeqCst)));
            drop(t);
            // Each item freed exactly once: by the thread, or by the queue's drop giving back
            // the last reference of a pending one.
            assert_eq!(DROPS.load(SeqCst), N as u32);
        }
        Ok(())
    }

    /// A small xorshift generator for the churn below.
    fn next(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    #[test]
    fn registry_churn_across_two_owned_queues() -> Result {
        static DROPS: AtomicU32 = AtomicU32::new(0);
        static MADE: AtomicU32 = AtomicU32::new(0);
        const SHARED: usize = 8;
        const OPS: u32 = 12_000;
        let qs = Arc::new([owned("churn1")?, owned("churn2")?], GFP_KERNEL)?;
        let mut shared = KVec::with_capacity(SHARED, GFP_KERNEL)?;
        for _ in 0..SHARED {
            shared.push(d(Some(&DROPS))?, GFP_KERNEL)?;
            MADE.fetch_add(1, SeqCst);
        }
        let shared = Arc::new(shared, GFP_KERNEL)?;
        let mut threads = KVec::new();
        let mut dones = KVec::new();
        for c in 0..3 {
            let Ok(cpu) = cpu::online_cpu(c) else {
                continue;
            };
            let (qs, shared) = (qs.clone(), shared.clone());
            let done = Arc::new(AtomicBool::new(false), GFP_KERNEL)?;
            let dn = done.clone();
            // Each thread moves the shared items between the two queues (arms refused while
            // pending elsewhere, re-timings that move them, cancels), and churns items of its
            // own: armed with no delay or a short one and given to the queue (a worker frees
            // them during or after the window), or cancelled and dropped while registered.
            threads.push(
                KThread::spawn_on(cpu, c"rust_wq_churn", move |stop| {
                    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (u64::from(c) + 1);
                    for _ in 0..OPS {
                        let r = next(&mut x);
                        let q = &qs[(r & 1) as usize];
                        let it = &shared[((r >> 1) % SHARED as u64) as usize];
                        let delay = Delay::from_jiffies(((r >> 8) % 3) as kernel::time::Jiffies);
                        match (r >> 4) % 6 {
                            0 | 1 => drop(q.enqueue_delayed(it.clone(), delay)),
                            2 => drop(q.mod_delayed(it.clone(), delay)),
                            3 => drop(it.w.cancel()),
                            4 => {
                                if let Ok(own) = d(Some(&DROPS)) {
                                    MADE.fetch_add(1, SeqCst);
                                    // The queue may hold the last reference.
                                    drop(q.enqueue_delayed(own, delay));
                                }
                            }
                            _ => {
                                if let Ok(own) = d(Some(&DROPS)) {
                                    MADE.fetch_add(1, SeqCst);
                                    let long = Delay::from_jiffies(1000);
                                    if q.enqueue_delayed(own.clone(), long).is_ok() {
                                        drop(own.w.cancel());
                                    }
                                    // Dropped idle and registered.
                                    drop(own);
                                }
                            }
                        }
                        if stop.should_stop() {
                            break;
                        }
                    }
                    dn.store(true, SeqCst);
                    while !stop.should_stop() {
                        crate::kthread::yield_cpu();
                    }
                })?,
                GFP_KERNEL,
            )?;
            dones.push(done, GFP_KERNEL)?;
        }
        for done in dones.iter() {
            assert!(wait_until(60_000, || done.load(SeqCst)));
        }
        drop(threads);
        for q in qs.iter() {
            assert!(q.armed_check().is_some());
        }
        // Every queue's drop cancels what is still armed on it; then every item is freed once.
        drop(qs);
        drop(shared);
        assert!(wait_until(5000, || DROPS.load(SeqCst) == MADE.load(SeqCst)));
        Ok(())
    }

    /// An item that owns the queue it is armed on.
    #[pin_data]
    struct SelfOwned {
        #[pin]
        w: DelayedWork<SelfOwned>,
        q: Workqueue,
        runs: AtomicU32,
        _d: DropCount,
    }
    impl_has_delayed_work! { impl HasDelayedWork for SelfOwned { self.w } }
    impl DelayedWorkItem for SelfOwned {
        type Pointer = Arc<SelfOwned>;
        fn run(this: Arc<SelfOwned>) {
            this.runs.fetch_add(1, SeqCst);
            // Dropping `this` may drop the last reference, and with it the queue this runs on.
        }
    }

    #[test]
    fn item_owning_its_queue_is_freed_when_the_last_user_lets_go() -> Result {
        static DROPS: AtomicU32 = AtomicU32::new(0);
        let q = owned("self")?;
        let it = Arc::pin_init(
            pin_init!(SelfOwned { w <- new_delayed_work!("SelfOwned::w"), q,
                runs: AtomicU32::new(0), _d: DropCount(&DROPS) }),
            GFP_KERNEL,
        )?;
        assert!(it
            .q
            .enqueue_delayed(it.clone(), Delay::from_millis(20)?)
            .is_ok());
        drop(it);
        // No cycle: once the item has run, its last reference goes, and the queue with it.
        assert!(wait_until(5000, || DROPS.load(SeqCst) == 1));
        Workqueue::wait_reaped();
        // Cancelled instead of run: also freed at once.
        let q = owned("self2")?;
        let it = Arc::pin_init(
            pin_init!(SelfOwned { w <- new_delayed_work!("SelfOwned::w"), q,
                runs: AtomicU32::new(0), _d: DropCount(&DROPS) }),
            GFP_KERNEL,
        )?;
        assert!(it
            .q
            .enqueue_delayed(it.clone(), Delay::from_millis(30_000)?)
            .is_ok());
        let back = it.w.cancel();
        assert!(back.is_some());
        drop(back);
        drop(it);
        assert_eq!(DROPS.load(SeqCst), 2);
        Ok(())
    }

    #[test]
    fn dropping_a_queue_cancels_short_timers_that_would_have_fired() -> Result {
        static DROPS: AtomicU32 = AtomicU32::new(0);
        const DELAY_MS: u32 = 500;
        let a = d(Some(&DROPS))?;
        let b = d(Some(&DROPS))?;
        // The check is meaningful only if the queue is dropped well before the timers are due:
        // on a stalled (emulated, loaded) machine, try again.
        let mut conclusive = false;
        for _ in 0..3 {
            let q = owned("armed")?;
            let t0 = Instant::<Monotonic>::now();
            assert!(q
                .enqueue_delayed(a.clone(), Delay::from_millis(DELAY_MS)?)
                .is_ok());
            assert!(q
                .enqueue_delayed_on(
                    cpu::online_cpu(0)?,
                    b.clone(),
                    Delay::from_millis(DELAY_MS)?
                )
                .is_ok());
            drop(q);
            if t0.elapsed().as_nanos() < i64::from(DELAY_MS) * 1_000_000 / 2 {
                conclusive = true;
                break;
            }
            // Too slow to tell: let them run (if they fire) and start again.
            fsleep(Delta::from_millis(i64::from(DELAY_MS) * 2));
            a.runs.store(0, SeqCst);
            b.runs.store(0, SeqCst);
        }
        assert!(conclusive);
        // Wait past the timers: one left armed would fire and run its item.
        fsleep(Delta::from_millis(i64::from(DELAY_MS) * 2));
        assert_eq!(a.runs.load(SeqCst) + b.runs.load(SeqCst), 0);
        drop(a);
        drop(b);
        assert_eq!(DROPS.load(SeqCst), 2);
        Ok(())
    }

    #[test]
    fn delays_are_never_early() -> Result {
        // Checked on the clock delayed work is defined on (jiffies): the item may not run before
        // `jiffies` has advanced by the whole delay from before the call. (The monotonic clock
        // and jiffies drift apart a little under emulation, so a ktime check would be noise.)
        let q = owned("early")?;
        for ms in [1u32, 5, 20] {
            let it = d(None)?;
            let delay = Delay::from_millis(ms)?;
            let j0 = jiffies();
            assert!(q.enqueue_delayed(it.clone(), delay).is_ok());
            assert!(wait_until(5000, || it.runs.load(SeqCst) == 1));
            assert!(it.ran_jiffies.load(SeqCst) >= j0 + delay.jiffies() as u64);
        }
        Ok(())
    }

    #[test]
    fn mod_delayed_moves_the_timer_and_delayed_on_cpu_runs_there() -> Result {
        let q = owned("mod")?;
        let it = d(None)?;
        assert!(q
            .enqueue_delayed(it.clone(), Delay::from_millis(30_000)?)
            .is_ok());
        assert_eq!(q.mod_delayed_cloned(&it, Delay::from_millis(10)?), Ok(true));
        assert!(wait_until(5000, || it.runs.load(SeqCst) == 1));
        let pq = Workqueue::builder()
            .percpu()
            .build(fmt!("rust_wq_t_pcpu"))?;
        for c in 0..cpu::nr_cpu_ids() {
            let Ok(id) = cpu::online_cpu(c) else { continue };
            let it = d(None)?;
            assert!(pq
                .enqueue_delayed_on(id, it.clone(), Delay::from_millis(2)?)
                .is_ok());
            assert!(wait_until(5000, || it.runs.load(SeqCst) == 1));
            assert_eq!(it.cpu.load(SeqCst), c);
        }
        // On a system queue, and moved between CPUs of an owned queue.
        let it = d(None)?;
        assert_eq!(
            system_dfl().mod_delayed_cloned(&it, Delay::from_millis(30_000)?),
            Ok(false)
        );
        assert_eq!(
            pq.mod_delayed_on(cpu::online_cpu(0)?, it.clone(), Delay::from_millis(1)?)
                .map(|r| r.was_pending())
                .map_err(|e| e.to_errno()),
            Ok(true)
        );
        assert!(wait_until(5000, || it.runs.load(SeqCst) == 1));
        assert_eq!(it.cpu.load(SeqCst), 0);
        assert_eq!(pq.armed(), 0);
        // An offline or invalid CPU is an error, never a warning.
        assert!(cpu::online_cpu(cpu::nr_cpu_ids()).is_err());
        Ok(())
    }
}
