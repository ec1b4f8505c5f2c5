// SPDX-License-Identifier: GPL-2.0

//! Scoped work: items that borrow data with a lifetime ([`ScopedWork`], [`ScopedDelayedWork`]).
//!
//! An ordinary work item must own what it uses (`'static`), because it may run at any later
//! time. A scoped item may borrow: it belongs to a [`Scope`] made by [`scope`], like
//! `std::thread::scope`. Dropping an item cancels it and waits for a running instance
//! (synchronously), and [`scope`] does not return before every item queued in it has finished
//! or been cancelled, so even an item that is leaked (`KBox::leak`, `mem::forget` of a box)
//! cannot run after the data it borrows is gone.
//!
//! A delayed scoped item is queued on a queue that outlives the scope (`&'env Queue`), so that
//! its timer can never fire into a destroyed queue: no upstream or proposed API has one.
//!
//! A [`RequeueWork`] is bound to one queue when it is made, and its closure gets a [`Requeue`]
//! with which `run` queues the item again (a polling loop that ends when the closure stops
//! re-queueing, or when the item is dropped).

use super::{
    delay::Delay,
    queue::Queue,
    raw, //
};
use core::{
    marker::PhantomData,
    sync::atomic::{
        AtomicPtr,
        AtomicUsize,
        Ordering, //
    },
};
use kernel::{bindings, prelude::*, sync::Completion, types::Opaque};
use pin_init::stack_pin_init;

/// The scope of [`scope`]: counts the items queued in it that have not finished.
///
/// # Invariants
///
/// `pending` is one (the scope's own count, dropped when the closure returns) plus the number of
/// items queued in the scope whose function has not returned and that were not cancelled.
pub(crate) struct Scope<'scope, 'env: 'scope> {
    pending: AtomicUsize,
    /// Completed by the last count; pinned on the stack of [`scope`].
    done: &'scope Completion,
    _scope: PhantomData<&'scope mut &'scope ()>,
    _env: PhantomData<&'env mut &'env ()>,
}

/// Runs `f` with a [`Scope`]; returns when every item queued in it has finished or been
/// cancelled. Sleeps.
///
/// An item dropped normally is cancelled (or waited for) by its own drop. A *leaked* item
/// (`mem::forget`) is neither: `scope` then waits, uninterruptibly, until it has run, which
/// for a delayed item armed with a long delay is as long as that delay (up to the timer
/// wheel's limit, about 12 days at `HZ=1000`). Leaking is safe Rust, and waiting is what keeps
/// the borrows sound (the item may still use them); the cost is a hung task, not memory
/// unsafety. Keeping a list of the scope's armed items to cancel them here would turn that into
/// a prompt return (review 2026-12, L5); not done, because the wait is the only sound answer
/// for an item that is already running.
///
/// # Examples
///
/// The example below is `src/workqueue/examples/scoped.rs`, which the KUnit case
/// `rust_wq_examples::example_scoped` compiles and runs:
///
#[doc = concat!("```\n", include_str!("examples/scoped.rs"), "```")]
#[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
pub(crate) fn scope<'env, R>(f: impl for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R) -> R {
    kernel::task::might_sleep();
    stack_pin_init!(let done = Completion::new());
    let s = Scope {
        pending: AtomicUsize::new(1),
        done: &done,
        _scope: PhantomData,
        _env: PhantomData,
    };
    let r = f(&s);
    if s.pending.fetch_sub(1, Ordering::AcqRel) != 1 {
        // Leaked items are still queued or running; the last one completes `done`.
        s.done.wait_for_completion();
    }
    r
}

impl<'scope, 'env> Scope<'scope, 'env> {
    fn get(&self) {
        self.pending.fetch_add(1, Ordering::AcqRel);
    }

