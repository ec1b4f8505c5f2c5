// SPDX-License-Identifier: GPL-2.0

//! [`work_on_cpu!`]: run a closure in a worker thread bound to a given CPU and return its value
//! (C's `work_on_cpu_safe()`, built on the exported `work_on_cpu_key()`).
//!
//! The call is synchronous, so the closure may borrow the caller's stack, as with
//! `std::thread::scope`.
//!
//! No CPU-hotplug lock is held across the wait (C's `work_on_cpu_safe()` holds
//! `cpus_read_lock()` there). Holding it would record "hotplug lock, then this call site's
//! work" in lockdep, and the worker records the reverse as soon as the closure takes the
//! hotplug lock, a nested `work_on_cpu!` included: a lockdep cycle, and a real deadlock when a
//! CPU-hotplug writer is waiting (the writer waits for the outer reader, the outer reader for
//! the worker, the worker's read behind the writer). Instead:
//!
//! - the CPU is checked online before queueing, so the item goes to a CPU that has workers
//!   (queueing on a CPU that was never online would never run it);
//! - the worker checks that it runs on `cpu` before it calls the closure. A CPU that goes down
//!   after the check has its pending items run elsewhere; the closure is then not called and
//!   the call returns `ENODEV`. Once it started on `cpu`, the closure runs there unless the CPU
//!   goes offline under it, as in C's plain `work_on_cpu()`.

use super::cpu;
use core::ffi::c_void;
use kernel::{
    bindings,
    error::code::*,
    ffi::c_long,
    prelude::*,
    sync::LockClassKey, //
};

/// The closure, the CPU it must run on, and its result, on the caller's stack for the duration
/// of the call.
struct Call<F, R> {
    f: Option<F>,
    cpu: u32,
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
    // A worker of a per-CPU pool is bound to its CPU while that CPU is online; if the CPU went
    // down before the item ran, the item runs on another CPU and `f` is not called.
    if kernel::cpu::CpuId::current().as_u32() == call.cpu {
        if let Some(f) = call.f.take() {
            call.ret = Some(f());
        }
    }
    0
}

/// Runs `f` in a worker thread on `cpu` (the system per-CPU queue), waits for it and returns
/// its value. Use [`work_on_cpu!`], which gives each call site its own lock class.
///
/// [`EINVAL`] if `cpu` is not below `nr_cpu_ids`, [`ENODEV`] if it is offline (at the call, or
/// when the item is about to run); `f` is then not called. Sleeps. As in C, the caller must not
/// hold a lock that `f` takes (it waits for `f`); `f` may take the CPU-hotplug read lock and may
/// call `work_on_cpu!` itself.
#[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
pub(crate) fn work_on_cpu_key<F, R>(cpu: u32, key: Pin<&'static LockClassKey>, f: F) -> Result<R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    kernel::task::might_sleep();
    let id = cpu::cpu_id(cpu)?;
    // Online now means it has been online, so it has workers: the item runs, here or (if the
    // CPU goes down meanwhile) elsewhere, and `work_on_cpu_key()` returns.
    if !cpu::is_online(id) {
        return Err(ENODEV);
    }
    let mut call = Call {
        f: Some(f),
        cpu,
        ret: None,
    };
    // SAFETY: `cpu` is below `nr_cpu_ids` and has been online (checked above), so the item runs
    // and the call returns. `trampoline` matches `call`'s type; `call` lives on this stack until
    // after the call, which returns only when the item has run (`flush_work()`); nothing else
    // touches `call` meanwhile. `F` and `R` are `Send`, so running `f` and handing `R` over on
    // the worker is fine. `key` is static.
    unsafe {
        bindings::work_on_cpu_key(
            cpu as i32,
            Some(trampoline::<F, R>),
            core::ptr::from_mut(&mut call).cast(),
            key.as_ptr(),
        )
    };
    // `ret` is unset only if the item ran on another CPU: `cpu` went offline meanwhile.
    call.ret.ok_or(ENODEV)
}

/// Runs a closure on a CPU in a worker thread and returns its value: C's `work_on_cpu()`.
///
/// `work_on_cpu!(cpu, || expr)` is `Result<R>`: [`EINVAL`] for a CPU number past
/// `nr_cpu_ids`, [`ENODEV`] for an offline CPU. Each call site gets its own lock class, as in C.
///
/// The example below is `src/workqueue/examples/on_cpu.rs`, which the KUnit case
/// `rust_wq_examples::example_on_cpu` compiles and runs:
///
#[doc = concat!("```\n", include_str!("examples/on_cpu.rs"), "```")]
#[cfg_attr(
    not(CONFIG_KUNIT),
    expect(unused_macros, reason = "used by KUnit only")
)]
macro_rules! work_on_cpu {
    ($cpu:expr, $f:expr) => {
        $crate::workqueue::on_cpu::work_on_cpu_key($cpu, ::kernel::static_lock_class!(), $f)
    };
}
pub(crate) use work_on_cpu;
