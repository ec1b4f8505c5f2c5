//! `wqctl`: command-line control of /dev/rust_wq.

use clap::{Args, Parser, Subcommand};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;
use wqctl::abi::*;
use wqctl::parse::{self, format_cpu, format_duration_us, format_queue};
use wqctl::{
    bench_json, bench_line, format_results_table, result_json, set_bench_scope, BenchArgs, Device,
    EnqueueArgs, Errno, Target, BENCH_SCOPES, BENCH_SCOPE_PATH,
};

const AFTER_HELP: &str = "\
Work items belong to the open file that enqueued them, and closing the file
cancels whatever of it has not started.  Every wqctl invocation opens the
device anew, so a standalone `wqctl flush`, `wqctl cancel` or `wqctl results`
only sees the work of that same invocation (i.e. none).  Use
`wqctl enqueue ... --wait` to flush and print the results of the items it
enqueued, or `wqctl demo` for a self-checking tour.

Durations: 0, or an integer with a unit: 1us, 50ms, 2s.
Queues: percpu, unbound, ordered, system-percpu, system-dfl.

Exit status: 0 on success, 1 on any error (an ioctl error is printed as
`wqctl: <command>: <ERRNO> (<description>)`, e.g.
`wqctl: enqueue: EINVAL (Invalid argument)`), or when `demo` finds an item
that did not run, or ran on the wrong CPU.";

#[derive(Parser, Debug)]
#[command(name = "wqctl", version, about = "Control the rust_wq kernel module through /dev/rust_wq", after_help = AFTER_HELP)]
struct Cli {
    /// Device node to open
    #[arg(long, global = true, default_value = RUST_WQ_DEVICE, value_name = "PATH")]
    device: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Print the ABI version, CPUs and limits (RUST_WQ_IOC_INFO)
    Info,
    /// Enqueue work items and print their ids (RUST_WQ_IOC_ENQUEUE)
    #[command(
        after_help = "Without --wait, the items are cancelled when wqctl exits unless they already ran."
    )]
    Enqueue(EnqueueOpts),
    /// Wait for this invocation's items (RUST_WQ_IOC_FLUSH); sees only its own open file's work
    Flush(TargetOpts),
    /// Cancel this invocation's items (RUST_WQ_IOC_CANCEL); sees only its own open file's work
    Cancel(TargetOpts),
    /// Read and remove results (RUST_WQ_IOC_RESULTS); sees only its own open file's results
    Results {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Print this open file's counters (RUST_WQ_IOC_STATS); always zero for a fresh invocation
    Stats,
    /// Cancel everything of this open file, drop its results, zero its counters (RUST_WQ_IOC_RESET)
    Reset,
    /// Self-checking demo: one pinned item per online CPU and a few on the other queues
    Demo,
    /// Run the in-kernel workqueue benchmark (RUST_WQ_IOC_BENCH), as lib/test_workqueue.c does
    #[command(after_help = BENCH_AFTER_HELP)]
    Bench(BenchOpts),
}

const BENCH_AFTER_HELP: &str = "\
--op rt (the default): one kthread per online CPU (at most --threads), bound
to it, each queues one work item and waits for it to run, --items times.
Prints items/sec, the p50/p90/p95/p99 of the queueing call (ns), with
--start-latency also of the time from queueing to the start of the work
function, and the number of threads.  Every other --op times one operation
of the layer, --items rounds on one kthread (see include/rust_wq.h):
queue, queue-fresh, queue-on, delayed, mod-delayed, cancel-idle,
cancel-armed, cancel-sync-idle, cancel-sync-armed, flush-idle, disable,
enable, static.