    /// Drops one count; the last one wakes [`scope`]. The scope may be gone right after.
    fn put(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            // `scope` is still waiting (its own count is gone, so this count was the last:
            // `scope` cannot have returned), and `complete_all` is safe against the waiter
            // freeing the completion as soon as it returns: the waiter only returns after
            // taking the lock that this call releases last.
            self.done.complete_all();
        }
    }

    /// A scoped work item that calls `f`; pin it (on the stack or in a box) to queue it.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn work<F>(&'scope self, f: F) -> impl PinInit<ScopedWork<'scope, 'env, F>>
    where
        F: Fn() + Sync + 'scope,
    {
        pin_init!(ScopedWork {
            work <- Opaque::ffi_init(|slot: *mut bindings::work_struct| {
                // Items pinned on the stack are announced as such to debugobjects (C's
                // `INIT_WORK_ONSTACK`); the drop ends that with `destroy_work_on_stack()`.
                let on_stack = raw::on_current_stack(slot.cast());
                // SAFETY: `slot` is valid for writes; the function matches this item type; the
                // key is static.
                unsafe {
                    let (name, key) = (c"ScopedWork::work", kernel::static_lock_class!());
                    let run = ScopedWork::<'scope, 'env, F>::run;
                    raw::init_work(slot, run, on_stack, name.as_char_ptr(), key.as_ptr())
                }
            }),
            scope: self,
            queue: AtomicPtr::new(core::ptr::null_mut()),
            func: f,
        })
    }

    /// A scoped work item bound to `queue`, whose closure may queue it again: `f` gets a
    /// [`Requeue`] for the item it runs in.
    ///
    /// Every queueing of the item goes to `queue` (it has no other enqueue), which is what
    /// makes a re-queue from `run` sound: see [`Requeue::again`].
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn requeue_work<F>(
        &'scope self,
        queue: &'env Queue,
        f: F,
    ) -> impl PinInit<RequeueWork<'scope, 'env, F>>
    where
        F: Fn(&Requeue<'scope, 'env>) + Sync + 'scope,
    {
        pin_init!(RequeueWork {
            work <- Opaque::ffi_init(|slot: *mut bindings::work_struct| {
                let on_stack = raw::on_current_stack(slot.cast());
                // SAFETY: `slot` is valid for writes; the function matches this item type; the
                // key is static.
                unsafe {
                    let (name, key) = (c"RequeueWork::work", kernel::static_lock_class!());
                    let run = RequeueWork::<'scope, 'env, F>::run;
                    raw::init_work(slot, run, on_stack, name.as_char_ptr(), key.as_ptr())
                }
            }),
            scope: self,
            queue,
            func: f,
        })
    }

    /// A scoped delayed work item that calls `f`.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn delayed_work<F>(
        &'scope self,
        f: F,
    ) -> impl PinInit<ScopedDelayedWork<'scope, 'env, F>>
    where
        F: Fn() + Sync + 'scope,
    {
        pin_init!(ScopedDelayedWork {
            dwork <- Opaque::ffi_init(|slot: *mut bindings::delayed_work| {
                let on_stack = raw::on_current_stack(slot.cast());
                // SAFETY: `slot` is valid for writes; the function matches this item type; the
                // keys are static.
                unsafe {
                    let (name, key) = (c"ScopedDelayedWork::dwork", kernel::static_lock_class!());
                    let (work, run) = (
                        core::ptr::addr_of_mut!((*slot).work),
                        ScopedDelayedWork::<'scope, 'env, F>::run,
                    );
                    raw::init_work(work, run, on_stack, name.as_char_ptr(), key.as_ptr())
                };
                let (name, key) = (c"ScopedDelayedWork::timer", kernel::static_lock_class!());
                // SAFETY: `slot` is valid for writes and new, its timer not armed; the name and
                // key are static.
                unsafe {
                    raw::init_delayed_timer(slot, 0, on_stack, name.as_char_ptr(), key.as_ptr())
                };
            }),
            scope: self,
            queue: AtomicPtr::new(core::ptr::null_mut()),
            func: f,
        })
    }
}

/// Binds a scoped item to `queue` on its first queueing: `EINVAL` if it is bound to another.
fn bind(slot: &AtomicPtr<bindings::workqueue_struct>, queue: &Queue) -> Result {
    let q = queue.as_raw();
    match slot.compare_exchange(
        core::ptr::null_mut(),
        q,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => Ok(()),
        Err(cur) if cur == q => Ok(()),
        Err(_) => Err(EINVAL),
    }
}

/// A work item that may borrow data of its [`Scope`]; cancelled (synchronously) when dropped.
///
/// # Invariants
///
/// `work` is initialised with [`ScopedWork::run`] for this type. While it is pending or running
/// it holds one count of `scope`.
#[pin_data(PinnedDrop)]
pub(crate) struct ScopedWork<'scope, 'env, F> {
    #[pin]
    work: Opaque<bindings::work_struct>,
    scope: &'scope Scope<'scope, 'env>,
    /// The queue the item was first queued on (null before): the only one it may use.
    queue: AtomicPtr<bindings::workqueue_struct>,
    func: F,
}

// SAFETY: The item is only used through C functions that lock, and `func` is `Sync` (required
// where items are made); `&Scope` is `Send + Sync` (atomics and a completion).
unsafe impl<F: Sync> Sync for ScopedWork<'_, '_, F> {}

