// SPDX-License-Identifier: GPL-2.0

//! Suite `rust_wq_pointers`: cancel, cancel_sync, disable, disable_sync and enable give the
//! queue's pointer back for `Arc`, `Pin<KBox<_>>` and `ARef`, for plain and delayed items; a
//! disabled item is refused by enqueue and `mod_delayed` with its pointer handed back.

#[kernel::prelude::kunit_tests(rust_wq_pointers)]
mod tests {
    use super::super::{
        wait_until,
        DropCount, //
    };
    use crate::kthread::KThread;
    use crate::workqueue::system_dfl;
    use crate::workqueue::{
        cpu,
        impl_has_delayed_work,
        impl_has_work,
        new_delayed_work,
        new_work,
        Delay,
        DelayedWork,
        DelayedWorkItem,
        EnqueueError,
        Retimed,
        Work,
        WorkItem, //
        Workqueue,
    };
    use core::{
        ptr::NonNull,
        sync::atomic::{
            AtomicBool,
            AtomicU32,
            Ordering::SeqCst, //
        },
    };
    use kernel::{
        error::code::EPERM,
        prelude::*,
        sync::{
            aref::{
                ARef,
                AlwaysRefCounted, //
            },
            Arc, Refcount,
        },
        time::{
            delay::fsleep,
            Delta, //
        },
    };

    /// Blocks an ordered queue until opened, so that items behind it stay pending.
    #[pin_data]
    struct Gate {
        #[pin]
        work: Work<Gate>,
        entered: AtomicBool,
        open: AtomicBool,
    }
    impl_has_work! { impl HasWork<Self> for Gate { self.work } }
    impl WorkItem for Gate {
        type Pointer = Arc<Gate>;
        fn run(this: Arc<Gate>) {
            this.entered.store(true, SeqCst);
            while !this.open.load(SeqCst) {
                fsleep(Delta::from_millis(1));
            }
        }
    }

    /// An ordered queue blocked by a gate.
    fn blocked_queue() -> Result<(Workqueue, Arc<Gate>)> {
        let q = Workqueue::builder()
            .ordered()
            .build(fmt!("rust_wq_t_ptr"))?;
        let gate = Arc::pin_init(
            pin_init!(Gate { work <- new_work!("Gate::work"), entered: AtomicBool::new(false),
                open: AtomicBool::new(false) }),
            GFP_KERNEL,
        )?;
        q.enqueue(gate.clone()).map_err(|_| EINVAL)?;
        if !wait_until(5000, || gate.entered.load(SeqCst)) {
            return Err(ETIMEDOUT);
        }
        Ok((q, gate))
    }

    /// Defines a test item type with a `$field` of type `$fty`, run through `$ptr`.
    macro_rules! item {
        ($name:ident, $fty:ident, $ptr:ty, $runs:ident, $drops:ident) => {
            static $runs: AtomicU32 = AtomicU32::new(0);
            static $drops: AtomicU32 = AtomicU32::new(0);
            #[pin_data]
            struct $name {
                #[pin]
                w: $fty<$name>,
                refs: Refcount,
                _d: DropCount,
            }
            // SAFETY: `refs` counts the references; the last one frees the `KBox` that every
            // `ARef` of this type is made from (`aref_of`).
            unsafe impl AlwaysRefCounted for $name {
                fn inc_ref(&self) {
                    self.refs.inc();
                }
                unsafe fn dec_ref(obj: NonNull<Self>) {
                    // SAFETY: The caller owns one reference, so `obj` is alive.
                    if unsafe { obj.as_ref() }.refs.dec_and_test() {
                        // SAFETY: The last reference: the `KBox` leaked by `aref_of` is ours.
                        drop(unsafe { KBox::from_raw(obj.as_ptr()) });
                    }
                }
            }
        };
    }

    macro_rules! plain_item {
        ($name:ident, $ptr:ty, $runs:ident, $drops:ident) => {
            item!($name, Work, $ptr, $runs, $drops);
            impl_has_work! { impl HasWork<Self> for $name { self.w } }
            impl WorkItem for $name {
                type Pointer = $ptr;
                fn run(_this: $ptr) {
                    $runs.fetch_add(1, SeqCst);
                }
            }
        };
    }

