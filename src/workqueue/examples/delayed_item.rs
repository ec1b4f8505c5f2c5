use crate::workqueue::{
    impl_has_delayed_work, new_delayed_work, system_dfl, Delay, DelayedWork, DelayedWorkItem,
};
use kernel::{prelude::*, sync::Arc, time::Delta};

/// A poller of any state type, with a deferrable timer.
#[pin_data]
struct Poll<T> {
    #[pin]
    poll: DelayedWork<Poll<T>, 1>,
    state: T,
}

impl_has_delayed_work! { impl{T: Send} HasDelayedWork<Poll<T>, 1> for Poll<T> { self.poll } }

impl<T: Send + Sync + 'static> DelayedWorkItem<1> for Poll<T> {
    type Pointer = Arc<Self>;

    fn run(_this: Arc<Self>) {}
}

pub(crate) fn example() -> Result {
    let p = Arc::pin_init(
        pin_init!(Poll { poll <- new_delayed_work!("Poll::poll", deferrable), state: 0u64 }),
        GFP_KERNEL,
    )?;
    let delay = Delay::try_from(Delta::from_secs(10))?;
    system_dfl().enqueue_delayed::<_, _, 1>(p.clone(), delay)?;
    // Cancelled before its timer fired: the queue's pointer comes back.
    match p.poll.cancel_sync() {
        Some(back) => drop(back),
        None => return Err(EINVAL),
    }
    if p.state != 0 {
        return Err(EINVAL);
    }
    Ok(())
}
