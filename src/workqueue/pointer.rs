// SPDX-License-Identifier: GPL-2.0

//! The owning pointers a work item can be queued through: [`Arc`], `Pin<KBox<_>>` and [`ARef`].
//!
//! Queueing an item hands one owning pointer to the queue: it is turned into a raw pointer, and
//! the work function turns it back and gives it to [`WorkItem::run`]. A cancel, disable or
//! failed enqueue that stops the work function from running gives that pointer back to the
//! caller ([`WorkPointer::from_raw`]) instead of dropping it inside the call, so no destructor
//! runs under the caller's locks and nothing is leaked.
//!
//! [`WorkItem::run`]: kernel::workqueue::WorkItem::run

use core::ptr::NonNull;
use kernel::{
    prelude::*,
    sync::{
        aref::{
            ARef,
            AlwaysRefCounted, //
        },
        Arc,
    },
};

/// An owning pointer to a `T` that can be turned into a raw pointer and back.
///
/// # Safety
///
/// - `into_raw` returns the address of the pointee and gives up ownership of it: the pointee
///   stays valid (and, for pinned pointers, does not move) until `from_raw` is called with it.
/// - `from_raw(into_raw(p))` gives back a pointer equivalent to `p`; the address it takes is the
///   one upstream's `WorkItemPointer::run` for the same pointer type reconstructs, so items
///   queued by this layer and by upstream's `Queue` run the same way.
pub(crate) unsafe trait WorkPointer<T>: Sized {
    /// Gives up ownership and returns the address of the pointee.
    fn into_raw(self) -> *mut T;

    /// Takes back ownership of a pointee given up by [`WorkPointer::into_raw`].
    ///
    /// # Safety
    ///
    /// `ptr` must come from `into_raw` of the same pointer type, and each such pointer may be
    /// taken back only once.
    unsafe fn from_raw(ptr: *mut T) -> Self;
}

// SAFETY: `Arc::into_raw` leaks one reference and returns the address of the value, which stays
// valid while that reference exists; `Arc::from_raw` takes it back. Upstream's `run` for `Arc`
// uses `Arc::from_raw` on the same address.
unsafe impl<T> WorkPointer<T> for Arc<T> {
    #[inline]
    fn into_raw(self) -> *mut T {
        Arc::into_raw(self).cast_mut()
    }

    #[inline]
    unsafe fn from_raw(ptr: *mut T) -> Self {
        // SAFETY: The caller passes a pointer from `Arc::into_raw`, once.
        unsafe { Arc::from_raw(ptr) }
    }
}

// SAFETY: `KBox::into_raw` leaks the allocation, which then neither moves nor is freed until
// `KBox::from_raw`; the box was pinned, and `from_raw` pins it again. Upstream's `run` for
// `Pin<KBox<T>>` does the same.
unsafe impl<T> WorkPointer<T> for Pin<KBox<T>> {
    #[inline]
    fn into_raw(self) -> *mut T {
        // SAFETY: The value is not moved: only its address is taken, and `from_raw` pins it again.
        KBox::into_raw(unsafe { Pin::into_inner_unchecked(self) })
    }

    #[inline]
    unsafe fn from_raw(ptr: *mut T) -> Self {
        // SAFETY: The caller passes a pointer from `KBox::into_raw` of a pinned box, once; the
        // value has not moved since, so pinning it again is sound.
        unsafe { Pin::new_unchecked(KBox::from_raw(ptr)) }
    }
}

// SAFETY: `ARef::into_raw` leaks one reference count and returns the (non-null) address;
// `ARef::from_raw` takes it back. Upstream's `run` for `ARef` does the same.
unsafe impl<T: AlwaysRefCounted> WorkPointer<T> for ARef<T> {
    #[inline]
    fn into_raw(self) -> *mut T {
        ARef::into_raw(self).as_ptr()
    }

    #[inline]
    unsafe fn from_raw(ptr: *mut T) -> Self {
        // SAFETY: `ptr` comes from `ARef::into_raw`, which never returns null.
        let ptr = unsafe { NonNull::new_unchecked(ptr) };
        // SAFETY: The caller passes a pointer from `ARef::into_raw`, once.
        unsafe { ARef::from_raw(ptr) }
    }
}
