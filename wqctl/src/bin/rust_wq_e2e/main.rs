//! `rust_wq_e2e`: end-to-end tests of the rust_wq module, run as root inside
//! the test VM with the module loaded.  Output is KTAP version 1.
//!
//! Usage: rust_wq_e2e [--device PATH] [--list] [TEST_NAME...]
//!
//! With test names, only those tests run (numbered 1..N in that subset, in
//! the order of `--list`).  The tests are grouped by area, one module each
//! (basic, delay, flush_cancel, results, concurrency, bad_encoding,
//! bad_pointers, bad_values, lifecycle, bench, irq, device_irq, poll, session,
//! hostile, ordering);
//! `all()` below lists them in the order they run.  The runner, the Checker
//! and the memory helpers are the library's `wqctl::testing`.
//! Environment: RUST_WQ_KO (path of rust_wq.ko) enables `rmmod_refused_while_open`.
//! Exit status: 0 if no test failed, 1 otherwise (or when the device cannot
//! be used), 2 for a usage error.

mod bad_encoding;
mod bad_pointers;
mod bad_values;
mod basic;
mod bench;
mod concurrency;
mod delay;
mod delay_trace;
mod device_irq;
mod flush_cancel;
mod footprint;
mod hostile;
mod irq;
mod jiffies;
mod lifecycle;
mod lock_held;
mod mid_call;
mod ordering;
mod poll;
mod results;
mod session;
mod util;

use clap::Parser;
use std::process::ExitCode;
use wqctl::abi::*;
use wqctl::testing::ktap::{Named, Run, Selection};
use wqctl::Device;

pub use wqctl::testing::{
    diag, fail, panic_message, skip, unavailable, Checker, Must, Outcome, TestResult,
};

/// Shared, read-only facts gathered before the tests run.
pub struct Ctx {
    pub path: String,
    pub info: RustWqInfo,
    /// Online CPUs at start (from INFO; only 0..63 are representable).
    pub online: Vec<u32>,
}

impl Ctx {
    /// Opens a fresh file of the device (a test's own context).
    pub fn open(&self) -> Result<Device, Outcome> {
        wqctl::testing::open(&self.path)
    }
}

type TestFn = fn(&Ctx) -> TestResult;

