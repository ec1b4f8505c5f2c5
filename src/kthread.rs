// SPDX-License-Identifier: GPL-2.0

//! Kernel threads bound to a CPU, and a counting completion: what the benchmark needs and the
//! 7.3 `kernel` crate lacks.
//!
//! A test helper of the module, not part of the workqueue layer: it uses the layer's
//! [`CpuId`], the layer does not use it. What the `kernel` crate does not bind (a function
//! bindgen never saw, static inlines) is reached through `src/helpers.c`, declared below.
//!
//! C headers: [`include/linux/kthread.h`](srctree/include/linux/kthread.h),
//! [`include/linux/completion.h`](srctree/include/linux/completion.h)

use crate::workqueue::cpu::CpuId;
use core::{
    ffi::c_void,
    ptr::NonNull, //
};
use kernel::{
    bindings,
    error::from_err_ptr,
    prelude::*,
    types::Opaque, //
};

// The C side is `src/helpers.c`, declared in `src/helpers.h` (bindgen does not run on an
// external module's C files, so the declarations are written here; the three change together).
extern "C" {
    /// The calling task's CPU time, user plus system, in ns (C's `task_cputime_adjusted()`).
    fn rust_wq_task_cputime_ns() -> u64;

    /// `kthread_create_on_cpu()` under the CPU-hotplug read lock, refused with `-ENODEV` if
    /// `cpu` is offline; on success a task reference is taken and the thread woken. Returns a
    /// `struct task_struct *` or an error pointer (untyped here: bindgen's `task_struct` holds
    /// an empty struct, which is not FFI-safe).
    fn rust_wq_kthread_run_on_online_cpu(
        threadfn: Option<unsafe extern "C" fn(*mut c_void) -> i32>,
        data: *mut c_void,
        cpu: u32,
        namefmt: *const kernel::ffi::c_char,
    ) -> *mut c_void;
}

/// A counting completion (C's `struct completion` used with `complete()`).
///
/// Every [`Completion::complete`] lets exactly one [`Completion::wait`] through, so a pair used
/// alternately never needs `reinit_completion()`.
///
/// Where it does the job, the module uses the `kernel` crate's [`kernel::sync::Completion`]
/// (the layer's `scope`). This wrapper stays for what 7.3's lacks: that one offers only
/// `complete_all()` and the uninterruptible `wait_for_completion()`, while
/// - the benchmark and the `edu` driver need `wait_for_completion_killable()` (a user task
///   waiting on them must die on `SIGKILL`) and `complete()` (one waiter per event: the
///   benchmark's rounds reuse their completions without re-initialising);
/// - `irq_work.rs` completes from a hard-interrupt handler, where C allows `complete()` but not
///   `complete_all()`: `complete_all()` asserts a threaded context for `PREEMPT_RT`
///   (`lockdep_assert_RT_in_threaded_ctx()`, `kernel/sched/completion.c:76`; tried: the
///   debug kernel warns "Not in threaded context on PREEMPT_RT as expected").
///
/// # Invariants
///
/// `inner` is an initialised `struct completion`.
#[pin_data]
pub(crate) struct Completion {
    #[pin]
    inner: Opaque<bindings::completion>,
}

// SAFETY: `complete()` and `wait_for_completion()` may be called from any thread; the C
// completion has its own lock.
unsafe impl Send for Completion {}
// SAFETY: As above: every `&self` method is a C call that locks internally.
unsafe impl Sync for Completion {}

impl Completion {
    /// Creates a completion with nothing completed yet.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `init_completion` initialises the slot completely; it is pinned from now on.
            // INVARIANT: Initialised here.
            inner <- Opaque::ffi_init(|slot| unsafe { bindings::init_completion(slot) }),
        })
    }

    /// Lets one waiter through, now or later (C's `complete()`). Does not sleep.
    pub(crate) fn complete(&self) {
        // SAFETY: `inner` is initialised by the type invariant.
        unsafe { bindings::complete(self.inner.get()) }
    }

    /// Lets every waiter through, now and later (C's `complete_all()`).
    pub(crate) fn complete_all(&self) {
        // SAFETY: `inner` is initialised by the type invariant.
        unsafe { bindings::complete_all(self.inner.get()) }
    }

    /// Sleeps until a [`Completion::complete`] is available and consumes it
    /// (C's `wait_for_completion()`).
    pub(crate) fn wait(&self) {
        // SAFETY: `inner` is initialised by the type invariant; we may sleep (process context
        // is required of callers, and the debug kernel checks it).
        unsafe { bindings::wait_for_completion(self.inner.get()) }
    }

    /// Like [`Completion::wait`], but a fatal signal (`SIGKILL`, or a signal that kills the
    /// process) ends the wait (C's `wait_for_completion_killable()`).
    ///
    /// Returns [`ERESTARTSYS`] if the wait ended that way; nothing is consumed then.
    pub(crate) fn wait_killable(&self) -> Result {
        // SAFETY: As in `wait`.
        let ret = unsafe { bindings::wait_for_completion_killable(self.inner.get()) };
        kernel::error::to_result(ret)
    }
}

