//! Bounded memory and counters since open; SLEPT tells the truth; BENCH total capped.

use crate::{skip, Checker, Ctx, Must, Outcome, TestResult};
use libc::EINVAL;
use wqctl::abi::*;
use wqctl::{BenchArgs, Device, EnqueueArgs, Target};

/// Runs `rounds` x 1024 immediate items on the unbound queue, each round
/// flushed, reading no result.
fn produce(dev: &Device, rounds: u32) -> Result<(), Outcome> {
    for _ in 0..rounds {
        dev.enqueue(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1024))
            .must("ENQUEUE 1024")?;
        dev.flush(Target::All).must("FLUSH ALL")?;
    }
    Ok(())
}

/// STATS results_dropped counts since open: RESULTS does not reset it (was:
/// back to 0 after RESULTS), while RESULTS' own `dropped` counts since the
/// last RESULTS.
pub fn stats_dropped_since_open(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let max = u64::from(ctx.info.max_results);
    produce(&dev, 9)?; // 9216 results, max_results 8192 kept
    let over = 9 * 1024 - max;
    let (res, dropped) = dev.results(16).must("RESULTS 16")?;
    c.eq("RESULTS count", res.len() as u64, 16);
    c.eq(
        "RESULTS dropped (since open: the first call)",
        dropped,
        over,
    );
    let s = dev.stats().must("STATS")?;
    c.eq(
        "STATS results_dropped after RESULTS",
        s.results_dropped,
        over,
    );
    let (_, dropped2) = dev.results(16).must("RESULTS 16 again")?;
    c.eq("RESULTS dropped of the second call", dropped2, 0);
    c.eq(
        "STATS results_dropped after two RESULTS",
        dev.stats().must("STATS")?.results_dropped,
        over,
    );
    dev.reset().must("RESET")?;
    c.eq(
        "STATS results_dropped after RESET",
        dev.stats().must("STATS")?.results_dropped,
        0,
    );
    c.done()
}

/// A file that never reads its results keeps at most max_results of them at
/// every moment: the oldest are dropped as items finish (was: kept until the
/// next RESULTS, growing without bound until ENQUEUE failed with ENOMEM).
pub fn results_bounded_unread(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let max = u64::from(ctx.info.max_results);
    produce(&dev, 10)?;
    let s = dev.stats().must("STATS")?;
    c.eq(
        "STATS results_dropped before any RESULTS",
        s.results_dropped,
        10 * 1024 - max,
    );
    // Rounds are flushed one by one, so the results kept are those of the last rounds.
    let (res, dropped) = dev.drain_results().must("RESULTS")?;
    c.eq("results kept", res.len() as u64, max);
    c.eq("RESULTS dropped", dropped, 10 * 1024 - max);
    let ids: std::collections::BTreeSet<u64> = res.iter().map(|r| r.id).collect();
    let want: std::collections::BTreeSet<u64> = (10 * 1024 - max + 1..=10 * 1024).collect();
    c.check(ids == want, || {
        format!(
            "results kept: ids {:?}..{:?} ({} distinct), expected {}..={}",
            ids.first(),
            ids.last(),
            ids.len(),
            10 * 1024 - max + 1,
            10 * 1024
        )
    });
    c.done()
}

/// The pattern of e2e.flush_waits, 50 times in one boot: every result of an
/// item that sleeps 20 ms reports at least 20 ms of runtime and SLEPT (was:
/// about one run in three had an item measured at 19.5 ms without SLEPT).
pub fn slept_50_rounds(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let mut bad = 0;
    for round in 0..50 {
        for (q, sleep) in [
            (RUST_WQ_Q_ORDERED, 20_000u64),
            (RUST_WQ_Q_UNBOUND, 20_000),
            (RUST_WQ_Q_SYSTEM_DFL, 25_000),
            (RUST_WQ_Q_UNBOUND, 15),
        ] {
            dev.enqueue(
                EnqueueArgs::new(q, 2)
                    .delay_us(5_000_000)
                    .sleep_us(sleep)
                    .tag(sleep),
            )
            .must("ENQUEUE")?;
        }
        dev.flush(Target::All).must("FLUSH ALL")?;
        let (res, _) = dev.drain_results().must("RESULTS")?;
        c.eq(&format!("round {round}: results"), res.len(), 8);
        for r in &res {
            let want = r.tag * 1000;
            if r.runtime_ns < want || r.flags & RUST_WQ_RES_SLEPT == 0 {
                bad += 1;
                if bad <= 5 {
                    c.fail(format!(
                        "round {round}: id {}: runtime {} ns for a sleep of {} us, flags {}",
                        r.id,
                        r.runtime_ns,
                        r.tag,
                        wqctl::format_flags(r.flags)
                    ));
                }
            }
        }
    }
    c.check(bad == 0, || {
        format!("{bad} of 400 results broke the promise")
    });
    c.done()
}

/// BENCH whose threads x items exceed RUST_WQ_BENCH_MAX_TOTAL fails with
/// EINVAL before allocating (was: CPUs x items x 32 bytes, no cap).
pub fn bench_total_capped(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let online = ctx.online.len() as u64;
    let per = (RUST_WQ_BENCH_MAX_TOTAL / online.max(1)) as u32;
    if per >= RUST_WQ_BENCH_MAX_ITEMS {
        return skip(format!(
            "{online} CPUs x RUST_WQ_BENCH_MAX_ITEMS fit in RUST_WQ_BENCH_MAX_TOTAL"
        ));
    }
    c.errno(
        "BENCH items over MAX_TOTAL / online CPUs",
        dev.bench(BenchArgs {
            op: RUST_WQ_BENCH_OP_RT,
            path: RUST_WQ_BENCH_PERCPU,
            items: per + 1,
            threads: 0,
            start_latency: true,
        }),
        EINVAL,
    );
    // An explicit thread count is checked the same way (threads that would run).
    if online >= 2 {
        c.errno(
            "BENCH 2 threads x (MAX_TOTAL / 2 + 1) items",
            dev.bench(BenchArgs {
                op: RUST_WQ_BENCH_OP_RT,
                path: RUST_WQ_BENCH_PERCPU,
                items: (RUST_WQ_BENCH_MAX_TOTAL / 2) as u32 + 1,
                threads: 2,
                start_latency: false,
            }),
            EINVAL,
        );
    }
    c.done()
}
