use crate::workqueue::{impl_has_rcu_work, new_rcu_work, system_dfl, RcuWork, RcuWorkItem};
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::{prelude::*, sync::Arc};

/// A node of any payload type, freed after a grace period.
#[pin_data]
struct Node<T> {
    #[pin]
    free: RcuWork<Node<T>>,
    value: T,
    ran: AtomicBool,
}

impl_has_rcu_work! { impl{T} HasRcuWork<Node<T>> for Node<T> { self.free } }

impl<T: Send + Sync + 'static> RcuWorkItem for Node<T> {
    type Pointer = Arc<Self>;

    fn run(node: Arc<Self>) {
        node.ran.store(true, Ordering::Relaxed);
    }
}

pub(crate) fn example() -> Result {
    let node = Arc::pin_init(
        pin_init!(Node { free <- new_rcu_work!("Node::free"), value: 5u32, ran: AtomicBool::new(false) }),
        GFP_KERNEL,
    )?;
    system_dfl().enqueue_rcu(node.clone())?;
    // Waits for the grace period and the run.
    node.free.flush();
    if !node.ran.load(Ordering::Relaxed) || node.value != 5 {
        return Err(EINVAL);
    }
    Ok(())
}