    macro_rules! delayed_item {
        ($name:ident, $ptr:ty, $runs:ident, $drops:ident) => {
            item!($name, DelayedWork, $ptr, $runs, $drops);
            impl_has_delayed_work! { impl HasDelayedWork for $name { self.w } }
            impl DelayedWorkItem for $name {
                type Pointer = $ptr;
                fn run(_this: $ptr) {
                    $runs.fetch_add(1, SeqCst);
                }
            }
        };
    }

    plain_item!(PArc, Arc<PArc>, PARC_RUNS, PARC_DROPS);
    plain_item!(PBox, Pin<KBox<PBox>>, PBOX_RUNS, PBOX_DROPS);
    plain_item!(PRef, ARef<PRef>, PREF_RUNS, PREF_DROPS);
    delayed_item!(DArc, Arc<DArc>, DARC_RUNS, DARC_DROPS);
    delayed_item!(DBox, Pin<KBox<DBox>>, DBOX_RUNS, DBOX_DROPS);
    delayed_item!(DRef, ARef<DRef>, DREF_RUNS, DREF_DROPS);
    delayed_item!(DGate, ARef<DGate>, DGATE_RUNS, DGATE_DROPS);

    macro_rules! init {
        ($name:ident, $drops:ident, plain) => {
            pin_init!($name { w <- new_work!("t::w"), refs: Refcount::new(1), _d: DropCount(&$drops) })
        };
        ($name:ident, $drops:ident, delayed) => {
            pin_init!($name { w <- new_delayed_work!("t::dw"), refs: Refcount::new(1),
                _d: DropCount(&$drops) })
        };
    }

    /// Makes an `ARef` from a fresh boxed item (its refcount starts at one).
    fn aref_of<T: AlwaysRefCounted>(b: Pin<KBox<T>>) -> ARef<T> {
        // SAFETY: The item is never moved out of the box; `dec_ref` frees it as a `KBox`.
        let raw = KBox::into_raw(unsafe { Pin::into_inner_unchecked(b) });
        // SAFETY: `raw` is non-null and carries the one reference counted in `refs`.
        unsafe { ARef::from_raw(NonNull::new_unchecked(raw)) }
    }

    const LONG: u32 = 30_000;

    #[test]
    fn plain_arc_ops_give_the_pointer_back() -> Result {
        let (q, gate) = blocked_queue()?;
        let a = Arc::pin_init(init!(PArc, PARC_DROPS, plain), GFP_KERNEL)?;
        assert!(q.enqueue(a.clone()).is_ok());
        assert!(a.w.is_pending());
        assert!(a.w.cancel().is_some());
        assert!(!a.w.is_pending());
        assert!(a.w.cancel().is_none());
        assert!(q.enqueue(a.clone()).is_ok());
        assert!(a.w.cancel_sync().is_some());
        assert!(q.enqueue(a.clone()).is_ok());
        assert!(a.w.disable().is_some());
        assert!(matches!(
            q.enqueue(a.clone()),
            Err(EnqueueError::Disabled(_))
        ));
        assert!(a.w.enable());
        assert!(q.enqueue(a.clone()).is_ok());
        assert!(a.w.disable_sync().is_some());
        assert!(matches!(
            q.enqueue(a.clone()),
            Err(EnqueueError::Disabled(_))
        ));
        assert!(a.w.enable());
        assert!(q.enqueue(a.clone()).is_ok());
        assert!(matches!(
            q.enqueue(a.clone()),
            Err(EnqueueError::Pending(_))
        ));
        gate.open.store(true, SeqCst);
        q.flush();
        assert_eq!(PARC_RUNS.load(SeqCst), 1);
        drop(a);
        assert_eq!(PARC_DROPS.load(SeqCst), 1);
        Ok(())
    }

