// SPDX-License-Identifier: GPL-2.0

//! The torture run's KTAP report: the seed, the operation counts per context, one result per
//! invariant with the time of its first violation.

use super::items::Tracked;
use super::ops::Shared;
use super::plan;
use core::{
    fmt::Write,
    sync::atomic::Ordering::SeqCst, //
};
use kernel::prelude::*;

/// A growing text buffer for the report.
pub(super) struct Report(pub(super) KVec<u8>);

impl Write for Report {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0
            .extend_from_slice(s.as_bytes(), GFP_KERNEL)
            .map_err(|_| core::fmt::Error)
    }
}

pub(super) fn write_report(
    r: &mut Report,
    s: &Shared,
    secs: u64,
    nthreads: usize,
) -> core::fmt::Result {
    writeln!(r, "KTAP version 1")?;
    writeln!(r, "1..{}", plan::NR_INV)?;
    writeln!(
        r,
        "# rust_wq_torture: seed={} seconds={} kthreads={} hrtimers=2 bh=1 reclaim_worker=1 \
         plain_items={} delayed_items={} queues_made={} queues_dropped={} races={}",
        s.seed,
        secs,
        nthreads,
        super::ops::NR_PITEMS,
        super::ops::NR_DITEMS,
        s.queues_made.load(SeqCst),
        s.queues_dropped.load(SeqCst),
        s.races
    )?;
    for (c, name) in plan::CTX_NAMES.iter().enumerate() {
        write!(r, "# ops {}:", name)?;
        let mut total = 0;
        if let Some(row) = s.ops.get(c) {
            for (o, n) in row.iter().enumerate() {
                let n = n.load(SeqCst);
                total += n;
                if n > 0 {
                    write!(r, " {}={}", plan::OP_NAMES.get(o).unwrap_or(&"?"), n)?;
                }
            }
        }
        writeln!(r, " total={}", total)?;
    }
    writeln!(r, "# spurious_enables={}", s.spurious_enables.load(SeqCst))?;
    let (mut enq, mut ran, mut back) = (0, 0, 0);
    let accts = Iterator::chain(
        s.pitems.iter().map(|i| i.acct()),
        s.ditems.iter().map(|i| i.acct()),
    );
    for a in accts {
        enq += a.enq_ok.load(SeqCst);
        ran += a.ran.load(SeqCst);
        back += a.got_back.load(SeqCst);
    }
    writeln!(r, "# items: queued={} ran={} cancelled={}", enq, ran, back)?;
    for (i, name) in plan::INV_NAMES.iter().enumerate() {
        let v = s.viol.get(i).map(|v| v.load(SeqCst)).unwrap_or(0);
        if v == 0 {
            writeln!(r, "ok {} {}", i + 1, name)?;
        } else {
            let first = s.first_ns.get(i).map(|f| f.load(SeqCst)).unwrap_or(-1);
            writeln!(
                r,
                "not ok {} {} # {} violations, the first after {} ms (seed {})",
                i + 1,
                name,
                v,
                first / 1_000_000,
                s.seed
            )?;
        }
    }
    Ok(())
}
