// SPDX-License-Identifier: GPL-2.0
//! A queue needs a kind first (C warns unless exactly one of `WQ_PERCPU`/`WQ_UNBOUND` is set).
// expect-error: E0599\]: no method named `build` found for struct `KindChooser`
use crate::workqueue::Workqueue;

fn _case() {
    let _ = Workqueue::builder().build(kernel::prelude::fmt!("q"));
}
