// SPDX-License-Identifier: GPL-2.0

//! Checks of the ioctl arguments of `/dev/rust_wq`: each returns `EINVAL` for an argument the
//! header (`include/rust_wq.h`) does not allow, before anything is done.

use crate::abi::{
    self,
    Enqueue,
    ModDelay,
    Results,
    Target, //
};
use kernel::prelude::*;

/// ENQUEUE: version, reserved fields, flags (at most one context) and the ranges.
pub(super) fn enqueue(req: &Enqueue) -> Result {
    if req.version != abi::ABI_VERSION
        || req.reserved != [0; 1]
        || req.flags & !abi::ENQ_F_ALL != 0
        || req.flags.count_ones() > 1
    {
        return Err(EINVAL);
    }
    if req.queue >= abi::Q_COUNT
        || req.count == 0
        || req.count > abi::MAX_COUNT
        || req.delay_us > abi::MAX_DELAY_US
        || req.sleep_us > abi::MAX_SLEEP_US
    {
        return Err(EINVAL);
    }
    Ok(())
}

/// FLUSH and CANCEL: version, pad and reserved fields, and the fields the kind uses.
pub(super) fn target(t: &Target) -> Result {
    let ok_kind = match t.kind {
        abi::TARGET_ALL => t.queue == 0 && t.id == 0,
        abi::TARGET_ID => t.queue == 0,
        abi::TARGET_QUEUE => t.queue < abi::Q_COUNT && t.id == 0,
        _ => false,
    };
    if t.version != abi::ABI_VERSION || t.pad != 0 || t.reserved != [0; 2] || !ok_kind {
        return Err(EINVAL);
    }
    Ok(())
}

/// MOD_DELAY: version, pad and reserved fields, and the delay.
pub(super) fn mod_delay(m: &ModDelay) -> Result {
    if m.version != abi::ABI_VERSION
        || m.pad != 0
        || m.reserved != [0; 2]
        || m.delay_us > abi::MAX_DELAY_US
    {
        return Err(EINVAL);
    }
    Ok(())
}

/// RESULTS: version, pad and reserved fields, and a buffer wherever there is capacity.
pub(super) fn results(r: &Results) -> Result {
    if r.version != abi::ABI_VERSION || r.pad != 0 || r.reserved != [0; 2] {
        return Err(EINVAL);
    }
    if r.buf == 0 && r.capacity > 0 {
        return Err(EINVAL);
    }
    Ok(())
}
