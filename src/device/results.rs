// SPDX-License-Identifier: GPL-2.0

//! The results of one open file: the ring they wait in, and the RESULTS and STATS calls.

use super::{
    file::OpenFile,
    validate, //
};
use crate::abi::{
    self,
    Results,
    Stats,
    WorkResult, //
};
use kernel::{
    prelude::*,
    uaccess::{
        UserPtr,
        UserSlice, //
    },
};

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
    base: u64,
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
    fn get(&self, i: usize) -> WorkResult {
        self.buf[(self.head + i) % self.buf.len()]
    }

    /// The absolute index one past the newest result.
    fn end(&self) -> u64 {
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
    fn pop_front(&mut self, n: usize) {
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

impl OpenFile {
    /// RESULTS: moves up to `r.capacity` results to `r.buf`, oldest first.
    pub(super) fn results(&self, r: &mut Results) -> Result {
        /// Results copied per round; the copy to user memory is done with no lock held that a
        /// work function takes.
        const CHUNK: usize = 8;
        validate::results(r)?;
        // Nobody else consumes results meanwhile.
        let _control = self.control.lock_interruptible()?;
        self.reap();
        let want = r.capacity as usize;
        let size = want
            .checked_mul(core::mem::size_of::<WorkResult>())
            .ok_or(EINVAL)?;
        let mut writer = UserSlice::new(UserPtr::from_addr(r.buf as usize), size).writer();
        // Absolute indices (see `Ring`): results up to `end` are the ones there at the call.
        let (first, end) = {
            let ledger = self.ledger.lock();
            (ledger.results.base, ledger.results.end())
        };
        let mut next = first;
        let mut copied = 0usize;
        // Results that the ring dropped (full) before we could copy them.
        let mut skipped = 0u64;
        let mut chunk = [WorkResult::default(); CHUNK];
        while copied < want && next < end {
            let k = {
                let ledger = self.ledger.lock();
                let ring = &ledger.results;
                if next < ring.base {
                    skipped += ring.base - next;
                    next = ring.base;
                }
                let k = (end.saturating_sub(next) as usize)
                    .min(CHUNK)
                    .min(want - copied);
                for (j, slot) in chunk.iter_mut().take(k).enumerate() {
                    *slot = ring.get((next - ring.base) as usize + j);
                }
                k
            };
            for res in chunk.iter().take(k) {
                // On a fault nothing is consumed: the caller can retry with a good buffer.
                writer.write(res)?;
            }
            next += k as u64;
            copied += k;
        }
        let mut ledger = self.ledger.lock();
        let base = ledger.results.base;
        // Copied results that the ring dropped meanwhile were delivered after all.
        let delivered_dropped = (next.min(base).saturating_sub(first)).saturating_sub(skipped);
        ledger.results.pop_front(next.saturating_sub(base) as usize);
        ledger.stats.results_dropped = ledger
            .stats
            .results_dropped
            .saturating_sub(delivered_dropped);
        let unread = ledger.dropped_unread.saturating_sub(delivered_dropped);
        ledger.dropped_unread = 0;
        r.count = copied as u32;
        r.dropped = unread;
        Ok(())
    }

    /// STATS: the file's counters, with the number of pending items.
    pub(super) fn stats(&self) -> Stats {
        let ledger = self.ledger.lock();
        Stats {
            pending: ledger.pending.len() as u64,
            ..ledger.stats
        }
    }

    /// Whether the file has unread results (`poll` reports it readable).
    pub(super) fn has_results(&self) -> bool {
        self.ledger.lock().results.len != 0
    }
}
