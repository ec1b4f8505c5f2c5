// SPDX-License-Identifier: GPL-2.0

//! A torture test of the workqueue layer, in the tradition of `rcutorture` and `locktorture`.
//!
//! For a set time, actors in every context the layer supports pick random operations on a
//! shared pool of items and of the run's own queues:
//!
//! - one kthread per online CPU (task context): every operation, including the sleeping ones
//!   (`cancel_sync`, `disable_sync`, `flush`, `Workqueue::flush`/`drain`) and dropping a queue
//!   and making a new one;
//! - two hrtimers in hard-interrupt context (`HRTIMER_MODE_REL_HARD`), and a BH work item on
//!   `system_bh_wq` (softirq context) that the timers kick: only what the layer allows there
//!   (enqueue, enqueue_on, enqueue_delayed, mod_delayed, cancel, disable, enable, re-arm);
//! - while a queue is being dropped, the interrupt contexts re-arm items that were armed on it
//!   onto another queue.
//!
//! The invariants (`plan.rs` [`plan::INV_NAMES`]) are checked while it runs and at the end, after
//! every actor has stopped, every item was cancelled and every queue dropped. Each is one
//! top-level KTAP result; the time of its first violation is logged. The kernel log (WARN,
//! lockdep, ODEBUG, KFENCE) is scanned by the caller (`scripts/guest.sh`).
//!
//! Interface (debugfs): write `SEED SECONDS [RACES]` to `/sys/kernel/debug/rust_wq/torture`
//! (decimal; `RACES` is a mask of the races to provoke, `plan.rs` `RACE_*`, default all); the
//! write returns when the run is over, and `/sys/kernel/debug/rust_wq/torture_result` then
//! holds its KTAP report. One run at a time (`EBUSY`).

#[path = "torture/calls.rs"]
mod calls;
#[path = "torture/items.rs"]
mod items;
#[path = "torture/ops.rs"]
mod ops;
#[path = "torture/plan.rs"]
mod plan;
#[path = "torture/report.rs"]
mod report;

use crate::kthread::{
    ktime_ns,
    schedule_point,
    KThread,
    StopToken, //
};
use crate::workqueue::{
    cpu,
    impl_has_work,
    new_work,
    system_bh,
    BhWorkItem,
    Work,
    WorkItem,
    //
    Workqueue,
};
use core::sync::atomic::{
    AtomicBool, AtomicU64,
    Ordering::{
        Relaxed,
        SeqCst, //
    },
};
use items::Tracked;
use kernel::{
    debugfs::{
        Dir,
        File, //
    },
    impl_has_hr_timer, new_mutex,
    prelude::*,
    sync::{
        Arc,
        ArcBorrow,
        Mutex, //
    },
    time::{
        delay::fsleep,
        hrtimer::{
            HrTimer,
            HrTimerCallback,
            HrTimerCallbackContext,
            HrTimerPointer,
            HrTimerRestart,
            RelativeHardMode, //
        },
        Delta,
        Monotonic, //
    },
    uaccess::UserSliceReader,
};
use ops::Shared;
use plan::{
    Ctx,
    Rng, //
};
use report::{
    write_report,
    Report, //
};

/// One run at a time.
static RUNNING: AtomicBool = AtomicBool::new(false);

/// The longest run accepted, in seconds.
const MAX_SECONDS: u64 = 3600;

/// The BH actor: a work item on `system_bh_wq` (softirq) doing a few operations per run.
#[pin_data]
struct BhActor {
    #[pin]
    w: Work<BhActor>,
    shared: Arc<Shared>,
    rng: AtomicU64,
}

impl_has_work! { impl HasWork<Self> for BhActor { self.w } }

impl WorkItem for BhActor {
    type Pointer = Arc<BhActor>;

    fn run(this: Arc<BhActor>) {
        if this.shared.stopping() {
            return;
        }
        let mut rng = Rng::from_state(this.rng.load(Relaxed));
        for _ in 0..2 {
            this.shared.random_op(Ctx::SoftIrq, &mut rng);
        }
        this.rng.store(rng.state(), Relaxed);
    }
}

// SAFETY: `run` only calls the layer's non-sleeping operations (`Ctx::SoftIrq`: no
// `cancel_sync`, `flush`, `drain` or queue drop), and takes only spinlocks.
unsafe impl BhWorkItem for BhActor {}

/// The reclaim actor: a work item on a `WQ_MEM_RECLAIM` queue of its own that `cancel_sync()`s
/// system items (`plan::RACE_CANCEL_IN_RECLAIM`). The kthreads queue it.
#[pin_data]
struct ReclaimActor {
    #[pin]
    w: Work<ReclaimActor>,
    shared: Arc<Shared>,
    rng: AtomicU64,
}

impl_has_work! { impl HasWork<Self> for ReclaimActor { self.w } }

