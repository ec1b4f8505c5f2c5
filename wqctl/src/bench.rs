//! RUST_WQ_IOC_BENCH: its arguments ([`BenchArgs`]), the affinity scope of its
//! unbound queue, and its report as JSON or as one line.

use crate::abi::{self, *};
use crate::{Errno, Result};
use std::path::Path;

/// Parameters of one RUST_WQ_IOC_BENCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchArgs {
    /// RUST_WQ_BENCH_*.
    pub path: u32,
    /// Rounds per thread (1 .. RUST_WQ_BENCH_MAX_ITEMS).
    pub items: u32,
    /// 0: one thread per online CPU.
    pub threads: u32,
    /// Also measure queueing-to-start latency (RUST_WQ_BENCH_F_START_LATENCY).
    pub start_latency: bool,
    /// RUST_WQ_BENCH_OP_*: what is timed.
    pub op: u32,
}

impl BenchArgs {
    /// The ioctl argument for these parameters.
    pub fn to_raw(self) -> RustWqBench {
        RustWqBench {
            version: RUST_WQ_ABI_VERSION,
            path: self.path,
            threads: self.threads,
            items: self.items,
            flags: if self.start_latency {
                RUST_WQ_BENCH_F_START_LATENCY
            } else {
                0
            },
            op: self.op,
            ..Default::default()
        }
    }
}

/// The affinity scopes of an unbound workqueue, in the order
/// `lib/test_workqueue.c` runs them.
pub const BENCH_SCOPES: [&str; 6] = ["cpu", "smt", "cache_shard", "cache", "numa", "system"];

/// The sysfs file holding the affinity scope of the benchmark's unbound queue.
pub const BENCH_SCOPE_PATH: &str = "/sys/bus/workqueue/devices/rust_wq_bench/affinity_scope";

/// Sets the affinity scope of the `rust_wq_bench` queue (one of [`BENCH_SCOPES`])
/// by writing `scope_path` (normally [`BENCH_SCOPE_PATH`]).
pub fn set_bench_scope(scope_path: impl AsRef<Path>, scope: &str) -> Result<()> {
    if !BENCH_SCOPES.contains(&scope) {
        return Err(Errno(libc::EINVAL));
    }
    std::fs::write(scope_path, scope)?;
    Ok(())
}

/// One benchmark report as a JSON object; `scope` is included when given.
pub fn bench_json(b: &RustWqBench, scope: Option<&str>) -> String {
    let path =
        abi::bench_path_name(b.path).map_or_else(|| b.path.to_string(), |p| format!("\"{p}\""));
    let scope = scope.map_or_else(|| "null".to_string(), |s| format!("\"{s}\""));
    let op = abi::bench_op_name(b.op).map_or_else(|| b.op.to_string(), |o| format!("\"{o}\""));
    format!(
        "{{\"op\":{},\"path\":{},\"scope\":{},\"items\":{},\"threads\":{},\"start_latency\":{},\
         \"upstream\":{},\"kbox\":{},\"elapsed_ns\":{},\"items_per_sec\":{},\"queue_p50_ns\":{},\"queue_p90_ns\":{},\
         \"queue_p95_ns\":{},\"queue_p99_ns\":{},\"start_p50_ns\":{},\"start_p90_ns\":{},\
         \"start_p95_ns\":{}}}",
        op,
        path,
        scope,
        b.items,
        b.threads_run,
        b.flags & RUST_WQ_BENCH_F_START_LATENCY != 0,
        b.flags & RUST_WQ_BENCH_F_UPSTREAM != 0,
        b.flags & RUST_WQ_BENCH_F_KBOX != 0,
        b.elapsed_ns,
        b.items_per_sec,
        b.queue_p50_ns,
        b.queue_p90_ns,
        b.queue_p95_ns,
        b.queue_p99_ns,
        b.start_p50_ns,
        b.start_p90_ns,
        b.start_p95_ns
    )
}

