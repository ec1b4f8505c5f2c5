// SPDX-License-Identifier: GPL-2.0

//! Suite `rust_wq_races`: the bugs of the 2026-12 review that need two actors or two APIs
//! (P1, P4-P7, L7, L10; P2 and P3 are compile-fail cases in `tests/compile_fail/`). Each case failed,
//! splatted or hung (caught by a bounded wait) before its fix.
//!
//! A case that could block forever runs the blocking part in a kthread and waits a bounded time.

#[kernel::prelude::kunit_tests(rust_wq_races)]
mod tests {
    use super::super::{
        slow_item,
        wait_until,
        DropCount, //
    };
    use crate::kthread::KThread;
    use crate::workqueue::helpers;
    use crate::workqueue::work::MAX_DISABLE_DEPTH;
    use crate::workqueue::{
        cpu,
        impl_has_delayed_work,
        impl_has_work,
        new_delayed_work,
        new_work,
        system_dfl,
        work_on_cpu,
        Delay,
        DelayedWork,
        DelayedWorkItem,
        Work,
        WorkItem, //
        Workqueue,
    };
    use core::sync::atomic::{
        AtomicBool,
        AtomicU32,
        Ordering::SeqCst, //
    };
    use kernel::{
        bindings,
        error::code::EPERM,
        prelude::*,
        sync::Arc,
        time::{
            delay::fsleep,
            Delta, //
        },
    };

    /// A delayed item counting its runs and drops.
    #[pin_data]
    struct D {
        #[pin]
        w: DelayedWork<D>,
        runs: AtomicU32,
        sleep_ms: u32,
        _drops: DropCount,
    }
    impl_has_delayed_work! { impl HasDelayedWork for D { self.w } }
    impl DelayedWorkItem for D {
        type Pointer = Arc<D>;
        fn run(this: Arc<D>) {
            this.runs.fetch_add(1, SeqCst);
            if this.sleep_ms > 0 {
                fsleep(Delta::from_millis(i64::from(this.sleep_ms)));
            }
        }
    }

    fn d(drops: &'static AtomicU32, sleep_ms: u32) -> Result<Arc<D>> {
        Arc::pin_init(
            pin_init!(D {
                w <- new_delayed_work!("races::D::w"),
                runs: AtomicU32::new(0),
                sleep_ms,
                _drops: DropCount(drops),
            }),
            GFP_KERNEL,
        )
    }

    const HOUR_MS: u32 = 3_600_000;

    /// An online CPU other than ours if there is one (ours otherwise), so that a thread bound
    /// there really races the test thread.
    fn another_online_cpu() -> kernel::cpu::CpuId {
        let me = kernel::cpu::CpuId::current().as_u32();
        let n = cpu::nr_cpu_ids();
        // No panic paths (`%` by a zero, `+` overflowing): objtool reported a fall-through
        // into the next function after the division's panic call.
        (1..n)
            .filter_map(|i| me.wrapping_add(i).checked_rem(n))
            .find_map(|i| cpu::online_cpu(i).ok())
            .unwrap_or(kernel::cpu::CpuId::current())
    }

