// SPDX-License-Identifier: GPL-2.0
//! P3 (review 2026-12), one thread: a scoped delayed item armed on an owned queue, then a drain
//! of that queue. Its timer fired into the draining queue, C dropped the item, and `scope()`
//! waited for it forever. The item borrows the queue for the scope, so the drain cannot start.
// expect-error: E0502\]: cannot borrow `q` as mutable because it is also borrowed as immutable
use crate::workqueue::{
    scope,
    Delay,
    Workqueue, //
};
use pin_init::stack_pin_init;

fn _case(mut q: Workqueue) {
    scope(|s| {
        stack_pin_init!(let w = s.delayed_work(|| {}));
        w.as_ref().enqueue(&q, Delay::ZERO);
        q.drain();
    });
}
