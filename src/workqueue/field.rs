// SPDX-License-Identifier: GPL-2.0

//! [`HasWorkField`]: how the layer finds a work field inside an item, and back.
//!
//! The layer's own field types ([`DelayedWork`](super::DelayedWork) and
//! [`RcuWork`](super::RcuWork)) are embedded in items; C hands the layer a pointer to the field
//! and the layer needs the item (`container_of`), and the other way round when it queues. One
//! trait, generic over the field type, says both directions; `HasDelayedWork` and `HasRcuWork`
//! are its names for each field type, implemented through [`impl_has_work_field!`].

/// Declares that `Self` contains a field of type `F` (a work field) and how to reach it.
///
/// # Safety
///
/// `raw_get_work` returns the address of an `F` field inside `*ptr`, and `work_container_of`
/// is its inverse: for every `ptr` to a `Self`,
/// `work_container_of(raw_get_work(ptr)) == ptr`.
pub(crate) unsafe trait HasWorkField<F>: Sized {
    /// Returns the field of the item at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must be aligned and not dangling (it need not be initialised).
    unsafe fn raw_get_work(ptr: *mut Self) -> *mut F;

    /// Returns the item whose field `ptr` is.
    ///
    /// # Safety
    ///
    /// `ptr` must point at the `F` field of a `Self`.
    unsafe fn work_container_of(ptr: *mut F) -> *mut Self;
}

/// Implements [`HasWorkField<F>`] for a type by naming its field of type `F`; generic types take
/// their parameters in braces after `impl`, as upstream's `impl_has_work!`.
///
/// The example below is `src/workqueue/examples/field.rs`, which the KUnit case
/// `rust_wq_examples::example_field` compiles and runs:
///
#[doc = concat!("```\n", include_str!("examples/field.rs"), "```")]
///
/// Used by `impl_has_delayed_work!` and `impl_has_rcu_work!`.
macro_rules! impl_has_work_field {
    (impl$({$($generics:tt)*})? HasWorkField<$field_ty:ty> for $ty:ty { self.$field:ident }) => {
        // SAFETY: `raw_get_work` returns the address of the named field, which the type checker
        // proves is a `$field_ty`; `work_container_of` subtracts its offset, so it is the inverse.
        unsafe impl$(<$($generics)*>)? $crate::workqueue::HasWorkField<$field_ty> for $ty {
            #[inline]
            unsafe fn raw_get_work(ptr: *mut Self) -> *mut $field_ty {
                // SAFETY: The caller promises that `ptr` is aligned and not dangling.
                unsafe { ::core::ptr::addr_of_mut!((*ptr).$field) }
            }

            #[inline]
            unsafe fn work_container_of(ptr: *mut $field_ty) -> *mut Self {
                // SAFETY: The caller promises that `ptr` is the field of a `Self`.
                unsafe { ::kernel::container_of!(ptr, Self, $field) }
            }
        }
    };
}
pub(crate) use impl_has_work_field;