    /// P1: dropping an owned queue while another context re-arms one of its just-cancelled
    /// items on a second queue. The drop used to chain cancelled items through their own links
    /// and walk the chain after dropping the locks; the re-arm rewrote the chain, so the drop
    /// released an item of the *other* queue and cut that queue's armed list.
    #[test]
    fn drop_while_an_item_is_rearmed_on_another_queue() -> Result {
        static DROPS: AtomicU32 = AtomicU32::new(0);
        const FILL: u32 = 2000;
        const ROUNDS: u32 = 5;
        let c = cpu::online_cpu(0)?;
        for _ in 0..ROUNDS {
            DROPS.store(0, SeqCst);
            let q1 = Arc::new(
                Workqueue::builder()
                    .unbound()
                    .build(fmt!("rust_wq_t_p1a"))?,
                GFP_KERNEL,
            )?;
            let q2 = Arc::new(
                Workqueue::builder()
                    .unbound()
                    .build(fmt!("rust_wq_t_p1b"))?,
                GFP_KERNEL,
            )?;
            let x = d(&DROPS, 0)?;
            let m = d(&DROPS, 0)?;
            let mut fillers = KVec::with_capacity(FILL as usize, GFP_KERNEL)?;
            for _ in 0..FILL {
                fillers.push(d(&DROPS, 0)?, GFP_KERNEL)?;
            }
            let long = Delay::from_millis(HOUR_MS)?;
            // On q1's armed list: the fillers, then `x` at the head, so `x` is cancelled first
            // and the fillers keep the drop busy afterwards. On q2's list: `m`, so a re-arm of
            // `x` there links `x` in front of `m`.
            let started = Arc::new(AtomicBool::new(false), GFP_KERNEL)?;
            let rearmed = Arc::new(AtomicBool::new(false), GFP_KERNEL)?;
            let (q1t, q2t, xt, mt, st, rt) = (
                q1.clone(),
                q2.clone(),
                x.clone(),
                m.clone(),
                started.clone(),
                rearmed.clone(),
            );
            let fl = {
                let mut v = KVec::with_capacity(FILL as usize, GFP_KERNEL)?;
                for f in fillers.iter() {
                    v.push(f.clone(), GFP_KERNEL)?;
                }
                v
            };
            // The arming thread, bound to `c`: arms the fillers and `x` on q1 and `m` on q2,
            // then tries to re-arm `x` on q2 until the drop has cancelled it on q1.
            let t = KThread::spawn_on(c, c"rust_wq_p1", move |stop| {
                for f in fl.into_iter() {
                    let _ = q1t.enqueue_delayed(f, long);
                }
                let _ = q1t.enqueue_delayed(xt.clone(), long);
                // The test thread's reference is the last: its drop destroys q1.
                drop(q1t);
                let _ = q2t.enqueue_delayed(mt, long);
                st.store(true, SeqCst);
                while !stop.should_stop() {
                    match q2t.enqueue_delayed(xt.clone(), long) {
                        Ok(()) => {
                            rt.store(true, SeqCst);
                            break;
                        }
                        Err(e) => drop(e),
                    }
                }
                while !stop.should_stop() {
                    crate::kthread::yield_cpu();
                }
            })?;
            assert!(wait_until(5000, || started.load(SeqCst)));
            drop(q1);
            assert!(wait_until(5000, || rearmed.load(SeqCst)));
            drop(t);
            // q2 holds exactly `m` and `x`, both reachable through its lists, and both pending.
            let reachable = q2.armed_check();
            assert_eq!(reachable, Some(2));
            assert_eq!(q2.armed(), 2);
            assert!(m.w.is_pending());
            assert!(x.w.is_pending());
            // Dropping q2 (the kthread's reference went with it) gives both back; then every
            // item is dropped exactly once.
            drop(q2);
            drop(x);
            drop(m);
            drop(fillers);
            assert_eq!(DROPS.load(SeqCst), FILL + 2);
        }
        Ok(())
    }

    /// Found by the torture run (with the P3 race on, so unconfirmed there): `drain()` re-timed
    /// each armed item to fire now with `mod_delayed_work_on(.., 0)` after checking
    /// `is_pending()`. A timer that fires between the check and the call lets the item start (C
    /// clears PENDING when it does), and the call then queues the item once more, with no
    /// pointer behind it: it runs twice and gives one pointer back twice.
    #[test]
    fn drain_while_timers_fire_runs_each_item_once() -> Result {
        static DROPS: AtomicU32 = AtomicU32::new(0);
        const N: usize = 256;
        const ROUNDS: u32 = 40;
        for _ in 0..ROUNDS {
            DROPS.store(0, SeqCst);
            let mut q = Workqueue::builder()
                .unbound()
                .build(fmt!("rust_wq_t_drain"))?;
            let mut items = KVec::with_capacity(N, GFP_KERNEL)?;
            for _ in 0..N {
                items.push(d(&DROPS, 0)?, GFP_KERNEL)?;
            }
            // Timers that expire over the next few jiffies, so that some fire during the drain.
            for (i, it) in items.iter().enumerate() {
                let _ = q.enqueue_delayed(
                    it.clone(),
                    Delay::from_jiffies((i % 4 + 1) as kernel::time::Jiffies),
                );
            }
            q.drain();
            let wrong = items.iter().filter(|it| it.runs.load(SeqCst) != 1).count();
            drop(q);
            drop(items);
            assert_eq!(wrong, 0);
            assert_eq!(DROPS.load(SeqCst), N as u32);
        }
        Ok(())
    }

