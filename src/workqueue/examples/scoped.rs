use crate::workqueue::{scope, system_dfl};
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::prelude::*;
use pin_init::stack_pin_init;

pub(crate) fn example() -> Result {
    let total = AtomicU32::new(0);
    let step = 3;
    scope(|s| -> Result {
        // The item borrows `total` and `step` from this stack frame.
        stack_pin_init!(let w = s.work(|| { total.fetch_add(step, Ordering::Relaxed); }));
        // Bound to the first queue it is queued on (another one is `EINVAL`).
        w.as_ref().enqueue(system_dfl())?;
        w.as_ref().flush();
        // `w` is dropped here: cancelled, or waited for if running.
        Ok(())
    })?;
    if total.load(Ordering::Relaxed) != step {
        return Err(EINVAL);
    }
    Ok(())
}
