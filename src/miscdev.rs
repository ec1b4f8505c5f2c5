// SPDX-License-Identifier: GPL-2.0

//! A misc device registration with `poll` support.
//!
//! Linux 7.3's [`kernel::miscdevice`] has no `poll` hook, so this is a trimmed copy of it (same
//! names, same `open`/`release`/`ioctl` contract) that adds [`MiscDevice::poll`]. It keeps only
//! what `/dev/rust_wq` uses: `open`, `release`, `ioctl` (with `compat_ptr_ioctl` for 32-bit
//! callers, whose structures have the same layout), `poll`, and
//! [`MiscDeviceRegistration::device`] for the device's log lines.
//!
//! This is an abstraction-layer file: the raw `bindings::` calls of the device registration live
//! here, so that `src/device.rs` and `src/device/` stay safe code.
//!
//! C headers: [`include/linux/miscdevice.h`](srctree/include/linux/miscdevice.h),
//! [`include/linux/poll.h`](srctree/include/linux/poll.h).

use core::marker::PhantomData;
use kernel::{
    bindings,
    device::Device,
    error::{
        to_result,
        VTABLE_DEFAULT_ERROR, //
    },
    ffi::{
        c_int,
        c_long,
        c_uint,
        c_ulong, //
    },
    fs::File,
    module::this_module,
    prelude::*,
    sync::poll::PollTable,
    types::{
        ForeignOwnable,
        Opaque, //
    },
};

/// The `poll` mask of a file with data to read: `POLLIN | POLLRDNORM`.
pub(crate) const POLL_READABLE: u32 = bindings::POLLIN | bindings::POLLRDNORM;

/// Options for creating a misc device.
#[derive(Copy, Clone)]
pub(crate) struct MiscDeviceOptions {
    /// The name of the misc device (`/dev/<name>`).
    pub(crate) name: &'static CStr,
}

impl MiscDeviceOptions {
    /// Creates a raw `struct miscdevice` ready for registration.
    const fn into_raw<T: MiscDevice>(self) -> bindings::miscdevice {
        let mut result: bindings::miscdevice = pin_init::zeroed();
        result.minor = bindings::MISC_DYNAMIC_MINOR as c_int;
        result.name = kernel::str::as_char_ptr_in_const_context(self.name);
        result.fops = MiscdeviceVTable::<T>::build();
        result
    }
}

/// A registration of a misc device.
///
/// # Invariants
///
/// - `inner` contains a `struct miscdevice` that was registered with `misc_register()` and made
///   by [`MiscDeviceOptions::into_raw`].
/// - It stays registered for the whole lifetime of the [`MiscDeviceRegistration`] and is
///   deregistered exactly once, in [`Drop`].
#[repr(transparent)]
#[pin_data(PinnedDrop)]
pub(crate) struct MiscDeviceRegistration<T> {
    #[pin]
    inner: Opaque<bindings::miscdevice>,
    _t: PhantomData<T>,
}

// SAFETY: `misc_deregister()` may be called on another thread than `misc_register()`.
unsafe impl<T> Send for MiscDeviceRegistration<T> {}
// SAFETY: Its only `&self` method, `device`, reads a field that does not change while it is
// registered; calling it from several threads at once is safe.
unsafe impl<T> Sync for MiscDeviceRegistration<T> {}

impl<T: MiscDevice> MiscDeviceRegistration<T> {
    /// Registers a misc device.
    pub(crate) fn register(opts: MiscDeviceOptions) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            inner <- Opaque::try_ffi_init(move |slot: *mut bindings::miscdevice| {
                // SAFETY: The initialiser may write to the provided `slot`.
                unsafe { slot.write(opts.into_raw::<T>()) };

                // SAFETY: `slot` holds the misc device just written. It is pinned, and the
                // destructor of this type deregisters it before the memory goes away.
                // INVARIANT: If this returns `Ok(())`, `slot` holds a registered misc device.
                to_result(unsafe { bindings::misc_register(slot) })
            }),
            _t: PhantomData,
        })
    }

    /// The device of the registered misc device (its `this_device`), for `dev_*!` log lines.
    pub(crate) fn device(&self) -> &Device {
        // SAFETY: `inner` holds a registered misc device (type invariant), and
        // `misc_register()` set its `this_device` to a valid device that stays alive until
        // `misc_deregister()`, which runs only in `Drop`. The returned reference cannot outlive
        // `&self`, so its last use comes before that.
        unsafe { Device::from_raw((*self.inner.get()).this_device) }
    }
}

#[pinned_drop]
impl<T> PinnedDrop for MiscDeviceRegistration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: The device is registered (type invariant) and is deregistered only here.
        unsafe { bindings::misc_deregister(self.inner.get()) };
    }
}

/// The private data of an open misc device file, and its file operations.
#[vtable]
pub(crate) trait MiscDevice: Sized {
    /// What kind of pointer `Self` is wrapped in.
    type Ptr: ForeignOwnable + Send + Sync;

    /// Called when the misc device is opened. The returned pointer becomes the private data of
    /// the file.
    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<Self::Ptr>;

    /// Called when the last reference to the file goes away.
    fn release(device: Self::Ptr, _file: &File) {
        drop(device);
    }

    /// Handler for ioctls (32-bit callers go through `compat_ptr_ioctl`).
    fn ioctl(
        _device: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        _file: &File,
        _cmd: u32,
        _arg: usize,
    ) -> Result<isize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Handler for `poll`, `select` and `epoll`.
    ///
    /// Registers the file's wait queues with `table` (see [`PollTable::register_wait`]) and
    /// returns the `POLL*` mask of the events ready now. An error is reported as `POLLERR`.
    fn poll(
        _device: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        _file: &File,
        _table: PollTable<'_>,
    ) -> Result<u32> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
}