impl WorkItem for ReclaimActor {
    type Pointer = Arc<ReclaimActor>;

    fn run(this: Arc<ReclaimActor>) {
        if this.shared.stopping() {
            return;
        }
        let mut rng = Rng::from_state(this.rng.load(Relaxed));
        this.shared.cancel_sync_from_worker(&mut rng);
        this.rng.store(rng.state(), Relaxed);
    }
}

/// An hrtimer actor: one operation per expiry, in hard-interrupt context; it also kicks the BH
/// actor.
#[pin_data]
struct TimerActor {
    #[pin]
    timer: HrTimer<TimerActor>,
    shared: Arc<Shared>,
    bh: Arc<BhActor>,
    rng: AtomicU64,
    period_us: i64,
}

impl_has_hr_timer! {
    impl HasHrTimer<Self> for TimerActor {
        mode: RelativeHardMode<Monotonic>, field: self.timer
    }
}

impl HrTimerCallback for TimerActor {
    type Pointer<'a> = Arc<Self>;

    fn run(this: ArcBorrow<'_, Self>, mut ctx: HrTimerCallbackContext<'_, Self>) -> HrTimerRestart {
        if this.shared.stopping() {
            return HrTimerRestart::NoRestart;
        }
        let mut rng = Rng::from_state(this.rng.load(Relaxed));
        this.shared.random_op(Ctx::HardIrq, &mut rng);
        this.rng.store(rng.state(), Relaxed);
        // Already queued is fine: the BH actor runs at most as often as the timers fire. The
        // reference given back is not the last (this actor holds one).
        let _ = system_bh().enqueue(this.bh.clone());
        ctx.forward_now(Delta::from_micros(this.period_us));
        HrTimerRestart::Restart
    }
}

/// The debugfs files, kept by the module.
#[pin_data]
pub(crate) struct Debugfs {
    #[pin]
    _run: File<Arc<Control>>,
    #[pin]
    _result: File<Arc<Control>>,
    _dir: Dir,
}

/// What the two files share: the last report.
#[pin_data]
pub(crate) struct Control {
    #[pin]
    report: Mutex<KVec<u8>>,
}

impl Control {
    /// Creates the shared state of the two files, with an empty report.
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Control { report <- new_mutex!(KVec::new(), "torture::Control::report") }),
            GFP_KERNEL,
        )
    }
}

impl Debugfs {
    /// Creates `rust_wq/torture` and `rust_wq/torture_result` in debugfs.
    pub(crate) fn new(c: Arc<Control>) -> impl PinInit<Self, Error> {
        let dir = Dir::new(c"rust_wq");
        let c2 = c.clone();
        try_pin_init!(Self {
            _run <- dir.write_callback_file(c"torture", c, &write_torture),
            _result <- dir.read_callback_file(c"torture_result", c2, &read_result),
            _dir: dir,
        }? Error)
    }
}

/// `torture_result`: the last report.
fn read_result(c: &Arc<Control>, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    let r = c.report.lock();
    f.write_str(core::str::from_utf8(&r).unwrap_or("(report is not UTF-8)\n"))
}

/// `torture`: parses `SEED SECONDS` and runs.
fn write_torture(c: &Arc<Control>, r: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 64];
    let n = r.len().min(buf.len());
    let b = buf.get_mut(..n).ok_or(EINVAL)?;
    r.read_slice(b)?;
    let mut words = b
        .split(|&x| x == b' ' || x == b'\n' || x == b'\t')
        .filter(|w| !w.is_empty());
    let seed = parse_u64(words.next().ok_or(EINVAL)?)?;
    let secs = parse_u64(words.next().ok_or(EINVAL)?)?;
    let races = match words.next() {
        Some(w) => u32::try_from(parse_u64(w)?).map_err(|_| EINVAL)?,
        None => plan::RACES_DEFAULT,
    };
    if secs == 0
        || secs > MAX_SECONDS
        || races & !plan::RACES_ACCEPTED != 0
        || words.next().is_some()
    {
        return Err(EINVAL);
    }
    if RUNNING.swap(true, SeqCst) {
        return Err(EBUSY);
    }
    let report = run(seed, secs, races);
    RUNNING.store(false, SeqCst);
    let report = report?;
    *c.report.lock() = report;
    Ok(())
}

