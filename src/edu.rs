// SPDX-License-Identifier: GPL-2.0

//! A PCI driver for QEMU's `edu` device: the tutorial's top half with a real device interrupt.
//!
//! The workqueue tutorial this project grew from teaches one pattern above all: a device raises
//! an interrupt, the handler (the top half) does the minimum (reads and acknowledges the
//! device's status, queues a work item) and the work item (the bottom half) runs later in a
//! worker thread, where it may sleep. QEMU's `edu` device (`-device edu`, vendor 0x1234, device
//! 0x11e8, QEMU's `docs/specs/edu.rst`) is made for teaching that: a write to its BAR0 register
//! 0x60 raises an interrupt (MSI, or the INTx line) and ORs the value into the interrupt status
//! at 0x24; the handler acknowledges by writing the bits to 0x64.
//!
//! - [`EduDriver`]: binds the device through [`kernel::pci`], maps BAR0, allocates one vector
//!   (MSI, INTx as fallback) and registers [`EduHandler`] on it with [`kernel::irq`]
//!   (`src/pci_ext.rs` holds the vector helper that 7.3 lacks). It drives one device: a second
//!   `edu` device is refused (`EBUSY`), since the ABI and the counters are module-wide.
//! - [`EduHandler`], the top half: reads and acknowledges the status (`IRQ_NONE` if no bit is
//!   set: the INTx line may be shared), queues the static item [`BOTTOM_HALF`] (declared with
//!   `declare_work!`) on the system per-CPU queue, as the tutorial's `schedule_work()` does,
//!   then runs the call that [`run_in_device_irq`] left for it (the items userspace asked
//!   for). It never sleeps, allocates nothing and takes only raw spinlocks.
//! - [`run_in_device_irq`]: the device's counterpart of [`crate::irq_work::run_in_hardirq`]: it
//!   has the device raise its interrupt and runs a closure in that interrupt's handler.
//!
//! C header: [`include/linux/interrupt.h`](srctree/include/linux/interrupt.h)

use crate::kthread::Completion;
use crate::pci_ext::{
    self,
    VectorIrq, //
};
use crate::workqueue::declare_work;
use crate::workqueue::raw_spinlock::{
    new_raw_spinlock_irq,
    RawSpinLockIrq, //
};
use core::{
    cell::UnsafeCell,
    ffi::c_void,
    sync::atomic::{
        AtomicBool,
        AtomicU32,
        AtomicU64,
        Ordering, //
    },
};
use kernel::{
    device::Core,
    io::Io,
    irq::{
        self,
        IrqReturn, //
    },
    pci,
    prelude::*,
    sync::{
        new_mutex,
        Arc,
        Mutex, //
    },
};

/// QEMU's PCI vendor number (`PCI_VENDOR_ID_QEMU` in QEMU; not in Linux's `pci_ids.h`).
const VENDOR_QEMU: u16 = 0x1234;
/// The `edu` device.
const DEVICE_EDU: u16 = 0x11e8;

/// BAR0 registers (all 32 bits wide; the device ignores other access sizes below 0x80).
mod regs {
    /// Identification, `0xRRrr00ed` (`RR.rr`: the major and minor version).
    pub(super) const ID: usize = 0x00;
    /// Interrupt status: the bits raised and not yet acknowledged.
    pub(super) const IRQ_STATUS: usize = 0x24;
    /// Interrupt raise: the value written is ORed into the status and an interrupt is raised.
    pub(super) const IRQ_RAISE: usize = 0x60;
    /// Interrupt acknowledge: the bits written are cleared from the status (INTx goes low when
    /// none is left).
    pub(super) const IRQ_ACK: usize = 0x64;
    /// The part of the 1 MiB BAR that is mapped with compile-time checked offsets.
    pub(super) const SIZE: usize = 0x80;
}

/// The status bit this driver raises. The device's own sources use 0x1 (factorial done) and
/// 0x100 (DMA done), which this driver never starts.
const RAISE_BIT: u32 = 1 << 16;

/// The name of the driver and of the interrupt in `/proc/interrupts`.
const NAME: &CStr = c"rust_wq_edu";