    /// P4: a work item on a `WQ_MEM_RECLAIM` queue cancels a delayed sibling that is running
    /// (a) on a queue without `WQ_MEM_RECLAIM`, (b) on the same rescuer queue. Waiting with
    /// `flush_work()` gave C's "WQ_MEM_RECLAIM .. is flushing !WQ_MEM_RECLAIM" WARN, and
    /// lockdep's "possible recursive locking detected" on the queue's map; C's
    /// `cancel_delayed_work_sync()` in the same place is silent. The log scan is the check.
    #[test]
    fn delayed_cancel_sync_from_a_reclaim_queue_is_silent() -> Result {
        static DROPS: AtomicU32 = AtomicU32::new(0);

        #[pin_data]
        struct X {
            #[pin]
            work: Work<X>,
            target: Arc<D>,
            sync_disable: bool,
            done: AtomicBool,
        }
        impl_has_work! { impl HasWork<Self> for X { self.work } }
        impl WorkItem for X {
            type Pointer = Arc<X>;
            fn run(this: Arc<X>) {
                // Wait (bounded) until the sibling runs, then cancel it from here.
                let _ = wait_until(2000, || this.target.runs.load(SeqCst) > 0);
                if this.sync_disable {
                    drop(this.target.w.disable_sync());
                    this.target.w.enable();
                } else {
                    drop(this.target.w.cancel_sync());
                }
                this.done.store(true, SeqCst);
            }
        }
        let x = |target: Arc<D>, sync_disable| {
            Arc::pin_init(
                pin_init!(X {
                    work <- new_work!("races::X::work"),
                    target,
                    sync_disable,
                    done: AtomicBool::new(false),
                }),
                GFP_KERNEL,
            )
        };
        let r = Workqueue::builder()
            .unbound()
            .mem_reclaim()
            .max_active(4)?
            .build(fmt!("rust_wq_t_p4"))?;
        // (a) The sibling runs on system_dfl_wq (no WQ_MEM_RECLAIM).
        for sync_disable in [false, true] {
            let dd = d(&DROPS, 200)?;
            assert!(system_dfl()
                .enqueue_delayed(dd.clone(), Delay::ZERO)
                .is_ok());
            let xa = x(dd.clone(), sync_disable)?;
            assert!(r.enqueue(xa.clone()).is_ok());
            assert!(wait_until(5000, || xa.done.load(SeqCst)));
            assert!(!dd.w.is_running());
        }
        // (b) Both on the rescuer queue.
        for sync_disable in [false, true] {
            let dd = d(&DROPS, 200)?;
            assert!(r.enqueue_delayed(dd.clone(), Delay::ZERO).is_ok());
            let xb = x(dd.clone(), sync_disable)?;
            assert!(r.enqueue(xb.clone()).is_ok());
            assert!(wait_until(5000, || xb.done.load(SeqCst)));
            assert!(!dd.w.is_running());
        }
        r.flush();
        Ok(())
    }

    /// L10: C's `create_workqueue()` and `create_singlethread_workqueue()` add `__WQ_LEGACY`
    /// (`include/linux/workqueue.h:603-608`), which exempts their items from the
    /// flush-dependency check (`kernel/workqueue.c:3921`): the old drivers that use them flush
    /// anything from their items. Without it, an item of `create()`'s queue that flushes an item
    /// running on `system_dfl_wq` gets C's "WQ_MEM_RECLAIM .. is flushing !WQ_MEM_RECLAIM" WARN
    /// where the same C code is silent. The log scan is the check.
    #[test]
    fn legacy_queues_flush_like_c() -> Result {
        static DROPS: AtomicU32 = AtomicU32::new(0);

        #[pin_data]
        struct F {
            #[pin]
            work: Work<F>,
            target: Arc<D>,
            done: AtomicBool,
        }
        impl_has_work! { impl HasWork<Self> for F { self.work } }
        impl WorkItem for F {
            type Pointer = Arc<F>;
            fn run(this: Arc<F>) {
                // Wait (bounded) until the sibling runs, then flush it from here.
                let _ = wait_until(2000, || this.target.runs.load(SeqCst) > 0);
                this.target.w.flush();
                this.done.store(true, SeqCst);
            }
        }
        for single in [false, true] {
            let q = if single {
                Workqueue::create_singlethread(fmt!("rust_wq_t_l10s"))?
            } else {
                Workqueue::create(fmt!("rust_wq_t_l10"))?
            };
            let dd = d(&DROPS, 200)?;
            assert!(system_dfl()
                .enqueue_delayed(dd.clone(), Delay::ZERO)
                .is_ok());
            let target = dd.clone();
            let f = Arc::pin_init(
                pin_init!(F {
                    work <- new_work!("races::F::work"),
                    target,
                    done: AtomicBool::new(false),
                }),
                GFP_KERNEL,
            )?;
            assert!(q.enqueue(f.clone()).is_ok());
            assert!(wait_until(5000, || f.done.load(SeqCst)));
            assert!(!dd.w.is_running());
            assert!(q.flags() & bindings::wq_flags___WQ_LEGACY != 0);
        }
        Ok(())
    }