/// Returns the CPU time the calling task has used so far, in ns (user and system).
///
/// Calls the scheduler first (`schedule()` with the task runnable: a scheduling point), which
/// brings the task's run time up to date; otherwise it only advances at ticks and context
/// switches. Time the task spends blocked (sleeping) or waiting for a CPU is not counted, so
/// the difference between the wall-clock time and this over an interval is the time the task
/// was off the CPU. (The task's own counters, such as `nvcsw`, cannot be read from Rust here:
/// this toolchain's bindings lay out `struct task_struct` differently from the C compiler:
/// bindgen sees `struct sched_statistics` as empty.)
pub(crate) fn cpu_time_ns() -> u64 {
    yield_cpu();
    // SAFETY: No preconditions: it reads the current task's times (`task_cputime_adjusted()`
    // only reads the task and updates its own `prev_cputime` under that structure's lock).
    unsafe { rust_wq_task_cputime_ns() }
}

/// A scheduling point for long loops in process context: lets other runnable tasks have the CPU
/// (C's `cond_resched()` is a static inline, out of reach from here; `schedule()` with the task
/// `TASK_RUNNING` does the same, only unconditionally). Must not be called in atomic context.
pub(crate) fn schedule_point() {
    yield_cpu();
}

/// Returns the monotonic clock (nanoseconds since boot), with a direct call to C's `ktime_get()`.
///
/// The benchmark times single calls with it, like `lib/test_workqueue.c` does;
/// `kernel::time::Instant::now()` goes through a non-inlined wrapper in the `kernel` crate,
/// whose extra call and return would land inside the timed region.
#[inline(always)]
pub(crate) fn ktime_ns() -> i64 {
    // SAFETY: `ktime_get` has no preconditions.
    unsafe { bindings::ktime_get() }
}

/// Proof that the caller is the kthread of a [`KThread`]: only such a thread gets one.
///
/// # Invariants
///
/// Only made in the C thread function of [`KThread::spawn_on`], for that thread; not `Send`.
pub(crate) struct StopToken {
    _not_send: core::marker::PhantomData<*mut ()>,
}

impl StopToken {
    /// Returns whether this kthread has been asked to stop (C's `kthread_should_stop()`).
    pub(crate) fn should_stop(&self) -> bool {
        // SAFETY: By the type invariant the caller is a kthread, as the C function requires.
        unsafe { bindings::kthread_should_stop() }
    }
}

/// Gives up the CPU to other runnable tasks (C's `schedule()` with the task still runnable).
///
/// Must not be called in atomic context. That is not enforced by the type system (safe Rust
/// for Linux does not track atomic context); `might_sleep()` makes the debug kernel report a
/// wrong call, and `schedule()` itself reports "scheduling while atomic".
pub(crate) fn yield_cpu() {
    kernel::task::might_sleep();
    // SAFETY: Calling `schedule()` with the task in `TASK_RUNNING` just lets others run; from
    // atomic context it would be a bug, which the kernel reports (see above), not UB in Rust.
    unsafe { bindings::schedule() }
}

