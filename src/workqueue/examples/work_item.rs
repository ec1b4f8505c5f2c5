use crate::workqueue::{impl_has_work, new_work, system_dfl, Work, WorkItem};
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::{prelude::*, sync::Arc};

/// An item of any payload type with two work fields (ids 0 and 1).
#[pin_data]
struct Wrapper<T> {
    #[pin]
    first: Work<Wrapper<T>>,
    #[pin]
    second: Work<Wrapper<T>, 1>,
    payload: T,
    runs: AtomicU32,
}

impl_has_work! {
    impl{T} HasWork<Self> for Wrapper<T> { self.first }
    impl{T: Send} HasWork<Wrapper<T>, 1> for Wrapper<T> { self.second }
}

impl<T: Send + Sync + 'static> WorkItem for Wrapper<T> {
    type Pointer = Arc<Self>;

    fn run(this: Arc<Self>) {
        this.runs.fetch_add(1, Ordering::Relaxed);
    }
}

impl<T: Send + Sync + 'static> WorkItem<1> for Wrapper<T> {
    type Pointer = Arc<Self>;

    fn run(this: Arc<Self>) {
        this.runs.fetch_add(10, Ordering::Relaxed);
    }
}

pub(crate) fn example() -> Result {
    let w = Arc::pin_init(
        pin_init!(Wrapper {
            first <- new_work!("Wrapper::first"),
            second <- new_work!("Wrapper::second"),
            payload: [0u8; 4],
            runs: AtomicU32::new(0),
        }),
        GFP_KERNEL,
    )?;
    system_dfl().enqueue::<_, _, 0>(w.clone())?;
    system_dfl().enqueue::<_, _, 1>(w.clone())?;
    w.first.flush();
    w.second.flush();
    if w.runs.load(Ordering::Relaxed) != 11 || w.payload.len() != 4 {
        return Err(EINVAL);
    }
    Ok(())
}