    /// An item that re-queues itself once from `run` (on `system_dfl_wq`) after sleeping.
    #[pin_data]
    struct Again {
        #[pin]
        work: Work<Again>,
        runs: AtomicU32,
        requeued: AtomicU32,
    }
    impl_has_work! { impl HasWork<Self> for Again { self.work } }
    impl WorkItem for Again {
        type Pointer = Arc<Again>;
        fn run(this: Arc<Again>) {
            this.runs.fetch_add(1, SeqCst);
            fsleep(Delta::from_millis(100));
            if this.requeued.fetch_add(1, SeqCst) == 0 {
                let _ = system_dfl().enqueue(this);
            }
        }
    }

    /// P5: a plain `enable()` racing a `cancel_sync()` undid C's internal disable: "work disable
    /// count underflowed" when `cancel_sync` enabled afterwards, and the running instance could
    /// re-queue itself before `cancel_sync` returned. Also: disables have a cap below C's
    /// (C warns "overflowed" past 65535).
    #[test]
    fn enable_racing_cancel_sync_keeps_the_contract() -> Result {
        let a = Arc::pin_init(
            pin_init!(Again {
                work <- new_work!("races::Again::work"),
                runs: AtomicU32::new(0),
                requeued: AtomicU32::new(0),
            }),
            GFP_KERNEL,
        )?;
        assert!(system_dfl().enqueue(a.clone()).is_ok());
        assert!(wait_until(2000, || a.runs.load(SeqCst) > 0));
        // Another thread calls `enable()` over and over while we cancel.
        let b = a.clone();
        let c = another_online_cpu();
        let t = KThread::spawn_on(c, c"rust_wq_p5", move |stop| {
            while !stop.should_stop() {
                let _ = b.work.enable();
                crate::kthread::schedule_point();
            }
        })?;
        drop(a.work.cancel_sync());
        // C's contract: neither pending nor running on return (nobody else queued it).
        let pending = a.work.is_pending();
        let running = a.work.is_running();
        drop(t);
        assert!(!pending);
        assert!(!running);
        // cancel_sync's own disable is not the caller's: the racing enables left none behind.
        assert_eq!(a.work.disable_depth(), 0);
        // Clean up a re-queued instance, if the bug let one through.
        drop(a.work.cancel_sync());
        // The cap: far more disables than C counts. C warns past 65535; the layer stops
        // counting at its cap (below C's), so as many enables as that make it queueable again.
        for _ in 0..70_000u32 {
            drop(a.work.disable());
        }
        assert_eq!(a.work.disable_depth(), MAX_DISABLE_DEPTH);
        let mut enables = 1u32;
        while !a.work.enable() && enables < 70_000 {
            enables += 1;
        }
        assert_eq!(enables, MAX_DISABLE_DEPTH);
        assert_eq!(a.work.disable_depth(), 0);
        assert!(system_dfl().enqueue(a.clone()).is_ok());
        a.work.flush();
        drop(a.work.cancel_sync());
        Ok(())
    }

