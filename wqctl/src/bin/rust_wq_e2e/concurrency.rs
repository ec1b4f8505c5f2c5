//! Several threads on several files at once, with exact accounting.

use crate::util::{ids, ALL_QUEUES};
use crate::{panic_message, Checker, Ctx, TestResult};
use libc::ENOENT;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Barrier};
use std::time::Duration;
use wqctl::abi::*;
use wqctl::{Device, EnqueueArgs, Errno, Target};

/// xorshift64*: deterministic per-thread randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Keeps the results a RESULTS call of thread `t` returned, and their ids.
fn record(
    t: u64,
    r: Result<(Vec<RustWqResult>, u64), Errno>,
    results: &mut Vec<RustWqResult>,
    seen: &mut HashSet<u64>,
    errs: &mut Vec<String>,
) {
    match r {
        Ok((r, dropped)) => {
            if dropped != 0 {
                errs.push(format!("thread {t}: RESULTS dropped {dropped}"));
            }
            seen.extend(r.iter().map(|x| x.id));
            results.extend(r);
        }
        Err(e) => errs.push(format!("thread {t}: RESULTS: {e}")),
    }
}

/// CANCEL or MOD_DELAY of `id` failed with ENOENT: reads every result now (an
/// item that had started has finished by then) and remembers how many results
/// had been read, so that a result of `id` arriving later can be caught.
fn not_pending(
    dev: &Device,
    t: u64,
    id: u64,
    results: &mut Vec<RustWqResult>,
    seen: &mut HashSet<u64>,
    enoent: &mut HashMap<u64, usize>,
    errs: &mut Vec<String>,
) {
    record(t, dev.drain_results(), results, seen, errs);
    enoent.entry(id).or_insert(results.len());
}

