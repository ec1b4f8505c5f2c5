use crate::workqueue::{impl_has_work, new_work, system_percpu, EnqueueError, Work, WorkItem};
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::{prelude::*, sync::Arc};

#[pin_data]
struct Job {
    #[pin]
    work: Work<Job>,
    runs: AtomicU32,
}

impl_has_work! { impl HasWork<Self> for Job { self.work } }

impl WorkItem for Job {
    type Pointer = Arc<Job>;

    fn run(job: Arc<Job>) {
        job.runs.fetch_add(1, Ordering::Relaxed);
    }
}

pub(crate) fn example() -> Result {
    let job = Arc::pin_init(
        pin_init!(Job { work <- new_work!("Job::work"), runs: AtomicU32::new(0) }),
        GFP_KERNEL,
    )?;
    match system_percpu().enqueue(job.clone()) {
        Ok(()) => {}
        // Pending, or being cancelled by another context: the pointer comes back.
        Err(EnqueueError::Pending(job)) => drop(job),
        // Disabled: not queued, the pointer comes back.
        Err(EnqueueError::Disabled(job)) => drop(job),
    }
    job.work.flush();
    // A disabled item is refused, with its pointer.
    if job.work.disable().is_some() {
        return Err(EINVAL); // It was not pending any more.
    }
    let refused = matches!(
        system_percpu().enqueue(job.clone()),
        Err(EnqueueError::Disabled(_))
    );
    job.work.enable();
    if !refused || job.runs.load(Ordering::Relaxed) != 1 {
        return Err(EINVAL);
    }
    Ok(())
}
