// SPDX-License-Identifier: GPL-2.0

//! Safe, owned workqueues and the work-item operations that `kernel::workqueue` lacks.
//!
//! Upstream's [`kernel::workqueue`] (Linux 7.3) can enqueue typed work items on queues that
//! somebody else owns, but it cannot create, flush, drain or destroy a queue, cannot target a
//! CPU, and cannot cancel or flush a single item. This module adds all of that on top of
//! upstream's [`Work`], [`DelayedWork`], [`WorkItem`] and [`HasWork`] machinery, so that work
//! items written for upstream work here unchanged:
//!
//! - [`Workqueue`]: a queue made with `alloc_workqueue()`, built with [`Builder`], destroyed
//!   when dropped. Dropping is sound: delayed work still armed on the queue is cancelled before
//!   `destroy_workqueue()` runs (C's `destroy_workqueue()` does not do that).
//! - [`Queue`]: a borrowed queue. The system queues are `&'static Queue` handles
//!   ([`system_percpu`], [`system_dfl`], ...). Delayed enqueue through a plain `&Queue` needs a
//!   `'static` queue; owned queues track their delayed work themselves.
//! - [`OnlineCpu`]: a CPU number proven valid and online, held online while it is used.
//! - [`ArcWork`] and [`ArcDelayedWork`]: `cancel_sync()`, `flush()` and pending state for
//!   reference-counted work items, releasing the queue's reference when a cancel wins.
//! - [`StaticWork`] and [`declare_work!`]: a work item that lives in a `static` (C's
//!   `DECLARE_WORK`), needing no allocation.
//!
//! C header: [`include/linux/workqueue.h`](srctree/include/linux/workqueue.h)

use core::{
    ffi::c_void,
    fmt,
    marker::PhantomData,
    ops::Deref,
    ptr::NonNull,
    sync::atomic::{
        AtomicU8,
        Ordering, //
    },
};
use kernel::{
    bindings,
    cpumask::Cpumask,
    error::code::*,
    new_mutex,
    prelude::*,
    str::CString,
    sync::{
        Arc,
        LockClassKey,
        Mutex, //
    },
    time::Jiffies,
    types::Opaque,
};

pub(crate) use kernel::workqueue::{
    DelayedWork,
    HasDelayedWork,
    HasWork,
    RawDelayedWorkItem,
    RawWorkItem,
    Work,
    WorkItem, //
};

/// `WORK_CPU_UNBOUND` as the C functions take it.
const CPU_UNBOUND: i32 = bindings::wq_misc_consts_WORK_CPU_UNBOUND as i32;

/// The largest `max_active` a queue may ask for (`WQ_MAX_ACTIVE`).
pub(crate) const MAX_ACTIVE: u32 = bindings::wq_consts_WQ_MAX_ACTIVE;

/// A delay before a delayed work item is queued, in jiffies.
///
/// Conversions from time units round up and add one jiffy: the C timer fires when `jiffies`
/// reaches `now + delay`, and the current jiffy may be almost over, so `delay` jiffies can be
/// up to one jiffy short. With the extra jiffy a [`Delay`] made from a duration is never
/// shorter than that duration. A zero duration stays zero (queue at once).
///
/// # Examples
///
/// ```ignore
/// let d = Delay::from_millis(50)?; // at least 50 ms, whatever HZ is
/// system_percpu().enqueue_delayed(item, d);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Delay(Jiffies);

impl Delay {
    /// No delay: the item is queued at once.
    pub(crate) const ZERO: Delay = Delay(0);

    /// The largest duration accepted by [`Delay::from_micros`] (about 71 minutes).
    pub(crate) const MAX_MICROS: u64 = u32::MAX as u64;

    /// A delay of exactly `jiffies` timer ticks (C semantics: may be up to one tick short).
    pub(crate) const fn from_jiffies(jiffies: Jiffies) -> Self {
        Delay(jiffies)
    }

    /// A delay of at least `us` microseconds.
    ///
    /// Returns [`EINVAL`] if `us` is larger than [`Delay::MAX_MICROS`].
    pub(crate) fn from_micros(us: u64) -> Result<Self> {
        if us == 0 {
            return Ok(Self::ZERO);
        }
        let us = u32::try_from(us).map_err(|_| EINVAL)?;
        // SAFETY: `__usecs_to_jiffies` is a pure conversion with no preconditions; it rounds up.
        let j = unsafe { bindings::__usecs_to_jiffies(us) };
        Ok(Delay(j.saturating_add(1)))
    }

    /// A delay of at least `ms` milliseconds.
    pub(crate) fn from_millis(ms: u32) -> Result<Self> {
        Self::from_micros(u64::from(ms) * 1000)
    }

    /// The delay in jiffies.
    pub(crate) const fn jiffies(self) -> Jiffies {
        self.0
    }
}

/// Returns the kernel tick counter (`jiffies`), the clock that delayed work is timed by.
pub(crate) fn jiffies() -> u64 {
    // SAFETY: `jiffies` is a C global that lives forever and is only ever updated with single
    // word stores; a volatile read sees either the old or the new value.
    let j = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(bindings::jiffies)) };
    j as u64
}

/// Returns the number of possible CPU ids (`nr_cpu_ids`); valid CPUs are `0..nr_cpu_ids()`.
pub(crate) fn nr_cpu_ids() -> u32 {
    kernel::cpu::nr_cpu_ids()
}

/// Returns the mask of online CPUs (`cpu_online_mask`).
fn online_mask() -> &'static Cpumask {
    // SAFETY: `__cpu_online_mask` is a C global that lives for the whole uptime; the kernel
    // updates it with atomic bit operations, which is how `Cpumask` reads it.
    unsafe { Cpumask::from_raw(core::ptr::addr_of!(bindings::__cpu_online_mask)) }
}

/// Returns whether `cpu` is a valid CPU number that is online right now.
///
/// The answer may be stale as soon as it is returned; use [`OnlineCpu`] to keep a CPU online.
pub(crate) fn cpu_online(cpu: u32) -> bool {
    match kernel::cpu::CpuId::from_u32(cpu) {
        Some(id) => online_mask().test(id),
        None => false,
    }
}

/// A CPU that is valid and online, and stays online while this value exists.
///
/// Holding it holds the CPU-hotplug read lock (`cpus_read_lock()`), so it must be dropped soon,
/// and it can only be made where sleeping is allowed.
///
/// # Invariants
///
/// `cpu < nr_cpu_ids`, the CPU was online when this value was made, and the CPU-hotplug read
/// lock is held by this value (released in `Drop`), so the CPU stays online.
///
/// # Examples
///
/// ```ignore
/// let cpu = OnlineCpu::get(2)?; // EINVAL past nr_cpu_ids, ENODEV if offline
/// wq.enqueue_on(&cpu, item.clone());
/// drop(cpu); // lets CPU hotplug proceed again
/// ```
pub(crate) struct OnlineCpu {
    cpu: u32,
    /// The hotplug read lock is tied to this task; the guard must not move to another thread.
    _not_send: PhantomData<*mut ()>,
}