/// A kernel thread bound to one CPU, stopped and reaped when dropped.
///
/// # Stopping
///
/// Dropping a `KThread` asks the thread to stop (`kthread_stop()`) and waits, uninterruptibly
/// and without a bound, until its closure has returned: a closure must poll
/// [`StopToken::should_stop`] (or finish on its own). One that ignores it hangs the dropping
/// thread (and the hung-task detector reports it), as C's `kthread_stop()` would.
///
/// # Leaks
///
/// Leaking a `KThread` (`mem::forget`, a reference cycle) is safe Rust, but the thread then
/// keeps running the module's code after the module is unloaded. Rust cannot prevent a leak, so
/// this is a rule for the module, not a guarantee of the type: the type is `pub(crate)`, and
/// its users (the benchmark, the tests) keep each `KThread` in a local or a vector that is
/// dropped before they return, which is before the module can be unloaded.
///
/// # CPU hotplug
///
/// [`KThread::spawn_on`] refuses an offline CPU, and the CPU cannot go down while the thread is
/// made and bound. If it goes down later, the scheduler moves the thread to another CPU (and
/// logs that it is no longer affine): a `KThread` is not an `smpboot` per-CPU thread.
///
/// # Invariants
///
/// `task` is a kthread made by `kthread_create_on_cpu()` whose task reference this value holds
/// (released by `kthread_stop_put()` in `Drop`), and `data` is the `KBox<F>` that it runs,
/// which the thread frees if it starts, and `Drop` frees if it never did.
pub(crate) struct KThread {
    task: NonNull<bindings::task_struct>,
    data: *mut c_void,
    free_data: unsafe fn(*mut c_void),
}

// SAFETY: A kthread may be stopped from any thread; the closure it runs is `Send`.
unsafe impl Send for KThread {}

impl KThread {
    /// Starts `f` on a new kernel thread bound to `cpu`, named `{name}/{cpu}` (the kernel keeps
    /// 15 bytes). `name` is plain text: a `%` in it is not a format. `f` gets a [`StopToken`].
    ///
    /// [`ENODEV`] if `cpu` is offline. Sleeps.
    pub(crate) fn spawn_on<F>(cpu: CpuId, name: &CStr, f: F) -> Result<Self>
    where
        F: FnOnce(&StopToken) + Send + 'static,
    {
        /// The C thread function: runs the closure.
        ///
        /// # Safety
        ///
        /// `data` must be the leaked `KBox<F>` made by `spawn_on`, used by nobody else.
        unsafe extern "C" fn run<F: FnOnce(&StopToken)>(data: *mut c_void) -> i32 {
            // SAFETY: `data` is the `KBox<F>` leaked by `spawn_on`, and the thread that runs
            // this is its only user from now on (`Drop` frees it only if this never ran).
            let f = unsafe { KBox::from_raw(data.cast::<F>()) };
            // INVARIANT: Made in this kthread's own function, and not `Send`.
            let token = StopToken {
                _not_send: core::marker::PhantomData,
            };
            (KBox::into_inner(f))(&token);
            0
        }

        /// # Safety
        ///
        /// `data` must be the leaked `KBox<F>` of a thread that never ran `run`.
        unsafe fn free<F>(data: *mut c_void) {
            // SAFETY: Guaranteed by the caller.
            drop(unsafe { KBox::from_raw(data.cast::<F>()) });
        }

        // The C name is a format whose one `%u` is the CPU: copy `name` with every `%` doubled
        // (so it prints as itself), then add `/%u`. Truncated names stay valid formats.
        let mut fmt = [0u8; 48];
        let mut n = 0;
        for &b in name.to_bytes() {
            let need = if b == b'%' { 2 } else { 1 };
            if n + need > fmt.len() - 4 {
                break;
            }
            fmt[n] = b;
            if b == b'%' {
                fmt[n + 1] = b'%';
            }
            n += need;
        }
        fmt[n..n + 3].copy_from_slice(b"/%u");
        let data = KBox::into_raw(KBox::new(f, GFP_KERNEL)?).cast::<c_void>();
        // SAFETY: `run::<F>` matches `data`; `fmt` is NUL-terminated (zeroed past `n + 3`) with
        // exactly one conversion, `%u`, which the C side fills with `cpu` (a valid CPU id). On
        // success the C side has taken a task reference (dropped in `Drop`) and woken the
        // thread; we may sleep.
        let task = unsafe {
            rust_wq_kthread_run_on_online_cpu(Some(run::<F>), data, cpu.as_u32(), fmt.as_ptr())
        };
        let task = match from_err_ptr(task) {
            Ok(t) => t.cast::<bindings::task_struct>(),
            Err(e) => {
                // SAFETY: No thread exists (offline CPU or failed creation), so `run` never
                // took `data`.
                unsafe { free::<F>(data) };
                return Err(e);
            }
        };
        // INVARIANT: A created, referenced, woken kthread running `data`.
        Ok(Self {
            // `from_err_ptr` only returns non-error pointers, and `kthread_create` never NULL.
            task: NonNull::new(task).ok_or(ENOMEM)?,
            data,
            free_data: free::<F>,
        })
    }
}

