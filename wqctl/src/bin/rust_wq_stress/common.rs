//! Helpers shared by the scenarios: options, PRNG, errno tallies, a watchdog
//! for calls that must not hang; and the names they take from the shared
//! test library (`wqctl::testing`: report, outcomes, mappings).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wqctl::{Device, Errno};

pub struct Opts {
    pub long: bool,
    pub seed: u64,
    pub path: String,
    pub ko: Option<String>,
    pub kmemleak: bool,
}

impl Opts {
    /// `short` in make check, `long` in make stress.
    pub fn pick<T>(&self, short: T, long: T) -> T {
        if self.long {
            long
        } else {
            short
        }
    }
    /// A seed for one scenario (and thread): stable for a given --seed.
    pub fn seed_for(&self, scenario: &str, thread: u64) -> u64 {
        let mut h = self.seed ^ 0x9e37_79b9_7f4a_7c15;
        for b in scenario.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        splitmix(h.wrapping_add(thread.wrapping_mul(0xa076_1d64_78bd_642f)))
    }
    pub fn open(&self) -> Result<Device, Outcome> {
        wqctl::testing::open(&self.path)
    }
}

pub use wqctl::testing::ktap::Report;
pub use wqctl::testing::{
    diag, fail, page_size, skip, unavailable, unmapped_addr, Must, Outcome, Pages, KERNEL_ADDRS,
};

/// Failures are collected from several threads; at most this many are kept.
const MAX_ERRS: usize = 40;

/// Shared failure list (cheap to clone into threads).
#[derive(Clone, Default)]
pub struct Errs(Arc<Mutex<(Vec<String>, u64)>>);

impl Errs {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn fail(&self, msg: impl Into<String>) {
        let mut g = self.0.lock().unwrap();
        g.1 += 1;
        if g.0.len() < MAX_ERRS {
            g.0.push(msg.into());
        }
    }
    pub fn check(&self, cond: bool, msg: impl FnOnce() -> String) -> bool {
        if !cond {
            self.fail(msg());
        }
        cond
    }
    pub fn count(&self) -> u64 {
        self.0.lock().unwrap().1
    }
    /// Moves the failures into the report.
    pub fn to_report(&self, rep: &mut Report) {
        let g = self.0.lock().unwrap();
        rep.errs.extend(g.0.iter().cloned());
        if g.1 as usize > g.0.len() {
            rep.errs.push(format!(
                "... and {} more failures",
                g.1 as usize - g.0.len()
            ));
        }
    }
}

pub fn time_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    splitmix(t ^ u64::from(std::process::id()))
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// xoshiro256** seeded by splitmix64.
pub struct Rng([u64; 4]);

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut s = [0u64; 4];
        let mut z = seed;
        for v in &mut s {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            *v = splitmix(z);
        }
        Rng(s)
    }
    pub fn u64(&mut self) -> u64 {
        let s = &mut self.0;
        let r = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        r
    }
    pub fn u32(&mut self) -> u32 {
        (self.u64() >> 32) as u32
    }
    /// 0 .. n-1 (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.u64()) * u128::from(n)) >> 64) as u64
    }
    /// lo ..= hi.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    /// True with probability pct/100.
    pub fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    pub fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
    /// Index by weights.
    pub fn weighted(&mut self, w: &[u64]) -> usize {
        let total: u64 = w.iter().sum();
        let mut x = self.below(total);
        for (i, &wi) in w.iter().enumerate() {
            if x < wi {
                return i;
            }
            x -= wi;
        }
        w.len() - 1
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.u64().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

/// Counts by key, e.g. "ENQUEUE:EINVAL".
#[derive(Default, Clone)]
pub struct Tally(pub BTreeMap<String, u64>);

impl Tally {
    pub fn add(&mut self, k: impl Into<String>, n: u64) {
        *self.0.entry(k.into()).or_insert(0) += n;
    }
    pub fn merge(&mut self, o: &Tally) {
        for (k, v) in &o.0 {
            self.add(k.clone(), *v);
        }
    }
    pub fn get(&self, k: &str) -> u64 {
        self.0.get(k).copied().unwrap_or(0)
    }
    /// "k xv, k xv, ..." on one line.
    pub fn joined(&self) -> String {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{k} x{v}")).collect();
        parts.join(", ")
    }
    /// "k=v k=v ..." on lines of at most ~100 characters.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = String::new();
        for (k, v) in &self.0 {
            let s = format!("{k}={v}");
            if !cur.is_empty() && cur.len() + s.len() > 100 {
                out.push(std::mem::take(&mut cur));
            }
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur += &s;
        }
        if !cur.is_empty() {
            out.push(cur);
        }
        out
    }
}