impl OnlineCpu {
    /// Checks that `cpu` exists and is online, and keeps it online.
    ///
    /// Returns [`EINVAL`] when `cpu >= nr_cpu_ids()` and [`ENODEV`] when it is offline.
    pub(crate) fn get(cpu: u32) -> Result<Self> {
        if cpu >= nr_cpu_ids() {
            return Err(EINVAL);
        }
        kernel::task::might_sleep();
        // SAFETY: We may sleep here (checked above in debug kernels); the lock is released in
        // `Drop` of the value returned below, or right away on the error path.
        unsafe { bindings::cpus_read_lock() };
        if !cpu_online(cpu) {
            // SAFETY: We took the read lock just above.
            unsafe { bindings::cpus_read_unlock() };
            return Err(ENODEV);
        }
        // INVARIANT: `cpu` is in range and online, and we hold the hotplug read lock.
        Ok(Self {
            cpu,
            _not_send: PhantomData,
        })
    }

    /// The CPU number.
    pub(crate) fn id(&self) -> u32 {
        self.cpu
    }

    fn as_c_int(&self) -> i32 {
        // The invariant bounds `cpu` by `nr_cpu_ids`, far below `i32::MAX`.
        self.cpu as i32
    }
}

impl Drop for OnlineCpu {
    fn drop(&mut self) {
        // SAFETY: By the type invariant this value holds the hotplug read lock.
        unsafe { bindings::cpus_read_unlock() };
    }
}

/// A kernel workqueue that is borrowed, not owned.
///
/// Wraps the C `struct workqueue_struct`. The system queues are `&'static Queue` values; an
/// owned [`Workqueue`] dereferences to a `Queue` for the operations they share.
///
/// # Invariants
///
/// The wrapped `workqueue_struct` is valid for as long as the `&Queue` is.
///
/// # Examples
///
/// ```ignore
/// // C's schedule_work(&item->work):
/// if let Err(item) = system_percpu().enqueue(item) {
///     // It was already pending; nothing was queued twice.
/// }
/// ```
#[repr(transparent)]
pub(crate) struct Queue(Opaque<bindings::workqueue_struct>);

// SAFETY: The C workqueue API may be used on one queue from any thread.
unsafe impl Send for Queue {}
// SAFETY: Every `&self` method calls C workqueue functions that do their own locking.
unsafe impl Sync for Queue {}

impl Queue {
    /// Uses a C `struct workqueue_struct` from Rust.
    ///
    /// # Safety
    ///
    /// `ptr` must point at a valid workqueue that stays valid (is not destroyed) for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *const bindings::workqueue_struct) -> &'a Queue {
        // SAFETY: `Queue` is `#[repr(transparent)]` over the C struct; the caller promises that
        // it is valid for `'a`.
        // INVARIANT: The caller promises validity for `'a`.
        unsafe { &*ptr.cast::<Queue>() }
    }

    /// Returns the raw C pointer.
    pub(crate) fn as_raw(&self) -> *mut bindings::workqueue_struct {
        self.0.get()
    }

    /// Queues a work item on any CPU the queue chooses (C's `queue_work()`).
    ///
    /// Returns the item back (for `Arc` items) when it is already pending: an item is never
    /// queued twice.
    #[inline]
    pub(crate) fn enqueue<W, const ID: u64>(&self, w: W) -> W::EnqueueOutput
    where
        W: RawWorkItem<ID> + Send + 'static,
    {
        self.enqueue_raw(CPU_UNBOUND, w)
    }

    /// Queues a work item on a specific CPU (C's `queue_work_on()`).
    ///
    /// On a per-CPU queue the item runs on `cpu`; on an unbound queue `cpu` selects the pool
    /// (its affinity scope) the item runs in.
    #[inline]
    pub(crate) fn enqueue_on<W, const ID: u64>(&self, cpu: &OnlineCpu, w: W) -> W::EnqueueOutput
    where
        W: RawWorkItem<ID> + Send + 'static,
    {
        self.enqueue_raw(cpu.as_c_int(), w)
    }

    #[inline]
    fn enqueue_raw<W, const ID: u64>(&self, cpu: i32, w: W) -> W::EnqueueOutput
    where
        W: RawWorkItem<ID> + Send + 'static,
    {
        let queue_ptr = self.as_raw();
        // SAFETY: `queue_work_on` returns false only when the `work_struct` is already pending,
        // which is what `__enqueue` requires of the closure. `W` is `Send` and `'static`, so the
        // other `__enqueue` requirements do not apply. The closure gets a pointer that is valid
        // for its duration, and, if queueing succeeds, until the work function runs; the queue is
        // valid by the type invariant; `cpu` is either `WORK_CPU_UNBOUND` or an online CPU
        // (held online by an `OnlineCpu` borrowed for this call).
        unsafe { w.__enqueue(move |work_ptr| bindings::queue_work_on(cpu, queue_ptr, work_ptr)) }
    }

    /// Queues a delayed work item after `delay` (C's `queue_delayed_work()`).
    ///
    /// Only on queues that live forever (the system queues): an armed timer must never outlive
    /// its queue. Use [`Workqueue::enqueue_delayed`] for an owned queue.
    #[inline]
    pub(crate) fn enqueue_delayed<W, const ID: u64>(
        &'static self,
        w: W,
        delay: Delay,
    ) -> W::EnqueueOutput
    where
        W: RawDelayedWorkItem<ID> + Send + 'static,
    {
        // SAFETY: `self` lives forever.
        unsafe { self.enqueue_delayed_raw(CPU_UNBOUND, w, delay) }
    }

    /// Queues a delayed work item on a CPU after `delay` (C's `queue_delayed_work_on()`).
    ///
    /// Only on queues that live forever; see [`Queue::enqueue_delayed`].
    #[inline]
    pub(crate) fn enqueue_delayed_on<W, const ID: u64>(
        &'static self,
        cpu: &OnlineCpu,
        w: W,
        delay: Delay,
    ) -> W::EnqueueOutput
    where
        W: RawDelayedWorkItem<ID> + Send + 'static,
    {
        // SAFETY: `self` lives forever.
        unsafe { self.enqueue_delayed_raw(cpu.as_c_int(), w, delay) }
    }

    /// # Safety
    ///
    /// The queue must stay valid until the timer has fired and the item has run, or the item
    /// has been cancelled.
    unsafe fn enqueue_delayed_raw<W, const ID: u64>(
        &self,
        cpu: i32,
        w: W,
        delay: Delay,
    ) -> W::EnqueueOutput
    where
        W: RawDelayedWorkItem<ID> + Send + 'static,
    {
        let queue_ptr = self.as_raw();
        // SAFETY: As in `enqueue_raw`. In addition, `RawDelayedWorkItem` promises that the
        // pointer is the `work` field of a valid `delayed_work` with the same validity, so the
        // `container_of!` gives a valid `delayed_work`; the caller keeps the queue valid for as
        // long as the timer may fire.
        unsafe {
            w.__enqueue(move |work_ptr| {
                bindings::queue_delayed_work_on(
                    cpu,
                    queue_ptr,
                    kernel::container_of!(work_ptr, bindings::delayed_work, work),
                    delay.jiffies(),
                )
            })
        }
    }

    /// Changes the delay of a delayed work item, queueing it if it was idle (C's
    /// `mod_delayed_work()`).
    ///
    /// Returns `true` if the item was pending and only its timer changed, `false` if it was idle
    /// and has now been queued. Only on queues that live forever; see [`Queue::enqueue_delayed`].
    pub(crate) fn mod_delayed<T, const ID: u64>(&'static self, item: &Arc<T>, delay: Delay) -> bool
    where
        T: WorkItem<ID, Pointer = Arc<T>> + HasDelayedWork<T, ID> + Send + Sync,
    {
        // SAFETY: `self` lives forever.
        unsafe { mod_delayed_raw(self.as_raw(), item, delay) }
    }
}

