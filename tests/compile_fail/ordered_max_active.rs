// SPDX-License-Identifier: GPL-2.0
//! An ordered queue runs one item at a time: it has no `max_active`.
// expect-error: E0599\]: the method `max_active` exists for struct `Builder<(kind::)?Ordered>`, but its trait bounds were not satisfied
use crate::workqueue::Workqueue;

fn _case() {
    let _ = Workqueue::builder().ordered().max_active(4);
}