Paths: unbound-sysfs (the module's WQ_UNBOUND | WQ_SYSFS queue `rust_wq_bench`,
as the C benchmark's bench_wq), percpu (a WQ_PERCPU queue made for the run),
system-percpu (system_percpu_wq, what schedule_work() uses).
--scope (unbound-sysfs only) first writes the affinity scope to
/sys/bus/workqueue/devices/rust_wq_bench/affinity_scope.";

#[derive(Args, Debug)]
struct BenchOpts {
    /// Queue to benchmark: unbound-sysfs, percpu, system-percpu
    #[arg(long, value_parser = parse_bench_path)]
    path: u32,
    /// Rounds per thread
    #[arg(long, short = 'n')]
    items: u32,
    /// Most threads (0 = one per online CPU)
    #[arg(long, default_value_t = 0)]
    threads: u32,
    /// Also measure queueing-to-start latency
    #[arg(long)]
    start_latency: bool,
    /// Set this affinity scope first (unbound-sysfs only)
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(BENCH_SCOPES))]
    scope: Option<String>,
    /// Print one JSON object instead of a line
    #[arg(long)]
    json: bool,
    /// What to time (rt, queue, queue-fresh, queue-on, delayed, mod-delayed, cancel-idle,
    /// cancel-armed, cancel-sync-idle, cancel-sync-armed, flush-idle, disable, enable, static)
    #[arg(long, default_value = "rt", value_parser = parse_bench_op)]
    op: u32,
}

fn parse_bench_op(s: &str) -> Result<u32, String> {
    let want = s.trim().to_ascii_lowercase().replace('_', "-");
    BENCH_OPS
        .iter()
        .find(|(name, _)| *name == want)
        .map(|(_, n)| *n)
        .ok_or_else(|| {
            let names: Vec<&str> = BENCH_OPS.iter().map(|(n, _)| *n).collect();
            format!(
                "unknown benchmark op {s:?}: use one of {}",
                names.join(", ")
            )
        })
}

fn parse_bench_path(s: &str) -> Result<u32, String> {
    match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
        "unbound-sysfs" => Ok(RUST_WQ_BENCH_UNBOUND_SYSFS),
        "percpu" => Ok(RUST_WQ_BENCH_PERCPU),
        "system-percpu" => Ok(RUST_WQ_BENCH_SYSTEM_PERCPU),
        _ => Err(format!(
            "unknown benchmark path {s:?}: use unbound-sysfs, percpu or system-percpu"
        )),
    }
}

#[derive(Args, Debug)]
struct EnqueueOpts {
    /// Target queue: percpu, unbound, ordered, system-percpu, system-dfl
    #[arg(long, short = 'q', default_value = "percpu", value_parser = parse::parse_queue)]
    queue: u32,
    /// CPU to queue on, or `any`
    #[arg(long, short = 'c', default_value = "any", value_parser = parse::parse_cpu)]
    cpu: u32,
    /// Delay before the item is queued (e.g. 50ms; 0 = at once)
    #[arg(long, short = 'd', default_value = "0", value_parser = parse::parse_duration_us)]
    delay: u64,
    /// How long each work function sleeps (e.g. 1ms)
    #[arg(long, short = 's', default_value = "0", value_parser = parse::parse_duration_us)]
    sleep: u64,
    /// Number of items
    #[arg(long, short = 'n', default_value_t = 1)]
    count: u32,
    /// Tag copied into each result
    #[arg(long, short = 't', default_value_t = 0)]
    tag: u64,
    /// Flush this invocation's work and print the results table before exiting
    #[arg(long, short = 'w')]
    wait: bool,
    /// With --wait: print the results as JSON
    #[arg(long, requires = "wait")]
    json: bool,
}

#[derive(Args, Debug)]
struct TargetOpts {
    /// Only the item with this id
    #[arg(long, conflicts_with = "queue")]
    id: Option<u64>,
    /// Only the items on this queue
    #[arg(long, value_parser = parse::parse_queue)]
    queue: Option<u32>,
}

impl TargetOpts {
    fn target(&self) -> Target {
        match (self.id, self.queue) {
            (Some(id), _) => Target::Id(id),
            (None, Some(q)) => Target::Queue(q),
            (None, None) => Target::All,
        }
    }
}

/// An error with the operation that failed.
struct Failure(String);

fn op<T>(what: &str, r: Result<T, Errno>) -> Result<T, Failure> {
    r.map_err(|e| Failure(format!("{what}: {e}")))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(Failure(msg)) => {
            eprintln!("wqctl: {msg}");
            ExitCode::from(1)
        }
    }
}