/// Changes the delay of `item` on `queue` with C's `mod_delayed_work_on()`.
///
/// # Safety
///
/// `queue` must be valid, and stay valid until the timer has fired and the item has run, or the
/// item has been cancelled.
unsafe fn mod_delayed_raw<T, const ID: u64>(
    queue: *mut bindings::workqueue_struct,
    item: &Arc<T>,
    delay: Delay,
) -> bool
where
    T: WorkItem<ID, Pointer = Arc<T>> + HasDelayedWork<T, ID> + Send + Sync,
{
    // If the item is idle, `mod_delayed_work_on` queues it, and the queue then owns a reference
    // that the work function (upstream's `WorkItemPointer::run` for `Arc`) gives back. Make that
    // reference before the call and give it back ourselves if it was not needed.
    let extra = Arc::into_raw(item.clone());
    let dwork = dwork_of::<T, ID>(item);
    // SAFETY: `dwork` is a valid `delayed_work` (it lives in `item`, which `extra` keeps alive
    // for at least as long as the queue may use it); the caller keeps `queue` valid.
    let was_pending =
        unsafe { bindings::mod_delayed_work_on(CPU_UNBOUND, queue, dwork, delay.jiffies()) };
    if was_pending {
        // The item was pending (or being cancelled): the queue already owns a reference, or
        // none is needed. Release the one made above.
        // SAFETY: `extra` came from `Arc::into_raw` above and is released exactly once.
        drop(unsafe { Arc::from_raw(extra) });
    }
    was_pending
}

/// Returns the `work_struct` embedded in an item.
fn work_of<T, const ID: u64>(item: &Arc<T>) -> *mut bindings::work_struct
where
    T: HasWork<T, ID>,
{
    let ptr = Arc::as_ptr(item).cast_mut();
    // SAFETY: `ptr` points at a valid `T` (it comes from a live `Arc`).
    let work = unsafe { T::raw_get_work(ptr) };
    // SAFETY: `raw_get_work` returns a valid, aligned pointer to the `Work` field.
    unsafe { Work::raw_get(work) }
}

/// Returns the `delayed_work` embedded in an item.
fn dwork_of<T, const ID: u64>(item: &Arc<T>) -> *mut bindings::delayed_work
where
    T: HasDelayedWork<T, ID>,
{
    let work = work_of::<T, ID>(item);
    // SAFETY: `HasDelayedWork` promises that the `work_struct` is the `work` field of a
    // `delayed_work` inside the same allocation.
    unsafe { kernel::container_of!(work, bindings::delayed_work, work) }
}

/// The kinds of queue [`Builder`] can make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Per-CPU (`WQ_PERCPU`): an item queued on a CPU runs on that CPU.
    PerCpu,
    /// Unbound (`WQ_UNBOUND`): items run on any CPU of the affinity scope.
    Unbound,
    /// Ordered (`alloc_ordered_workqueue()`): unbound, one item at a time, in queueing order.
    Ordered,
}

/// Builds a [`Workqueue`]; the Rust form of `alloc_workqueue()`'s flags and `max_active`.
///
/// Exactly one of per-CPU and unbound is always set, because the kind is chosen up front.
///
/// # Examples
///
/// ```ignore
/// let wq = KBox::pin_init(
///     Workqueue::builder(Kind::PerCpu).highpri().max_active(4)?.build(fmt!("my_wq/{}", 0)),
///     GFP_KERNEL,
/// )?;
/// ```
#[derive(Clone, Copy, Debug)]
pub(crate) struct Builder {
    kind: Kind,
    flags: u32,
    max_active: u32,
}

impl Builder {
    fn set(mut self, flag: u32) -> Self {
        self.flags |= flag;
        self
    }

    /// Items run at high priority (`WQ_HIGHPRI`).
    pub(crate) fn highpri(self) -> Self {
        self.set(bindings::wq_flags_WQ_HIGHPRI)
    }

    /// The queue may be used during memory reclaim and has a rescuer (`WQ_MEM_RECLAIM`).
    pub(crate) fn mem_reclaim(self) -> Self {
        self.set(bindings::wq_flags_WQ_MEM_RECLAIM)
    }

    /// The queue is frozen during system suspend (`WQ_FREEZABLE`).
    pub(crate) fn freezable(self) -> Self {
        self.set(bindings::wq_flags_WQ_FREEZABLE)
    }

    /// Items are CPU-intensive and do not hold back concurrency management
    /// (`WQ_CPU_INTENSIVE`).
    pub(crate) fn cpu_intensive(self) -> Self {
        self.set(bindings::wq_flags_WQ_CPU_INTENSIVE)
    }

    /// The queue appears in sysfs under `/sys/devices/virtual/workqueue/` (`WQ_SYSFS`).
    pub(crate) fn sysfs(self) -> Self {
        self.set(bindings::wq_flags_WQ_SYSFS)
    }

