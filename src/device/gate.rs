// SPDX-License-Identifier: GPL-2.0

//! [`Gate`]: a sleeping lock whose waiters can leave when a signal arrives.

use kernel::{
    new_condvar, new_mutex,
    prelude::*,
    sync::{
        CondVar,
        Mutex, //
    },
};

/// A sleeping lock whose waiters can leave when a signal arrives.
///
/// The 7.3 [`Mutex`] has no `mutex_lock_interruptible()`; this is one made of a mutex that is
/// only held for a moment and a condition variable. The holder may sleep for long (wait for
/// items, copy to user memory); waiters sleep interruptibly. Lockdep does not see it as a lock.
#[pin_data]
pub(crate) struct Gate {
    /// Whether a [`GateGuard`] exists.
    #[pin]
    held: Mutex<bool>,
    /// Notified when the gate is released.
    #[pin]
    released: CondVar,
}

impl Gate {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            held <- new_mutex!(false, "Gate::held"),
            released <- new_condvar!("Gate::released"),
        })
    }

    /// Waits until the gate is free and takes it. A signal ends the wait with [`ERESTARTSYS`]
    /// (the system call is restarted, or fails with `EINTR`, or the process dies).
    pub(crate) fn lock_interruptible(&self) -> Result<GateGuard<'_>> {
        let mut held = self.held.lock();
        while *held {
            if self.released.wait_interruptible(&mut held) {
                return Err(ERESTARTSYS);
            }
        }
        *held = true;
        Ok(GateGuard(self))
    }

    /// Waits until the gate is free and takes it, whatever signals arrive.
    pub(crate) fn lock(&self) -> GateGuard<'_> {
        let mut held = self.held.lock();
        while *held {
            self.released.wait(&mut held);
        }
        *held = true;
        GateGuard(self)
    }
}

/// A taken [`Gate`], released when dropped.
pub(crate) struct GateGuard<'a>(&'a Gate);

impl Drop for GateGuard<'_> {
    fn drop(&mut self) {
        *self.0.held.lock() = false;
        // All waiters: one that was woken may leave on a signal instead of taking the gate.
        self.0.released.notify_all();
    }
}
