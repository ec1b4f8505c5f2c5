// SPDX-License-Identifier: GPL-2.0
//! `max_active` means nothing for BH queues (C's `workqueue_set_max_active()` warns).
// expect-error: E0599\]: no method named `set_max_active` found for struct `BhWorkqueue`
use crate::workqueue::Workqueue;

fn _case() -> kernel::error::Result {
    let q = Workqueue::builder().bh().build(kernel::prelude::fmt!("q"))?;
    q.set_max_active(4)
}