    /// The queue may become unbound to save power (`WQ_POWER_EFFICIENT`).
    pub(crate) fn power_efficient(self) -> Self {
        self.set(bindings::wq_flags_WQ_POWER_EFFICIENT)
    }

    /// Sets how many items may run at once per CPU (per pool for unbound queues).
    ///
    /// `0` means the default. Returns [`EINVAL`] above [`MAX_ACTIVE`] or for an ordered queue,
    /// whose `max_active` is always one.
    pub(crate) fn max_active(mut self, n: u32) -> Result<Self> {
        if n > MAX_ACTIVE || (self.kind == Kind::Ordered && n > 1) {
            return Err(EINVAL);
        }
        self.max_active = n;
        Ok(self)
    }

    /// The C flags this builder passes to `alloc_workqueue()`.
    pub(crate) fn raw_flags(&self) -> u32 {
        self.flags
            | match self.kind {
                Kind::PerCpu => bindings::wq_flags_WQ_PERCPU,
                Kind::Unbound => bindings::wq_flags_WQ_UNBOUND,
                Kind::Ordered => bindings::wq_flags_WQ_UNBOUND | bindings::wq_flags___WQ_ORDERED,
            }
    }

    /// Allocates the queue, named by `name` (the C side keeps up to 31 bytes of it).
    pub(crate) fn build(self, name: fmt::Arguments<'_>) -> impl PinInit<Workqueue, Error> {
        let name = CString::try_from_fmt(name);
        let flags = self.raw_flags();
        let max_active = if self.kind == Kind::Ordered {
            1
        } else {
            self.max_active
        };
        try_pin_init!(Workqueue {
            armed <- new_mutex!(ArmedList::new(), "Workqueue::armed"),
            // Allocated last: nothing after it can fail, so it is never leaked.
            ptr: {
                let name = name?;
                // SAFETY: The format is a literal `"%s"` consuming exactly one argument, a valid
                // NUL-terminated string that lives across the call (the C side copies it).
                // `max_active` is at most `WQ_MAX_ACTIVE`, which fits in `c_int`.
                let raw = unsafe {
                    bindings::alloc_workqueue_noprof(
                        c"%s".as_char_ptr(),
                        flags,
                        max_active as i32,
                        name.as_char_ptr(),
                    )
                };
                // INVARIANT: A non-NULL result is a valid queue, now owned by this value.
                NonNull::new(raw).ok_or(ENOMEM)?
            },
        }? Error)
    }
}

/// A delayed work item armed on an owned [`Workqueue`], holding a reference to it.
///
/// # Invariants
///
/// `item` came from `Arc::<T>::into_raw` for the `T` that `release` was made for, this entry
/// owns that reference, and `dwork` is the `delayed_work` inside that `T`.
struct Armed {
    dwork: *mut bindings::delayed_work,
    item: *const c_void,
    release: unsafe fn(*const c_void),
}

// SAFETY: An `Armed` owns an `Arc<T>` with `T: Send + Sync` (required where it is made), and an
// `Arc<T>` of such a `T` may be sent to other threads.
unsafe impl Send for Armed {}

impl Armed {
    fn new<T, const ID: u64>(item: &Arc<T>) -> Self
    where
        T: HasDelayedWork<T, ID> + Send + Sync,
    {
        /// Gives back the reference an `Armed` owns.
        ///
        /// # Safety
        ///
        /// `p` must come from `Arc::<T>::into_raw` and be released once.
        unsafe fn release<T>(p: *const c_void) {
            // SAFETY: Guaranteed by the caller.
            drop(unsafe { Arc::<T>::from_raw(p.cast()) });
        }
        // INVARIANT: One new reference, its `release` and its `delayed_work`.
        Armed {
            dwork: dwork_of::<T, ID>(item),
            item: Arc::into_raw(item.clone()).cast(),
            release: release::<T>,
        }
    }

    /// Returns whether the item is pending or running right now.
    fn busy(&self) -> bool {
        // SAFETY: `dwork` lives in the item this entry keeps alive; `work_busy` only reads it.
        unsafe { bindings::work_busy(core::ptr::addr_of_mut!((*self.dwork).work)) != 0 }
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        // SAFETY: By the type invariant this entry owns one reference made by `into_raw`, and
        // `drop` runs once.
        unsafe { (self.release)(self.item) };
    }
}

/// The delayed items armed on an owned queue, so that dropping the queue can cancel them.
struct ArmedList {
    entries: KVec<Armed>,
    /// Where the next scan for finished entries starts.
    cursor: usize,
}

/// How many entries one arm operation checks for being finished, at most.
const PRUNE_SCAN: usize = 8;

impl ArmedList {
    fn new() -> Self {
        Self {
            entries: KVec::new(),
            cursor: 0,
        }
    }

    /// Moves up to [`PRUNE_SCAN`] entries of items that are neither pending nor running into
    /// `out`, so that the caller can drop them after releasing the lock.
    fn prune(&mut self, out: &mut [Option<Armed>; PRUNE_SCAN]) {
        let mut checked = 0;
        let mut taken = 0;
        while checked < PRUNE_SCAN && !self.entries.is_empty() {
            if self.cursor >= self.entries.len() {
                self.cursor = 0;
            }
            checked += 1;
            if self.entries[self.cursor].busy() {
                self.cursor += 1;
                continue;
            }
            // Swap-remove: order does not matter.
            let last = self.entries.len() - 1;
            self.entries.swap(self.cursor, last);
            out[taken] = self.entries.pop();
            taken += 1;
        }
    }
}

/// Why an item could not be queued on an owned [`Workqueue`].
pub(crate) enum EnqueueError<W> {
    /// The item is already pending; it is handed back.
    Pending(W),
    /// Bookkeeping memory could not be allocated; the item is handed back, not queued.
    NoMemory(W),
}

impl<W> From<EnqueueError<W>> for Error {
    fn from(e: EnqueueError<W>) -> Error {
        match e {
            EnqueueError::Pending(_) => EBUSY,
            EnqueueError::NoMemory(_) => ENOMEM,
        }
    }
}

