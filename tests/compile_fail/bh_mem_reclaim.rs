// SPDX-License-Identifier: GPL-2.0
//! C refuses `WQ_MEM_RECLAIM` on a BH queue (it warns and returns NULL).
// expect-error: E0599\]: the method `mem_reclaim` exists for struct `Builder<(kind::)?Bh>`, but its trait bounds were not satisfied
use crate::workqueue::Workqueue;

fn _case() {
    let _ = Workqueue::builder().bh().mem_reclaim();
}