impl Drop for KThread {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we hold a reference to a kthread; `kthread_stop_put`
        // waits for it to exit (after its function returned) and drops the reference.
        let ret = unsafe { bindings::kthread_stop_put(self.task.as_ptr()) };
        if ret == -(bindings::EINTR as i32) {
            // Stopped before its function ran: the closure was never taken.
            // SAFETY: `data` belongs to a thread that never ran `run`.
            unsafe { (self.free_data)(self.data) };
        }
    }
}

/// Suite `rust_wq_kthread`: [`KThread`] and [`Completion`].
#[kernel::prelude::kunit_tests(rust_wq_kthread)]
mod tests {
    use super::{
        Completion,
        KThread, //
    };
    use crate::workqueue::cpu;
    use crate::workqueue::tests::wait_until;
    use core::sync::atomic::{
        AtomicU32,
        Ordering::SeqCst, //
    };
    use kernel::{
        prelude::*,
        sync::Arc, //
    };

    #[test]
    fn kthread_name_with_percent_is_text() -> Result {
        let ran = Arc::new(AtomicU32::new(0), GFP_KERNEL)?;
        let r = ran.clone();
        let c = cpu::online_cpu(0)?;
        let t = KThread::spawn_on(c, c"rq%s%n%x", move |stop| {
            r.fetch_add(1, SeqCst);
            while !stop.should_stop() {
                super::yield_cpu();
            }
        })?;
        assert!(wait_until(5000, || ran.load(SeqCst) == 1));
        // Had the name been used as a format, `%s` would read the CPU number as a pointer and
        // `%n` would make vsnprintf() warn: the kernel-log scan of `make check` sees either.

        drop(t);
        Ok(())
    }

    #[test]
    fn kthread_bound_and_counting_completion() -> Result {
        let mut last = 0;
        for c in 0..cpu::nr_cpu_ids() {
            if cpu::online_cpu(c).is_ok() {
                last = c;
            }
        }
        let done = Arc::pin_init(Completion::new(), GFP_KERNEL)?;
        let seen = Arc::new(AtomicU32::new(u32::MAX), GFP_KERNEL)?;
        let (d, s) = (done.clone(), seen.clone());
        let t = KThread::spawn_on(cpu::online_cpu(last)?, c"rwq_test", move |_stop| {
            s.store(kernel::cpu::CpuId::current().as_u32(), SeqCst);
            d.complete();
            d.complete();
        })?;
        done.wait();
        done.wait();
        assert_eq!(seen.load(SeqCst), last);
        drop(t);
        Ok(())
    }

    #[test]
    #[cfg(CONFIG_HOTPLUG_CPU)]
    fn spawn_on_an_offline_cpu_is_enodev() -> Result {
        let last = (0..cpu::nr_cpu_ids())
            .rev()
            .find(|&c| cpu::online_cpu(c).is_ok())
            .unwrap_or(0);
        if last == 0 {
            // One CPU online: none can be taken offline.
            return Ok(());
        }
        let id = cpu::cpu_id(last)?;
        let ran = Arc::new(AtomicU32::new(0), GFP_KERNEL)?;
        // SAFETY: `remove_cpu` takes the device-hotplug lock itself and may sleep (we may).
        kernel::error::to_result(unsafe { kernel::bindings::remove_cpu(last) })?;
        let r = ran.clone();
        let t = KThread::spawn_on(id, c"rwq_offline", move |_stop| {
            r.fetch_add(1, SeqCst);
        });
        // SAFETY: As above; brings back the CPU taken offline there.
        let back = unsafe { kernel::bindings::add_cpu(last) };
        // Without the check the thread would have been made, bound to the offline CPU, and run
        // elsewhere.
        assert_eq!(t.err(), Some(ENODEV));
        assert_eq!(back, 0);
        assert_eq!(ran.load(SeqCst), 0);
        // Back online: the same spawn works.
        let r = ran.clone();
        let t = KThread::spawn_on(id, c"rwq_offline", move |_stop| {
            r.fetch_add(1, SeqCst);
        })?;
        assert!(wait_until(5000, || ran.load(SeqCst) == 1));
        drop(t);
        Ok(())
    }
}
