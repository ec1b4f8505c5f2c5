use crate::workqueue::work_on_cpu;
use kernel::{cpu::CpuId, prelude::*};

pub(crate) fn example() -> Result {
    // CPU 0 is online on every machine this runs on; the closure's value comes back.
    let ran_on = work_on_cpu!(0, || CpuId::current().as_u32())?;
    if ran_on != 0 {
        return Err(EINVAL);
    }
    Ok(())
}