fn concurrent_worker(
    path: &str,
    t: u64,
    online: &[u32],
    barrier: &Barrier,
) -> Result<Vec<RustWqResult>, Vec<String>> {
    let mut errs = Vec::new();
    let dev = match Device::open(path) {
        Ok(d) => d,
        Err(e) => {
            barrier.wait();
            return Err(vec![format!("thread {t}: open: {e}")]);
        }
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t + 1).wrapping_mul(0x1234_5678_9abc_def1));
    let mut known: HashMap<u64, (u64, u32)> = HashMap::new(); // id -> (tag, queue)
    let mut order: Vec<u64> = Vec::new();
    let mut cancelled: HashSet<u64> = HashSet::new();
    let mut cancelled_all = 0u64;
    let mut results: Vec<RustWqResult> = Vec::new();
    let mut seen: HashSet<u64> = HashSet::new();
    // id -> number of results read when CANCEL/MOD_DELAY said ENOENT for it.
    let mut enoent: HashMap<u64, usize> = HashMap::new();
    barrier.wait();
    for op in 0..30u64 {
        let tag = t * 1_000_000 + op;
        match rng.below(9) {
            0..=2 => {
                let q = ALL_QUEUES[rng.below(5) as usize];
                let cpu = if rng.below(2) == 0 {
                    RUST_WQ_CPU_ANY
                } else {
                    online[rng.below(online.len() as u64) as usize]
                };
                let n = 1 + rng.below(4) as u32;
                let mut a = EnqueueArgs::new(q, n)
                    .cpu(cpu)
                    .sleep_us(rng.below(300))
                    .tag(tag);
                if rng.below(2) == 0 {
                    a = a.delay_us(1_000 + rng.below(20_000));
                }
                match dev.enqueue(a) {
                    Ok(first) => {
                        if order.is_empty() && first != 1 {
                            errs.push(format!("thread {t}: first ENQUEUE of a fresh file returned first_id {first}, expected 1"));
                        }
                        for id in ids(first, n) {
                            if known.insert(id, (tag, q)).is_some() {
                                errs.push(format!(
                                    "thread {t}: id {id} was returned by two ENQUEUE calls"
                                ));
                            }
                            order.push(id);
                        }
                    }
                    Err(e) => errs.push(format!("thread {t}: ENQUEUE {a:?}: {e}")),
                }
            }
            3 => {
                if let Err(e) = dev.flush(Target::All) {
                    errs.push(format!("thread {t}: FLUSH ALL: {e}"));
                }
            }
            4 => {
                if order.is_empty() {
                    continue;
                }
                let id = order[rng.below(order.len() as u64) as usize];
                let done = seen.contains(&id) || cancelled.contains(&id);
                match dev.cancel(Target::Id(id)) {
                    Ok(1) if !done => {
                        cancelled.insert(id);
                    }
                    // The header: CANCEL by id of an item that is not pending fails with
                    // ENOENT; success means it was cancelled (count 1).
                    Ok(n) => errs.push(format!(
                        "thread {t}: CANCEL id {id} returned count {n}, expected 1 or ENOENT (already ran or cancelled: {done})"
                    )),
                    Err(e) if e.0 == ENOENT => {
                        not_pending(&dev, t, id, &mut results, &mut seen, &mut enoent, &mut errs)
                    }
                    Err(e) => errs.push(format!("thread {t}: CANCEL id {id}: {e}")),
                }
            }
            5 => {
                if order.is_empty() {
                    continue;
                }
                let id = order[rng.below(order.len() as u64) as usize];
                let done = seen.contains(&id) || cancelled.contains(&id);
                match dev.mod_delay(id, rng.below(20_000)) {
                    Ok(()) if done => errs.push(format!(
                        "thread {t}: MOD_DELAY id {id} succeeded but it already ran or was cancelled (expected ENOENT)"
                    )),
                    Ok(()) => {}
                    Err(e) if e.0 == ENOENT => {
                        // MOD_DELAY does not wait for an item that has started (header): wait
                        // for it here, so that "not pending" means "finished" as for CANCEL.
                        if let Err(e) = dev.flush(Target::Id(id)) {
                            errs.push(format!("thread {t}: FLUSH id {id}: {e}"));
                        }
                        not_pending(&dev, t, id, &mut results, &mut seen, &mut enoent, &mut errs)
                    }
                    Err(e) => errs.push(format!("thread {t}: MOD_DELAY id {id}: {e}")),
                }
            }
            6 => {
                let r = dev.results(1 + rng.below(8) as u32);
                record(t, r, &mut results, &mut seen, &mut errs);
            }
            7 => {
                if rng.below(3) == 0 {
                    match dev.cancel(Target::All) {
                        Ok(n) => cancelled_all += n,
                        Err(e) => errs.push(format!("thread {t}: CANCEL ALL: {e}")),
                    }
                } else if let Err(e) = dev.flush(Target::Queue(ALL_QUEUES[rng.below(5) as usize])) {
                    errs.push(format!("thread {t}: FLUSH QUEUE: {e}"));
                }
            }
            _ => std::thread::sleep(Duration::from_micros(rng.below(2_000))),
        }
    }
    if let Err(e) = dev.flush(Target::All) {
        errs.push(format!("thread {t}: final FLUSH ALL: {e}"));
    }
    match dev.drain_results() {
        Ok((r, dropped)) => {
            if dropped != 0 {
                errs.push(format!("thread {t}: RESULTS dropped {dropped}"));
            }
            results.extend(r);
        }
        Err(e) => errs.push(format!("thread {t}: RESULTS: {e}")),
    }
    // ENOENT meant "not pending": it had run (and finished: its result was
    // readable right away) or was cancelled; it must never run afterwards.
    for (i, r) in results.iter().enumerate() {
        if let Some(&at) = enoent.get(&r.id) {
            if i >= at {
                errs.push(format!(
                    "thread {t}: CANCEL/MOD_DELAY of id {} failed with ENOENT, but its result arrived only later: it was pending, or the call returned before it finished",
                    r.id
                ));
            }
        }
    }
    // Every id accounted for exactly once.
    let mut ran: HashSet<u64> = HashSet::new();
    for r in &results {
        if !ran.insert(r.id) {
            errs.push(format!("thread {t}: id {} has two results", r.id));
        }
        match known.get(&r.id) {
            None => errs.push(format!(
                "thread {t}: result for id {} that this file never enqueued",
                r.id
            )),
            Some(&(tag, q)) => {
                if r.tag != tag || r.queue != q {
                    errs.push(format!(
                        "thread {t}: id {}: result tag/queue {}/{} but enqueued with {tag}/{q}",
                        r.id, r.tag, r.queue
                    ));
                }
            }
        }
        if cancelled.contains(&r.id) {
            errs.push(format!(
                "thread {t}: id {} was cancelled (CANCEL returned 1) but ran",
                r.id
            ));
        }
    }
    let total = known.len() as u64;
    let accounted = ran.len() as u64 + cancelled.len() as u64 + cancelled_all;
    if accounted != total {
        errs.push(format!(
            "thread {t}: {total} ids enqueued but {} ran + {} cancelled by id + {cancelled_all} by CANCEL ALL = {accounted}",
            ran.len(),
            cancelled.len()
        ));
    }
    match dev.stats() {
        Ok(s) => {
            let want = (
                total,
                ran.len() as u64,
                cancelled.len() as u64 + cancelled_all,
                0,
                0,
            );
            let got = (
                s.enqueued,
                s.executed,
                s.cancelled,
                s.pending,
                s.results_dropped,
            );
            if want != got {
                errs.push(format!(
                    "thread {t}: stats (enqueued, executed, cancelled, pending, dropped): userspace saw {want:?}, kernel says {got:?}"
                ));
            }
        }
        Err(e) => errs.push(format!("thread {t}: STATS: {e}")),
    }
    if errs.is_empty() {
        Ok(results)
    } else {
        Err(errs)
    }
}

pub fn concurrent_8_threads(ctx: &Ctx) -> TestResult {
    const THREADS: u64 = 8;
    let barrier = Arc::new(Barrier::new(THREADS as usize));
    let online: Arc<Vec<u32>> = Arc::new(if ctx.online.is_empty() {
        vec![0]
    } else {
        ctx.online.clone()
    });
    let mut handles = Vec::new();
    for t in 0..THREADS {
        let (path, b, on) = (ctx.path.clone(), barrier.clone(), online.clone());
        handles.push(std::thread::spawn(move || {
            concurrent_worker(&path, t, &on, &b)
        }));
    }
    let mut c = Checker::new();
    let mut seqs: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut total = 0;
    for (t, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(Ok(res)) => {
                total += res.len();
                for r in res {
                    if let Some((t2, id2)) = seqs.insert(r.seq, (t as u64, r.id)) {
                        c.fail(format!(
                            "seq {} used twice: thread {t2} id {id2} and thread {t} id {}",
                            r.seq, r.id
                        ));
                    }
                }
            }
            Ok(Err(errs)) => c.errs.extend(errs),
            Err(p) => c.fail(format!("thread {t} panicked: {}", panic_message(&*p))),
        }
    }
    c.check(total > 0, || "no item ran in any thread".into());
    c.done()
}