    #[test]
    fn plain_kbox_ops_give_the_pointer_back() -> Result {
        let (q, gate) = blocked_queue()?;
        let b = KBox::pin_init(init!(PBox, PBOX_DROPS, plain), GFP_KERNEL)?;
        let raw: *const PBox = &*b;
        assert!(q.enqueue(b).is_ok());
        // SAFETY: The box is pending behind the gate, so the queue keeps it alive; the
        // reference ends before the returned box is used.
        let b = unsafe { &*raw }.w.cancel();
        let Some(b) = b else { return Err(EINVAL) };
        assert!(!b.w.is_pending());
        assert!(q.enqueue(b).is_ok());
        // SAFETY: As above.
        let Some(b) = unsafe { &*raw }.w.disable() else {
            return Err(EINVAL);
        };
        let b = match q.enqueue(b) {
            Err(EnqueueError::Disabled(b)) => b,
            _ => return Err(EINVAL),
        };
        assert!(b.w.enable());
        assert!(q.enqueue(b).is_ok());
        // SAFETY: As above.
        let Some(b) = unsafe { &*raw }.w.cancel_sync() else {
            return Err(EINVAL);
        };
        assert!(q.enqueue(b).is_ok());
        // SAFETY: As above.
        let Some(b) = unsafe { &*raw }.w.disable_sync() else {
            return Err(EINVAL);
        };
        assert!(b.w.enable());
        assert!(q.enqueue(b).is_ok());
        gate.open.store(true, SeqCst);
        q.flush();
        assert_eq!(PBOX_RUNS.load(SeqCst), 1);
        // The run consumed the box.
        assert_eq!(PBOX_DROPS.load(SeqCst), 1);
        Ok(())
    }

    #[test]
    fn plain_aref_ops_give_the_pointer_back() -> Result {
        let (q, gate) = blocked_queue()?;
        let r = aref_of(KBox::pin_init(init!(PRef, PREF_DROPS, plain), GFP_KERNEL)?);
        assert!(q.enqueue(r.clone()).is_ok());
        assert!(r.w.cancel().is_some());
        assert!(q.enqueue(r.clone()).is_ok());
        assert!(r.w.cancel_sync().is_some());
        assert!(q.enqueue(r.clone()).is_ok());
        assert!(r.w.disable().is_some());
        assert!(matches!(
            q.enqueue(r.clone()),
            Err(EnqueueError::Disabled(_))
        ));
        assert!(r.w.enable());
        assert!(q.enqueue(r.clone()).is_ok());
        assert!(r.w.disable_sync().is_some());
        assert!(r.w.enable());
        assert!(q.enqueue(r.clone()).is_ok());
        gate.open.store(true, SeqCst);
        q.flush();
        assert_eq!(PREF_RUNS.load(SeqCst), 1);
        drop(r);
        assert_eq!(PREF_DROPS.load(SeqCst), 1);
        Ok(())
    }

    #[test]
    fn delayed_arc_ops_give_the_pointer_back() -> Result {
        let q = Workqueue::builder()
            .unbound()
            .build(fmt!("rust_wq_t_dptr"))?;
        let long = Delay::from_millis(LONG)?;
        let a = Arc::pin_init(init!(DArc, DARC_DROPS, delayed), GFP_KERNEL)?;
        assert!(q.enqueue_delayed(a.clone(), long).is_ok());
        assert!(a.w.is_pending());
        assert_eq!(q.armed(), 1);
        assert!(a.w.cancel().is_some());
        assert_eq!(q.armed(), 0);
        assert!(a.w.cancel().is_none());
        assert!(q.enqueue_delayed(a.clone(), long).is_ok());
        assert!(a.w.cancel_sync().is_some());
        assert!(q.enqueue_delayed(a.clone(), long).is_ok());
        assert!(a.w.disable().is_some());
        assert_eq!(a.w.disable_depth(), 1);
        assert!(matches!(
            q.enqueue_delayed(a.clone(), long),
            Err(EnqueueError::Disabled(_))
        ));
        assert_eq!(q.mod_delayed_cloned(&a, long), Err(EPERM));
        assert!(!a.w.is_pending());
        assert!(a.w.enable());
        assert!(q.enqueue_delayed(a.clone(), long).is_ok());
        assert!(a.w.disable_sync().is_some());
        assert!(a.w.enable());
        assert!(q.enqueue_delayed(a.clone(), long).is_ok());
        assert!(matches!(
            q.enqueue_delayed(a.clone(), long),
            Err(EnqueueError::Pending(_))
        ));
        // Pending: `mod_delayed` hands the same pointer back (the queue keeps its own).
        match q.mod_delayed(a.clone(), long) {
            Ok(Retimed::Pending(p)) => assert!(Arc::ptr_eq(&p, &a)),
            _ => return Err(EINVAL),
        }
        // Fire it now.
        assert_eq!(q.mod_delayed_cloned(&a, Delay::ZERO), Ok(true));
        a.w.flush();
        assert_eq!(DARC_RUNS.load(SeqCst), 1);
        assert_eq!(q.armed(), 0);
        drop(a);
        assert_eq!(DARC_DROPS.load(SeqCst), 1);
        Ok(())
    }

