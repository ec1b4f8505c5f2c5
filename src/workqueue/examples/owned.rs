use crate::workqueue::{
    impl_has_delayed_work, new_delayed_work, Delay, DelayedWork, DelayedWorkItem, Workqueue,
};
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::{prelude::*, sync::Arc, time::Delta};

#[pin_data]
struct Timeout {
    #[pin]
    work: DelayedWork<Timeout>,
    fired: AtomicU32,
}

impl_has_delayed_work! { impl HasDelayedWork<Self> for Timeout { self.work } }

impl DelayedWorkItem for Timeout {
    type Pointer = Arc<Timeout>;

    fn run(t: Arc<Timeout>) {
        t.fired.fetch_add(1, Ordering::Relaxed);
    }
}

pub(crate) fn example() -> Result {
    let job = Arc::pin_init(
        pin_init!(Timeout { work <- new_delayed_work!("Timeout::work"), fired: AtomicU32::new(0) }),
        GFP_KERNEL,
    )?;
    let wq = Workqueue::builder()
        .unbound()
        .mem_reclaim()
        .build(fmt!("my_wq"))?;
    wq.enqueue_delayed(job.clone(), Delay::try_from(Delta::from_millis(100))?)?;
    // Cancels the armed timer, gives the queue's pointer to `job` back, destroys the queue.
    drop(wq);
    if job.fired.load(Ordering::Relaxed) != 0 || job.work.is_pending() {
        return Err(EINVAL);
    }
    Ok(())
}
