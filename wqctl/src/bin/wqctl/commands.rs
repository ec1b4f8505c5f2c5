//! Running one subcommand on an open file, and the text and JSON it prints.

use crate::cli::{Cmd, EnqueueSpec};
use crate::demo::demo;
use crate::follow::{follow, run};
use crate::{op, Failure, Out};
use std::time::Duration;
use wqctl::abi::*;
use wqctl::parse::{self, format_cpu, format_cpus, format_duration_us, format_queue, CpuSel};
use wqctl::{
    bench_json, bench_line, format_results_table, result_json, set_bench_scope, BenchArgs, Device,
    EnqueueArgs, Target, BENCH_SCOPE_PATH,
};

pub(crate) fn ids_text(first: u64, count: u32) -> String {
    let last = first + u64::from(count).saturating_sub(1);
    if first == last {
        first.to_string()
    } else {
        format!("{first}..{last}")
    }
}

/// One ENQUEUE per queue and CPU of `spec`; prints a line for each (text mode)
/// and returns the calls made as (args, first id).
pub(crate) fn enqueue_spec(
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
                from_device_irq: spec.from_device_irq,
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
                    } else if spec.from_device_irq {
                        " from the edu device's IRQ handler"
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

pub(crate) fn enqueued_json(calls: &[(EnqueueArgs, u64)]) -> String {
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

pub(crate) fn json_cpu(cpu: u32) -> String {
    if cpu == RUST_WQ_CPU_ANY {
        "\"any\"".into()
    } else {
        cpu.to_string()
    }
}

pub(crate) fn results_json_array(res: &[RustWqResult]) -> String {
    let items: Vec<String> = res.iter().map(result_json).collect();
    format!("[{}]", items.join(","))
}

/// Runs one command on `dev`.  Ok(false): it ran but found a problem (demo, run).
pub(crate) fn exec(dev: &Device, cmd: &Cmd, out: Out) -> Result<bool, Failure> {
    match cmd {
        Cmd::Info => {
            let i = op("info", dev.info())?;
            let cpus = parse::cpus_in_mask(i.online_cpus, i.nr_cpu_ids);
            if out.json {
                println!(
                    "{{\"cmd\":\"info\",\"ok\":true,\"abi_version\":{},\"nr_cpu_ids\":{},\"online_cpus\":[{}],\"max_count\":{},\"max_pending\":{},\"max_delay_us\":{},\"max_sleep_us\":{},\"max_results\":{},\"device_bound\":{},\"device_msi\":{},\"device_irq\":{},\"device_irqs\":{},\"device_bh_queued\":{},\"device_bh_runs\":{}}}",
                    i.abi_version,
                    i.nr_cpu_ids,
                    format_cpus(&cpus),
                    i.max_count,
                    i.max_pending,
                    i.max_delay_us,
                    i.max_sleep_us,
                    i.max_results,
                    i.device_flags & RUST_WQ_INFO_DEVICE_BOUND != 0,
                    i.device_flags & RUST_WQ_INFO_DEVICE_MSI != 0,
                    i.device_irq,
                    i.device_irqs,
                    i.device_bh_queued,
                    i.device_bh_runs
                );
                return Ok(true);
            }
            println!("abi_version   {}", i.abi_version);
            println!("nr_cpu_ids    {}", i.nr_cpu_ids);
            println!(
                "online_cpus   {} (mask {:#x})",
                format_cpus(&cpus),
                i.online_cpus
            );
            println!("max_count     {}", i.max_count);
            println!("max_pending   {}", i.max_pending);
            println!("max_delay     {}", format_duration_us(i.max_delay_us));
            println!("max_sleep     {}", format_duration_us(i.max_sleep_us));
            println!("max_results   {}", i.max_results);
            if i.device_flags & RUST_WQ_INFO_DEVICE_BOUND != 0 {
                println!(
                    "edu device    bound, irq {} ({})",
                    i.device_irq,
                    if i.device_flags & RUST_WQ_INFO_DEVICE_MSI != 0 {
                        "MSI"
                    } else {
                        "INTx"
                    }
                );
            } else {
                println!("edu device    not bound (--from-device-irq gives ENODEV)");
            }
            println!(
                "edu counters  {} interrupts, static item queued {} times, ran {} times",
                i.device_irqs, i.device_bh_queued, i.device_bh_runs
            );
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
        Cmd::Flush(t) | Cmd::Cancel(t) => {
            let (name, done, r) = if matches!(cmd, Cmd::Flush(_)) {
                ("flush", "flushed", dev.flush(t.target()))
            } else {
                ("cancel", "cancelled", dev.cancel(t.target()))
            };
            let n = op(name, r)?;
            if out.json {
                println!("{{\"cmd\":\"{name}\",\"ok\":true,\"count\":{n}}}");
            } else {
                println!("{done} {n} item(s)");
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
            let mut raw = args.to_raw();
            if o.upstream {
                raw.flags |= RUST_WQ_BENCH_F_UPSTREAM;
            }
            if o.kbox {
                raw.flags |= RUST_WQ_BENCH_F_KBOX;
            }
            let b = op("bench", dev.bench_raw(raw))?;
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

pub(crate) fn dropped_text(dropped: u64) -> String {
    if dropped > 0 {
        format!(" ({dropped} older result(s) were dropped)")
    } else {
        String::new()
    }
}

pub(crate) fn print_results(res: &[RustWqResult], dropped: u64, json: bool) {
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