/// One benchmark report as one human-readable line, in the style of
/// `lib/test_workqueue.c`'s dmesg lines.
pub fn bench_line(b: &RustWqBench, scope: Option<&str>) -> String {
    let path = abi::bench_path_name(b.path).map_or_else(|| b.path.to_string(), str::to_string);
    let op = abi::bench_op_name(b.op).map_or_else(|| b.op.to_string(), str::to_string);
    let variant = match (
        b.flags & RUST_WQ_BENCH_F_UPSTREAM != 0,
        b.flags & RUST_WQ_BENCH_F_KBOX != 0,
    ) {
        (false, false) => "",
        (true, false) => " upstream",
        (false, true) => " kbox",
        (true, true) => " upstream kbox",
    };
    let label = match scope {
        Some(s) => format!("{op} {path}/{s}{variant}"),
        None => format!("{op} {path}{variant}"),
    };
    let start = if b.flags & RUST_WQ_BENCH_F_START_LATENCY != 0 {
        format!(
            "start p50={} p90={} p95={} ns",
            b.start_p50_ns, b.start_p90_ns, b.start_p95_ns
        )
    } else {
        "start -".to_string()
    };
    format!(
        "{label:<30} {} items/sec  timed call p50={} p90={} p95={} p99={} ns  {start}  \
         threads={} items={} elapsed={} ns",
        b.items_per_sec,
        b.queue_p50_ns,
        b.queue_p90_ns,
        b.queue_p95_ns,
        b.queue_p99_ns,
        b.threads_run,
        b.items,
        b.elapsed_ns
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_encoding_and_output() {
        let raw = BenchArgs {
            path: RUST_WQ_BENCH_PERCPU,
            items: 1000,
            threads: 2,
            start_latency: true,
            op: RUST_WQ_BENCH_OP_RT,
        }
        .to_raw();
        assert_eq!(
            (raw.version, raw.path, raw.items, raw.threads, raw.flags),
            (
                RUST_WQ_ABI_VERSION,
                1,
                1000,
                2,
                RUST_WQ_BENCH_F_START_LATENCY
            )
        );
        assert_eq!((raw.threads_run, raw.op, raw.reserved), (0, 0, [0; 2]));
        let b = RustWqBench {
            threads_run: 4,
            items_per_sec: 12345,
            queue_p50_ns: 8000,
            start_p95_ns: 99,
            ..raw
        };
        let j = bench_json(&b, Some("cache"));
        assert!(j.starts_with(
            "{\"op\":\"rt\",\"path\":\"percpu\",\"scope\":\"cache\",\"items\":1000,\"threads\":4,"
        ));
        assert!(j.contains("\"items_per_sec\":12345"));
        assert!(j.contains("\"start_latency\":true,\"upstream\":false,\"kbox\":false,"));
        let u = RustWqBench {
            flags: RUST_WQ_BENCH_F_UPSTREAM | RUST_WQ_BENCH_F_KBOX,
            ..b
        };
        assert!(bench_json(&u, None).contains("\"upstream\":true,\"kbox\":true,"));
        assert!(bench_line(&u, None).starts_with("rt percpu upstream kbox "));
        assert!(j.ends_with("\"start_p95_ns\":99}"));
        assert!(bench_json(&b, None).contains("\"scope\":null"));
        let l = bench_line(&b, Some("cache"));
        assert!(l.starts_with("rt percpu/cache "));
        let d = RustWqBench {
            op: RUST_WQ_BENCH_OP_CANCEL_ARMED,
            queue_p99_ns: 77,
            ..b
        };
        assert!(bench_json(&d, None).starts_with("{\"op\":\"cancel-armed\","));
        assert!(bench_json(&d, None).contains("\"queue_p99_ns\":77,"));
        assert!(bench_line(&d, None).contains("p99=77"));
        assert!(l.contains("12345 items/sec"));
        assert!(l.contains("p50=8000"));
        assert!(l.contains("threads=4"));
        assert!(bench_line(&RustWqBench::default(), None).contains("start -"));
    }

    #[test]
    fn bench_scope_is_validated_and_written() {
        let f = std::env::temp_dir().join(format!("wqctl-scope-{}", std::process::id()));
        assert_eq!(set_bench_scope(&f, "bogus"), Err(Errno(libc::EINVAL)));
        set_bench_scope(&f, "cache_shard").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "cache_shard");
        let _ = std::fs::remove_file(&f);
        assert_eq!(
            set_bench_scope("/nonexistent/affinity_scope", "cpu"),
            Err(Errno(libc::ENOENT))
        );
    }
}
