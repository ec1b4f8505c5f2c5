//! `wqctl`: command-line control of /dev/rust_wq.

use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand};
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wqctl::abi::*;
use wqctl::parse::{self, format_cpu, format_duration_us, format_queue, CpuSel, QueueSel};
use wqctl::session::{json_str, split_words};
use wqctl::summary::Summary;
use wqctl::{
    bench_json, bench_line, format_results_table, result_json, result_row, results_header,
    set_bench_scope, BenchArgs, Device, EnqueueArgs, Errno, Target, BENCH_SCOPES, BENCH_SCOPE_PATH,
};

const AFTER_HELP: &str = "\
Work items belong to the open file that enqueued them, and closing the file
cancels whatever of it has not started.  Every wqctl invocation opens the
device anew, so a standalone `wqctl flush`, `wqctl cancel`, `wqctl mod-delay`
or `wqctl results` only sees the work of that same invocation (i.e. none).
To explore, use `wqctl session`: it keeps one file open and reads these same
commands from standard input or a script, one per line.  `wqctl run` enqueues
and prints each result as it arrives; `wqctl enqueue ... --wait` flushes and
prints the results; `wqctl demo` is a self-checking tour.

Durations: 0, or an integer with a unit: 1us, 50ms, 2s.
Queues: percpu, unbound, ordered, system-percpu, system-dfl (enqueue and run
also take a comma-separated list, or `all`).
CPUs: any, a number, a list like 0,2-3, or `all` (each online CPU): enqueue
and run make one ENQUEUE per CPU and per queue.

Exit status: 0 on success, 1 on any error (an ioctl error is printed as
`wqctl: <command>: <ERRNO> (<description>)`, e.g.
`wqctl: enqueue: EINVAL (Invalid argument)`), when `demo` finds an item that
did not run or ran on the wrong CPU, when `run` ends before every item ran, or
when any command of a `session` failed (the session goes on after errors).";

const SESSION_AFTER_HELP: &str = "\
One open file of the device for the whole session: commands are the wqctl
subcommands in the same syntax (`enqueue -q percpu -c 2 -d 5s -n 100`,
`stats`, `cancel --id 5`, `mod-delay --id 7 0`, `flush`, `results`,
`results --follow`, `reset`, `info`, `run ...`, `bench ...`), one per line,
plus `sleep DURATION`, `help` and `quit`.  Blank lines and `# comments` are
skipped; words can be quoted as in a shell.  On a terminal a `wqctl> ` prompt
is shown.  An error prints `wqctl: [line N: ]<command>: <ERRNO> (...)` on
standard error and the session goes on.  At the end of input (or `quit`) the
session cancels what is still pending, closes the file and says how many
items that was.

With --json every answer is one JSON object on one line, with \"cmd\" and
\"ok\" (and \"errno\" and \"error\" on failure); `results --follow` and `run`
add one {\"cmd\":...,\"result\":{...}} line per result as it arrives.";

#[derive(Parser, Debug)]
#[command(name = "wqctl", version, about = "Control the rust_wq kernel module through /dev/rust_wq", after_help = AFTER_HELP)]
struct Cli {
    /// Device node to open
    #[arg(long, global = true, default_value = RUST_WQ_DEVICE, value_name = "PATH")]
    device: String,
    #[command(subcommand)]
    cmd: Cmd,
}

/// One line of a session.
#[derive(Parser, Debug)]
#[command(
    name = "wqctl>",
    about = "Commands of a wqctl session (`COMMAND --help` for one)",
    no_binary_name = true,
    disable_version_flag = true,
    subcommand_required = true,
    after_help = SESSION_AFTER_HELP
)]
struct Line {
    #[command(subcommand)]
    cmd: SessionCmd,
}