    /// An item that re-queues itself once from `run`, through its delayed field.
    #[pin_data]
    struct AgainDelayed {
        #[pin]
        w: DelayedWork<AgainDelayed>,
        runs: AtomicU32,
        requeued: AtomicU32,
    }
    impl_has_delayed_work! { impl HasDelayedWork for AgainDelayed { self.w } }
    impl DelayedWorkItem for AgainDelayed {
        type Pointer = Arc<AgainDelayed>;
        fn run(this: Arc<AgainDelayed>) {
            this.runs.fetch_add(1, SeqCst);
            fsleep(Delta::from_millis(100));
            if this.requeued.fetch_add(1, SeqCst) == 0 {
                let _ = system_dfl().enqueue_delayed(this, Delay::ZERO);
            }
        }
    }

    /// L7: P5 for `DelayedWork`. Its `cancel_sync()` disables the item while it waits, and
    /// counted that disable with the caller's, so a plain `enable()` from another thread undid
    /// it: the running instance re-queued itself and was pending (or running) when
    /// `cancel_sync()` returned, with no WARN.
    #[test]
    fn delayed_enable_racing_cancel_sync_keeps_the_contract() -> Result {
        let a = Arc::pin_init(
            pin_init!(AgainDelayed {
                w <- new_delayed_work!("races::AgainDelayed::w"),
                runs: AtomicU32::new(0),
                requeued: AtomicU32::new(0),
            }),
            GFP_KERNEL,
        )?;
        assert!(system_dfl().enqueue_delayed(a.clone(), Delay::ZERO).is_ok());
        assert!(wait_until(2000, || a.runs.load(SeqCst) > 0));
        let b = a.clone();
        let c = another_online_cpu();
        let t = KThread::spawn_on(c, c"rust_wq_l7", move |stop| {
            while !stop.should_stop() {
                let _ = b.w.enable();
                crate::kthread::schedule_point();
            }
        })?;
        drop(a.w.cancel_sync());
        // C's contract: neither pending nor running on return (nobody else queued it).
        let pending = a.w.is_pending();
        let running = a.w.is_running();
        drop(t);
        // Clean up a re-queued instance, if the bug let one through.
        drop(a.w.cancel_sync());
        assert!(!pending);
        assert!(!running);
        assert_eq!(a.w.disable_depth(), 0);
        Ok(())
    }

    /// The disable gate of `depth.rs`: `mod_delayed` of an idle item hands C a pointer that C
    /// keeps only if the item is not disabled, and C does not say which happened. While a
    /// `cancel_sync()` waits, C holds a disable that no caller counted (the callers' depth is 0):
    /// a `mod_delayed` in that wait must be refused (`EPERM`); if it reaches C, C leaves the item
    /// idle, the layer takes `false` ("was idle, now queued") for "C took the pointer", and the
    /// pointer made for C leaks (the item is never freed).
    #[test]
    fn mod_delayed_racing_cancel_sync_gives_every_pointer_back() -> Result {
        static DROPS: AtomicU32 = AtomicU32::new(0);
        // A round waits about 100 ms (the run's sleep); rounds go on until the other thread has
        // been refused during a wait at least once, so that the check below means something.
        const MAX_ROUNDS: u32 = 50;
        let it = d(&DROPS, 100)?;
        let long = Delay::from_millis(HOUR_MS)?;
        let refused = Arc::new(AtomicU32::new(0), GFP_KERNEL)?;
        // Set while the item runs: the thread re-times it only then, so that it never pushes
        // back the run that the test thread starts.
        let go = Arc::new(AtomicBool::new(false), GFP_KERNEL)?;
        let (b, r, g) = (it.clone(), refused.clone(), go.clone());
        let c = another_online_cpu();
        // Re-times the item to an hour over and over: queues it when idle (a new pointer each
        // time), only moves the timer when pending, refused while a disable is held or changing.
        let t = KThread::spawn_on(c, c"rust_wq_gate", move |stop| {
            while !stop.should_stop() {
                if g.load(SeqCst) && system_dfl().mod_delayed_cloned(&b, long) == Err(EPERM) {
                    r.fetch_add(1, SeqCst);
                }
                crate::kthread::schedule_point();
            }
        })?;
        let mut rounds = 0;
        while rounds < MAX_ROUNDS && refused.load(SeqCst) == 0 {
            rounds += 1;
            // Fire it now and wait until it runs (it sleeps 100 ms), then cancel and wait: the
            // other thread's re-timings land in that wait.
            let before = it.runs.load(SeqCst);
            let _ = system_dfl().mod_delayed_cloned(&it, Delay::ZERO);
            let started = wait_until(2000, || it.runs.load(SeqCst) > before);
            go.store(true, SeqCst);
            drop(it.w.cancel_sync());
            go.store(false, SeqCst);
            if !started {
                break;
            }
        }
        drop(t);
        // Take back what the thread left queued (an hour's timer); nothing runs any more.
        drop(it.w.cancel_sync());
        let runs = it.runs.load(SeqCst);
        drop(it);
        // Every pointer made for C came back: the last reference (ours) freed the item.
        assert_eq!(DROPS.load(SeqCst), 1);
        assert!(runs >= 1);
        // Conclusive: the thread did re-time during a wait (and was refused).
        assert!(refused.load(SeqCst) > 0);
        Ok(())
    }