fn open(cli: &Cli) -> Result<Device, Failure> {
    Device::open(&cli.device).map_err(|e| Failure(format!("open {}: {e}", cli.device)))
}

fn run(cli: &Cli) -> Result<bool, Failure> {
    let dev = open(cli)?;
    match &cli.cmd {
        Cmd::Info => {
            let i = op("info", dev.info())?;
            let cpus = parse::cpus_in_mask(i.online_cpus, i.nr_cpu_ids);
            println!("abi_version   {}", i.abi_version);
            println!("nr_cpu_ids    {}", i.nr_cpu_ids);
            println!(
                "online_cpus   {} (mask {:#x})",
                cpus.iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                i.online_cpus
            );
            println!("max_count     {}", i.max_count);
            println!("max_pending   {}", i.max_pending);
            println!("max_delay     {}", format_duration_us(i.max_delay_us));
            println!("max_sleep     {}", format_duration_us(i.max_sleep_us));
            println!("max_results   {}", i.max_results);
            if i.abi_version != RUST_WQ_ABI_VERSION {
                eprintln!(
                    "wqctl: warning: module ABI version {} differs from wqctl's {}",
                    i.abi_version, RUST_WQ_ABI_VERSION
                );
            }
        }
        Cmd::Enqueue(o) => {
            let args = EnqueueArgs {
                queue: o.queue,
                cpu: o.cpu,
                count: o.count,
                delay_us: o.delay,
                sleep_us: o.sleep,
                tag: o.tag,
            };
            let first = op("enqueue", dev.enqueue(args))?;
            let last = first + u64::from(o.count).saturating_sub(1);
            println!(
                "enqueued {} item(s) on {} cpu {} delay {} sleep {} tag {}: ids {}",
                o.count,
                format_queue(o.queue),
                format_cpu(o.cpu),
                format_duration_us(o.delay),
                format_duration_us(o.sleep),
                o.tag,
                if first == last {
                    first.to_string()
                } else {
                    format!("{first}..{last}")
                }
            );
            if o.wait {
                let n = op("flush", dev.flush(Target::All))?;
                let (res, dropped) = op("results", dev.drain_results())?;
                if !o.json {
                    println!("flushed {n} item(s)");
                }
                print_results(&res, dropped, o.json);
            }
        }
        Cmd::Flush(t) => {
            let n = op("flush", dev.flush(t.target()))?;
            println!("flushed {n} item(s)");
        }
        Cmd::Cancel(t) => {
            let n = op("cancel", dev.cancel(t.target()))?;
            println!("cancelled {n} item(s)");
        }
        Cmd::Results { json } => {
            let (res, dropped) = op("results", dev.drain_results())?;
            print_results(&res, dropped, *json);
        }
        Cmd::Stats => {
            let s = op("stats", dev.stats())?;
            println!("enqueued        {}", s.enqueued);
            println!("executed        {}", s.executed);
            println!("cancelled       {}", s.cancelled);
            println!("pending         {}", s.pending);
            println!("results_dropped {}", s.results_dropped);
        }
        Cmd::Reset => {
            op("reset", dev.reset())?;
            println!("reset");
        }
        Cmd::Demo => return demo(&dev),
        Cmd::Bench(o) => {
            if let Some(scope) = &o.scope {
                if o.path != RUST_WQ_BENCH_UNBOUND_SYSFS {
                    return Err(Failure(
                        "bench: --scope applies only to --path unbound-sysfs".into(),
                    ));
                }
                op(
                    &format!("bench: write {scope} to {BENCH_SCOPE_PATH}"),
                    set_bench_scope(BENCH_SCOPE_PATH, scope),
                )?;
            }
            let args = BenchArgs {
                path: o.path,
                items: o.items,
                threads: o.threads,
                start_latency: o.start_latency,
                op: o.op,
            };
            let b = op("bench", dev.bench(args))?;
            if o.json {
                println!("{}", bench_json(&b, o.scope.as_deref()));
            } else {
                println!("{}", bench_line(&b, o.scope.as_deref()));
            }
        }
    }
    Ok(true)
}

