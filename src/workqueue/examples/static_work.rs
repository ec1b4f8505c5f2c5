use crate::workqueue::declare_work;
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::prelude::*;

static TICKS: AtomicU32 = AtomicU32::new(0);

fn tick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
}

declare_work!(static TICK = tick);

pub(crate) fn example() -> Result {
    let before = TICKS.load(Ordering::Relaxed);
    TICK.schedule();
    TICK.flush();
    if TICKS.load(Ordering::Relaxed) != before + 1 {
        return Err(EINVAL);
    }
    Ok(())
}