/// Interrupts the handler took as its own since the module was loaded (a status bit was set).
static DEVICE_IRQS: AtomicU64 = AtomicU64::new(0);
/// Times the handler queued [`BOTTOM_HALF`] (`schedule()` returned `true`); an interrupt that
/// found it still pending did not queue it again (the tutorial's `schedule_work()` semantics).
static BH_QUEUED: AtomicU64 = AtomicU64::new(0);
/// Times [`BOTTOM_HALF`] ran.
static BH_RUNS: AtomicU64 = AtomicU64::new(0);

/// The bottom half's own log lines: the first few, then one in this many.
const BH_LOG_FIRST: u64 = 8;
const BH_LOG_EVERY: u64 = 256;

declare_work!(static BOTTOM_HALF = bottom_half);

/// The work function of [`BOTTOM_HALF`], the tutorial's bottom half: it runs in a worker
/// thread of `system_percpu_wq`, where it could sleep, and logs that it ran.
fn bottom_half() {
    let n = BH_RUNS.fetch_add(1, Ordering::Relaxed) + 1;
    if n <= BH_LOG_FIRST || n % BH_LOG_EVERY == 0 {
        pr_info!(
            "edu bottom half: static item run {} on cpu {} (queued {} times by {} device interrupts)\n",
            n,
            kernel::cpu::CpuId::current().as_u32(),
            BH_QUEUED.load(Ordering::Relaxed),
            DEVICE_IRQS.load(Ordering::Relaxed),
        );
    }
}

/// A call of [`run_in_device_irq`] waiting for the device's interrupt: a pointer to the
/// waiter's [`Call`] and the two functions that end it.
///
/// # Invariants
///
/// `call` points at a pinned `Call<F, R>` whose waiter keeps it alive until its `done` is
/// completed; `run` and `cancel` are `run_call::<F, R>` and `cancel_call::<F, R>` of those same
/// types. Exactly one party (the handler, a teardown or the waiter itself) takes it out of the
/// [`Slot`], under the slot's lock, and ends it.
struct Pending {
    call: *const c_void,
    run: unsafe fn(*const c_void, u32),
    cancel: unsafe fn(*const c_void),
}

// SAFETY: The `Call` behind `call` may be used from any thread: its closure and result are
// `Send` (bounds of `run_in_device_irq`), its completion is `Sync`.
unsafe impl Send for Pending {}

/// What the handler finds when the device interrupts.
enum Slot {
    /// No call is waiting.
    Idle,
    /// A call is waiting to be run by the next interrupt.
    Waiting(Pending),
    /// The device is being unbound: no call may wait any more.
    Gone,
}

/// The bound device as the ioctls and the handler share it.
#[pin_data]
struct Edu {
    /// BAR0; revoked when the device is unbound.
    bar: pci::DevresBar<{ regs::SIZE }>,
    /// The call waiting for the interrupt; written under this lock (interrupts off).
    #[pin]
    slot: RawSpinLockIrq<Slot>,
    /// One call at a time, so that each raise is one interrupt and one handler run.
    #[pin]
    one: Mutex<()>,
    /// The vector's IRQ number, set once it is known (before the device is published).
    irq: AtomicU32,
    /// Whether the vector is an MSI message.
    msi: AtomicBool,
}

impl Edu {
    fn new(bar: pci::DevresBar<{ regs::SIZE }>) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            bar,
            slot <- new_raw_spinlock_irq!(Slot::Idle, "Edu::slot"),
            one <- new_mutex!((), "Edu::one"),
            irq: AtomicU32::new(0),
            msi: AtomicBool::new(false),
        }? Error)
    }

    /// Takes the waiting call out of the slot, if any.
    fn take_waiting(&self) -> Option<Pending> {
        let mut slot = self.slot.lock();
        match core::mem::replace(&mut *slot, Slot::Idle) {
            Slot::Waiting(p) => Some(p),
            Slot::Idle => None,
            Slot::Gone => {
                *slot = Slot::Gone;
                None
            }
        }
    }
}

/// The interrupt handler of the device: the tutorial's top half.
struct EduHandler {
    edu: Arc<Edu>,
}