fn print_results(res: &[RustWqResult], dropped: u64, json: bool) {
    if json {
        let items: Vec<String> = res.iter().map(result_json).collect();
        println!(
            "{{\"dropped\":{},\"results\":[{}]}}",
            dropped,
            items.join(",")
        );
    } else {
        print!("{}", format_results_table(res));
        if dropped > 0 {
            println!("({dropped} older result(s) were dropped)");
        }
    }
}

/// What the demo expects of one enqueued item.
struct Expect {
    queue: u32,
    cpu: u32,
}

fn demo(dev: &Device) -> Result<bool, Failure> {
    let info = op("info", dev.info())?;
    let cpus = parse::cpus_in_mask(info.online_cpus, info.nr_cpu_ids);
    if cpus.is_empty() {
        return Err(Failure("info: no online CPU reported".into()));
    }
    println!(
        "rust_wq demo: ABI {}, {} possible CPU id(s), online: {}",
        info.abi_version,
        info.nr_cpu_ids,
        cpus.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut expect: BTreeMap<u64, Expect> = BTreeMap::new();
    let mut add = |args: EnqueueArgs| -> Result<(), Failure> {
        let what = format!(
            "enqueue ({} cpu {})",
            format_queue(args.queue),
            format_cpu(args.cpu)
        );
        let first = op(&what, dev.enqueue(args))?;
        for id in first..first + u64::from(args.count) {
            expect.insert(
                id,
                Expect {
                    queue: args.queue,
                    cpu: args.cpu,
                },
            );
        }
        Ok(())
    };
    for &c in &cpus {
        add(EnqueueArgs::new(RUST_WQ_Q_PERCPU, 1)
            .cpu(c)
            .tag(u64::from(c)))?;
    }
    add(EnqueueArgs::new(RUST_WQ_Q_SYSTEM_PERCPU, 2).tag(100))?;
    add(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1).tag(200))?;
    add(EnqueueArgs::new(RUST_WQ_Q_PERCPU, 1)
        .delay_us(20_000)
        .tag(300))?;
    // Give the delayed item time to run on its own (FLUSH would fire its timer early).
    std::thread::sleep(Duration::from_millis(60));
    let flushed = op("flush", dev.flush(Target::All))?;
    let (res, dropped) = op("results", dev.drain_results())?;
    print!("{}", format_results_table(&res));

    let mut ok = true;
    let mut seen = BTreeMap::new();
    for r in &res {
        *seen.entry(r.id).or_insert(0u32) += 1;
        match expect.get(&r.id) {
            None => {
                ok = false;
                println!("FAIL: result for unknown id {}", r.id);
            }
            Some(e) => {
                if r.queue != e.queue {
                    ok = false;
                    println!(
                        "FAIL: id {} ran on queue {}, expected {}",
                        r.id,
                        format_queue(r.queue),
                        format_queue(e.queue)
                    );
                }
                if e.cpu != RUST_WQ_CPU_ANY && r.cpu != e.cpu {
                    ok = false;
                    println!(
                        "FAIL: id {} was pinned to CPU {} but ran on CPU {}",
                        r.id, e.cpu, r.cpu
                    );
                }
            }
        }
    }
    for (id, n) in &seen {
        if *n > 1 {
            ok = false;
            println!("FAIL: id {id} has {n} results");
        }
    }
    for id in expect.keys() {
        if !seen.contains_key(id) {
            ok = false;
            println!("FAIL: id {id} did not run");
        }
    }
    if dropped > 0 {
        ok = false;
        println!("FAIL: {dropped} result(s) dropped");
    }
    println!(
        "{}: {} item(s) enqueued, {} result(s), {} waited for by flush, {} pinned to their CPU",
        if ok { "PASS" } else { "FAIL" },
        expect.len(),
        res.len(),
        flushed,
        cpus.len()
    );
    Ok(ok)
}
