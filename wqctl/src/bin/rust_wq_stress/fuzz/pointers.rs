//! The pointers the fuzzer passes: the memory they point into ([`Arena`]) and
//! their kinds ([`Ptr`]) with how often each is tried.

use crate::common::*;
use wqctl::abi::*;

/// The fuzzer's memory of one thread.
pub struct Arena {
    /// 5 RW pages then an unmapped guard page.
    pub arg: Pages,
    /// 1 page, read-only except while we fill it.
    pub ro: Pages,
    /// Room for RUST_WQ_MAX_RESULTS results, then a guard page.
    pub results: Pages,
    /// An address with nothing mapped.
    pub unmapped: usize,
}

impl Arena {
    pub fn new() -> Self {
        let mut arg = Pages::map(6);
        arg.drop_last_page();
        let ro = Pages::map(1);
        ro.protect(libc::PROT_READ);
        let n = (RUST_WQ_MAX_RESULTS as usize * std::mem::size_of::<RustWqResult>())
            .div_ceil(page_size())
            + 1;
        let mut results = Pages::map(n + 1);
        results.drop_last_page();
        Arena {
            arg,
            ro,
            results,
            unmapped: unmapped_addr(),
        }
    }

    /// Copies `out.len()` bytes from offset `off` of the argument pages (what
    /// the kernel wrote back there).
    pub fn read_arg(&self, off: usize, out: &mut [u8]) {
        assert!(off + out.len() <= self.arg.len());
        // SAFETY: reading back our own writable scratch pages, inside their
        // mapped length (checked above).
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.arg.addr(off) as *const u8,
                out.as_mut_ptr(),
                out.len(),
            )
        };
    }
}

/// What the argument pointer of one call is.
#[derive(Clone, Copy, PartialEq)]
pub enum Ptr {
    Valid,
    Unaligned,
    Null,
    Unmapped,
    Kernel,
    ReadOnly,
    Straddle,
    Random,
    SmallInt,
}

/// Each kind of pointer with its weight.
pub const PTRS: [(Ptr, u64); 9] = [
    (Ptr::Valid, 35),
    (Ptr::Unaligned, 14),
    (Ptr::Null, 8),
    (Ptr::Unmapped, 8),
    (Ptr::Kernel, 8),
    (Ptr::ReadOnly, 10),
    (Ptr::Straddle, 7),
    (Ptr::Random, 5),
    (Ptr::SmallInt, 5),
];

pub fn ptr_name(p: Ptr) -> &'static str {
    match p {
        Ptr::Valid => "valid",
        Ptr::Unaligned => "unaligned",
        Ptr::Null => "null",
        Ptr::Unmapped => "unmapped",
        Ptr::Kernel => "kernel",
        Ptr::ReadOnly => "readonly",
        Ptr::Straddle => "straddle",
        Ptr::Random => "random",
        Ptr::SmallInt => "smallint",
    }
}