fn parse_u64(w: &[u8]) -> Result<u64> {
    let mut v: u64 = 0;
    for &d in w {
        if !d.is_ascii_digit() {
            return Err(EINVAL);
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or(EINVAL)?;
    }
    Ok(v)
}

/// Runs the torture test for `secs` seconds with `seed`; returns its KTAP report.
fn run(seed: u64, secs: u64, races: u32) -> Result<KVec<u8>> {
    pr_info!(
        "torture: seed {} for {} s: starting (races {})\n",
        seed,
        secs,
        races
    );
    items::SELF_REQUEUE.store(true, SeqCst);
    // Everything fallible first: until the actors start, dropping what was made is enough.
    let shared = Shared::new(seed, races)?;
    // `pin_init!` moves what it names into its closure: clone outside it.
    let bh_shared = shared.clone();
    let bh = Arc::pin_init(
        pin_init!(BhActor {
            w <- new_work!("torture::BhActor::w"),
            shared: bh_shared,
            rng: AtomicU64::new(Rng::new(seed, 1).state()),
        }),
        GFP_KERNEL,
    )?;
    let reclaim_q = Arc::new(
        Workqueue::builder()
            .unbound()
            .mem_reclaim()
            .build(fmt!("rust_wq_torture_reclaim"))?,
        GFP_KERNEL,
    )?;
    let rc_shared = shared.clone();
    let reclaim = Arc::pin_init(
        pin_init!(ReclaimActor {
            w <- new_work!("torture::ReclaimActor::w"),
            shared: rc_shared,
            rng: AtomicU64::new(Rng::new(seed, 4).state()),
        }),
        GFP_KERNEL,
    )?;
    let mut actors = KVec::with_capacity(2, GFP_KERNEL)?;
    for (i, period_us) in [(2u64, 300i64), (3, 500)] {
        let (t_shared, t_bh) = (shared.clone(), bh.clone());
        let t = Arc::pin_init(
            pin_init!(TimerActor {
                timer <- HrTimer::new(),
                shared: t_shared,
                bh: t_bh,
                rng: AtomicU64::new(Rng::new(seed, i).state()),
                period_us,
            }),
            GFP_KERNEL,
        )?;
        actors.push((t, period_us), GFP_KERNEL)?;
    }
    let mut timers = KVec::with_capacity(actors.len(), GFP_KERNEL)?;
    let mut threads = KVec::with_capacity(cpu::nr_cpu_ids() as usize, GFP_KERNEL)?;

    // From here on nothing returns early: whatever happens, the run is stopped and torn down
    // (items may be queued, and the pool must outlive them).
    for (t, period_us) in actors {
        // Within the capacity reserved above: cannot fail (a failure drops, so cancels, it).
        let _ = timers.push(t.start(Delta::from_micros(period_us)), GFP_KERNEL);
    }
    let mut spawn_err = None;
    for c in 0..cpu::nr_cpu_ids() {
        let Ok(id) = cpu::online_cpu(c) else {
            continue;
        };
        let (sh, rq, ra) = (shared.clone(), reclaim_q.clone(), reclaim.clone());
        let t = KThread::spawn_on(id, c"rwq_torture", move |tok: &StopToken| {
            let mut rng = Rng::new(seed, 100 + u64::from(c));
            while !tok.should_stop() && !sh.stopping() {
                sh.random_op(Ctx::Task, &mut rng);
                if races & plan::RACE_CANCEL_IN_RECLAIM != 0 && rng.below(16) == 0 {
                    // Already queued is fine: it runs at most as often as it is asked to.
                    let _ = rq.enqueue(ra.clone());
                }
                schedule_point();
            }
        });
        match t {
            // Within the capacity reserved above.
            Ok(t) => {
                let _ = threads.push(t, GFP_KERNEL);
            }
            Err(e) => {
                spawn_err = Some(e);
                break;
            }
        }
    }
    let nthreads = threads.len();

    // The monitor: pointer underflows are recorded by `dec_ref`, which cannot report.
    let end = shared.start_ns + (secs as i64) * 1_000_000_000;
    while spawn_err.is_none() && ktime_ns() < end {
        fsleep(Delta::from_millis(50));
        check_underflows(&shared);
    }

    // Stop every actor: the timers (their handles cancel and wait), the BH actor, the threads.
    shared.stop.store(true, SeqCst);
    drop(timers);
    if let Some(p) = bh.w.cancel_sync() {
        drop(p);
    }
    drop(threads);
    bh.w.flush();
    drop(bh);
    if let Some(p) = reclaim.w.cancel_sync() {
        drop(p);
    }
    reclaim.w.flush();
    drop(reclaim);
    // The last reference (the threads that held the others are gone): destroys the queue.
    drop(reclaim_q);

    let report = teardown_and_report(&shared, secs, nthreads);
    // The pool is freed only when every item is idle and no reference but the pool's is left;
    // otherwise it is leaked rather than freed under a timer or a queue that may still use it.
    let clean = shared.viol.iter().all(|v| v.load(SeqCst) == 0);
    if !clean {
        pr_err!(
            "torture seed {}: leaking the item pool (invariants broken)\n",
            seed
        );
        core::mem::forget(shared);
    }
    if let Some(e) = spawn_err {
        return Err(e);
    }
    report
}

fn check_underflows(s: &Shared) {
    let p = s
        .pitems
        .iter()
        .map(|i| (i.idx(), i.acct().underflows.load(SeqCst), "plain"));
    let d = s
        .ditems
        .iter()
        .map(|i| (i.idx(), i.acct().underflows.load(SeqCst), "delayed"));
    for (idx, u, kind) in Iterator::chain(p, d) {
        if u > 0 && s.viol.get(plan::INV_TWICE).map(|v| v.load(SeqCst)) == Some(0) {
            s.violation(
                plan::INV_TWICE,
                fmt!(
                    "{} item {}: a pointer was given back twice (count reached 0)",
                    kind,
                    idx
                ),
            );
        }
    }
}

/// Cancels everything, drops every queue, checks the end-state invariants and writes the
/// report. Task context; every actor has stopped.
fn teardown_and_report(s: &Shared, secs: u64, nthreads: usize) -> Result<KVec<u8>> {
    items::SELF_REQUEUE.store(false, SeqCst);
    // Give back the torturer's disables, then cancel (twice: a run in flight may have queued
    // its item again before it saw `SELF_REQUEUE` off).
    for it in s.pitems.iter() {
        while it.acct().take_disable() {
            it.w.enable();
        }
    }
    for it in s.ditems.iter() {
        while it.acct().take_disable() {
            it.dw.enable();
        }
    }
    for _ in 0..2 {
        for it in s.pitems.iter() {
            if let Some(p) = it.w.cancel_sync() {
                it.acct().got_back.fetch_add(1, SeqCst);
                items::put(p);
            }
        }
        for it in s.ditems.iter() {
            if let Some(p) = it.dw.cancel_sync() {
                it.acct().got_back.fetch_add(1, SeqCst);
                items::put(p);
            }
        }
    }
    for i in 0..ops::NR_SLOTS {
        s.drop_queue(i);
    }
    // A run on a system queue that `cancel_sync()` did not wait for (an older instance, queued
    // before the item went to an owned queue) may still be finishing: wait, bounded, until only
    // the pool's references are left.
    for _ in 0..2000 {
        let busy = s.pitems.iter().any(|i| i.acct().refs.load(SeqCst) > 1)
            || s.ditems.iter().any(|i| i.acct().refs.load(SeqCst) > 1);
        if !busy {
            break;
        }
        fsleep(Delta::from_millis(1));
    }
    check_underflows(s);

    // End state: idle, one reference (the pool's), counts conserved.
    for it in s.pitems.iter() {
        end_checks(s, &**it, it.w.is_pending() || it.w.is_running(), "plain");
    }
    for it in s.ditems.iter() {
        end_checks(
            s,
            &**it,
            it.dw.is_pending() || it.dw.is_running(),
            "delayed",
        );
    }

    let mut r = Report(KVec::new());
    write_report(&mut r, s, secs, nthreads).map_err(|_| ENOMEM)?;
    // Into the kernel log too, line by line (prefixed, so it is not taken for KUnit's KTAP).
    if let Ok(text) = core::str::from_utf8(&r.0) {
        for line in text.lines() {
            pr_info!("torture: {}\n", line);
        }
    }
    Ok(r.0)
}

fn end_checks<T: Tracked>(s: &Shared, it: &T, busy: bool, kind: &str) {
    let a = it.acct();
    let ld = |x: &AtomicU64| x.load(SeqCst);
    if busy {
        s.violation(
            plan::INV_END_IDLE,
            fmt!(
                "{} item {} pending or running after the final cancel",
                kind,
                it.idx()
            ),
        );
    }
    let refs = a.refs.load(SeqCst);
    // A count at or below 1 with more drops than takes was reported by `check_underflows`.
    if refs > 1 || (refs == 1 && ld(&a.incs) != ld(&a.decs)) {
        s.violation(
            plan::INV_LEAKED,
            fmt!(
                "{} item {}: {} references left besides the pool's ({} taken, {} dropped)",
                kind,
                it.idx(),
                refs - 1,
                ld(&a.incs),
                ld(&a.decs)
            ),
        );
    }
    // Pointers the layer dropped itself: those an owned queue's drop cancelled (`mod_delayed`
    // hands the torturer's pointer back when the item was pending). The rest of the drops are
    // the torturer's.
    let released = ld(&a.decs) as i64 - ld(&a.own_puts) as i64;
    let enq = ld(&a.enq_ok) as i64;
    let back = ld(&a.ran) as i64 + ld(&a.got_back) as i64 + released;
    if released < 0 || enq != back {
        s.violation(
            plan::INV_CONSERVE,
            fmt!(
                "{} item {}: queued {} != ran {} + cancelled {} + released by queue drops {}",
                kind,
                it.idx(),
                enq,
                ld(&a.ran),
                ld(&a.got_back),
                released
            ),
        );
    }
}