    /// P6: `enqueue_on` a CPU that is offline. C accepts a CPU that went offline (the item runs
    /// elsewhere), but an item queued on a possible CPU that was never online never runs, and
    /// a flush of it hangs ("BUG: workqueue lockup"). The layer now refuses every offline CPU
    /// (`Offline`, the pointer back), as its delayed `_on` calls do. Both kinds are tried: every
    /// possible CPU that is offline now (never online, in `make check`'s second boot, which has
    /// `maxcpus=` below its vCPUs), and the last online CPU, taken down for the case.
    #[test]
    fn enqueue_on_an_offline_cpu_is_refused() -> Result {
        let n = cpu::nr_cpu_ids();
        // SAFETY: `__cpu_possible_mask` is a C global that lives for the whole uptime and is
        // only changed during early boot.
        let possible = unsafe {
            kernel::cpumask::Cpumask::from_raw(core::ptr::addr_of!(bindings::__cpu_possible_mask))
        };
        let mut targets = KVec::new();
        for c in 1..n {
            if possible.test(cpu::cpu_id(c)?) && !cpu::is_online(cpu::cpu_id(c)?) {
                targets.push(c, GFP_KERNEL)?;
            }
        }
        let Some(last) = (1..n)
            .rev()
            .find(|&c| cpu::cpu_id(c).is_ok_and(cpu::is_online))
        else {
            return Err(ENODEV);
        };
        targets.push(last, GFP_KERNEL)?;
        // SAFETY: `remove_cpu` may sleep, which a KUnit case may; `last` is a valid CPU.
        if unsafe { helpers::rust_wq_remove_cpu(last) } != 0 {
            return Err(ENODEV);
        }
        // Until the CPU is back, no early return.
        fn refused_on(targets: &[u32]) -> Result<usize> {
            let mut refused = 0;
            for &c in targets {
                let item = slow_item(0)?;
                let r = crate::workqueue::system_percpu().enqueue_on(cpu::cpu_id(c)?, item.clone());
                // Refused as offline, and the pointer handed back in the error.
                if matches!(r, Err(crate::workqueue::arm::ArmError::Offline(_))) {
                    refused += 1;
                } else {
                    // Never leave an item behind that cannot run.
                    drop(item.work.cancel());
                }
            }
            Ok(refused)
        }
        let tried = refused_on(&targets);
        // SAFETY: As above; brings back the CPU this case took down.
        unsafe { helpers::rust_wq_add_cpu(last) };
        assert_eq!(tried?, targets.len());
        Ok(())
    }

    /// P7: `work_on_cpu!` inside `work_on_cpu!`, and a closure that takes the CPU-hotplug read
    /// lock. Holding `cpus_read_lock()` across the wait made both a lockdep cycle (and a real
    /// deadlock against a waiting hotplug writer). The log scan is the check for lockdep.
    #[test]
    fn work_on_cpu_nests_and_may_take_the_hotplug_lock() -> Result {
        let last = cpu::nr_cpu_ids() - 1;
        let other = if cpu::online_cpu(last).is_ok() {
            last
        } else {
            0
        };
        let v = work_on_cpu!(0, || work_on_cpu!(other, || 42u32))?;
        assert_eq!(v.ok(), Some(42));
        let w = work_on_cpu!(other, || {
            // SAFETY: Sleeping is allowed in the worker; released right below.
            unsafe { helpers::rust_wq_cpus_read_lock() };
            // SAFETY: Taken above by this thread.
            unsafe { helpers::rust_wq_cpus_read_unlock() };
            7u32
        })?;
        assert_eq!(w, 7);
        Ok(())
    }
}
