use crate::workqueue::{declare_delayed_work, Delay};
use kernel::{prelude::*, time::Delta};

fn poll() {
    pr_debug!("poll\n");
}

declare_delayed_work!(static POLL = poll, deferrable);

pub(crate) fn example() -> Result {
    POLL.schedule(Delay::try_from(Delta::from_millis(100))?);
    // Cancelled before the timer fired: `true`.
    if !POLL.cancel_sync() || !POLL.is_deferrable() {
        return Err(EINVAL);
    }
    Ok(())
}
