// SPDX-License-Identifier: GPL-2.0

//! [`Delay`]: how long a delayed item waits, never shorter than asked; and [`jiffies`].

use kernel::{
    bindings,
    error::code::EINVAL,
    prelude::*,
    time::{
        Delta,
        Jiffies, //
    },
};

/// A delay before a delayed work item is queued, in jiffies.
///
/// Conversions from time units round up and add one jiffy: the C timer fires when `jiffies`
/// reaches `now + delay`, and the current jiffy may be almost over, so `delay` jiffies can be
/// up to one jiffy short. With the extra jiffy a [`Delay`] made from a duration is never
/// shorter than that duration. A zero duration stays zero (queue at once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Delay(Jiffies);

impl Delay {
    /// No delay: the item is queued at once.
    pub(crate) const ZERO: Delay = Delay(0);

    /// The largest duration accepted by [`Delay::from_micros`] (about 71 minutes).
    #[cfg_attr(not(CONFIG_KUNIT), expect(dead_code, reason = "used by KUnit only"))]
    pub(crate) const MAX_MICROS: u64 = u32::MAX as u64;

    /// A delay of exactly `jiffies` timer ticks (C semantics: may be up to one tick short).
    pub(crate) const fn from_jiffies(jiffies: Jiffies) -> Self {
        Delay(jiffies)
    }

    /// A delay of at least `us` microseconds; `EINVAL` above [`Delay::MAX_MICROS`].
    pub(crate) fn from_micros(us: u64) -> Result<Self> {
        if us == 0 {
            return Ok(Self::ZERO);
        }
        let us = u32::try_from(us)?;
        // SAFETY: `__usecs_to_jiffies` is a pure conversion with no preconditions; it rounds up.
        let j = unsafe { bindings::__usecs_to_jiffies(us) };
        Ok(Delay(j.saturating_add(1)))
    }

    /// A delay of at least `ms` milliseconds.
    pub(crate) fn from_millis(ms: u32) -> Result<Self> {
        Self::from_micros(u64::from(ms) * 1000)
    }

    /// The delay in jiffies.
    pub(crate) const fn jiffies(self) -> Jiffies {
        self.0
    }
}

/// A delay of at least the duration `d` (the `kernel` crate's [`Delta`]), rounded up to whole
/// microseconds as [`Delay::from_micros`]: `EINVAL` for a negative duration or one above
/// [`Delay::MAX_MICROS`].
impl TryFrom<Delta> for Delay {
    type Error = Error;

    fn try_from(d: Delta) -> Result<Self> {
        if d.as_nanos() < 0 {
            return Err(EINVAL);
        }
        Self::from_micros(u64::try_from(d.as_micros_ceil())?)
    }
}

/// Returns the kernel tick counter (`jiffies`), the clock that delayed work is timed by.
pub(crate) fn jiffies() -> u64 {
    // SAFETY: `jiffies` is a C global that lives forever and is only ever updated with single
    // word stores; a volatile read sees either the old or the new value.
    let j = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(bindings::jiffies)) };
    j as u64
}
