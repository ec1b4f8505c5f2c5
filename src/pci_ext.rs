// SPDX-License-Identifier: GPL-2.0

//! What the module's PCI driver (`src/edu.rs`) needs of [`kernel::pci`] that Linux 7.3 lacks.
//!
//! - [`device_id`]: a [`pci::DeviceId`] for any vendor number. 7.3 builds one only from a
//!   [`pci::Vendor`] constant and has none for QEMU's vendor 0x1234 (it is not in
//!   `include/linux/pci_ids.h`), nor a public way to make a [`pci::Vendor`] from a number.
//! - [`VectorIrq`]: one interrupt vector of a PCI device with a [`kernel::irq`] handler on it,
//!   in one pinned value that a driver keeps in its device data. 7.3's
//!   [`pci::IrqVectorRegistration::index`] hands out a vector's [`irq::IrqRequest`] only for as
//!   long as the allocation is borrowed, so the allocation and the [`irq::Registration`] made
//!   from it cannot otherwise live side by side in the device data.
//!
//! This is an abstraction-layer file: its `unsafe` code stays here, so that `src/edu.rs` uses
//! only safe types.
//!
//! C header: [`include/linux/pci.h`](srctree/include/linux/pci.h)

use kernel::{
    bindings,
    device::Bound,
    irq,
    pci,
    prelude::*, //
};

/// The [`pci::DeviceId`] that matches `vendor:device` with any subsystem (C's
/// `PCI_DEVICE(vendor, device)`).
pub(crate) const fn device_id(vendor: u16, device: u16) -> pci::DeviceId {
    let raw = bindings::pci_device_id {
        vendor: vendor as u32,
        device: device as u32,
        subvendor: !0,
        subdevice: !0,
        class: 0,
        class_mask: 0,
        driver_data: 0,
        override_only: 0,
    };
    // SAFETY: `pci::DeviceId` is a `#[repr(transparent)]` wrapper of `struct pci_device_id`
    // with no invariant of its own (its `RawDeviceId` implementation states that transmuting
    // between the two is sound); `raw` is what `pci::DeviceId::from_id` builds for a vendor
    // constant, with this vendor number.
    unsafe { core::mem::transmute::<bindings::pci_device_id, pci::DeviceId>(raw) }
}

/// One interrupt vector of a bound PCI device, with a handler registered on it.
///
/// Dropping it calls `free_irq()` (which waits for a running handler), then frees the vector
/// (`pci_free_irq_vectors()`), in that order: the fields drop in declaration order.
///
/// # Invariants
///
/// `registration` was made from vector 0 of `vectors`, whose IRQ number is `irq` and whose type
/// is `kind`.
#[pin_data]
pub(crate) struct VectorIrq<'bound, T: irq::Handler + 'bound> {
    #[pin]
    registration: irq::Registration<'bound, T>,
    vectors: pci::IrqVectorRegistration<'bound>,
    irq: u32,
    kind: pci::IrqType,
}

impl<'bound, T: irq::Handler + 'bound> VectorIrq<'bound, T> {
    /// Allocates exactly one vector of `pdev` of one of `types` (the PCI core prefers MSI-X, then
    /// MSI, then INTx) and registers the handler made by `handler` on it with `flags` under
    /// `name` (the name `/proc/interrupts` shows).
    ///
    /// `handler` is called with the vector's IRQ number and type before the handler is
    /// registered. With [`irq::Flags::SHARED`] the handler may be called as soon as it is
    /// registered, for another device's interrupt too.
    ///
    /// # Safety
    ///
    /// The value must be dropped (not leaked with `mem::forget` or otherwise): its drop frees the
    /// interrupt, as for [`irq::Registration::new`].
    pub(crate) unsafe fn new<I>(
        pdev: &'bound pci::Device<Bound>,
        types: pci::IrqTypes,
        flags: irq::Flags,
        name: &'static CStr,
        handler: impl FnOnce(u32, pci::IrqType) -> I + 'bound,
    ) -> impl PinInit<Self, Error> + 'bound
    where
        I: PinInit<T, Error> + 'bound,
    {
        try_pin_init!(&this in Self {
            vectors: pdev.alloc_irq_vectors(1, 1, types)?,
            irq: {
                // SAFETY: `vectors` is initialised (above) and not moved until `Self` is
                // dropped (`Self` is being pinned-initialised in place); this shared reference
                // lives only for this block.
                let vectors = unsafe { &*core::ptr::addr_of!((*this.as_ptr()).vectors) };
                irq::IrqRequest::from(vectors.index(0)?).irq()
            },
            kind: {
                // SAFETY: As above.
                let vectors = unsafe { &*core::ptr::addr_of!((*this.as_ptr()).vectors) };
                vectors.irq_type()
            },
            registration <- {
                // SAFETY: `vectors` is initialised and stays at this address until `Self` is
                // dropped. The reference is given the lifetime `'bound` only to obtain an
                // `IrqRequest<'bound>`, which keeps nothing of it but the IRQ number (its
                // lifetime ties the registration to the device's bound state, which `'bound`
                // is). The registration, which frees the IRQ, drops before `vectors` (field
                // order), so the IRQ is never used after its vector is freed.
                let vectors: &'bound pci::IrqVectorRegistration<'bound> =
                    unsafe { &*core::ptr::addr_of!((*this.as_ptr()).vectors) };
                let vector = vectors.index(0)?;
                let kind = vector.irq_type();
                let request = irq::IrqRequest::from(vector);
                let init = handler(request.irq(), kind);
                // SAFETY: The registration is a field of `Self`, which the caller promises is
                // not leaked, so its drop (`free_irq()`) runs.
                // INVARIANT: Made from vector 0 of `vectors`, whose number and type are the
                // `irq` and `kind` fields.
                unsafe { irq::Registration::new(request, flags, name, init) }
            },
        }? Error)
    }

    /// The IRQ number of the vector (as `/proc/interrupts` lists it).
    pub(crate) fn irq(&self) -> u32 {
        self.irq
    }

    /// Whether the vector is an MSI (or MSI-X) message rather than the INTx line.
    pub(crate) fn is_msi(&self) -> bool {
        !matches!(self.kind, pci::IrqType::Intx)
    }
}