pub fn ename(r: Result<i32, Errno>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => e.name(),
    }
}

/// Per-thread "in a call since" slots, checked by a watchdog thread: a call
/// that takes longer than the limit means the module hung; the process then
/// prints a bail-out line and exits (the test cannot recover a stuck thread).
pub struct Watchdog {
    start: Instant,
    slots: Vec<(AtomicU64, AtomicU64)>, // (since ms + 1, or 0 when idle; what)
    stop: AtomicBool,
}

impl Watchdog {
    pub fn new(n: usize) -> Arc<Self> {
        Arc::new(Watchdog {
            start: Instant::now(),
            slots: (0..n)
                .map(|_| (AtomicU64::new(0), AtomicU64::new(0)))
                .collect(),
            stop: AtomicBool::new(false),
        })
    }
    pub fn enter(&self, slot: usize, what: u64) {
        let ms = self.start.elapsed().as_millis() as u64 + 1;
        self.slots[slot].1.store(what, Ordering::Relaxed);
        self.slots[slot].0.store(ms, Ordering::Release);
    }
    pub fn leave(&self, slot: usize) {
        self.slots[slot].0.store(0, Ordering::Release);
    }
    /// Starts the checking thread; `describe` turns a slot's `what` into text.
    pub fn spawn(
        self: &Arc<Self>,
        scenario: &'static str,
        limit: Duration,
        describe: fn(u64) -> String,
    ) -> std::thread::JoinHandle<()> {
        let me = self.clone();
        std::thread::spawn(move || {
            while !me.stop.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(200));
                let now = me.start.elapsed().as_millis() as u64 + 1;
                for (i, (since, what)) in me.slots.iter().enumerate() {
                    let s = since.load(Ordering::Acquire);
                    // Saturating: a call may have started after `now` was read.
                    if s != 0 && now.saturating_sub(s) > limit.as_millis() as u64 {
                        println!(
                            "# {scenario}: WATCHDOG: thread {i} has been in {} for {} ms (limit {} ms): the module hangs",
                            describe(what.load(Ordering::Relaxed)),
                            now - s,
                            limit.as_millis()
                        );
                        println!("Bail out! {scenario}: a call into the module hung");
                        std::process::exit(1);
                    }
                }
            }
        })
    }
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Online CPUs from /sys/devices/system/cpu/online ("0-2,4").
pub fn online_cpus() -> Vec<u32> {
    let s = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    let mut v = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let mut it = part.split('-');
        let a: u32 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
        let b: u32 = it.next().and_then(|x| x.parse().ok()).unwrap_or(a);
        v.extend(a..=b);
    }
    v
}

pub const KMEMLEAK: &str = "/sys/kernel/debug/kmemleak";

pub fn mount_debugfs() {
    if !std::path::Path::new("/sys/kernel/debug/kmemleak").exists()
        && !std::path::Path::new("/sys/kernel/debug/failslab").exists()
    {
        let _ = std::process::Command::new("mount")
            .args(["-t", "debugfs", "debugfs", "/sys/kernel/debug"])
            .status();
    }
}

/// Scans for leaks (objects must be 5 s old to be reported: waits) and
/// returns the report blocks (each "unreferenced object ..." with its trace).
pub fn kmemleak_report() -> Option<Vec<String>> {
    mount_debugfs();
    std::fs::write(KMEMLEAK, "scan").ok()?;
    std::thread::sleep(Duration::from_secs(5));
    std::fs::write(KMEMLEAK, "scan").ok()?;
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(KMEMLEAK, "scan").ok()?;
    let text = std::fs::read_to_string(KMEMLEAK).ok()?;
    let mut blocks: Vec<String> = Vec::new();
    for l in text.lines() {
        if l.starts_with("unreferenced object") || blocks.is_empty() {
            blocks.push(String::new());
        }
        let b = blocks.last_mut().unwrap();
        b.push_str(l);
        b.push('\n');
    }
    blocks.retain(|b| !b.trim().is_empty());
    Some(blocks)
}

pub fn now_ms(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64() * 1000.0
}