impl<'scope, 'env, F: Fn() + Sync + 'scope> ScopedWork<'scope, 'env, F> {
    /// # Safety
    ///
    /// `ptr` is the `work` field of a pinned `ScopedWork<'scope, 'env, F>` queued by
    /// [`ScopedWork::enqueue`].
    unsafe extern "C" fn run(ptr: *mut bindings::work_struct) {
        // SAFETY: Guaranteed by the caller; the item is pinned and, being queued or running, is
        // not freed: its drop cancels or waits first, and a leaked one lives forever.
        let this = unsafe {
            &*kernel::container_of!(ptr.cast::<Opaque<bindings::work_struct>>(), Self, work)
        };
        let scope = this.scope;
        (this.func)();
        // The item may be dropped (or re-queued) from here on; only the scope is used, and the
        // scope outlives every count held on it.
        scope.put();
    }

    /// Queues the item (C's `queue_work()`): `Ok(false)` if it was already pending, and
    /// [`EINVAL`] (nothing done) on a queue other than the first one it was queued on.
    ///
    /// A scoped item is bound to its first queue: C runs one item on two queues at once (its
    /// non-reentrancy holds per queue), and `cancel_work_sync()` waits only on the pool of the
    /// last queueing, so the drop could return while an instance queued earlier elsewhere still
    /// ran on the item.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn enqueue(self: Pin<&Self>, queue: &Queue) -> Result<bool> {
        bind(&self.queue, queue)?;
        self.scope.get();
        // SAFETY: `work` is initialised; the item is pinned and stays valid until it has run or
        // been cancelled (its drop does that); `queue` is valid and drains before it is
        // destroyed, and is the item's only queue (`bind`), so a running instance and a new
        // one are on one queue, where C does not run them at once and `cancel_work_sync()`
        // waits for both.
        let queued =
            unsafe { bindings::queue_work_on(raw::CPU_UNBOUND, queue.as_raw(), self.work.get()) };
        if !queued {
            self.scope.put();
        }
        Ok(queued)
    }

    /// Cancels the item if pending, waiting for a running instance (`cancel_work_sync()`).
    /// Returns whether it was pending. Sleeps.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn cancel_sync(self: Pin<&Self>) -> bool {
        kernel::task::might_sleep();
        // SAFETY: `work` is initialised; we may sleep.
        let was_pending = unsafe { bindings::cancel_work_sync(self.work.get()) };
        if was_pending {
            // The function will not run for that queueing: drop its count.
            self.scope.put();
        }
        was_pending
    }

    /// Waits until the item has run, if queued or running (`flush_work()`). Sleeps.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn flush(self: Pin<&Self>) -> bool {
        kernel::task::might_sleep();
        // SAFETY: `work` is initialised; we may sleep.
        unsafe { bindings::flush_work(self.work.get()) }
    }
}

#[pinned_drop]
impl<F> PinnedDrop for ScopedWork<'_, '_, F> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: `work` is initialised; dropping may sleep (scoped items are dropped in process
        // context, in the scope's task or a task it waits for).
        if unsafe { bindings::cancel_work_sync(self.work.get()) } {
            self.scope.put();
        }
        #[cfg(CONFIG_DEBUG_OBJECTS_WORK)]
        if raw::on_current_stack(self.work.get().cast()) {
            // SAFETY: Made on this stack (announced as such), idle now, never used again.
            unsafe { bindings::destroy_work_on_stack(self.work.get()) };
        }
    }
}

/// A delayed work item that may borrow data of its [`Scope`]; cancelled when dropped.
///
/// # Invariants
///
/// As [`ScopedWork`], for `dwork`.
#[pin_data(PinnedDrop)]
pub(crate) struct ScopedDelayedWork<'scope, 'env, F> {
    #[pin]
    dwork: Opaque<bindings::delayed_work>,
    scope: &'scope Scope<'scope, 'env>,
    /// As in [`ScopedWork`].
    queue: AtomicPtr<bindings::workqueue_struct>,
    func: F,
}

// SAFETY: As for `ScopedWork`.
unsafe impl<F: Sync> Sync for ScopedDelayedWork<'_, '_, F> {}

