// SPDX-License-Identifier: GPL-2.0

//! The RESULTS and STATS calls: what an open file hands back to userspace.

use super::{
    file::OpenFile,
    validate, //
};
use crate::abi::{
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
        // Absolute indices (see [`Ring`](super::ring::Ring)): results up to `end` are the ones there at the call.
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
