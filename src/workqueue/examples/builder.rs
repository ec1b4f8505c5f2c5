use crate::workqueue::Workqueue;
use kernel::{bindings, prelude::*};

pub(crate) fn example() -> Result {
    let builder = Workqueue::builder().percpu().highpri().max_active(4)?;
    let want = bindings::wq_flags_WQ_PERCPU | bindings::wq_flags_WQ_HIGHPRI;
    if builder.raw_flags() != want {
        return Err(EINVAL);
    }
    let wq = builder.build(fmt!("my_wq/{}", 0))?;
    wq.flush();
    Ok(())
}
