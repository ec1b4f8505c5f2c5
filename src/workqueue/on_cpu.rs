// SPDX-License-Identifier: GPL-2.0

//! [`work_on_cpu!`]: run a closure in a worker thread bound to a given CPU and return its value
//! (C's `work_on_cpu_safe()`, built on the exported `work_on_cpu_key()`).
//!
//! The call is synchronous, so the closure may borrow the caller's stack, as with
//! `std::thread::scope`. The CPU-hotplug read lock is held for the whole call, so the CPU
//! checked online stays online and the closure really runs there (C's plain `work_on_cpu()`
//! leaves that to the caller; an item queued on a CPU that goes offline runs elsewhere).

use super::cpu;
use core::ffi::c_void;
use kernel::{
    bindings,
    error::code::*,
    ffi::c_long,
    prelude::*,
    sync::LockClassKey, //
};

/// The closure and its result, on the caller's stack for the duration of the call.
struct Call<F, R> {
    f: Option<F>,
    ret: Option<R>,
}

/// The C function `work_on_cpu_key()` calls in the worker.
///
/// # Safety
///
/// `arg` points at a live `Call<F, R>` that nothing else touches until the call returns.
unsafe extern "C" fn trampoline<F: FnOnce() -> R, R>(arg: *mut c_void) -> c_long {
    // SAFETY: Guaranteed by the caller: the caller of `work_on_cpu_key` waits, without touching
    // `call`, until this function has returned.
    let call = unsafe { &mut *arg.cast::<Call<F, R>>() };
    if let Some(f) = call.f.take() {
        call.ret = Some(f());
    }
    0
}

/// Holds the CPU-hotplug read lock (`cpus_read_lock()`): no CPU goes online or offline.
struct HotplugReadGuard(());

impl HotplugReadGuard {
    fn new() -> Self {
        // SAFETY: No preconditions beyond sleeping, which our caller allows; released in `drop`.
        unsafe { super::helpers::rust_wq_cpus_read_lock() };
        HotplugReadGuard(())
    }
}

impl Drop for HotplugReadGuard {
    fn drop(&mut self) {
        // SAFETY: Taken in `new` by this thread.
        unsafe { super::helpers::rust_wq_cpus_read_unlock() };
    }
}

/// Runs `f` in a worker thread on `cpu` (the system per-CPU queue), waits for it and returns
/// its value. Use [`work_on_cpu!`], which gives each call site its own lock class.
///
/// [`EINVAL`] if `cpu` is not below `nr_cpu_ids`, [`ENODEV`] if it is offline; `f` is then
/// not called. Sleeps. As in C, the caller must not hold a lock that `f` takes (it waits for
/// `f`). The CPU-hotplug lock is held for reading during the whole call, so `f` must not take
/// it, and the caller must not hold it for writing (a CPU-hotplug callback).
pub(crate) fn work_on_cpu_key<F, R>(cpu: u32, key: Pin<&'static LockClassKey>, f: F) -> Result<R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    kernel::task::might_sleep();
    let id = cpu::cpu_id(cpu)?;
    let mut call = Call {
        f: Some(f),
        ret: None,
    };
    {
        let _hotplug = HotplugReadGuard::new();
        if !cpu::is_online(id) {
            return Err(ENODEV);
        }
        // SAFETY: `cpu` is online and stays online (hotplug read lock held). `trampoline`
        // matches `call`'s type; `call` lives on this stack until after the call, which returns
        // only when the item has run (`flush_work()`); nothing else touches `call` meanwhile.
        // `F` and `R` are `Send`, so running `f` and handing `R` over on the worker is fine.
        // `key` is static.
        unsafe {
            bindings::work_on_cpu_key(
                cpu as i32,
                Some(trampoline::<F, R>),
                core::ptr::from_mut(&mut call).cast(),
                key.as_ptr(),
            )
        };
    }
    // `work_on_cpu_key()` returns after the item ran, so `ret` is set; `EINVAL` is unreachable.
    call.ret.ok_or(EINVAL)
}

/// Runs a closure on a CPU in a worker thread and returns its value: C's `work_on_cpu()`.
///
/// `work_on_cpu!(cpu, || expr)` is `Result<R>`: [`EINVAL`] for a CPU number past
/// `nr_cpu_ids`, [`ENODEV`] for an offline CPU. Each call site gets its own lock class, as in C.
///
/// ```ignore
/// let total = work_on_cpu!(2, || read_counter_of_this_cpu())?;
/// ```
macro_rules! work_on_cpu {
    ($cpu:expr, $f:expr) => {
        $crate::workqueue::on_cpu::work_on_cpu_key($cpu, ::kernel::static_lock_class!(), $f)
    };
}
pub(crate) use work_on_cpu;
