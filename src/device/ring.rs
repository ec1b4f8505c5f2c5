// SPDX-License-Identifier: GPL-2.0

//! [`Ring`]: the results of one open file that have not been read yet.

use crate::abi::{
    self,
    WorkResult, //
};
use kernel::prelude::*;

/// The results of one file, oldest first, in a ring of at most [`abi::MAX_RESULTS`].
///
/// # Invariants
///
/// `len <= buf.len() <= MAX_RESULTS`, and `head < buf.len()` unless `buf` is empty. The
/// result at position `i` (`0` = oldest) is `buf[(head + i) % buf.len()]`; its absolute index
/// (counted since the file was opened) is `base + i`.
pub(super) struct Ring {
    buf: KVVec<WorkResult>,
    head: usize,
    pub(super) len: usize,
    /// How many results have left the ring from the front (read, dropped, or cleared).
    pub(super) base: u64,
}

impl Ring {
    const MAX: usize = abi::MAX_RESULTS as usize;

    pub(super) fn new() -> Self {
        Self {
            buf: KVVec::new(),
            head: 0,
            len: 0,
            base: 0,
        }
    }

    /// Makes room for `want` results (or [`Ring::MAX`] if less), so that that many pushes
    /// never allocate.
    pub(super) fn reserve_for(&mut self, want: usize) -> Result {
        let want = want.min(Self::MAX);
        if self.buf.len() >= want {
            return Ok(());
        }
        let cap = want.max(self.buf.len() * 2).min(Self::MAX);
        let mut fresh = KVVec::with_capacity(cap, GFP_KERNEL)?;
        for i in 0..self.len {
            // Cannot fail: `len <= buf.len() < cap`.
            fresh
                .push_within_capacity(self.get(i))
                .map_err(|_| ENOMEM)?;
        }
        // Within the capacity reserved above: does not allocate.
        fresh.resize(cap, WorkResult::default(), GFP_KERNEL)?;
        self.buf = fresh;
        self.head = 0;
        Ok(())
    }

    /// The result at position `i` (`0` = oldest); `i < len`.
    pub(super) fn get(&self, i: usize) -> WorkResult {
        self.buf[(self.head + i) % self.buf.len()]
    }

    /// The absolute index one past the newest result.
    pub(super) fn end(&self) -> u64 {
        self.base + self.len as u64
    }

    /// Appends `r`; when the ring is full, drops the oldest result first and returns `true`.
    pub(super) fn push(&mut self, r: WorkResult) -> bool {
        let cap = self.buf.len();
        if cap == 0 {
            // No room was ever reserved (cannot happen: ENQUEUE reserves before queueing).
            self.base += 1;
            return true;
        }
        let dropped = self.len == cap;
        if dropped {
            self.pop_front(1);
        }
        self.buf[(self.head + self.len) % cap] = r;
        self.len += 1;
        dropped
    }

    /// Removes the `n` oldest results (or all if fewer).
    pub(super) fn pop_front(&mut self, n: usize) {
        let n = n.min(self.len);
        if n > 0 {
            self.head = (self.head + n) % self.buf.len();
            self.len -= n;
            self.base += n as u64;
        }
    }

    pub(super) fn clear(&mut self) {
        self.pop_front(self.len);
    }
}
