//! The kernel's jiffies clock against the trace clock `mono`, read from the timer tracepoints.
//!
//! A timer armed for `d` jiffies expires when `jiffies` has advanced by `d`. `jiffies` is
//! advanced by the tick from CLOCK_MONOTONIC (`tick_do_update_jiffies64()`): jiffy `J` begins
//! at the monotonic time `offset + J * tick` and `jiffies` never runs ahead of it. It can run
//! behind: when a tick comes late (in an emulated VM whose vCPU the host did not schedule),
//! `jiffies` still holds an older value until the next tick catches it up. A timer armed in
//! that window counts its delay from the stale value, so its expiry can come, by
//! CLOCK_MONOTONIC, as much earlier than `arming time + delay` as `jiffies` was stale when it
//! was armed, and no earlier. [`JiffiesClock::lag_ns`] measures that staleness from the trace
//! itself, so that a test of "never early" tells a late tick from an early timer.

use crate::util::{field, trace_line};

/// One reading of `jiffies` at a moment of the trace clock.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub ts_ns: u64,
    pub jiffies: u64,
}

/// What a `timer_start` line says: its timer, the jiffies it was armed at and expires at.
#[derive(Clone, Copy, Debug)]
pub struct Start<'a> {
    pub timer: &'a str,
    pub pid: u32,
    pub irq: char,
    pub at: Sample,
    pub expires: u64,
}

/// A `timer_expire_entry` line: the timer and the jiffies it ran at.
#[derive(Clone, Copy, Debug)]
pub struct Expiry<'a> {
    pub timer: &'a str,
    pub at: Sample,
}

/// The `timer_start` lines of `delayed_work_timer_fn` in `text`.
pub fn delayed_starts(text: &str) -> Vec<Start<'_>> {
    text.lines()
        .filter_map(trace_line)
        .filter(|l| l.event == "timer_start" && l.rest.contains("function=delayed_work_timer_fn "))
        .filter_map(|l| {
            let expires: u64 = field(l.rest, "expires")?.parse().ok()?;
            let timeout: i64 = l
                .rest
                .split("[timeout=")
                .nth(1)?
                .split(']')
                .next()?
                .parse()
                .ok()?;
            Some(Start {
                timer: field(l.rest, "timer")?,
                pid: l.pid,
                irq: l.irq,
                at: Sample {
                    ts_ns: l.ts_ns,
                    jiffies: expires.wrapping_sub(timeout as u64),
                },
                expires,
            })
        })
        .collect()
}

/// The `timer_expire_entry` lines in `text` (every timer's).
pub fn expiries(text: &str) -> Vec<Expiry<'_>> {
    text.lines()
        .filter_map(trace_line)
        .filter(|l| l.event == "timer_expire_entry")
        .filter_map(|l| {
            Some(Expiry {
                timer: field(l.rest, "timer")?,
                at: Sample {
                    ts_ns: l.ts_ns,
                    jiffies: field(l.rest, "now")?.parse().ok()?,
                },
            })
        })
        .collect()
}

/// The tick (ns per jiffy) and the start of jiffy 0 on the trace clock.
#[derive(Clone, Copy, Debug)]
pub struct JiffiesClock {
    pub hz: u64,
    tick_ns: i128,
    /// The latest start of jiffy `base` the samples allow (no sample is before it).
    origin_ns: i128,
    base: u64,
}

impl JiffiesClock {
    /// Fits the clock to `samples` (at least two, a few hundred ms apart): for each tick rate
    /// Kconfig offers, the start of jiffy `J` can be no later than any sample taken at `J`;
    /// the rate whose samples then lie closest to their jiffy's start (smallest largest
    /// staleness) is the kernel's, since a wrong rate drifts by the rate error times the
    /// jiffies between samples.
    pub fn fit(samples: &[Sample]) -> Option<JiffiesClock> {
        let base = samples.first()?.jiffies;
        let mut best: Option<(i128, JiffiesClock)> = None;
        for hz in [100u64, 250, 300, 1000] {
            let tick_ns = 1_000_000_000 / i128::from(hz);
            let rel = |s: &Sample| {
                i128::from(s.ts_ns) - i128::from(s.jiffies.wrapping_sub(base) as i64) * tick_ns
            };
            let origin_ns = samples.iter().map(rel).min()?;
            let spread = samples.iter().map(rel).max()? - origin_ns;
            let clock = JiffiesClock {
                hz,
                tick_ns,
                origin_ns,
                base,
            };
            if best.as_ref().is_none_or(|(s, _)| spread < *s) {
                best = Some((spread, clock));
            }
        }
        best.map(|(_, c)| c)
    }

    /// How long `jiffies` had been stale when `s` was read: the time since its jiffy began,
    /// less one tick (within its own tick a reading is current), never below 0. An
    /// underestimate: the fit puts each jiffy's start as late as the samples allow.
    pub fn lag_ns(&self, s: &Sample) -> u64 {
        let start =
            self.origin_ns + i128::from(s.jiffies.wrapping_sub(self.base) as i64) * self.tick_ns;
        let since = i128::from(s.ts_ns) - start - self.tick_ns;
        u64::try_from(since.max(0)).unwrap_or(0)
    }
}

/// The most `jiffies` was stale at any of `armed` (see [`JiffiesClock::lag_ns`]), with the
/// clock fitted to them and to every timer expiry of `text`; and the tick rate found.
pub fn lag_at(text: &str, armed: &[Sample]) -> Result<(u64, u64), String> {
    let samples: Vec<Sample> = armed
        .iter()
        .copied()
        .chain(expiries(text).iter().map(|e| e.at))
        .collect();
    let clock = JiffiesClock::fit(&samples).ok_or("no timer events to read jiffies from")?;
    let lag = armed.iter().map(|s| clock.lag_ns(s)).max().unwrap_or(0);
    Ok((clock.hz, lag))
}