impl irq::Handler for EduHandler {
    fn handle(&self) -> IrqReturn {
        let edu = &*self.edu;
        // Read and acknowledge the device's status. No bit set: not this device's interrupt
        // (the INTx line may be shared).
        let Some(status) = edu.bar.try_access().map(|bar| {
            let status = bar.read32(regs::IRQ_STATUS);
            if status != 0 {
                bar.write32(status, regs::IRQ_ACK);
            }
            status
        }) else {
            return IrqReturn::None;
        };
        if status == 0 {
            return IrqReturn::None;
        }
        DEVICE_IRQS.fetch_add(1, Ordering::Relaxed);
        // (a) The tutorial's `schedule_work(&static_work)`: `false` when it is still pending, and
        // then the one run to come serves this interrupt too.
        if BOTTOM_HALF.schedule() {
            BH_QUEUED.fetch_add(1, Ordering::Relaxed);
        }
        // (b) The items userspace asked for: the call that raised this interrupt.
        if let Some(p) = edu.take_waiting() {
            // SAFETY: Taken out of the slot under its lock, so this is the one party that ends
            // the call (type invariant of `Pending`), which is alive until then.
            unsafe { (p.run)(p.call, edu.irq.load(Ordering::Relaxed)) };
        }
        IrqReturn::Handled
    }
}

/// One call of [`run_in_device_irq`]: the closure, its result, and the completion the caller
/// sleeps on.
///
/// # Invariants
///
/// `f` and `r` are touched only by the caller before the call is put in the [`Slot`] and after
/// `done` is completed, and in between only by the party that took it out of the slot.
#[pin_data]
struct Call<F, R> {
    f: UnsafeCell<Option<F>>,
    r: UnsafeCell<Option<R>>,
    #[pin]
    done: Completion,
}

/// Runs the call's closure with the IRQ number, stores its result and completes the call.
///
/// # Safety
///
/// `call` points at a live `Call<F, R>` that the caller took out of the [`Slot`].
unsafe fn run_call<F: FnOnce(u32) -> R, R>(call: *const c_void, irq: u32) {
    // SAFETY: The caller's promise: a live `Call<F, R>`.
    let call = unsafe { &*call.cast::<Call<F, R>>() };
    // SAFETY: Only the party that took the call touches `f` and `r` now (type invariant).
    if let Some(f) = unsafe { (*call.f.get()).take() } {
        let r = f(irq);
        // SAFETY: As above.
        unsafe { *call.r.get() = Some(r) };
    }
    // The last touch: after this the waiter may return and free the call.
    call.done.complete();
}

/// Completes the call without running its closure (the device is going away).
///
/// # Safety
///
/// As for [`run_call`].
unsafe fn cancel_call<F, R>(call: *const c_void) {
    // SAFETY: The caller's promise: a live `Call<F, R>`.
    let call = unsafe { &*call.cast::<Call<F, R>>() };
    call.done.complete();
}

/// Has the `edu` device raise its interrupt and runs `f` in that interrupt's handler, with the
/// vector's IRQ number; returns what `f` returned.
///
/// `f` runs in hard-interrupt context, on whichever CPU the interrupt is delivered to, after the
/// handler has acknowledged the device and queued [`BOTTOM_HALF`]; the rules of
/// [`crate::irq_work::run_in_hardirq`] apply to it (it must not sleep). One call runs at a time;
/// each raises exactly one interrupt. Must be called from task context (it sleeps).
///
/// Errors: [`ENODEV`] if no `edu` device is bound, or if it is unbound before its interrupt
/// ran `f` (then `f` did not run); [`EINTR`] if a fatal signal ended the wait before the
/// interrupt ran `f` (then `f` did not run either).
pub(crate) fn run_in_device_irq<F, R>(f: F) -> Result<R>
where
    F: FnOnce(u32) -> R + Send,
    R: Send,
{
    kernel::task::might_sleep();
    let edu = bound()?;
    let _one = edu.one.lock();
    pin_init::stack_pin_init!(let call = pin_init!(Call::<F, R> {
        f: UnsafeCell::new(Some(f)),
        r: UnsafeCell::new(None),
        done <- Completion::new(),
    }));
    let ptr = core::ptr::from_ref::<Call<F, R>>(&*call).cast::<c_void>();
    {
        let mut slot = edu.slot.lock();
        if matches!(*slot, Slot::Gone) {
            return Err(ENODEV);
        }
        // INVARIANT: `call` is pinned on this stack frame, which waits below until `done` is
        // completed by whoever takes it out of the slot; the functions match its types.
        *slot = Slot::Waiting(Pending {
            call: ptr,
            run: run_call::<F, R>,
            cancel: cancel_call::<F, R>,
        });
        // Raised under the slot lock: a teardown that marks the slot `Gone` raises no
        // interrupt after that. (`None`: the BAR is already revoked.)
        if edu
            .bar
            .try_access()
            .map(|bar| bar.write32(RAISE_BIT, regs::IRQ_RAISE))
            .is_none()
        {
            *slot = Slot::Idle;
            return Err(ENODEV);
        }
    }
    if call.done.wait_killable().is_err() {
        // Killed: take the call back if no interrupt has taken it yet.
        let mut slot = edu.slot.lock();
        if matches!(&*slot, Slot::Waiting(p) if p.call == ptr) {
            *slot = Slot::Idle;
            return Err(EINTR);
        }
        drop(slot);
        // Someone took it and is ending it right now (a handler, or a teardown): a short wait.
        call.done.wait();
    }
    // SAFETY: `done` is completed, so the party that took the call has finished with it.
    let r = unsafe { (*call.r.get()).take() };
    // No result: a teardown cancelled the call.
    r.ok_or(ENODEV)
}

