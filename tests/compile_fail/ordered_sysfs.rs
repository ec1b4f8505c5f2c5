// SPDX-License-Identifier: GPL-2.0
//! C refuses `WQ_SYSFS` on an ordered queue.
// expect-error: E0599\]: the method `sysfs` exists for struct `Builder<(kind::)?Ordered>`, but its trait bounds were not satisfied
use crate::workqueue::Workqueue;

fn _case() {
    let _ = Workqueue::builder().ordered().sysfs();
}
