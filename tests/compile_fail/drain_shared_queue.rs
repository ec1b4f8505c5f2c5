// SPDX-License-Identifier: GPL-2.0
//! P3 (review 2026-12): while C drains a queue it drops items queued from outside it (with a
//! WARN) and still reports success, so `drain` must exclude every other enqueuer: it takes the
//! queue by `&mut`, and a queue shared by reference cannot be drained.
// expect-error: E0596\]: cannot borrow `\*q` as mutable, as it is behind a `&` reference
use crate::workqueue::Workqueue;

fn _case(q: &Workqueue) {
    q.drain();
}
