//! ioctl command numbers: the `_IOC` encoding of asm-generic/ioctl.h and the
//! commands of this ABI.

use super::*;

// ioctl number encoding (asm-generic/ioctl.h, used by x86-64, arm64, riscv...).
pub const IOC_NRBITS: u32 = 8;
pub const IOC_TYPEBITS: u32 = 8;
pub const IOC_SIZEBITS: u32 = 14;
pub const IOC_DIRBITS: u32 = 2;
pub const IOC_NRSHIFT: u32 = 0;
pub const IOC_TYPESHIFT: u32 = IOC_NRSHIFT + IOC_NRBITS;
pub const IOC_SIZESHIFT: u32 = IOC_TYPESHIFT + IOC_TYPEBITS;
pub const IOC_DIRSHIFT: u32 = IOC_SIZESHIFT + IOC_SIZEBITS;
pub const IOC_NONE: u32 = 0;
pub const IOC_WRITE: u32 = 1;
pub const IOC_READ: u32 = 2;

/// `_IOC(dir, type, nr, size)`.  The size must fit in 14 bits.
pub const fn ioc(dir: u32, ty: u32, nr: u32, size: usize) -> u32 {
    assert!(size < (1 << IOC_SIZEBITS));
    assert!(dir < (1 << IOC_DIRBITS));
    assert!(ty < (1 << IOC_TYPEBITS));
    assert!(nr < (1 << IOC_NRBITS));
    (dir << IOC_DIRSHIFT)
        | ((size as u32) << IOC_SIZESHIFT)
        | (ty << IOC_TYPESHIFT)
        | (nr << IOC_NRSHIFT)
}

/// `_IO(type, nr)`.
pub const fn io(ty: u32, nr: u32) -> u32 {
    ioc(IOC_NONE, ty, nr, 0)
}

/// `_IOR(type, nr, T)`.
pub const fn ior<T>(ty: u32, nr: u32) -> u32 {
    ioc(IOC_READ, ty, nr, core::mem::size_of::<T>())
}

/// `_IOW(type, nr, T)`.
pub const fn iow<T>(ty: u32, nr: u32) -> u32 {
    ioc(IOC_WRITE, ty, nr, core::mem::size_of::<T>())
}

/// `_IOWR(type, nr, T)`.
pub const fn iowr<T>(ty: u32, nr: u32) -> u32 {
    ioc(IOC_READ | IOC_WRITE, ty, nr, core::mem::size_of::<T>())
}

/// `_IOC_DIR(nr)`.
pub const fn ioc_dir(cmd: u32) -> u32 {
    (cmd >> IOC_DIRSHIFT) & ((1 << IOC_DIRBITS) - 1)
}

/// `_IOC_TYPE(nr)`.
pub const fn ioc_type(cmd: u32) -> u32 {
    (cmd >> IOC_TYPESHIFT) & ((1 << IOC_TYPEBITS) - 1)
}

/// `_IOC_NR(nr)`.
pub const fn ioc_nr(cmd: u32) -> u32 {
    (cmd >> IOC_NRSHIFT) & ((1 << IOC_NRBITS) - 1)
}

/// `_IOC_SIZE(nr)`.
pub const fn ioc_size(cmd: u32) -> usize {
    ((cmd >> IOC_SIZESHIFT) & ((1 << IOC_SIZEBITS) - 1)) as usize
}

pub const RUST_WQ_IOC_INFO: u32 = ior::<RustWqInfo>(RUST_WQ_IOC_MAGIC, 0x00);
pub const RUST_WQ_IOC_ENQUEUE: u32 = iowr::<RustWqEnqueue>(RUST_WQ_IOC_MAGIC, 0x01);
pub const RUST_WQ_IOC_FLUSH: u32 = iowr::<RustWqTarget>(RUST_WQ_IOC_MAGIC, 0x02);
pub const RUST_WQ_IOC_CANCEL: u32 = iowr::<RustWqTarget>(RUST_WQ_IOC_MAGIC, 0x03);
pub const RUST_WQ_IOC_MOD_DELAY: u32 = iow::<RustWqModDelay>(RUST_WQ_IOC_MAGIC, 0x04);
pub const RUST_WQ_IOC_RESULTS: u32 = iowr::<RustWqResults>(RUST_WQ_IOC_MAGIC, 0x05);
pub const RUST_WQ_IOC_STATS: u32 = ior::<RustWqStats>(RUST_WQ_IOC_MAGIC, 0x06);
pub const RUST_WQ_IOC_RESET: u32 = io(RUST_WQ_IOC_MAGIC, 0x07);
pub const RUST_WQ_IOC_BENCH: u32 = iowr::<RustWqBench>(RUST_WQ_IOC_MAGIC, 0x08);

/// Every command of this ABI version, with its name (for tests and tools).
pub const ALL_IOCTLS: [(&str, u32); 9] = [
    ("RUST_WQ_IOC_INFO", RUST_WQ_IOC_INFO),
    ("RUST_WQ_IOC_ENQUEUE", RUST_WQ_IOC_ENQUEUE),
    ("RUST_WQ_IOC_FLUSH", RUST_WQ_IOC_FLUSH),
    ("RUST_WQ_IOC_CANCEL", RUST_WQ_IOC_CANCEL),
    ("RUST_WQ_IOC_MOD_DELAY", RUST_WQ_IOC_MOD_DELAY),
    ("RUST_WQ_IOC_RESULTS", RUST_WQ_IOC_RESULTS),
    ("RUST_WQ_IOC_STATS", RUST_WQ_IOC_STATS),
    ("RUST_WQ_IOC_RESET", RUST_WQ_IOC_RESET),
    ("RUST_WQ_IOC_BENCH", RUST_WQ_IOC_BENCH),
];