#[derive(Subcommand, Debug)]
enum SessionCmd {
    #[command(flatten)]
    Base(Cmd),
    /// Wait a while, e.g. for delayed items (`sleep 100ms`)
    Sleep {
        #[arg(value_parser = parse::parse_duration_us)]
        duration: u64,
    },
    /// End the session (as the end of input does)
    #[command(alias = "exit")]
    Quit,
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
    /// Wait for this file's items (RUST_WQ_IOC_FLUSH); sees only its own open file's work
    Flush(TargetOpts),
    /// Cancel this file's items (RUST_WQ_IOC_CANCEL); sees only its own open file's work
    Cancel(TargetOpts),
    /// Give a pending item a new delay from now (RUST_WQ_IOC_MOD_DELAY)
    ModDelay(ModDelayOpts),
    /// Read and remove results (RUST_WQ_IOC_RESULTS); sees only its own open file's results
    Results(ResultsOpts),
    /// Print this open file's counters (RUST_WQ_IOC_STATS); always zero for a fresh invocation
    Stats,
    /// Cancel everything of this open file, drop its results, zero its counters (RUST_WQ_IOC_RESET)
    Reset,
    /// Enqueue, print each result as it arrives (poll), then a summary per CPU and per queue
    #[command(after_help = RUN_AFTER_HELP)]
    Run(RunOpts),
    /// Keep one open file and read commands from standard input or a script, one per line
    #[command(after_help = SESSION_AFTER_HELP)]
    Session(SessionOpts),
    /// Self-checking demo: one pinned item per online CPU and a few on the other queues
    Demo,
    /// Run the in-kernel workqueue benchmark (RUST_WQ_IOC_BENCH), as lib/test_workqueue.c does
    #[command(after_help = BENCH_AFTER_HELP)]
    Bench(BenchOpts),
}

const RUN_AFTER_HELP: &str = "\
Enqueues like `enqueue` (one ENQUEUE per queue and CPU selected), then waits
with poll(2) and prints each result as it arrives.  On a terminal, standard
error shows a progress line (done/total, pending, elapsed).  At the end a
summary per CPU and per queue: items, latency (enqueue to start, delay
included) min/avg/max and average run time, in microseconds.  Ends when every
item ran, after --timeout, or on Ctrl-C; what has not run then is cancelled.
Exit status 1 unless every item ran.";

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

/// What to enqueue (shared by `enqueue` and `run`).
#[derive(Args, Debug)]
struct EnqueueSpec {
    /// Target queue(s): percpu, unbound, ordered, system-percpu, system-dfl, a list, or all
    #[arg(long, short = 'q', default_value = "percpu", value_parser = parse::parse_queue_sel)]
    queue: QueueSel,
    /// CPU(s) to queue on: any, a number, a list (0,2-3), or all (each online CPU)
    #[arg(long, short = 'c', default_value = "any", value_parser = parse::parse_cpu_sel)]
    cpu: CpuSel,
    /// Delay before the item is queued (e.g. 50ms; 0 = at once)
    #[arg(long, short = 'd', default_value = "0", value_parser = parse::parse_duration_us)]
    delay: u64,
    /// How long each work function sleeps (e.g. 1ms)
    #[arg(long, short = 's', default_value = "0", value_parser = parse::parse_duration_us)]
    sleep: u64,
    /// Number of items (per queue and CPU)
    #[arg(long, short = 'n', default_value_t = 1)]
    count: u32,
    /// Tag copied into each result
    #[arg(long, short = 't', default_value_t = 0)]
    tag: u64,
    /// Queue (or arm) the items from a hard-IRQ handler instead of this task
    /// (RUST_WQ_ENQ_F_FROM_IRQ); results then say FROM_HARDIRQ
    #[arg(long)]
    from_irq: bool,
    /// Queue (or arm) the items from softirq context, a BH work item
    /// (RUST_WQ_ENQ_F_FROM_SOFTIRQ); results then say FROM_SOFTIRQ
    #[arg(long, conflicts_with = "from_irq")]
    from_softirq: bool,
}