/// An owned workqueue, made with `alloc_workqueue()` and destroyed when dropped.
///
/// Build one with [`Workqueue::builder`] (or the C-named shortcuts). It dereferences to
/// [`Queue`] for immediate enqueueing; delayed work goes through [`Workqueue::enqueue_delayed`],
/// which remembers the item so that dropping the queue can cancel it first.
///
/// Dropping the queue: delayed items still armed on it are cancelled (`cancel_delayed_work_sync`),
/// then `destroy_workqueue()` drains it, which runs every queued item and waits for the running
/// ones. Nobody else can queue on it at that point, because dropping needs ownership.
///
/// Do not drop a queue from one of its own work items (that waits for itself; lockdep reports it).
///
/// # Invariants
///
/// `ptr` is a valid workqueue owned by this value; every delayed item armed on it through this
/// value and not yet known to be finished has an entry in `armed`.
///
/// # Examples
///
/// ```ignore
/// #[pin_data]
/// struct Job {
///     #[pin]
///     work: DelayedWork<Job>,
/// }
/// impl_has_delayed_work! { impl HasDelayedWork<Self> for Job { self.work } }
/// impl WorkItem for Job {
///     type Pointer = Arc<Job>;
///     fn run(_this: Arc<Job>) { /* process context, may sleep */ }
/// }
///
/// let wq = KBox::pin_init(
///     Workqueue::builder(Kind::Unbound).mem_reclaim().build(fmt!("my_wq")),
///     GFP_KERNEL,
/// )?;
/// let job = Arc::pin_init(pin_init!(Job { work <- new_delayed_work!("Job::work") }), GFP_KERNEL)?;
/// wq.enqueue_delayed(job.clone(), Delay::from_millis(100)?)?;
/// drop(wq); // cancels the armed timer, then destroy_workqueue()
/// ```
#[pin_data(PinnedDrop)]
pub(crate) struct Workqueue {
    #[pin]
    armed: Mutex<ArmedList>,
    ptr: NonNull<bindings::workqueue_struct>,
}

// SAFETY: The queue may be used and destroyed from any thread; `armed` is behind a mutex.
unsafe impl Send for Workqueue {}
// SAFETY: All `&self` methods use C functions that lock internally, or the `armed` mutex.
unsafe impl Sync for Workqueue {}

impl Workqueue {
    /// Starts building a queue of the given kind.
    pub(crate) fn builder(kind: Kind) -> Builder {
        Builder {
            kind,
            flags: 0,
            max_active: 0,
        }
    }

    /// C's `create_workqueue(name)`: per-CPU, `WQ_MEM_RECLAIM`, one item at a time per CPU.
    pub(crate) fn create(name: fmt::Arguments<'_>) -> impl PinInit<Self, Error> {
        let b = Self::builder(Kind::PerCpu).mem_reclaim();
        Builder { max_active: 1, ..b }.build(name)
    }

    /// C's `create_singlethread_workqueue(name)`: ordered, `WQ_MEM_RECLAIM`.
    pub(crate) fn create_singlethread(name: fmt::Arguments<'_>) -> impl PinInit<Self, Error> {
        Self::builder(Kind::Ordered).mem_reclaim().build(name)
    }

    /// Waits until every item queued before the call has finished (C's `flush_workqueue()`).
    ///
    /// Delayed items whose timers have not fired yet are not waited for.
    pub(crate) fn flush(&self) {
        // SAFETY: `ptr` is valid by the type invariant.
        unsafe { bindings::__flush_workqueue(self.ptr.as_ptr()) };
        self.prune();
    }

    /// Forgets the delayed items this queue remembers that are neither pending nor running.
    ///
    /// The queue holds a reference to every delayed item armed on it until it finds the item
    /// idle, so that dropping the queue can cancel what is still armed. It looks at a few on
    /// every delayed enqueue and at all of them here (also called by [`Workqueue::flush`] and
    /// [`Workqueue::drain`]). Call it after cancelling items when an item (directly or not)
    /// owns the queue, or the remembered reference keeps that cycle alive.
    pub(crate) fn prune(&self) {
        let n = self.armed.lock().entries.len();
        if n == 0 {
            return;
        }
        // Room for what is removed, so that the items are dropped after the lock is released.
        let Ok(mut dead) = KVec::<Armed>::with_capacity(n, GFP_KERNEL) else {
            return;
        };
        {
            let mut armed = self.armed.lock();
            let mut i = 0;
            while i < armed.entries.len() && dead.len() < dead.capacity() {
                if armed.entries[i].busy() {
                    i += 1;
                    continue;
                }
                let last = armed.entries.len() - 1;
                armed.entries.swap(i, last);
                if let Some(e) = armed.entries.pop() {
                    // Cannot fail: `dead.len() < dead.capacity()` was checked above.
                    if let Err(e) = dead.push_within_capacity(e) {
                        // Put it back rather than drop an item under the lock.
                        let _ = armed.entries.push_within_capacity(e.0);
                        break;
                    }
                }
            }
        }
        drop(dead);
    }

    /// Waits until the queue is empty, including work queued by its own items meanwhile (C's
    /// `drain_workqueue()`). Others must not queue on it meanwhile (the C code warns).
    pub(crate) fn drain(&self) {
        // SAFETY: `ptr` is valid by the type invariant.
        unsafe { bindings::drain_workqueue(self.ptr.as_ptr()) };
        self.prune();
    }

    /// Queues a delayed work item after `delay` (C's `queue_delayed_work()`).
    ///
    /// Fails with [`EnqueueError::Pending`] if the item is already pending, and with
    /// [`EnqueueError::NoMemory`] if the queue cannot remember it.
    pub(crate) fn enqueue_delayed<T, const ID: u64>(
        &self,
        item: Arc<T>,
        delay: Delay,
    ) -> Result<(), EnqueueError<Arc<T>>>
    where
        T: WorkItem<ID, Pointer = Arc<T>> + HasDelayedWork<T, ID> + Send + Sync + 'static,
    {
        self.enqueue_delayed_cpu(CPU_UNBOUND, item, delay)
    }

    /// Queues a delayed work item on a CPU after `delay` (C's `queue_delayed_work_on()`).
    pub(crate) fn enqueue_delayed_on<T, const ID: u64>(
        &self,
        cpu: &OnlineCpu,
        item: Arc<T>,
        delay: Delay,
    ) -> Result<(), EnqueueError<Arc<T>>>
    where
        T: WorkItem<ID, Pointer = Arc<T>> + HasDelayedWork<T, ID> + Send + Sync + 'static,
    {
        self.enqueue_delayed_cpu(cpu.as_c_int(), item, delay)
    }