    #[test]
    fn delayed_kbox_ops_give_the_pointer_back() -> Result {
        let q = Workqueue::builder()
            .unbound()
            .build(fmt!("rust_wq_t_dptr"))?;
        let long = Delay::from_millis(LONG)?;
        let b = KBox::pin_init(init!(DBox, DBOX_DROPS, delayed), GFP_KERNEL)?;
        let raw: *const DBox = &*b;
        assert!(q.enqueue_delayed(b, long).is_ok());
        // SAFETY: The box is pending (a 30 s timer), so the queue keeps it alive; the reference
        // ends before the returned box is used.
        let Some(b) = unsafe { &*raw }.w.cancel() else {
            return Err(EINVAL);
        };
        assert!(q.enqueue_delayed(b, long).is_ok());
        // SAFETY: As above.
        let Some(b) = unsafe { &*raw }.w.disable() else {
            return Err(EINVAL);
        };
        let b = match q.enqueue_delayed(b, long) {
            Err(EnqueueError::Disabled(b)) => b,
            _ => return Err(EINVAL),
        };
        // `mod_delayed` of a disabled item hands the box back.
        let b = match q.mod_delayed(b, long) {
            Err(EnqueueError::Disabled(b)) => b,
            _ => return Err(EINVAL),
        };
        assert!(b.w.enable());
        assert!(q.enqueue_delayed(b, long).is_ok());
        // SAFETY: As above.
        let Some(b) = unsafe { &*raw }.w.cancel_sync() else {
            return Err(EINVAL);
        };
        assert!(q.enqueue_delayed(b, long).is_ok());
        // SAFETY: As above.
        let Some(b) = unsafe { &*raw }.w.disable_sync() else {
            return Err(EINVAL);
        };
        assert!(b.w.enable());
        // Idle: `mod_delayed` queues it with the box.
        assert!(matches!(q.mod_delayed(b, Delay::ZERO), Ok(Retimed::Queued)));
        q.flush();
        assert_eq!(DBOX_RUNS.load(SeqCst), 1);
        assert_eq!(DBOX_DROPS.load(SeqCst), 1);
        assert_eq!(q.armed(), 0);
        Ok(())
    }

    #[test]
    fn delayed_aref_ops_give_the_pointer_back() -> Result {
        let q = Workqueue::builder()
            .unbound()
            .build(fmt!("rust_wq_t_dptr"))?;
        let long = Delay::from_millis(LONG)?;
        let r = aref_of(KBox::pin_init(
            init!(DRef, DREF_DROPS, delayed),
            GFP_KERNEL,
        )?);
        assert!(q.enqueue_delayed(r.clone(), long).is_ok());
        assert!(r.w.cancel().is_some());
        assert!(q.enqueue_delayed(r.clone(), long).is_ok());
        assert!(r.w.cancel_sync().is_some());
        assert!(q.enqueue_delayed(r.clone(), long).is_ok());
        assert!(r.w.disable().is_some());
        assert_eq!(q.mod_delayed_cloned(&r, long), Err(EPERM));
        assert!(matches!(
            q.enqueue_delayed(r.clone(), long),
            Err(EnqueueError::Disabled(_))
        ));
        assert!(r.w.enable());
        assert!(q.enqueue_delayed(r.clone(), long).is_ok());
        assert!(r.w.disable_sync().is_some());
        assert!(r.w.enable());
        // Idle: `mod_delayed` queues it (with a reference of its own).
        assert_eq!(q.mod_delayed_cloned(&r, Delay::ZERO), Ok(false));
        r.w.flush();
        assert_eq!(DREF_RUNS.load(SeqCst), 1);
        drop(r);
        drop(q);
        assert_eq!(DREF_DROPS.load(SeqCst), 1);
        Ok(())
    }

