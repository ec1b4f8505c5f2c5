// SPDX-License-Identifier: GPL-2.0
//! A BH queue takes only items marked `BhWorkItem` (their `run` never sleeps).
// expect-error: E0277\]: the trait bound `Sleepy: BhWorkItem` is not satisfied
use crate::workqueue::{
    impl_has_work,
    Workqueue,
    Work,
    WorkItem, //
};
use kernel::{prelude::*, sync::Arc};

#[pin_data]
struct Sleepy {
    #[pin]
    work: Work<Sleepy>,
}
impl_has_work! { impl HasWork<Self> for Sleepy { self.work } }
impl WorkItem for Sleepy {
    type Pointer = Arc<Sleepy>;
    fn run(_this: Arc<Sleepy>) {}
}

fn _case(item: Arc<Sleepy>) -> Result {
    let q = Workqueue::builder().bh().build(fmt!("q"))?;
    let _ = q.enqueue(item);
    Ok(())
}