#[derive(Args, Debug)]
struct EnqueueOpts {
    #[command(flatten)]
    spec: EnqueueSpec,
    /// Flush this file's work and print the results table before exiting
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

#[derive(Args, Debug)]
struct ModDelayOpts {
    /// The pending item
    #[arg(long)]
    id: u64,
    /// Its new delay, from now (e.g. 0, 20ms, 5s)
    #[arg(value_parser = parse::parse_duration_us)]
    delay: u64,
}

#[derive(Args, Debug)]
struct ResultsOpts {
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
    /// Keep printing results as they arrive (poll) until nothing is pending
    #[arg(long, short = 'f')]
    follow: bool,
    /// With --follow: stop after this long
    #[arg(long, requires = "follow", value_parser = parse::parse_duration_us)]
    timeout: Option<u64>,
}

#[derive(Args, Debug)]
struct RunOpts {
    #[command(flatten)]
    spec: EnqueueSpec,
    /// Stop waiting after this long (what has not run is then cancelled)
    #[arg(long, value_parser = parse::parse_duration_us)]
    timeout: Option<u64>,
    /// Only the summary, not each result
    #[arg(long)]
    quiet: bool,
    /// One JSON object per result, then one for the summary
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct SessionOpts {
    /// Script to read commands from (default: standard input)
    script: Option<std::path::PathBuf>,
    /// Print each answer as one JSON object per line
    #[arg(long)]
    json: bool,
    /// Print each command after a `wqctl> ` prompt, and comment lines, before the answers (for transcripts)
    #[arg(long)]
    echo: bool,
}

/// An error with the operation that failed.
struct Failure {
    /// `<command>: <ERRNO> (<description>)` or another message.
    msg: String,
    errno: Option<Errno>,
}

impl Failure {
    fn msg(m: impl Into<String>) -> Self {
        Failure {
            msg: m.into(),
            errno: None,
        }
    }
}

fn op<T>(what: &str, r: Result<T, Errno>) -> Result<T, Failure> {
    r.map_err(|e| Failure {
        msg: format!("{what}: {e}"),
        errno: Some(e),
    })
}

/// How answers are printed.
#[derive(Clone, Copy)]
struct Out {
    /// Every answer as one JSON object per line (`session --json`).
    json: bool,
    /// Standard error is a terminal: show progress lines.
    tty: bool,
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
    let res = match &cli.cmd {
        Cmd::Session(o) => session(&cli.device, o),
        cmd => open(&cli.device).and_then(|dev| {
            exec(
                &dev,
                cmd,
                Out {
                    json: false,
                    tty: std::io::stderr().is_terminal(),
                },
            )
        }),
    };
    match res {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(f) => {
            eprintln!("wqctl: {}", f.msg);
            ExitCode::from(1)
        }
    }
}

fn open(path: &str) -> Result<Device, Failure> {
    Device::open(path).map_err(|e| Failure {
        msg: format!("open {path}: {e}"),
        errno: Some(e),
    })
}

fn ids_text(first: u64, count: u32) -> String {
    let last = first + u64::from(count).saturating_sub(1);
    if first == last {
        first.to_string()
    } else {
        format!("{first}..{last}")
    }
}

/// One ENQUEUE per queue and CPU of `spec`; prints a line for each (text mode)
/// and returns the calls made as (args, first id).
fn enqueue_spec(
    dev: &Device,
    spec: &EnqueueSpec,
    out: Out,
) -> Result<Vec<(EnqueueArgs, u64)>, Failure> {
    let cpus = match spec.cpu {
        CpuSel::All => {
            let i = op("info", dev.info())?;
            parse::cpus_in_mask(i.online_cpus, i.nr_cpu_ids)
        }
        _ => spec.cpu.cpus(&[]),
    };
    let mut done = Vec::new();
    for &queue in &spec.queue.0 {
        for &cpu in &cpus {
            let args = EnqueueArgs {
                queue,
                cpu,
                count: spec.count,
                delay_us: spec.delay,
                sleep_us: spec.sleep,
                tag: spec.tag,
                from_irq: spec.from_irq,
                from_softirq: spec.from_softirq,
            };
            let first = op("enqueue", dev.enqueue(args))?;
            if !out.json {
                println!(
                    "enqueued {} item(s) on {} cpu {} delay {} sleep {} tag {}{}: ids {}",
                    spec.count,
                    format_queue(queue),
                    format_cpu(cpu),
                    format_duration_us(spec.delay),
                    format_duration_us(spec.sleep),
                    spec.tag,
                    if spec.from_irq {
                        " from a hard-IRQ handler"
                    } else if spec.from_softirq {
                        " from softirq"
                    } else {
                        ""
                    },
                    ids_text(first, spec.count)
                );
            }
            done.push((args, first));
        }
    }
    Ok(done)
}

fn enqueued_json(calls: &[(EnqueueArgs, u64)]) -> String {
    let v: Vec<String> = calls
        .iter()
        .map(|(a, first)| {
            format!(
                "{{\"queue\":\"{}\",\"cpu\":{},\"count\":{},\"delay_us\":{},\"sleep_us\":{},\"tag\":{},\"first_id\":{},\"last_id\":{}}}",
                format_queue(a.queue),
                json_cpu(a.cpu),
                a.count,
                a.delay_us,
                a.sleep_us,
                a.tag,
                first,
                first + u64::from(a.count).saturating_sub(1)
            )
        })
        .collect();
    format!("[{}]", v.join(","))
}

fn json_cpu(cpu: u32) -> String {
    if cpu == RUST_WQ_CPU_ANY {
        "\"any\"".into()
    } else {
        cpu.to_string()
    }
}

fn results_json_array(res: &[RustWqResult]) -> String {
    let items: Vec<String> = res.iter().map(result_json).collect();
    format!("[{}]", items.join(","))
}

/// Runs one command on `dev`.  Ok(false): it ran but found a problem (demo, run).
fn exec(dev: &Device, cmd: &Cmd, out: Out) -> Result<bool, Failure> {
    match cmd {
        Cmd::Info => {
            let i = op("info", dev.info())?;
            let cpus = parse::cpus_in_mask(i.online_cpus, i.nr_cpu_ids);
            if out.json {
                println!(
                    "{{\"cmd\":\"info\",\"ok\":true,\"abi_version\":{},\"nr_cpu_ids\":{},\"online_cpus\":[{}],\"max_count\":{},\"max_pending\":{},\"max_delay_us\":{},\"max_sleep_us\":{},\"max_results\":{}}}",
                    i.abi_version,
                    i.nr_cpu_ids,
                    cpus.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
                    i.max_count,
                    i.max_pending,
                    i.max_delay_us,
                    i.max_sleep_us,
                    i.max_results
                );
                return Ok(true);
            }
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
            let calls = enqueue_spec(dev, &o.spec, out)?;
            let mut waited = None;
            if o.wait {
                let n = op("flush", dev.flush(Target::All))?;
                let (res, dropped) = op("results", dev.drain_results())?;
                if !out.json {
                    if !o.json {
                        println!("flushed {n} item(s)");
                    }
                    print_results(&res, dropped, o.json);
                }
                waited = Some((n, res, dropped));
            }
            if out.json {
                let mut s = format!(
                    "{{\"cmd\":\"enqueue\",\"ok\":true,\"enqueued\":{}",
                    enqueued_json(&calls)
                );
                if let Some((n, res, dropped)) = waited {
                    s += &format!(
                        ",\"flushed\":{n},\"dropped\":{dropped},\"results\":{}",
                        results_json_array(&res)
                    );
                }
                println!("{s}}}");
            }
        }
        Cmd::Flush(t) => {
            let n = op("flush", dev.flush(t.target()))?;
            if out.json {
                println!("{{\"cmd\":\"flush\",\"ok\":true,\"count\":{n}}}");
            } else {
                println!("flushed {n} item(s)");
            }
        }
        Cmd::Cancel(t) => {
            let n = op("cancel", dev.cancel(t.target()))?;
            if out.json {
                println!("{{\"cmd\":\"cancel\",\"ok\":true,\"count\":{n}}}");
            } else {
                println!("cancelled {n} item(s)");
            }
        }
        Cmd::ModDelay(m) => {
            op("mod-delay", dev.mod_delay(m.id, m.delay))?;
            if out.json {
                println!(
                    "{{\"cmd\":\"mod-delay\",\"ok\":true,\"id\":{},\"delay_us\":{}}}",
                    m.id, m.delay
                );
            } else {
                println!(
                    "item {} now runs {} from now",
                    m.id,
                    format_duration_us(m.delay)
                );
            }
        }
        Cmd::Results(r) if r.follow => {
            let f = follow(
                dev,
                r.timeout.map(Duration::from_micros),
                None,
                r.json || out.json,
                false,
                out.tty,
            )?;
            if out.json || r.json {
                println!(
                    "{{\"cmd\":\"results\",\"ok\":true,\"follow\":\"{}\",\"count\":{},\"pending\":{},\"dropped\":{},\"elapsed_ns\":{}}}",
                    f.end.name(),
                    f.results.len(),
                    f.pending,
                    f.dropped,
                    f.elapsed.as_nanos()
                );
            } else {
                println!(
                    "{}: {} result(s) in {:.3} s, {} pending{}",
                    f.end.name(),
                    f.results.len(),
                    f.elapsed.as_secs_f64(),
                    f.pending,
                    dropped_text(f.dropped)
                );
            }
        }
        Cmd::Results(r) => {
            let (res, dropped) = op("results", dev.drain_results())?;
            if out.json {
                println!(
                    "{{\"cmd\":\"results\",\"ok\":true,\"dropped\":{dropped},\"results\":{}}}",
                    results_json_array(&res)
                );
            } else {
                print_results(&res, dropped, r.json);
            }
        }
        Cmd::Stats => {
            let s = op("stats", dev.stats())?;
            if out.json {
                println!(
                    "{{\"cmd\":\"stats\",\"ok\":true,\"enqueued\":{},\"executed\":{},\"cancelled\":{},\"pending\":{},\"results_dropped\":{}}}",
                    s.enqueued, s.executed, s.cancelled, s.pending, s.results_dropped
                );
                return Ok(true);
            }
            println!("enqueued        {}", s.enqueued);
            println!("executed        {}", s.executed);
            println!("cancelled       {}", s.cancelled);
            println!("pending         {}", s.pending);
            println!("results_dropped {}", s.results_dropped);
        }
        Cmd::Reset => {
            op("reset", dev.reset())?;
            if out.json {
                println!("{{\"cmd\":\"reset\",\"ok\":true}}");
            } else {
                println!("reset");
            }
        }
        Cmd::Run(o) => return run(dev, o, out),
        Cmd::Session(_) => return Err(Failure::msg("session: already in a session")),
        Cmd::Demo => return demo(dev),
        Cmd::Bench(o) => {
            if let Some(scope) = &o.scope {
                if o.path != RUST_WQ_BENCH_UNBOUND_SYSFS {
                    return Err(Failure::msg(
                        "bench: --scope applies only to --path unbound-sysfs",
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
            if out.json {
                println!(
                    "{{\"cmd\":\"bench\",\"ok\":true,\"bench\":{}}}",
                    bench_json(&b, o.scope.as_deref())
                );
            } else if o.json {
                println!("{}", bench_json(&b, o.scope.as_deref()));
            } else {
                println!("{}", bench_line(&b, o.scope.as_deref()));
            }
        }
    }
    Ok(true)
}

fn dropped_text(dropped: u64) -> String {
    if dropped > 0 {
        format!(" ({dropped} older result(s) were dropped)")
    } else {
        String::new()
    }
}

fn print_results(res: &[RustWqResult], dropped: u64, json: bool) {
    if json {
        println!(
            "{{\"dropped\":{},\"results\":{}}}",
            dropped,
            results_json_array(res)
        );
    } else {
        print!("{}", format_results_table(res));
        if dropped > 0 {
            println!("({dropped} older result(s) were dropped)");
        }
    }
}

// --- following results with poll(2) -----------------------------------------

/// Set by the SIGINT handler while results are followed.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_sig: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// While alive, Ctrl-C (SIGINT) interrupts poll(2) (no SA_RESTART) and sets
/// [`INTERRUPTED`] instead of killing the process.
struct SigintGuard {
    old: libc::sigaction,
}

impl SigintGuard {
    fn install() -> Option<Self> {
        INTERRUPTED.store(false, Ordering::SeqCst);
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value,
        // filled in below; `on_sigint` only stores to an atomic, which is
        // async-signal-safe; `old` receives the previous action.
        unsafe {
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut new.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGINT, &new, &mut old) != 0 {
                return None;
            }
            Some(SigintGuard { old })
        }
    }
}

impl Drop for SigintGuard {
    fn drop(&mut self) {
        // SAFETY: restores the action saved by `install`.
        unsafe { libc::sigaction(libc::SIGINT, &self.old, std::ptr::null_mut()) };
    }
}

/// Why following stopped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    /// Nothing is pending any more and every result was read.
    Done,
    Timeout,
    Interrupted,
}

impl End {
    fn name(self) -> &'static str {
        match self {
            End::Done => "done",
            End::Timeout => "timeout",
            End::Interrupted => "interrupted",
        }
    }
}

struct Followed {
    results: Vec<RustWqResult>,
    dropped: u64,
    /// Items still pending at the end.
    pending: u64,
    end: End,
    elapsed: Duration,
}

/// Clears the progress line (a no-op without one).
fn clear_progress(shown: &mut bool) {
    if *shown {
        eprint!("\r\x1b[K");
        *shown = false;
    }
}

/// Prints results as they arrive until nothing is pending, `timeout`, or
/// Ctrl-C.  Waits with poll(2) (at most 1 s at a time, so that items
/// cancelled meanwhile by someone else cannot make it wait forever; 200 ms
/// with a progress line).  `total`: the number the progress line counts to
/// (default: done + pending).  `json`: one JSON line per result.
fn follow(
    dev: &Device,
    timeout: Option<Duration>,
    total: Option<u64>,
    json: bool,
    quiet: bool,
    progress: bool,
) -> Result<Followed, Failure> {
    let start = Instant::now();
    let _sigint = SigintGuard::install();
    let mut results = Vec::new();
    let mut dropped = 0;
    let mut shown = false;
    if !json && !quiet {
        println!("{}", results_header());
    }
    let emit = |res: &[RustWqResult]| {
        for r in res.iter().filter(|_| !quiet) {
            if json {
                println!("{{\"cmd\":\"results\",\"result\":{}}}", result_json(r));
            } else {
                println!("{}", result_row(r));
            }
        }
    };
    let (end, pending) = loop {
        let (res, d) = op("results", dev.drain_results())?;
        dropped += d;
        if !res.is_empty() {
            clear_progress(&mut shown);
        }
        emit(&res);
        results.extend(res);
        let st = op("stats", dev.stats())?;
        if st.pending == 0 {
            // Finishing items store their result and leave `pending` in one
            // step: everything is readable now.
            let (res, d) = op("results", dev.drain_results())?;
            dropped += d;
            emit(&res);
            results.extend(res);
            break (End::Done, 0);
        }
        if INTERRUPTED.load(Ordering::SeqCst) {
            break (End::Interrupted, st.pending);
        }
        let elapsed = start.elapsed();
        let left = match timeout {
            Some(t) if elapsed >= t => break (End::Timeout, st.pending),
            Some(t) => t - elapsed,
            None => Duration::MAX,
        };
        if progress {
            let done = results.len() as u64;
            let total = total.unwrap_or(done + st.pending);
            eprint!(
                "\r\x1b[Kdone {done}/{total}  pending {}  elapsed {:.1} s",
                st.pending,
                elapsed.as_secs_f64()
            );
            shown = true;
        }
        let tick = if progress {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(1)
        };
        match dev.wait_readable(Some(left.min(tick))) {
            Ok(_) => {}
            Err(e) if e.0 == libc::EINTR => {}
            Err(e) => {
                clear_progress(&mut shown);
                return op("poll", Err(e));
            }
        }
    };
    clear_progress(&mut shown);
    Ok(Followed {
        results,
        dropped,
        pending,
        end,
        elapsed: start.elapsed(),
    })
}

/// `wqctl run`: enqueue, follow, summarise.
fn run(dev: &Device, o: &RunOpts, out: Out) -> Result<bool, Failure> {
    let start = Instant::now();
    let calls = enqueue_spec(dev, &o.spec, out)?;
    let total: u64 = calls.iter().map(|(a, _)| u64::from(a.count)).sum();
    let json = o.json || out.json;
    if json {
        println!(
            "{{\"cmd\":\"run\",\"ok\":true,\"enqueued\":{}}}",
            enqueued_json(&calls)
        );
    }
    let f = follow(
        dev,
        o.timeout.map(Duration::from_micros),
        Some(total),
        json,
        o.quiet,
        out.tty,
    )?;
    let elapsed = start.elapsed();
    let sum = Summary::of(&f.results);
    let ran = f.results.len() as u64;
    let ok = f.end == End::Done && ran == total && f.dropped == 0;
    if json {
        println!(
            "{{\"cmd\":\"run\",\"ok\":{ok},\"end\":\"{}\",\"enqueued\":{total},\"ran\":{ran},\"pending\":{},\"dropped\":{},\"elapsed_ns\":{},\"summary\":{}}}",
            f.end.name(),
            f.pending,
            f.dropped,
            elapsed.as_nanos(),
            sum.json()
        );
    } else {
        println!(
            "run {}: {total} item(s) enqueued, {ran} ran in {:.3} s, {} pending{}{}",
            f.end.name(),
            elapsed.as_secs_f64(),
            f.pending,
            if f.pending > 0 {
                " (cancelled at exit)"
            } else {
                ""
            },
            dropped_text(f.dropped)
        );
        print!("{}", sum.table());
    }
    Ok(ok)
}

// --- session ------------------------------------------------------------------

/// `wqctl session`: one open file, commands from a script or standard input.
fn session(path: &str, o: &SessionOpts) -> Result<bool, Failure> {
    let (input, interactive): (Box<dyn BufRead>, bool) = match &o.script {
        Some(p) if p.as_os_str() != "-" => {
            let f = std::fs::File::open(p).map_err(|e| Failure {
                msg: format!("session: open {}: {}", p.display(), Errno::from(e)),
                errno: None,
            })?;
            (Box::new(std::io::BufReader::new(f)), false)
        }
        _ => (
            Box::new(std::io::stdin().lock()),
            std::io::stdin().is_terminal(),
        ),
    };
    let dev = open(path)?;
    let out = Out {
        json: o.json,
        tty: std::io::stderr().is_terminal(),
    };
    if interactive && !o.json {
        println!(
            "wqctl session on {path}: one open file until the end of input (Ctrl-D) or `quit`,"
        );
        println!("which cancels what is still pending.  `help` lists the commands.");
    }
    let mut ok = true;
    let mut lineno = 0u64;
    let mut lines = input.lines();
    loop {
        if interactive {
            print!("wqctl> ");
            let _ = std::io::stdout().flush();
        }
        let line = match lines.next() {
            None => break,
            Some(Ok(l)) => l,
            Some(Err(e)) => {
                eprintln!("wqctl: session: reading input: {}", Errno::from(e));
                ok = false;
                break;
            }
        };
        lineno += 1;
        let at = if interactive {
            String::new()
        } else {
            format!("line {lineno}: ")
        };
        let words = match split_words(&line) {
            Ok(w) => w,
            Err(e) => {
                ok = false;
                report(out, &at, None, &Failure::msg(e));
                continue;
            }
        };
        if words.is_empty() {
            // A transcript keeps the script's comments.
            if o.echo && !out.json && line.trim_start().starts_with('#') {
                println!("{}", line.trim());
            }
            continue;
        }
        if o.echo {
            println!("wqctl> {}", line.trim());
        }
        let cmd_name = words[0].clone();
        let parsed = match Line::try_parse_from(&words) {
            Ok(l) => l,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::DisplayHelp | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                ) =>
            {
                if out.json {
                    println!(
                        "{{\"cmd\":\"help\",\"ok\":true,\"text\":{}}}",
                        json_str(&e.to_string())
                    );
                } else {
                    print!("{e}");
                }
                continue;
            }
            Err(e) => {
                ok = false;
                // The first paragraph of clap's message, on one line.
                let text = e.to_string();
                let first = text
                    .lines()
                    .take_while(|l| !l.trim().is_empty())
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join(" ");
                let first = first.strip_prefix("error: ").unwrap_or(&first);
                report(
                    out,
                    &at,
                    Some(&cmd_name),
                    &Failure::msg(format!("{cmd_name}: {first}")),
                );
                continue;
            }
        };
        match parsed.cmd {
            SessionCmd::Quit => break,
            SessionCmd::Sleep { duration } => {
                std::thread::sleep(Duration::from_micros(duration));
                if out.json {
                    println!("{{\"cmd\":\"sleep\",\"ok\":true,\"us\":{duration}}}");
                }
            }
            SessionCmd::Base(cmd) => match exec(&dev, &cmd, out) {
                Ok(true) => {}
                Ok(false) => ok = false,
                Err(f) => {
                    ok = false;
                    report(out, &at, Some(&cmd_name), &f);
                }
            },
        }
    }
    // The end: cancel what is pending (as closing does, but counted), then close.
    let pending = dev.stats().map(|s| s.pending);
    let cancelled = dev.cancel(Target::All);
    let unread = dev.drain_results().map(|(r, _)| r.len() as u64);
    drop(dev);
    // Had CANCEL failed, closing would still cancel what STATS called pending.
    let cancelled = cancelled.or(pending).ok();
    let unread = unread.ok();
    if out.json {
        let num = |v: Option<u64>| v.map_or_else(|| "null".to_string(), |n| n.to_string());
        println!(
            "{{\"cmd\":\"end\",\"ok\":{ok},\"cancelled\":{},\"unread_results\":{}}}",
            num(cancelled),
            num(unread)
        );
    } else {
        let num = |v: Option<u64>| v.map_or_else(|| "?".to_string(), |n| n.to_string());
        let (cancelled, unread) = (num(cancelled), num(unread));
        if interactive {
            println!();
        }
        println!(
            "end of session: cancelled {cancelled} pending item(s), discarded {unread} unread result(s), closed the file"
        );
    }
    Ok(ok)
}

/// Prints a failed session command: text on standard error, or a JSON line.
fn report(out: Out, at: &str, cmd: Option<&str>, f: &Failure) {
    if out.json {
        let errno = f
            .errno
            .map_or_else(|| "null".to_string(), |e| json_str(&e.name()));
        let cmd = cmd.map_or_else(|| "null".to_string(), json_str);
        println!(
            "{{\"cmd\":{cmd},\"ok\":false,\"errno\":{errno},\"error\":{}}}",
            json_str(&format!("{at}{}", f.msg))
        );
    } else {
        eprintln!("wqctl: {at}{}", f.msg);
    }
}

/// What the demo expects of one enqueued item.
struct Expect {
    queue: u32,
    cpu: u32,
    from: &'static str,
}

fn demo(dev: &Device) -> Result<bool, Failure> {
    let info = op("info", dev.info())?;
    let cpus = parse::cpus_in_mask(info.online_cpus, info.nr_cpu_ids);
    if cpus.is_empty() {
        return Err(Failure::msg("info: no online CPU reported"));
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
                    from: if args.from_irq {
                        "hardirq"
                    } else if args.from_softirq {
                        "softirq"
                    } else {
                        "task"
                    },
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
    // The bottom-half pattern: queued from a hard-IRQ handler, run on a worker that sleeps.
    add(EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1)
        .sleep_us(1000)
        .from_irq(true)
        .tag(400))?;
    // The same from softirq context (a BH work item).
    add(EnqueueArgs::new(RUST_WQ_Q_SYSTEM_DFL, 1)
        .sleep_us(1000)
        .from_softirq(true)
        .tag(500))?;
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
                let from = e.from;
                if wqctl::queued_from(r.flags) != from {
                    ok = false;
                    println!(
                        "FAIL: id {} was queued from {}, expected {from}",
                        r.id,
                        wqctl::queued_from(r.flags)
                    );
                }
                let bh = RUST_WQ_RES_PROCESS_CTX | RUST_WQ_RES_SLEPT;
                if from != "task" && r.flags & bh != bh {
                    ok = false;
                    println!(
                        "FAIL: id {} (queued from {from}) did not run in process context and sleep",
                        r.id
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
    let from_irq = expect.values().filter(|e| e.from == "hardirq").count();
    let from_softirq = expect.values().filter(|e| e.from == "softirq").count();
    println!(
        "{}: {} item(s) enqueued, {} result(s), {} waited for by flush, {} pinned to their CPU, \
         {} queued from a hard-IRQ handler and {} from softirq, run on a worker that slept",
        if ok { "PASS" } else { "FAIL" },
        expect.len(),
        res.len(),
        flushed,
        cpus.len(),
        from_irq,
        from_softirq
    );
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn line(s: &str) -> Result<SessionCmd, ErrorKind> {
        Line::try_parse_from(split_words(s).unwrap())
            .map(|l| l.cmd)
            .map_err(|e| e.kind())
    }

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
        Line::command().debug_assert();
    }

    #[test]
    fn session_lines_parse_as_the_subcommands() {
        match line("enqueue -q percpu -c 2 -d 5s -n 100") {
            Ok(SessionCmd::Base(Cmd::Enqueue(o))) => {
                assert_eq!(o.spec.queue, QueueSel(vec![RUST_WQ_Q_PERCPU]));
                assert_eq!(o.spec.cpu, CpuSel::List(vec![2]));
                assert_eq!(
                    (o.spec.delay, o.spec.count, o.wait),
                    (5_000_000, 100, false)
                );
            }
            other => panic!("{other:?}"),
        }
        match line("enqueue -q all -c all") {
            Ok(SessionCmd::Base(Cmd::Enqueue(o))) => {
                assert_eq!(o.spec.queue.0.len(), RUST_WQ_Q_COUNT as usize);
                assert_eq!(o.spec.cpu, CpuSel::All);
            }
            other => panic!("{other:?}"),
        }
        match line("cancel --id 5") {
            Ok(SessionCmd::Base(Cmd::Cancel(t))) => assert_eq!(t.target(), Target::Id(5)),
            other => panic!("{other:?}"),
        }
        match line("mod-delay --id 7 0") {
            Ok(SessionCmd::Base(Cmd::ModDelay(m))) => assert_eq!((m.id, m.delay), (7, 0)),
            other => panic!("{other:?}"),
        }
        match line("results --follow --timeout 2s") {
            Ok(SessionCmd::Base(Cmd::Results(r))) => {
                assert!(r.follow);
                assert_eq!(r.timeout, Some(2_000_000));
            }
            other => panic!("{other:?}"),
        }
        for s in ["stats", "flush", "results", "reset", "info"] {
            assert!(matches!(line(s), Ok(SessionCmd::Base(_))), "{s}");
        }
        assert!(matches!(
            line("sleep 10ms"),
            Ok(SessionCmd::Sleep { duration: 10_000 })
        ));
        assert!(matches!(line("quit"), Ok(SessionCmd::Quit)));
        assert!(matches!(line("exit"), Ok(SessionCmd::Quit)));
        assert_eq!(
            line("mod-delay --id 7").unwrap_err(),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            line("enqueue -q nope").unwrap_err(),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            line("results --timeout 1s").unwrap_err(),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            line("frobnicate").unwrap_err(),
            ErrorKind::InvalidSubcommand
        );
        assert_eq!(line("help").unwrap_err(), ErrorKind::DisplayHelp);
    }
}