    /// The gate's units (`depth.rs`): a disable that counted keeps its writer's unit until the
    /// enable that undoes it releases both, so that `mod_delayed`, one atomic add, sees a held
    /// disable. Here `mod_delayed` hands its own reference on a system and an owned queue while
    /// another CPU disables and enables the item: it must be refused exactly while a disable is
    /// held or changing (were it to reach C then, C would leave the disabled item idle and the
    /// reference handed in would leak as if queued), and queue or re-time it otherwise. At the
    /// end no disable is held, an idle item is queued (the gate is open again), and the item is
    /// freed exactly once: every reference came back.
    #[test]
    fn mod_delayed_racing_disable_and_enable_gives_every_pointer_back() -> Result {
        // Calls: at least the first, and until both outcomes were seen (conclusive), at most
        // the second.
        // The window it guards is a few dozen instructions of the enable (from releasing the
        // gate to C's grab of the item): 50,000 calls missed a mutant that opens it in about
        // one boot in four under TCG.
        const MIN_CALLS: u32 = 200_000;
        const MAX_CALLS: u32 = 800_000;
        let q = Workqueue::builder()
            .unbound()
            .build(fmt!("rust_wq_t_dgate"))?;
        let r = aref_of(KBox::pin_init(
            init!(DGate, DGATE_DROPS, delayed),
            GFP_KERNEL,
        )?);
        // Two CPUs when there are: the disables race the calls, not take turns with them.
        let (c0, c1) = (
            cpu::online_cpu(0)?,
            cpu::online_cpu(1).or_else(|_| cpu::online_cpu(0))?,
        );
        let b = r.clone();
        let disabler = KThread::spawn_on(c1, c"rust_wq_dgate", move |stop| {
            while !stop.should_stop() {
                // The queue's reference if it was pending: dropped here.
                drop(b.w.disable());
                b.w.enable();
                crate::kthread::schedule_point();
            }
        })?;
        // [calls, queued, pending, refused, other errors], counted by the calling thread.
        let counts = Arc::new([const { AtomicU32::new(0) }; 5], GFP_KERNEL)?;
        let (m, n, qq) = (r.clone(), counts.clone(), Arc::new(q, GFP_KERNEL)?);
        let q2 = qq.clone();
        let caller = KThread::spawn_on(c0, c"rust_wq_dgate_mod", move |stop| {
            let mut i = 0u32;
            let seen = |k: usize| n[k].load(SeqCst) > 0;
            while !stop.should_stop() && i < MAX_CALLS && (i < MIN_CALLS || !seen(1) || !seen(3)) {
                let delay = Delay::from_jiffies((i % 3) as kernel::time::Jiffies);
                let res = if i % 2 == 0 {
                    system_dfl().mod_delayed(m.clone(), delay)
                } else {
                    q2.mod_delayed(m.clone(), delay)
                };
                let k = match res {
                    Ok(Retimed::Queued) => 1,
                    Ok(Retimed::Pending(p)) => {
                        drop(p);
                        2
                    }
                    Err(EnqueueError::Disabled(p)) => {
                        drop(p);
                        3
                    }
                    Err(EnqueueError::Pending(p)) => {
                        drop(p);
                        4
                    }
                };
                n[k].fetch_add(1, SeqCst);
                i += 1;
                n[0].store(i, SeqCst);
                crate::kthread::schedule_point();
            }
            n[0].store(u32::MAX, SeqCst);
        })?;
        // Bounded: the caller stops after at most `MAX_CALLS` calls, none of which waits.
        while counts[0].load(SeqCst) != u32::MAX {
            fsleep(Delta::from_millis(10));
        }
        drop(caller);
        drop(disabler);
        let ld = |k: usize| counts[k].load(SeqCst);
        let (queued, pending, refused, other_err) = (ld(1), ld(2), ld(3), ld(4));
        pr_info!(
            "mod_delayed racing disable/enable: {} queued, {} pending, {} refused\n",
            queued,
            pending,
            refused
        );
        assert_eq!(other_err, 0);
        assert!(queued > 0 && refused > 0);
        assert_eq!(r.w.disable_depth(), 0);
        // The gate is open: an idle item is queued, and runs.
        drop(r.w.cancel_sync());
        let runs = DGATE_RUNS.load(SeqCst);
        assert!(matches!(
            system_dfl().mod_delayed(r.clone(), Delay::ZERO),
            Ok(Retimed::Queued)
        ));
        assert!(wait_until(5000, || DGATE_RUNS.load(SeqCst) > runs));
        drop(r.w.cancel_sync());
        drop(qq);
        drop(r);
        assert_eq!(DGATE_DROPS.load(SeqCst), 1);
        Ok(())
    }
}