kernel::sync::global_lock! {
    // SAFETY: `init` is called in `registration()`, run once by the module initialiser before
    // the driver is registered, so before any other use.
    unsafe(uninit) static BOUND: Mutex<Option<Arc<Edu>>> = None;
}

/// The bound device, for a call; [`ENODEV`] if there is none.
fn bound() -> Result<Arc<Edu>> {
    BOUND.lock().clone().ok_or(ENODEV)
}

/// The device as RUST_WQ_IOC_INFO reports it.
#[derive(Clone, Copy, Default)]
pub(crate) struct DeviceInfo {
    /// Whether an `edu` device is bound to the driver.
    pub(crate) bound: bool,
    /// Whether its vector is an MSI message (else the INTx line).
    pub(crate) msi: bool,
    /// Its IRQ number (0 when none is bound).
    pub(crate) irq: u32,
    /// Interrupts the handler took as the device's own since the module was loaded.
    pub(crate) irqs: u64,
    /// Times the handler queued the static item.
    pub(crate) bh_queued: u64,
    /// Times the static item ran.
    pub(crate) bh_runs: u64,
}

/// The device's state and the module-wide counters.
pub(crate) fn info() -> DeviceInfo {
    let edu = BOUND.lock().clone();
    DeviceInfo {
        bound: edu.is_some(),
        msi: edu.as_ref().is_some_and(|e| e.msi.load(Ordering::Relaxed)),
        irq: edu.as_ref().map_or(0, |e| e.irq.load(Ordering::Relaxed)),
        irqs: DEVICE_IRQS.load(Ordering::Relaxed),
        bh_queued: BH_QUEUED.load(Ordering::Relaxed),
        bh_runs: BH_RUNS.load(Ordering::Relaxed),
    }
}

/// Whether an `edu` device is bound (checked first by ENQUEUE, for a clean [`ENODEV`]).
pub(crate) fn is_bound() -> bool {
    BOUND.lock().is_some()
}

/// Publishes the device for calls; dropping it unpublishes it, marks its slot [`Slot::Gone`]
/// and cancels a waiting call.
struct Published {
    edu: Arc<Edu>,
}

impl Published {
    /// Publishes `edu`; [`EBUSY`] if another `edu` device is already published (the driver
    /// drives one: the ABI, the counters and the static item are module-wide).
    fn new(edu: Arc<Edu>) -> Result<Self> {
        let mut bound = BOUND.lock();
        if bound.is_some() {
            return Err(EBUSY);
        }
        *bound = Some(edu.clone());
        Ok(Published { edu })
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        // New calls find no device (`ENODEV`).
        drop(BOUND.lock().take());
        // A call that found it before cannot wait any more, and raises nothing more.
        let waiting = {
            let mut slot = self.edu.slot.lock();
            core::mem::replace(&mut *slot, Slot::Gone)
        };
        if let Slot::Waiting(p) = waiting {
            // SAFETY: Taken out of the slot under its lock: this is the one party that ends
            // the call (type invariant of `Pending`).
            unsafe { (p.cancel)(p.call) };
        }
    }
}

/// Dropped last, after the interrupt is freed: clears what the device may still hold and
/// waits for the static item.
struct Quiesce {
    edu: Arc<Edu>,
}