    fn enqueue_delayed_cpu<T, const ID: u64>(
        &self,
        cpu: i32,
        item: Arc<T>,
        delay: Delay,
    ) -> Result<(), EnqueueError<Arc<T>>>
    where
        T: WorkItem<ID, Pointer = Arc<T>> + HasDelayedWork<T, ID> + Send + Sync + 'static,
    {
        let mut dead: [Option<Armed>; PRUNE_SCAN] = Default::default();
        let result = {
            let mut armed = self.armed.lock();
            armed.prune(&mut dead);
            if armed.entries.reserve(1, GFP_KERNEL).is_err() {
                Err(EnqueueError::NoMemory(item))
            } else {
                let entry = Armed::new::<T, ID>(&item);
                // SAFETY: The queue stays valid until the timer fires or the item is cancelled:
                // `entry` is recorded below, under the same lock, before anyone can drop `self`
                // (which needs ownership), and `Drop` cancels every recorded item before it
                // destroys the queue.
                match unsafe { self.deref().enqueue_delayed_raw(cpu, item, delay) } {
                    Ok(()) => {
                        // Cannot fail: one slot was reserved above.
                        if let Err(e) = armed.entries.push_within_capacity(entry) {
                            dead[0] = Some(e.0);
                        }
                        Ok(())
                    }
                    Err(item) => {
                        dead[0] = Some(entry);
                        Err(EnqueueError::Pending(item))
                    }
                }
            }
        };
        // `dead` entries (and their items, maybe the last reference) drop here, unlocked.
        drop(dead);
        result
    }

    /// Changes the delay of a delayed item, queueing it on this queue if it was idle (C's
    /// `mod_delayed_work()`).
    ///
    /// Returns `Ok(true)` if the item was pending and only its timer changed, `Ok(false)` if it
    /// was idle and is now queued, and [`ENOMEM`] (nothing changed) if the queue cannot remember
    /// it. A pending item is moved to this queue if it was pending on another one.
    pub(crate) fn mod_delayed<T, const ID: u64>(&self, item: &Arc<T>, delay: Delay) -> Result<bool>
    where
        T: WorkItem<ID, Pointer = Arc<T>> + HasDelayedWork<T, ID> + Send + Sync + 'static,
    {
        let mut dead: [Option<Armed>; PRUNE_SCAN] = Default::default();
        let result = {
            let mut armed = self.armed.lock();
            armed.prune(&mut dead);
            armed.entries.reserve(1, GFP_KERNEL)?;
            // SAFETY: As in `enqueue_delayed_cpu`: the item is recorded under the lock.
            let was_pending = unsafe { mod_delayed_raw(self.ptr.as_ptr(), item, delay) };
            if let Err(e) = armed
                .entries
                .push_within_capacity(Armed::new::<T, ID>(item))
            {
                dead[0] = Some(e.0);
            }
            Ok(was_pending)
        };
        drop(dead);
        result
    }
}

impl Deref for Workqueue {
    type Target = Queue;

    fn deref(&self) -> &Queue {
        // SAFETY: `ptr` is valid for as long as `self` is, by the type invariant.
        unsafe { Queue::from_raw(self.ptr.as_ptr()) }
    }
}

#[pinned_drop]
impl PinnedDrop for Workqueue {
    fn drop(self: Pin<&mut Self>) {
        let entries = core::mem::take(&mut self.armed.lock().entries);
        for entry in entries.iter() {
            // Only cancel items that are still on this queue: an item that has run may since
            // have been queued elsewhere by its owner.
            // SAFETY: `entry.dwork` lives in an item that `entry` keeps alive. The read is
            // volatile because other CPUs may write the field; a stale value only makes us skip
            // an item that has already left this queue, or cancel one that is still on it.
            let wq = unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*entry.dwork).wq)) };
            if wq != self.ptr.as_ptr() {
                continue;
            }
            // SAFETY: `dwork` is valid (see above). Nobody can queue on this queue any more: that
            // needs a reference to `self`, and we are being dropped.
            if unsafe { bindings::cancel_delayed_work_sync(entry.dwork) } {
                // The cancel won: the item will not run, so the reference the queue owned for
                // the run (made by upstream's `__enqueue`) must be given back here.
                // SAFETY: A cancelled pending item had been queued through an `Arc<T>`
                // (`HasDelayedWork` items armed here are `Arc` items), leaking one reference
                // that nobody else will release.
                unsafe { (entry.release)(entry.item) };
            }
        }
        drop(entries);
        // SAFETY: `ptr` is valid and owned by this value, and no timer can queue on it any
        // more: every armed item is cancelled above. `destroy_workqueue` drains the rest.
        unsafe { bindings::destroy_workqueue(self.ptr.as_ptr()) };
    }
}

/// Cancel, flush and pending state for reference-counted work items (`Arc<T>`).
///
/// Only for items whose [`Work`] is not part of a [`DelayedWork`]; for those, use
/// [`ArcDelayedWork`]. Mark a plain item with [`PlainWork`].
///
/// # Examples
///
/// ```ignore
/// impl PlainWork for MyItem {}
/// let _ = wq.enqueue(item.clone());
/// if item.cancel_sync() {
///     // It had not started and never will; the queue's reference was given back.
/// }
/// item.flush(); // no-op if idle
/// ```
pub(crate) trait ArcWork<const ID: u64> {
    /// Cancels the item if it is pending and waits for it if it is running (C's
    /// `cancel_work_sync()`). Returns whether it was pending (and so will not run).
    fn cancel_sync(&self) -> bool;
    /// Waits until the item, if queued or running, has finished (C's `flush_work()`). Returns
    /// whether there was anything to wait for.
    fn flush(&self) -> bool;
    /// Returns whether the item is pending (queued and not started) right now.
    fn is_pending(&self) -> bool;
    /// Returns whether the item is the work item being run by the calling thread.
    fn is_current(&self) -> bool;
}

/// Marks an item whose [`Work<T, ID>`] is a plain `work_struct`, not a [`DelayedWork`].
///
/// `cancel_work_sync()` on an armed delayed item would busy-wait until its timer fires, so
/// [`ArcWork::cancel_sync`] is only offered with this marker.
pub(crate) trait PlainWork<const ID: u64 = 0> {}

impl<T, const ID: u64> ArcWork<ID> for Arc<T>
where
    T: WorkItem<ID, Pointer = Arc<T>> + HasWork<T, ID> + PlainWork<ID>,
{
    fn cancel_sync(&self) -> bool {
        // SAFETY: The `work_struct` lives in `self`, which is alive for the call.
        let cancelled = unsafe { bindings::cancel_work_sync(work_of::<T, ID>(self)) };
        if cancelled {
            // SAFETY: The cancel won, so the item was pending and will not run.
            unsafe { give_back_queued_ref(self) };
        }
        cancelled
    }

    fn flush(&self) -> bool {
        // SAFETY: The `work_struct` lives in `self`, which is alive for the call.
        unsafe { bindings::flush_work(work_of::<T, ID>(self)) }
    }

    fn is_pending(&self) -> bool {
        // SAFETY: The `work_struct` lives in `self`, which is alive for the call.
        unsafe { work_pending(work_of::<T, ID>(self)) }
    }

    fn is_current(&self) -> bool {
        is_current_work(work_of::<T, ID>(self))
    }
}

