// SPDX-License-Identifier: GPL-2.0

//! [`Queue::try_spawn`]: a closure queued as a boxed work item (upstream 7.3's
//! `kernel::workqueue::Queue::try_spawn`, on this layer's queues).
//!
//! The closure lives in a `Pin<KBox<_>>` item with this layer's [`Work`] field; its `run` takes
//! the closure out and calls it once. The box is freed when `run` returns. Allocation failure is
//! an error ([`AllocError`]), never a panic.

use super::{
    impl_has_work,
    new_work,
    queue::Queue,
    Work,
    WorkItem, //
};
use kernel::{
    alloc::{
        AllocError,
        Flags, //
    },
    prelude::*,
};

/// The item of one [`Queue::try_spawn`] call: the closure, taken out when it runs.
#[pin_data]
struct ClosureWork<F> {
    #[pin]
    work: Work<ClosureWork<F>>,
    func: Option<F>,
}

impl_has_work! { impl{F} HasWork<Self> for ClosureWork<F> { self.work } }

impl<F: FnOnce() + Send + 'static> WorkItem for ClosureWork<F> {
    type Pointer = Pin<KBox<Self>>;

    fn run(mut this: Pin<KBox<Self>>) {
        // `func` is not structurally pinned: taking it out does not move the pinned `work`.
        if let Some(func) = this.as_mut().project().func.take() {
            func();
        }
    }
}

impl Queue {
    /// Queues `func` to run once in a worker of this queue, in process context (it may sleep).
    ///
    /// The closure is moved into a new boxed work item allocated with `flags`; if that
    /// allocation fails, [`AllocError`] is returned and `func` is dropped without running.
    /// Callable from any context in which an allocation with `flags` is (`GFP_ATOMIC` from
    /// atomic context). On an [`Workqueue`](super::Workqueue) (through `Deref`), the queue's
    /// drop, `flush` and `drain` wait for the closure like for any item queued on it.
    ///
    /// # Examples
    ///
    /// The KUnit case `rust_wq_api::try_spawn_runs_the_closure_in_a_worker_of_the_queue` runs
    /// this on `system_dfl()` and on an owned queue.
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) fn try_spawn<F>(&self, flags: Flags, func: F) -> Result<(), AllocError>
    where
        F: FnOnce() + Send + 'static,
    {
        let init = pin_init!(ClosureWork {
            work <- new_work!("Queue::try_spawn"),
            func: Some(func),
        });
        let item = KBox::pin_init(init, flags).map_err(|_| AllocError)?;
        // A new item is neither pending nor disabled, so the queue takes it. Were it refused,
        // the box would come back and be dropped here (the closure with it, not run): say so
        // with an error rather than report a closure queued that never runs.
        self.enqueue(item).map_err(|_| AllocError)
    }
}