/// Every test, in the order they run.
fn all() -> Vec<Named<TestFn>> {
    let mut v: Vec<Named<TestFn>> = vec![
        ("info", basic::info),
        ("percpu_placement", basic::percpu_placement),
        ("system_percpu_placement", basic::system_percpu_placement),
        ("unbound_runs", basic::unbound_runs),
        ("system_dfl_runs", basic::system_dfl_runs),
        ("ordered_fifo", basic::ordered_fifo),
        ("queue_names_by_trace", basic::queue_names_by_trace),
        ("slept_off_cpu_by_trace", basic::slept_off_cpu_by_trace),
        ("delay_never_early", delay::delay_never_early),
        (
            "delay_never_early_by_trace",
            delay_trace::delay_never_early_by_trace,
        ),
        (
            "mod_delay_never_early_by_trace",
            delay_trace::mod_delay_never_early_by_trace,
        ),
        (
            "delays_whole_jiffies_by_trace",
            delay_trace::delays_whole_jiffies_by_trace,
        ),
        ("flush_waits", flush_cancel::flush_waits),
        ("flush_by_id", flush_cancel::flush_by_id),
        ("flush_by_queue", flush_cancel::flush_by_queue),
        (
            "cancel_prevents_execution",
            flush_cancel::cancel_prevents_execution,
        ),
        ("cancel_by_id", flush_cancel::cancel_by_id),
        (
            "cancel_waits_for_running",
            flush_cancel::cancel_waits_for_running,
        ),
        ("mod_delay", delay::mod_delay),
        (
            "work_sleeps_in_process_context",
            basic::work_sleeps_in_process_context,
        ),
        (
            "results_fifo_and_removal",
            results::results_fifo_and_removal,
        ),
        ("reset_clears", results::reset_clears),
        ("max_pending_ebusy", results::max_pending_ebusy),
        ("einval_before_ebusy", results::einval_before_ebusy),
        ("concurrent_8_threads", concurrency::concurrent_8_threads),
        ("unknown_cmd_enotty", bad_encoding::unknown_cmd_enotty),
        ("wrong_size_einval", bad_encoding::wrong_size_einval),
        ("wrong_version_einval", bad_encoding::wrong_version_einval),
        (
            "reserved_nonzero_einval",
            bad_encoding::reserved_nonzero_einval,
        ),
        (
            "out_fields_ignored_on_input",
            bad_encoding::out_fields_ignored_on_input,
        ),
        (
            "reserved_zeroed_on_output",
            bad_encoding::reserved_zeroed_on_output,
        ),
        ("bad_pointer_efault", bad_pointers::bad_pointer_efault),
        (
            "results_null_buf_einval",
            bad_pointers::results_null_buf_einval,
        ),
        (
            "cpu_out_of_range_einval",
            bad_values::cpu_out_of_range_einval,
        ),
        ("unknown_queue_einval", bad_values::unknown_queue_einval),
        ("count_zero_einval", bad_values::count_zero_einval),
        ("count_too_many_einval", bad_values::count_too_many_einval),
        ("delay_too_long_einval", bad_values::delay_too_long_einval),
        ("sleep_too_long_einval", bad_values::sleep_too_long_einval),
        (
            "unknown_target_kind_einval",
            bad_values::unknown_target_kind_einval,
        ),
        (
            "mod_delay_unknown_enoent",
            bad_values::mod_delay_unknown_enoent,
        ),
        ("close_with_pending", lifecycle::close_with_pending),
        ("offline_cpu_enodev", lifecycle::offline_cpu_enodev),
        ("bench_runs", bench::bench_runs),
        ("bench_bad_input_einval", bench::bench_bad_input_einval),
        ("bench_cpus_by_trace", bench::bench_cpus_by_trace),
        (
            "bench_done_threads_sleep_by_trace",
            bench::bench_done_threads_sleep_by_trace,
        ),
        ("file_memory_by_trace", footprint::file_memory_by_trace),
        ("bench_memory_by_trace", footprint::bench_memory_by_trace),
        (
            "bench_tracked_delayed_by_lockdep",
            footprint::bench_tracked_delayed_by_lockdep,
        ),
        (
            "bench_calls_match_c_twin_by_trace",
            footprint::bench_calls_match_c_twin_by_trace,
        ),
        (
            "enqueue_holds_the_lock_by_trace",
            lock_held::enqueue_holds_the_lock_by_trace,
        ),
        (
            "mod_delay_holds_the_lock",
            lock_held::mod_delay_holds_the_lock,
        ),
        (
            "rmmod_refused_while_open",
            lifecycle::rmmod_refused_while_open,
        ),
        (
            "wrong_direction_einval",
            bad_encoding::wrong_direction_einval,
        ),
        (
            "target_unused_field_einval",
            bad_encoding::target_unused_field_einval,
        ),
        ("ebusy_partial_room", results::ebusy_partial_room),
        ("ebusy_counts_running", results::ebusy_counts_running),
        (
            "cancel_started_enoent_waits",
            flush_cancel::cancel_started_enoent_waits,
        ),
        (
            "mod_delay_started_enoent",
            flush_cancel::mod_delay_started_enoent,
        ),
        (
            "delay_zero_queues_at_once",
            delay::delay_zero_queues_at_once,
        ),
        ("short_sleeps_round_up", delay::short_sleeps_round_up),
        (
            "close_waits_for_running",
            lifecycle::close_waits_for_running,
        ),
        (
            "results_dropped_beyond_max",
            results::results_dropped_beyond_max,
        ),
        ("bench_one_at_a_time", bench::bench_one_at_a_time),
        (
            "dmesg_lines_match_results",
            results::dmesg_lines_match_results,
        ),
    ];
    v.extend(irq::all());
    v.extend(device_irq::all());
    v.extend([
        (
            "from_irq_offline_mid_call_runs_nothing",
            mid_call::from_irq_offline_mid_call_runs_nothing as TestFn,
        ),
        (
            "device_irq_unbind_mid_call_runs_nothing",
            mid_call::device_irq_unbind_mid_call_runs_nothing,
        ),
    ]);
    v.extend(poll::all());
    v.extend(session::all());
    v.extend(hostile::all());
    v.extend(ordering::all());
    v
}

