//! Memory for hostile ioctl arguments: anonymous mappings with holes,
//! guard pages and read-only parts, addresses the kernel cannot access,
//! and an aligned buffer for raw calls.

use crate::Errno;
use std::ffi::c_void;

/// The size of a page.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// Anonymous private mapping, unmapped on drop.  Only the kernel (through
/// ioctls) and explicit writes touch it.
pub struct Pages {
    base: *mut u8,
    len: usize,
    /// Bytes past `len` still reserved by the mapping (guard pages).
    guard: usize,
}

// SAFETY: the mapping is plain memory owned by this value; users write to it
// only through &mut self or hand its addresses to the kernel.
unsafe impl Send for Pages {}

impl Pages {
    /// Maps `n` readable and writable pages.
    pub fn map(n: usize) -> Pages {
        let len = n * page_size();
        // SAFETY: anonymous mapping, no file or address hint.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(p != libc::MAP_FAILED, "mmap failed: {}", Errno::last());
        Pages {
            base: p as *mut u8,
            len,
            guard: 0,
        }
    }

    /// The address `off` bytes into the mapping.
    pub fn addr(&self, off: usize) -> usize {
        self.base as usize + off
    }

    /// The accessible length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no byte is accessible.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Makes the last page inaccessible (a guard: accesses there fault).
    /// It stays reserved (PROT_NONE) so that no later mapping of this
    /// process can take its place and receive the kernel's writes.
    pub fn drop_last_page(&mut self) {
        let ps = page_size();
        // SAFETY: the last page of our own mapping.
        let r =
            unsafe { libc::mprotect(self.base.add(self.len - ps) as *mut _, ps, libc::PROT_NONE) };
        assert!(r == 0, "mprotect failed: {}", Errno::last());
        self.len -= ps;
        self.guard += ps;
    }

    /// Unmaps the last page (so the mapping is followed by a hole).
    pub fn unmap_last_page(&mut self) {
        let ps = page_size();
        assert!(self.len > ps && self.guard == 0);
        self.len -= ps;
        // SAFETY: the last page is part of our mapping and not referenced.
        unsafe { libc::munmap(self.base.add(self.len) as *mut c_void, ps) };
    }

    /// Sets the protection of the accessible part to `prot`.
    pub fn protect(&self, prot: i32) {
        // SAFETY: our own mapping.
        let r = unsafe { libc::mprotect(self.base as *mut _, self.len, prot) };
        assert!(r == 0, "mprotect failed: {}", Errno::last());
    }

    /// Makes the accessible part read-only.
    pub fn protect_read_only(&self) {
        self.protect(libc::PROT_READ);
    }

    /// Copies `data` to `off` bytes into the mapping.
    pub fn write_bytes(&mut self, off: usize, data: &[u8]) {
        assert!(off + data.len() <= self.len);
        // SAFETY: in bounds of our own writable mapping.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.base.add(off), data.len()) };
    }

    /// Writes `v` to `offset` bytes into the mapping (unaligned).
    pub fn write<T: Copy>(&self, offset: usize, v: &T) {
        assert!(offset + std::mem::size_of::<T>() <= self.len);
        // SAFETY: in bounds of our writable mapping.
        unsafe { std::ptr::write_unaligned(self.base.add(offset) as *mut T, *v) };
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        // SAFETY: our own mapping.
        unsafe { libc::munmap(self.base as *mut _, self.len + self.guard) };
    }
}

/// An address that was mapped and is no longer (munmap'd), then reserved
/// without access (PROT_NONE) so that no later mmap of this process reuses it:
/// for the kernel it stays an address it cannot read or write.
pub fn unmapped_addr() -> usize {
    let p = Pages::map(1);
    let a = p.addr(0);
    drop(p);
    // SAFETY: maps only if nothing is mapped there (MAP_FIXED_NOREPLACE); leaked on purpose.
    let r = unsafe {
        libc::mmap(
            a as *mut _,
            page_size(),
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if r == libc::MAP_FAILED {
        // Someone took it already: reserve a fresh inaccessible page instead.
        // SAFETY: plain anonymous mapping, leaked on purpose.
        let r = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page_size(),
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(r != libc::MAP_FAILED);
        return r as usize;
    }
    a
}

/// Kernel-space addresses (text, direct map, the last page).
pub const KERNEL_ADDRS: [usize; 3] = [
    0xffff_ffff_8100_0000,
    0xffff_8880_0000_0000,
    0xffff_ffff_ffff_f000,
];

/// 512 bytes of 8-aligned memory for raw ioctls (larger than any size used).
#[repr(C, align(8))]
pub struct RawBuf(pub [u8; 512]);

impl RawBuf {
    /// A zeroed buffer that starts with a copy of `v`.
    pub fn with<T: Copy>(v: &T) -> Box<RawBuf> {
        assert!(std::mem::size_of::<T>() <= 512);
        let mut b = Box::new(RawBuf([0; 512]));
        // SAFETY: T fits in the buffer; unaligned write of a Copy value.
        unsafe { std::ptr::write_unaligned(b.0.as_mut_ptr() as *mut T, *v) };
        b
    }

    /// The buffer's address, for `Device::ioctl_raw`.
    pub fn ptr(&mut self) -> *mut c_void {
        self.0.as_mut_ptr() as *mut c_void
    }
}