impl Drop for Quiesce {
    fn drop(&mut self) {
        // An interrupt raised before the slot was marked gone may not have been handled before
        // `free_irq()`: clear its status bit, so the INTx line (if used) goes low. The BAR is
        // still mapped: device-managed resources are released after the device data.
        if let Some(bar) = self.edu.bar.try_access() {
            bar.write32(!0, regs::IRQ_ACK);
        }
        // No handler can queue the static item any more: wait until it is idle (a module may
        // unload only with its static items idle).
        BOTTOM_HALF.flush();
    }
}

/// The device data of a bound `edu` device. The fields drop in declaration order: unpublish,
/// free the interrupt and the vector, then quiesce.
#[pin_data]
pub(crate) struct EduData<'bound> {
    published: Published,
    #[pin]
    irq: VectorIrq<'bound, EduHandler>,
    quiesce: Quiesce,
}

/// The PCI driver of QEMU's `edu` device.
pub(crate) struct EduDriver;

kernel::pci_device_table!(
    PCI_TABLE,
    <EduDriver as pci::Driver>::IdInfo,
    [(pci_ext::device_id(VENDOR_QEMU, DEVICE_EDU), ())]
);

impl pci::Driver for EduDriver {
    type IdInfo = ();
    type Data<'bound> = EduData<'bound>;

    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        pin_init::pin_init_scope(move || {
            pdev.enable_device_mem()?;
            // MSI messages are memory writes by the device: it must be a bus master.
            pdev.set_master();
            if is_bound() {
                dev_info!(
                    pdev,
                    "another edu device is bound already: this one is left alone\n"
                );
                return Err(EBUSY);
            }
            let bar = pdev.iomap_region_sized::<{ regs::SIZE }>(0, NAME)?;
            let id = bar.read32(regs::ID);
            if id & 0xff != 0xed {
                dev_err!(pdev, "not an edu device (id {:#x})\n", id);
                return Err(ENODEV);
            }
            // Start from a clear status (a previous binding may have left a bit raised).
            bar.write32(!0, regs::IRQ_ACK);
            let edu = Arc::pin_init(Edu::new(bar.into_devres()?), GFP_KERNEL)?;
            let for_handler = edu.clone();
            let types = pci::IrqTypes::default()
                .with(pci::IrqType::Msi)
                .with(pci::IrqType::Intx);
            Ok(try_pin_init!(EduData {
                quiesce: Quiesce { edu: edu.clone() },
                // SAFETY: The registration is a field of the device data, which the driver
                // core drops when the device is unbound; it is never leaked.
                irq <- unsafe {
                    VectorIrq::new(pdev, types, irq::Flags::SHARED, NAME, move |irq, kind| {
                        for_handler.irq.store(irq, Ordering::Relaxed);
                        for_handler
                            .msi
                            .store(!matches!(kind, pci::IrqType::Intx), Ordering::Relaxed);
                        Ok(EduHandler { edu: for_handler })
                    })
                },
                published: {
                    let published = Published::new(edu.clone())?;
                    dev_info!(
                        pdev,
                        "edu device {:#x} bound: irq {} ({}), BAR0 mapped\n",
                        id,
                        edu.irq.load(Ordering::Relaxed),
                        if edu.msi.load(Ordering::Relaxed) { "MSI" } else { "INTx" },
                    );
                    published
                },
            }? Error))
        })
    }

    fn unbind<'bound>(pdev: &'bound pci::Device<Core<'_>>, this: Pin<&Self::Data<'bound>>) {
        dev_info!(
            pdev,
            "edu device unbinding: irq {} ({}), {} device interrupts since load\n",
            this.irq.irq(),
            if this.irq.is_msi() { "MSI" } else { "INTx" },
            DEVICE_IRQS.load(Ordering::Relaxed),
        );
    }
}

/// The driver's registration: dropping it unbinds every device.
pub(crate) type Registration = kernel::driver::Registration<pci::Adapter<EduDriver>>;

/// Registers the driver (a bound device is probed at once). Call once, from the module
/// initialiser.
pub(crate) fn registration(module: &'static ThisModule) -> impl PinInit<Registration, Error> {
    // SAFETY: Called once per module load, from the module initialiser, before the driver is
    // registered and so before any other use of `BOUND`.
    unsafe { BOUND.init() };
    Registration::new(NAME, module)
}

#[cfg(CONFIG_KUNIT)]
#[path = "edu/tests.rs"]
mod tests;