impl<'scope, 'env, F: Fn() + Sync + 'scope> ScopedDelayedWork<'scope, 'env, F> {
    /// # Safety
    ///
    /// `ptr` is the `work` of the `dwork` field of a pinned `ScopedDelayedWork` queued by
    /// [`ScopedDelayedWork::enqueue`].
    unsafe extern "C" fn run(ptr: *mut bindings::work_struct) {
        // SAFETY: As in `ScopedWork::run`; `ptr` is the `work` of the `dwork` field.
        let this = unsafe {
            let d = kernel::container_of!(ptr, bindings::delayed_work, work);
            &*kernel::container_of!(d.cast::<Opaque<bindings::delayed_work>>(), Self, dwork)
        };
        let scope = this.scope;
        (this.func)();
        scope.put();
    }

    /// Queues the item after `delay` on a queue that outlives the scope
    /// (`queue_delayed_work()`): `Ok(false)` if it was already pending, [`EINVAL`] on a queue
    /// other than its first (as [`ScopedWork::enqueue`]).
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn enqueue(self: Pin<&Self>, queue: &'env Queue, delay: Delay) -> Result<bool> {
        bind(&self.queue, queue)?;
        self.scope.get();
        // SAFETY: `dwork` is initialised; the item stays valid until it has run or been
        // cancelled; `queue` outlives the scope, which waits for the item, so the timer cannot
        // fire into a destroyed queue.
        let queued = unsafe {
            bindings::queue_delayed_work_on(
                raw::CPU_UNBOUND,
                queue.as_raw(),
                self.dwork.get(),
                delay.jiffies(),
            )
        };
        if !queued {
            self.scope.put();
        }
        Ok(queued)
    }

    /// Cancels the item if pending (timer armed or queued), waiting for a running instance
    /// (`cancel_delayed_work_sync()`). Returns whether it was pending. Sleeps.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn cancel_sync(self: Pin<&Self>) -> bool {
        kernel::task::might_sleep();
        // SAFETY: `dwork` is initialised; we may sleep.
        let was_pending = unsafe { bindings::cancel_delayed_work_sync(self.dwork.get()) };
        if was_pending {
            self.scope.put();
        }
        was_pending
    }

    /// Whether the item is pending (timer armed, or queued and not started).
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn is_pending(self: Pin<&Self>) -> bool {
        // SAFETY: The `work` inside `dwork` is initialised and alive.
        unsafe { raw::is_pending(core::ptr::addr_of_mut!((*self.dwork.get()).work)) }
    }
}

#[pinned_drop]
impl<F> PinnedDrop for ScopedDelayedWork<'_, '_, F> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: `dwork` is initialised; dropping may sleep (see `ScopedWork`).
        if unsafe { bindings::cancel_delayed_work_sync(self.dwork.get()) } {
            self.scope.put();
        }
        // The timer was announced on-stack under `CONFIG_DEBUG_OBJECTS_TIMERS` and the work
        // under `CONFIG_DEBUG_OBJECTS_WORK` (raw.rs): each tracking ends under its own option.
        #[cfg(CONFIG_DEBUG_OBJECTS_WORK)]
        if raw::on_current_stack(self.dwork.get().cast()) {
            // SAFETY: Made on this stack (announced as such), idle now, never used again;
            // this also ends the timer's on-stack tracking (`kernel/workqueue.c`).
            unsafe { bindings::destroy_delayed_work_on_stack(self.dwork.get()) };
        }
        #[cfg(all(CONFIG_DEBUG_OBJECTS_TIMERS, not(CONFIG_DEBUG_OBJECTS_WORK)))]
        if raw::on_current_stack(self.dwork.get().cast()) {
            // SAFETY: The timer was initialised on this stack (raw.rs), is idle (cancelled
            // above) and never used again; only a field address is computed.
            unsafe {
                bindings::timer_destroy_on_stack(core::ptr::addr_of_mut!((*self.dwork.get()).timer))
            };
        }
    }
}

/// A scoped work item bound to one queue whose closure may queue it again from `run`
/// ([`Requeue::again`]); cancelled (synchronously) when dropped, even while it keeps
/// re-queueing itself. A leaked one that keeps re-queueing itself keeps its [`scope`] waiting,
/// as any leaked item does until it has run.
///
/// # Invariants
///
/// `work` is initialised with [`RequeueWork::run`] for this type and is only ever queued on
/// `queue`. While it is pending or running it holds one count of `scope`.
#[pin_data(PinnedDrop)]
pub(crate) struct RequeueWork<'scope, 'env, F> {
    #[pin]
    work: Opaque<bindings::work_struct>,
    scope: &'scope Scope<'scope, 'env>,
    queue: &'env Queue,
    func: F,
}

// SAFETY: As for `ScopedWork`; `&Queue` is `Sync`.
unsafe impl<F: Sync> Sync for RequeueWork<'_, '_, F> {}

/// What the closure of a [`RequeueWork`] gets: the means to queue its own item again.
///
/// It exists only for the length of one call of the closure (the closure gets a reference with
/// a lifetime of that call), so it cannot be kept for later.
pub(crate) struct Requeue<'scope, 'env> {
    work: *mut bindings::work_struct,
    scope: &'scope Scope<'scope, 'env>,
    queue: &'env Queue,
}