/// Cancel, flush and pending state for reference-counted delayed work items (`Arc<T>`).
///
/// # Examples
///
/// ```ignore
/// system_dfl().enqueue_delayed(item.clone(), Delay::from_millis(500)?);
/// assert!(item.is_pending());
/// item.flush(); // fires the timer now and waits for the run
/// ```
pub(crate) trait ArcDelayedWork<const ID: u64> {
    /// Cancels the item if it is pending (its timer armed or queued) and waits for it if it is
    /// running (C's `cancel_delayed_work_sync()`). Returns whether it was pending.
    fn cancel_sync(&self) -> bool;
    /// Fires the timer at once if armed and waits until the item has finished (C's
    /// `flush_delayed_work()`). Returns whether there was anything to wait for.
    fn flush(&self) -> bool;
    /// Returns whether the item is pending (timer armed, or queued and not started).
    fn is_pending(&self) -> bool;
    /// Returns whether the item is the work item being run by the calling thread.
    fn is_current(&self) -> bool;

    // --- Non-blocking cancel (added for the device's two-phase cancel; see issue 11). ---

    /// Takes the item off its queue if it is pending (its timer armed, or queued and not
    /// started), without waiting for anything (C's `cancel_delayed_work()`).
    ///
    /// Returns whether it was pending; then it will not run, and the queue's reference is given
    /// back as by [`ArcDelayedWork::cancel_sync`]. An item that is running is left alone: it
    /// finishes on its own. May be called in any context.
    fn cancel(&self) -> bool;
}

impl<T, const ID: u64> ArcDelayedWork<ID> for Arc<T>
where
    T: WorkItem<ID, Pointer = Arc<T>> + HasDelayedWork<T, ID>,
{
    fn cancel(&self) -> bool {
        // SAFETY: The `delayed_work` lives in `self`, which is alive for the call.
        let cancelled = unsafe { bindings::cancel_delayed_work(dwork_of::<T, ID>(self)) };
        if cancelled {
            // SAFETY: The cancel won: the item was pending (`cancel_delayed_work()` returns true
            // only after grabbing its PENDING bit and taking it off the timer or the queue), so
            // it will not run.
            unsafe { give_back_queued_ref(self) };
        }
        cancelled
    }

    fn cancel_sync(&self) -> bool {
        // SAFETY: The `delayed_work` lives in `self`, which is alive for the call.
        let cancelled = unsafe { bindings::cancel_delayed_work_sync(dwork_of::<T, ID>(self)) };
        if cancelled {
            // SAFETY: The cancel won, so the item was pending and will not run.
            unsafe { give_back_queued_ref(self) };
        }
        cancelled
    }

    fn flush(&self) -> bool {
        // SAFETY: The `delayed_work` lives in `self`, which is alive for the call.
        unsafe { bindings::flush_delayed_work(dwork_of::<T, ID>(self)) }
    }

    fn is_pending(&self) -> bool {
        // SAFETY: The `work_struct` lives in `self`, which is alive for the call.
        unsafe { work_pending(work_of::<T, ID>(self)) }
    }

    fn is_current(&self) -> bool {
        is_current_work(work_of::<T, ID>(self))
    }
}

/// Returns whether `work` is pending (queued, or its timer armed, and not started).
///
/// # Safety
///
/// `work` must point at an initialised `work_struct` that is alive for the call.
unsafe fn work_pending(work: *mut bindings::work_struct) -> bool {
    // SAFETY: Guaranteed by the caller; `work_busy` only reads the item.
    let busy = unsafe { bindings::work_busy(work) };
    (busy & bindings::wq_misc_consts_WORK_BUSY_PENDING) != 0
}

/// Gives back the reference that a pending `Arc` item's queue held for its work function.
///
/// # Safety
///
/// The item must have been pending and a cancel of it must just have succeeded: it had been
/// queued through an `Arc<T>` (its `WorkItem::Pointer`), which leaked one reference that the work
/// function would have released, and the function will not run now. Call once per such cancel.
unsafe fn give_back_queued_ref<T>(item: &Arc<T>) {
    // SAFETY: Guaranteed by the caller: one leaked reference to this allocation exists.
    drop(unsafe { Arc::from_raw(Arc::as_ptr(item)) });
}

/// Returns whether `work` is the item the calling worker thread is running.
fn is_current_work(work: *mut bindings::work_struct) -> bool {
    // SAFETY: `current_work` has no preconditions; it returns NULL outside a worker.
    let cur = unsafe { bindings::current_work() };
    core::ptr::eq(cur, work)
}

/// Facts about the calling context, for work functions that want to check where they run.
pub(crate) mod context {
    use super::*;

    /// Returns whether the caller is a workqueue worker thread running a work item, in task
    /// (process) context: C's `current_work()` is non-NULL only when `in_task()` holds and the
    /// current task is a worker (`PF_WQ_WORKER`).
    pub(crate) fn in_worker() -> bool {
        // SAFETY: `current_work` has no preconditions; it returns NULL outside a worker.
        !unsafe { bindings::current_work() }.is_null()
    }
}

/// A work item that lives in a `static`, the Rust form of C's `DECLARE_WORK()`.
///
/// It needs no allocation. The `work_struct` is initialised on first use (C initialises it at
/// compile time; Rust cannot build a self-referential `work_struct` in a constant). Declare one
/// with [`declare_work!`].
///
/// A module that queues a `StaticWork` must cancel or flush it before it unloads, as in C.
///
/// # Invariants
///
/// Once `state` is [`StaticWork::READY`], `work` is an initialised `work_struct` whose function is
/// [`StaticWork::run`].
pub(crate) struct StaticWork {
    work: Opaque<bindings::work_struct>,
    state: AtomicU8,
    func: fn(),
    name: &'static CStr,
    key: LockClassKey,
}

// SAFETY: The `work_struct` is used through the C workqueue API, which may be called from any
// thread; initialisation is serialised by `state`.
unsafe impl Sync for StaticWork {}

impl StaticWork {
    const UNINIT: u8 = 0;
    const INITIALISING: u8 = 1;
    const READY: u8 = 2;

    /// Makes a static work item that calls `func`. Use [`declare_work!`].
    ///
    /// # Safety
    ///
    /// The value must be placed in a `static` (its lock-class key must have static storage).
    #[doc(hidden)]
    pub(crate) const unsafe fn new(name: &'static CStr, func: fn()) -> Self {
        Self {
            work: Opaque::uninit(),
            state: AtomicU8::new(Self::UNINIT),
            func,
            name,
            // SAFETY: The caller places `Self` in a `static`.
            key: unsafe { LockClassKey::new_static() },
        }
    }