/// The file operations of a [`MiscDevice`].
struct MiscdeviceVTable<T: MiscDevice>(PhantomData<T>);

impl<T: MiscDevice> MiscdeviceVTable<T> {
    /// # Safety
    ///
    /// `inode` and `raw_file` must be the inode and the file of a file being opened, and the file
    /// must belong to a [`MiscDeviceRegistration<T>`].
    unsafe extern "C" fn open(inode: *mut bindings::inode, raw_file: *mut bindings::file) -> c_int {
        // SAFETY: The pointers are valid and belong to a file being opened.
        let ret = unsafe { bindings::generic_file_open(inode, raw_file) };
        if ret != 0 {
            return ret;
        }

        // SAFETY: The open call of a file may access its private data.
        let misc_ptr = unsafe { (*raw_file).private_data };

        // SAFETY: This is a misc device, so `misc_open()` set the private data to the
        // `struct miscdevice` before calling this function, which is the `inner` field of a
        // `MiscDeviceRegistration<T>` (`repr(transparent)`). `misc_open()` also keeps the device
        // from being deregistered and freed during this call.
        let misc = unsafe { &*misc_ptr.cast::<MiscDeviceRegistration<T>>() };

        // SAFETY:
        // * The file is valid for (much longer than) the duration of `T::open`.
        // * There is no active fdget_pos region on the file on this thread.
        let file = unsafe { File::from_raw_file(raw_file) };

        let ptr = match T::open(file, misc) {
            Ok(ptr) => ptr,
            Err(err) => return err.to_errno(),
        };

        // The private data becomes a `T::Ptr`; every other function of this vtable reads it as
        // one.
        //
        // SAFETY: The open call of a file may access its private data.
        unsafe { (*raw_file).private_data = ptr.into_foreign() };

        0
    }

    /// # Safety
    ///
    /// `file` must be a file of a [`MiscDeviceRegistration<T>`] that is being released.
    unsafe extern "C" fn release(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
        // SAFETY: The release call of a file owns its private data.
        let private = unsafe { (*file).private_data };
        // SAFETY: `open` stored a `T::Ptr` there with `into_foreign`; release runs once, after
        // every other file operation has returned, so ownership can be taken back.
        let ptr = unsafe { <T::Ptr as ForeignOwnable>::from_foreign(private) };

        // SAFETY:
        // * The file is valid for the duration of this call.
        // * There is no active fdget_pos region on the file on this thread.
        T::release(ptr, unsafe { File::from_raw_file(file) });

        0
    }

    /// # Safety
    ///
    /// `file` must be a valid file of a [`MiscDeviceRegistration<T>`].
    unsafe extern "C" fn ioctl(file: *mut bindings::file, cmd: c_uint, arg: c_ulong) -> c_long {
        // SAFETY: The ioctl call of a file may access its private data.
        let private = unsafe { (*file).private_data };
        // SAFETY: `open` stored a `T::Ptr` there, and `release` (which takes it back) cannot run
        // while the caller holds the file for this call.
        let device = unsafe { <T::Ptr as ForeignOwnable>::borrow(private) };

        // SAFETY:
        // * The file is valid for the duration of this call.
        // * There is no active fdget_pos region on the file on this thread.
        let file = unsafe { File::from_raw_file(file) };

        match T::ioctl(device, file, cmd, arg) {
            Ok(ret) => ret as c_long,
            Err(err) => err.to_errno() as c_long,
        }
    }

    /// # Safety
    ///
    /// `file` must be a valid file of a [`MiscDeviceRegistration<T>`], and `table` null or a
    /// valid `poll_table` for the duration of the call.
    unsafe extern "C" fn poll(
        file: *mut bindings::file,
        table: *mut bindings::poll_table_struct,
    ) -> bindings::__poll_t {
        // SAFETY: The poll call of a file may access its private data.
        let private = unsafe { (*file).private_data };
        // SAFETY: `open` stored a `T::Ptr` there, and `release` (which takes it back) cannot run
        // while `vfs_poll()`'s caller holds the file for this call.
        let device = unsafe { <T::Ptr as ForeignOwnable>::borrow(private) };

        // SAFETY:
        // * The file is valid for the duration of this call.
        // * There is no active fdget_pos region on the file on this thread.
        let file = unsafe { File::from_raw_file(file) };

        // SAFETY: The caller passes a null or valid `poll_table` that lives during this call,
        // which is as long as the `PollTable` lives.
        let table = unsafe { PollTable::from_raw(table) };

        match T::poll(device, file, table) {
            Ok(mask) => mask,
            Err(_) => bindings::POLLERR,
        }
    }

    const VTABLE: bindings::file_operations = bindings::file_operations {
        open: Some(Self::open),
        release: Some(Self::release),
        unlocked_ioctl: if T::HAS_IOCTL {
            Some(Self::ioctl)
        } else {
            None
        },
        #[cfg(CONFIG_COMPAT)]
        compat_ioctl: if T::HAS_IOCTL {
            bindings::compat_ptr_ioctl
        } else {
            None
        },
        poll: if T::HAS_POLL { Some(Self::poll) } else { None },
        owner: this_module::<T::OwnerModule>().as_ptr(),
        ..pin_init::zeroed()
    };

    const fn build() -> &'static bindings::file_operations {
        &Self::VTABLE
    }
}
