use crate::workqueue::{
    impl_has_work_field, new_delayed_work, system_dfl, Delay, DelayedWork, DelayedWorkItem,
};
use kernel::{prelude::*, sync::Arc};

#[pin_data]
struct Job {
    #[pin]
    timeout: DelayedWork<Job>,
}

// What `impl_has_delayed_work!` expands to; `Job` is then a `HasDelayedWork`.
impl_has_work_field! { impl HasWorkField<DelayedWork<Job, 0>> for Job { self.timeout } }

impl DelayedWorkItem for Job {
    type Pointer = Arc<Job>;

    fn run(_job: Arc<Job>) {}
}

pub(crate) fn example() -> Result {
    let job = Arc::pin_init(
        pin_init!(Job { timeout <- new_delayed_work!("Job::timeout") }),
        GFP_KERNEL,
    )?;
    system_dfl().enqueue_delayed(job.clone(), Delay::ZERO)?;
    job.timeout.flush();
    Ok(())
}
