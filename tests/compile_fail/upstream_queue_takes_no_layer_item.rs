// SPDX-License-Identifier: GPL-2.0
//! P2 (review 2026-12): upstream's `Queue::enqueue` of a `Pin<KBox<T>>` treats a refused
//! enqueue as unreachable (`unreachable_unchecked()`), but a disabled item is refused. The
//! layer offers `disable`, so its `Work` is its own field type, which upstream's queues do not
//! take: a disabled boxed item cannot reach that path.
// expect-error: E0277\]: the trait bound `Foo: kernel::workqueue::WorkItem` is not satisfied
use crate::workqueue::{
    impl_has_work,
    new_work,
    Work,
    WorkItem,
};
use kernel::prelude::*;

#[pin_data]
struct Foo {
    #[pin]
    w: Work<Foo>,
}
impl_has_work! { impl HasWork<Self> for Foo { self.w } }
impl WorkItem for Foo {
    type Pointer = Pin<KBox<Foo>>;
    fn run(_this: Pin<KBox<Foo>>) {}
}

/// Every path into upstream's `Queue::enqueue` (its `RawWorkItem` impls for `Arc`, `Pin<KBox>`
/// and `ARef`) needs the item to be upstream's `WorkItem` (and `HasWork`, which fails the same
/// way: only the first bound is checked here, so that the case gives one error).
fn upstream_enqueue<T: kernel::workqueue::WorkItem<Pointer = Pin<KBox<T>>>>(_b: Pin<KBox<T>>) {}

fn _case() -> Result {
    let b = KBox::pin_init(pin_init!(Foo { w <- new_work!("Foo::w") }), GFP_KERNEL)?;
    drop(b.w.disable());
    upstream_enqueue(b);
    Ok(())
}