impl Requeue<'_, '_> {
    /// Queues the running item again on its queue (C's `queue_work()`); it runs again after
    /// this run returns. `false` if it was not queued: already pending again, or being
    /// cancelled (the item's drop or `cancel_sync` disables it for the length of its wait).
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn again(&self) -> bool {
        // The run that called us holds a count, so this one never takes the scope from zero.
        self.scope.get();
        // SAFETY: `work` is the initialised field of the item whose `run` is calling the
        // closure, so the item is alive: its drop (`cancel_work_sync()`) waits for this run.
        // That wait finds this run, and the re-queued instance, because every queueing of the
        // item goes to the same `queue` (type invariant): C then queues a re-queue of a running
        // item on the pool that runs it (`__queue_work()`, `kernel/workqueue.c:2390-2406`, the
        // non-reentrancy rule), so at most one instance runs, and `__flush_work()` looks in the
        // pool the item was last queued on, where it runs. A re-queue racing the drop is
        // refused: `__cancel_work_sync()` keeps the item disabled across its flush
        // (`kernel/workqueue.c:4556-4571`), so `queue_work_on()` returns `false`. `queue`
        // outlives the scope (`'env`), which waits for this item: it is valid for as long as the
        // item can be queued or run.
        // SAFETY: As argued above: `work` is the running item's initialised field, alive until
        // the scope's wait for it; `queue` is its only queue and outlives the scope.
        let queued =
            unsafe { bindings::queue_work_on(raw::CPU_UNBOUND, self.queue.as_raw(), self.work) };
        if !queued {
            self.scope.put();
        }
        queued
    }
}

impl<'scope, 'env, F> RequeueWork<'scope, 'env, F>
where
    F: Fn(&Requeue<'scope, 'env>) + Sync + 'scope,
{
    /// # Safety
    ///
    /// `ptr` is the `work` field of a pinned `RequeueWork<'scope, 'env, F>` queued by
    /// [`RequeueWork::enqueue`] or [`Requeue::again`].
    unsafe extern "C" fn run(ptr: *mut bindings::work_struct) {
        // SAFETY: Guaranteed by the caller; the item is pinned and, being queued or running, is
        // not freed: its drop cancels and waits first (see `Requeue::again` for why that wait
        // finds this run), and a leaked one lives until the scope ends, which waits for it.
        let this = unsafe {
            &*kernel::container_of!(ptr.cast::<Opaque<bindings::work_struct>>(), Self, work)
        };
        let scope = this.scope;
        let requeue = Requeue {
            work: ptr,
            scope,
            queue: this.queue,
        };
        (this.func)(&requeue);
        // The item may be dropped from here on; only the scope is used, and the scope outlives
        // every count held on it.
        scope.put();
    }

    /// Queues the item on its queue (C's `queue_work()`); `false` if it was already pending or
    /// is being cancelled.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn enqueue(self: Pin<&Self>) -> bool {
        self.scope.get();
        // SAFETY: `work` is initialised; the item is pinned and stays valid until it has run or
        // been cancelled (its drop does that); `queue` is the item's only queue (type
        // invariant) and outlives the scope.
        let queued = unsafe {
            bindings::queue_work_on(raw::CPU_UNBOUND, self.queue.as_raw(), self.work.get())
        };
        if !queued {
            self.scope.put();
        }
        queued
    }

    /// Cancels the item if pending, waiting for a running instance and refusing its re-queues
    /// meanwhile (`cancel_work_sync()`). Returns whether it was pending. Sleeps.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn cancel_sync(self: Pin<&Self>) -> bool {
        kernel::task::might_sleep();
        // SAFETY: `work` is initialised; we may sleep.
        let was_pending = unsafe { bindings::cancel_work_sync(self.work.get()) };
        if was_pending {
            self.scope.put();
        }
        was_pending
    }
}

#[pinned_drop]
impl<F> PinnedDrop for RequeueWork<'_, '_, F> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: `work` is initialised; dropping may sleep (see `ScopedWork`). A re-queue from
        // the running instance during the wait is refused (see `Requeue::again`).
        if unsafe { bindings::cancel_work_sync(self.work.get()) } {
            self.scope.put();
        }
        #[cfg(CONFIG_DEBUG_OBJECTS_WORK)]
        if raw::on_current_stack(self.work.get().cast()) {
            // SAFETY: Made on this stack (announced as such), idle now, never used again.
            unsafe { bindings::destroy_work_on_stack(self.work.get()) };
        }
    }
}