/// The expected duration of a test in tenths of a second (measured in make check's two VMs
/// at once on 2 host cores; the rest about 0.3 s): what `--lane` balances. Only the
/// balance of the lanes depends on it. (`from_irq_offline_mid_call_runs_nothing` repeats
/// its trial until it hits the middle of a call: 3 to 16 s, about 9 on average.)
fn cost(name: &str) -> u64 {
    match name {
        "hostile_enqueue_enomem_runs_nothing" => 130,
        "from_irq_offline_mid_call_runs_nothing" => 90,
        "hostile_bench_alloc_failures" => 87,
        "bench_calls_match_c_twin_by_trace" => 50,
        "epoll_closed_file_released" | "bench_memory_by_trace" => 40,
        "irq_close_cancels"
        | "cancel_prevents_execution"
        | "poll_closed_by_other_thread"
        | "hostile_flush_interruptible"
        | "flush_restarts_with_sa_restart"
        | "close_with_pending"
        | "irq_context_by_trace" => 32,
        "results_dropped_beyond_max"
        | "hostile_slept_50_rounds"
        | "hostile_sigterm_ends_waits"
        | "bench_runs"
        | "mod_delay_holds_the_lock"
        | "file_memory_by_trace"
        | "device_irq_unbind_mid_call_runs_nothing" => 25,
        "dmesg_lines_match_results"
        | "close_waits_for_running"
        | "mod_delay_never_early_by_trace"
        | "bench_tracked_delayed_by_lockdep" => 20,
        "hostile_stats_dropped_since_open"
        | "hostile_bench_lock_wait_signals"
        | "select_closed_by_other_thread"
        | "hostile_results_bounded_unread"
        | "ebusy_counts_running"
        | "delay_never_early_by_trace"
        | "queue_names_by_trace"
        | "enqueue_holds_the_lock_by_trace"
        | "run_follows_results" => 15,
        _ => 3,
    }
}

/// End-to-end tests of the rust_wq module (as root, module loaded); prints
/// KTAP version 1.  Set RUST_WQ_KO=/path/rust_wq.ko to enable
/// rmmod_refused_while_open.  Exit status: 0 if no test failed, else 1.
#[derive(Parser, Debug)]
#[command(name = "rust_wq_e2e")]
struct Cli {
    /// The device file.
    #[arg(long, value_name = "PATH", default_value = RUST_WQ_DEVICE)]
    device: String,
    #[command(flatten)]
    selection: Selection,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let all = all();
    let selected = match cli.selection.resolve_weighted(&all, |_| true, cost) {
        Ok(Some(s)) => s,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rust_wq_e2e: {e}");
            return ExitCode::from(2);
        }
    };
    let run = Run::start(selected.len());
    let path = cli.device;
    let dev = match Device::open(&path) {
        Ok(d) => d,
        Err(e) => {
            return run.bail_out(&format!(
                "cannot open {path}: {e} (is rust_wq loaded? are we root?)"
            ))
        }
    };
    let info = match dev.info() {
        Ok(i) => i,
        Err(e) => return run.bail_out(&format!("RUST_WQ_IOC_INFO on {path} failed: {e}")),
    };
    drop(dev);
    let online = wqctl::parse::cpus_in_mask(info.online_cpus, info.nr_cpu_ids);
    diag(&format!(
        "rust_wq e2e: device {path}, abi_version {}, nr_cpu_ids {}, online cpus {:?}",
        info.abi_version, info.nr_cpu_ids, online
    ));
    let ctx = Ctx { path, info, online };
    run.tests(&selected, |test, _| test(&ctx)).exit_code()
}
