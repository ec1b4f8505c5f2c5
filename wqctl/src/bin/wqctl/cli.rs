//! The command line: the subcommands and their options (clap), shared by
//! `wqctl` and the lines of a `wqctl session`.

use clap::{Args, Parser, Subcommand};
use wqctl::abi::*;
use wqctl::parse::{self, CpuSel, QueueSel};
use wqctl::{Target, BENCH_SCOPES};

pub(crate) const AFTER_HELP: &str = "\
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

pub(crate) const SESSION_AFTER_HELP: &str = "\
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
pub(crate) struct Cli {
    /// Device node to open
    #[arg(long, global = true, default_value = RUST_WQ_DEVICE, value_name = "PATH")]
    pub(crate) device: String,
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
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
pub(crate) struct Line {
    #[command(subcommand)]
    pub(crate) cmd: SessionCmd,
}

#[derive(Subcommand, Debug)]
pub(crate) enum SessionCmd {
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
pub(crate) enum Cmd {
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

pub(crate) const RUN_AFTER_HELP: &str = "\
Enqueues like `enqueue` (one ENQUEUE per queue and CPU selected), then waits
with poll(2) and prints each result as it arrives.  On a terminal, standard
error shows a progress line (done/total, pending, elapsed).  At the end a
summary per CPU and per queue: items, latency (enqueue to start, delay
included) min/avg/max and average run time, in microseconds.  Ends when every
item ran, after --timeout, or on Ctrl-C; what has not run then is cancelled.
Exit status 1 unless every item ran.";

pub(crate) const BENCH_AFTER_HELP: &str = "\
--op rt (the default): one kthread per online CPU (at most --threads), bound
to it, each queues one work item and waits for it to run, --items times.
Prints items/sec, the p50/p90/p95/p99 of the queueing call (ns), with
--start-latency also of the time from queueing to the start of the work
function, and the number of threads.  Every other --op times one operation
of the layer, --items rounds on one kthread (see include/rust_wq.h):
queue, queue-fresh, queue-on, delayed, mod-delayed, cancel-idle,
cancel-armed, cancel-sync-idle, cancel-sync-armed, flush-idle, disable,
enable, static; delayed-par is delayed on --threads kthreads at once, all on
one queue; drop-armed (--path percpu only) arms --items delayed items on a
new queue and times dropping it (5 rounds; the figures are per item).
--upstream times upstream's kernel::workqueue (Linux 7.3) instead of the
layer, --kbox queues Pin<KBox<_>> items instead of Arc: both only with
queue, queue-fresh and delayed.

Paths: unbound-sysfs (the module's WQ_UNBOUND | WQ_SYSFS queue `rust_wq_bench`,
as the C benchmark's bench_wq), percpu (a WQ_PERCPU queue made for the run),
system-percpu (system_percpu_wq, what schedule_work() uses).
--scope (unbound-sysfs only) first writes the affinity scope to
/sys/bus/workqueue/devices/rust_wq_bench/affinity_scope.";

#[derive(Args, Debug)]
pub(crate) struct BenchOpts {
    /// Queue to benchmark: unbound-sysfs, percpu, system-percpu
    #[arg(long, value_parser = parse_bench_path)]
    pub(crate) path: u32,
    /// Rounds per thread
    #[arg(long, short = 'n')]
    pub(crate) items: u32,
    /// Most threads (0 = one per online CPU)
    #[arg(long, default_value_t = 0)]
    pub(crate) threads: u32,
    /// Also measure queueing-to-start latency
    #[arg(long)]
    pub(crate) start_latency: bool,
    /// Set this affinity scope first (unbound-sysfs only)
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(BENCH_SCOPES))]
    pub(crate) scope: Option<String>,
    /// Print one JSON object instead of a line
    #[arg(long)]
    pub(crate) json: bool,
    /// What to time (rt, queue, queue-fresh, queue-on, delayed, mod-delayed, cancel-idle,
    /// cancel-armed, cancel-sync-idle, cancel-sync-armed, flush-idle, disable, enable, static,
    /// delayed-par, drop-armed)
    #[arg(long, default_value = "rt", value_parser = parse_bench_op)]
    pub(crate) op: u32,
    /// Time upstream's kernel::workqueue instead of the layer (queue, queue-fresh, delayed)
    #[arg(long)]
    pub(crate) upstream: bool,
    /// Queue Pin<KBox<_>> items instead of Arc (queue, queue-fresh, delayed)
    #[arg(long)]
    pub(crate) kbox: bool,
}

pub(crate) fn parse_bench_op(s: &str) -> Result<u32, String> {
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

pub(crate) fn parse_bench_path(s: &str) -> Result<u32, String> {
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
pub(crate) struct EnqueueSpec {
    /// Target queue(s): percpu, unbound, ordered, system-percpu, system-dfl, a list, or all
    #[arg(long, short = 'q', default_value = "percpu", value_parser = parse::parse_queue_sel)]
    pub(crate) queue: QueueSel,
    /// CPU(s) to queue on: any, a number, a list (0,2-3), or all (each online CPU)
    #[arg(long, short = 'c', default_value = "any", value_parser = parse::parse_cpu_sel)]
    pub(crate) cpu: CpuSel,
    /// Delay before the item is queued (e.g. 50ms; 0 = at once)
    #[arg(long, short = 'd', default_value = "0", value_parser = parse::parse_duration_us)]
    pub(crate) delay: u64,
    /// How long each work function sleeps (e.g. 1ms)
    #[arg(long, short = 's', default_value = "0", value_parser = parse::parse_duration_us)]
    pub(crate) sleep: u64,
    /// Number of items (per queue and CPU)
    #[arg(long, short = 'n', default_value_t = 1)]
    pub(crate) count: u32,
    /// Tag copied into each result
    #[arg(long, short = 't', default_value_t = 0)]
    pub(crate) tag: u64,
    /// Queue (or arm) the items from a hard-IRQ handler instead of this task
    /// (RUST_WQ_ENQ_F_FROM_IRQ); results then say FROM_HARDIRQ
    #[arg(long)]
    pub(crate) from_irq: bool,
    /// Queue (or arm) the items from softirq context, a BH work item
    /// (RUST_WQ_ENQ_F_FROM_SOFTIRQ); results then say FROM_SOFTIRQ
    #[arg(long, conflicts_with = "from_irq")]
    pub(crate) from_softirq: bool,
    /// Queue (or arm) the items from the interrupt handler of QEMU's edu PCI
    /// device, which the module raises (RUST_WQ_ENQ_F_FROM_DEVICE_IRQ); results
    /// then say FROM_HARDIRQ|FROM_DEVICE_IRQ; ENODEV without an edu device
    #[arg(long, conflicts_with_all = ["from_irq", "from_softirq"])]
    pub(crate) from_device_irq: bool,
}

#[derive(Args, Debug)]
pub(crate) struct EnqueueOpts {
    #[command(flatten)]
    pub(crate) spec: EnqueueSpec,
    /// Flush this file's work and print the results table before exiting
    #[arg(long, short = 'w')]
    pub(crate) wait: bool,
    /// With --wait: print the results as JSON
    #[arg(long, requires = "wait")]
    pub(crate) json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct TargetOpts {
    /// Only the item with this id
    #[arg(long, conflicts_with = "queue")]
    pub(crate) id: Option<u64>,
    /// Only the items on this queue
    #[arg(long, value_parser = parse::parse_queue)]
    pub(crate) queue: Option<u32>,
}

impl TargetOpts {
    pub(crate) fn target(&self) -> Target {
        match (self.id, self.queue) {
            (Some(id), _) => Target::Id(id),
            (None, Some(q)) => Target::Queue(q),
            (None, None) => Target::All,
        }
    }
}

#[derive(Args, Debug)]
pub(crate) struct ModDelayOpts {
    /// The pending item
    #[arg(long)]
    pub(crate) id: u64,
    /// Its new delay, from now (e.g. 0, 20ms, 5s)
    #[arg(value_parser = parse::parse_duration_us)]
    pub(crate) delay: u64,
}

#[derive(Args, Debug)]
pub(crate) struct ResultsOpts {
    /// Print JSON instead of a table
    #[arg(long)]
    pub(crate) json: bool,
    /// Keep printing results as they arrive (poll) until nothing is pending
    #[arg(long, short = 'f')]
    pub(crate) follow: bool,
    /// With --follow: stop after this long
    #[arg(long, requires = "follow", value_parser = parse::parse_duration_us)]
    pub(crate) timeout: Option<u64>,
}

#[derive(Args, Debug)]
pub(crate) struct RunOpts {
    #[command(flatten)]
    pub(crate) spec: EnqueueSpec,
    /// Stop waiting after this long (what has not run is then cancelled)
    #[arg(long, value_parser = parse::parse_duration_us)]
    pub(crate) timeout: Option<u64>,
    /// Only the summary, not each result
    #[arg(long)]
    pub(crate) quiet: bool,
    /// One JSON object per result, then one for the summary
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct SessionOpts {
    /// Script to read commands from (default: standard input)
    pub(crate) script: Option<std::path::PathBuf>,
    /// Print each answer as one JSON object per line
    #[arg(long)]
    pub(crate) json: bool,
    /// Print each command after a `wqctl> ` prompt, and comment lines, before the answers (for transcripts)
    #[arg(long)]
    pub(crate) echo: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::CommandFactory;
    use wqctl::session::split_words;

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
