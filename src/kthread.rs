// SPDX-License-Identifier: GPL-2.0

//! Kernel threads bound to a CPU, and a counting completion: what the benchmark needs and the
//! 7.3 `kernel` crate lacks.
//!
//! C headers: [`include/linux/kthread.h`](srctree/include/linux/kthread.h),
//! [`include/linux/completion.h`](srctree/include/linux/completion.h)

use crate::workqueue::cpu::CpuId;
use core::{ffi::c_void, ptr::NonNull};
use kernel::{bindings, error::from_err_ptr, prelude::*, types::Opaque};

/// A counting completion (C's `struct completion` used with `complete()`).
///
/// Every [`Completion::complete`] lets exactly one [`Completion::wait`] through, so a pair used
/// alternately never needs `reinit_completion()`.
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
pub(crate) fn yield_cpu() {
    // SAFETY: Calling `schedule()` from a sleepable context with the task in `TASK_RUNNING`
    // just lets others run; kthreads run in such a context.
    unsafe { bindings::schedule() }
}

/// A kernel thread bound to one CPU, stopped and reaped when dropped.
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
        // exactly one conversion, `%u`, which the C side fills with `cpu` (a valid CPU id).
        let task = unsafe {
            bindings::kthread_create_on_cpu(Some(run::<F>), data, cpu.as_u32(), fmt.as_ptr())
        };
        let task = match from_err_ptr(task) {
            Ok(t) => t,
            Err(e) => {
                // SAFETY: No thread exists, so `run` never took `data`.
                unsafe { free::<F>(data) };
                return Err(e);
            }
        };
        // SAFETY: `task` is a valid, newly created task; the reference is dropped in `Drop`.
        unsafe { bindings::get_task_struct(task) };
        // SAFETY: `task` is a valid task that we hold a reference to.
        unsafe { bindings::wake_up_process(task) };
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