    /// The C work function of every [`StaticWork`].
    ///
    /// # Safety
    ///
    /// `ptr` must point at the `work` field of a [`StaticWork`] (the only `work_struct`s that are
    /// initialised with this function).
    unsafe extern "C" fn run(ptr: *mut bindings::work_struct) {
        // SAFETY: Only `StaticWork::work` fields are initialised with this function, so `ptr`
        // points at the `work` field of a `StaticWork` (which lives forever).
        let this = unsafe {
            &*kernel::container_of!(
                ptr.cast::<Opaque<bindings::work_struct>>(),
                StaticWork,
                work
            )
        };
        (this.func)()
    }

    fn raw(&'static self) -> *mut bindings::work_struct {
        loop {
            match self.state.compare_exchange(
                Self::UNINIT,
                Self::INITIALISING,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    // SAFETY: We won the race to initialise; nobody else touches `work` until
                    // `state` is `READY`. `name` and `key` are static.
                    unsafe {
                        bindings::init_work_with_key(
                            self.work.get(),
                            Some(Self::run),
                            false,
                            self.name.as_char_ptr(),
                            self.key.as_ptr(),
                        )
                    };
                    // INVARIANT: `work` is initialised with `run`.
                    self.state.store(Self::READY, Ordering::Release);
                    break;
                }
                Err(Self::READY) => break,
                Err(_) => core::hint::spin_loop(),
            }
        }
        self.work.get()
    }

    /// Queues the item (C's `queue_work()`); returns `false` if it was already pending.
    pub(crate) fn enqueue(&'static self, queue: &Queue) -> bool {
        // SAFETY: `raw()` returns an initialised `work_struct` that lives forever; the queue is
        // valid for the call and, as the caller's `Queue` borrow proves, alive until the item
        // has run or the owner flushes it (owned queues drain before they go).
        unsafe { bindings::queue_work_on(CPU_UNBOUND, queue.as_raw(), self.raw()) }
    }

    /// Queues the item on the system per-CPU queue (C's `schedule_work()`).
    pub(crate) fn schedule(&'static self) -> bool {
        self.enqueue(system_percpu())
    }

    /// Cancels the item if pending and waits if running (C's `cancel_work_sync()`).
    pub(crate) fn cancel_sync(&'static self) -> bool {
        // SAFETY: `raw()` returns an initialised, static `work_struct`.
        unsafe { bindings::cancel_work_sync(self.raw()) }
    }

    /// Waits until the item has finished, if queued or running (C's `flush_work()`).
    pub(crate) fn flush(&'static self) -> bool {
        // SAFETY: `raw()` returns an initialised, static `work_struct`.
        unsafe { bindings::flush_work(self.raw()) }
    }

    /// Returns whether the item is pending right now.
    pub(crate) fn is_pending(&'static self) -> bool {
        // SAFETY: `raw()` returns an initialised, static `work_struct`.
        unsafe { work_pending(self.raw()) }
    }
}

/// Declares a [`StaticWork`] that calls a function: the Rust form of C's `DECLARE_WORK()`.
///
/// # Examples
///
/// ```ignore
/// fn tick() { pr_info!("tick\n"); }
/// declare_work!(static TICK = tick);
/// TICK.schedule();
/// TICK.flush();
/// ```
macro_rules! declare_work {
    ($vis:vis static $name:ident = $func:path) => {
        $vis static $name: $crate::workqueue::StaticWork =
            // SAFETY: This value is placed in a `static`.
            unsafe { $crate::workqueue::StaticWork::new(c"", $func) };
    };
}
pub(crate) use declare_work;

macro_rules! system_queue {
    ($(#[$meta:meta])* $fn:ident => $sym:ident) => {
        $(#[$meta])*
        pub(crate) fn $fn() -> &'static Queue {
            // SAFETY: The system queues are created at boot and never destroyed.
            unsafe { Queue::from_raw(bindings::$sym) }
        }
    };
}

system_queue!(
    /// The system per-CPU queue (`system_percpu_wq`), used by C's `schedule_work()` and
    /// `schedule_delayed_work()`. Replaces the deprecated `system_wq`.
    system_percpu => system_percpu_wq
);
system_queue!(
    /// The default unbound system queue (`system_dfl_wq`). Replaces the deprecated
    /// `system_unbound_wq`.
    system_dfl => system_dfl_wq
);
system_queue!(
    /// The high-priority per-CPU system queue (`system_highpri_wq`).
    system_highpri => system_highpri_wq
);
system_queue!(
    /// The system queue for long-running items (`system_long_wq`).
    system_long => system_long_wq
);

/// A bottom-half queue: its items run in softirq context, where they must not sleep.
///
/// A separate type from [`Queue`] so that only items marked [`BhWorkItem`] can be queued on it:
/// an ordinary (sleeping) work item cannot end up in softirq context by mistake.
///
/// # Invariants
///
/// The wrapped queue is a valid `WQ_BH` queue for as long as the `&BhQueue` is.
///
/// # Examples
///
/// ```ignore
/// impl BhWorkItem for Tick {} // Tick::run never sleeps
/// let _ = system_bh().enqueue(tick.clone());
/// ```
#[repr(transparent)]
pub(crate) struct BhQueue(Queue);

/// Marks a work item type whose `run` never sleeps, so that it may run on a [`BhQueue`].
///
/// Give such types their own `new_work!` call sites: lockdep tracks each site's lock class, and
/// a class used both in softirq and in process context is reported as inconsistent.
pub(crate) trait BhWorkItem<const ID: u64 = 0> {}

impl BhQueue {
    /// Queues a non-sleeping work item to run in softirq context (`queue_work()` on a BH queue).
    pub(crate) fn enqueue<T, const ID: u64>(&self, w: Arc<T>) -> Result<(), Arc<T>>
    where
        T: WorkItem<ID, Pointer = Arc<T>> + HasWork<T, ID> + BhWorkItem<ID> + Send + Sync + 'static,
    {
        self.0.enqueue(w)
    }
}

/// The bottom-half system queue (`system_bh_wq`): items run in softirq context.
pub(crate) fn system_bh() -> &'static BhQueue {
    // SAFETY: `system_bh_wq` is created at boot and never destroyed. `BhQueue` is
    // `#[repr(transparent)]` over `Queue`, which is over the C struct.
    // INVARIANT: `system_bh_wq` is a `WQ_BH` queue.
    unsafe { &*core::ptr::from_ref(Queue::from_raw(bindings::system_bh_wq)).cast::<BhQueue>() }
}
system_queue!(
    /// The power-efficient system queue (`system_power_efficient_wq`).
    system_power_efficient => system_power_efficient_wq
);
