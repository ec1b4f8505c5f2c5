//! Per-CPU and per-queue summaries of results (`wqctl run`).

use crate::abi::*;
use crate::parse;
use std::collections::BTreeMap;

/// Counts and latency/run-time figures of a group of results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Agg {
    pub items: u64,
    pub latency_min_ns: u64,
    pub latency_max_ns: u64,
    pub latency_sum_ns: u128,
    pub runtime_sum_ns: u128,
}

impl Agg {
    /// Adds one result.
    pub fn add(&mut self, r: &RustWqResult) {
        if self.items == 0 || r.latency_ns < self.latency_min_ns {
            self.latency_min_ns = r.latency_ns;
        }
        self.latency_max_ns = self.latency_max_ns.max(r.latency_ns);
        self.latency_sum_ns += u128::from(r.latency_ns);
        self.runtime_sum_ns += u128::from(r.runtime_ns);
        self.items += 1;
    }

    /// Mean latency in ns (0 without items).
    pub fn latency_avg_ns(&self) -> u64 {
        self.latency_sum_ns
            .checked_div(u128::from(self.items))
            .map_or(0, |v| v as u64)
    }

    /// Mean run time in ns (0 without items).
    pub fn runtime_avg_ns(&self) -> u64 {
        self.runtime_sum_ns
            .checked_div(u128::from(self.items))
            .map_or(0, |v| v as u64)
    }
}

/// Results grouped by the CPU they ran on and by queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub all: Agg,
    pub by_cpu: BTreeMap<u32, Agg>,
    pub by_queue: BTreeMap<u32, Agg>,
}

impl Summary {
    /// A summary of `results`.
    pub fn of(results: &[RustWqResult]) -> Self {
        let mut s = Summary::default();
        for r in results {
            s.add(r);
        }
        s
    }

    /// Adds one result.
    pub fn add(&mut self, r: &RustWqResult) {
        self.all.add(r);
        self.by_cpu.entry(r.cpu).or_default().add(r);
        self.by_queue.entry(r.queue).or_default().add(r);
    }

    /// Two small tables, `per cpu` and `per queue`, latencies and run times in us.
    pub fn table(&self) -> String {
        let head = |what: &str| {
            format!(
                "{what:<13} {:>6} {:>10} {:>10} {:>10} {:>10}\n",
                "items", "lat_min_us", "lat_avg_us", "lat_max_us", "run_avg_us"
            )
        };
        let row = |name: String, a: &Agg| {
            format!(
                "{name:<13} {:>6} {:>10} {:>10} {:>10} {:>10}\n",
                a.items,
                a.latency_min_ns / 1000,
                a.latency_avg_ns() / 1000,
                a.latency_max_ns / 1000,
                a.runtime_avg_ns() / 1000
            )
        };
        let mut s = head("cpu");
        for (cpu, a) in &self.by_cpu {
            s += &row(cpu.to_string(), a);
        }
        s += &head("queue");
        for (q, a) in &self.by_queue {
            s += &row(parse::format_queue(*q), a);
        }
        s
    }

    /// The summary as one JSON object (`by_cpu` keyed by CPU number, `by_queue` by queue name).
    pub fn json(&self) -> String {
        let agg = |a: &Agg| {
            format!(
                "{{\"items\":{},\"latency_min_ns\":{},\"latency_avg_ns\":{},\"latency_max_ns\":{},\"runtime_avg_ns\":{}}}",
                a.items,
                a.latency_min_ns,
                a.latency_avg_ns(),
                a.latency_max_ns,
                a.runtime_avg_ns()
            )
        };
        let cpus: Vec<String> = self
            .by_cpu
            .iter()
            .map(|(c, a)| format!("\"{c}\":{}", agg(a)))
            .collect();
        let queues: Vec<String> = self
            .by_queue
            .iter()
            .map(|(q, a)| format!("\"{}\":{}", parse::format_queue(*q), agg(a)))
            .collect();
        format!(
            "{{\"all\":{},\"by_cpu\":{{{}}},\"by_queue\":{{{}}}}}",
            agg(&self.all),
            cpus.join(","),
            queues.join(",")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(cpu: u32, queue: u32, lat_us: u64, run_us: u64) -> RustWqResult {
        RustWqResult {
            cpu,
            queue,
            latency_ns: lat_us * 1000,
            runtime_ns: run_us * 1000,
            ..Default::default()
        }
    }

    #[test]
    fn groups_and_figures() {
        let s = Summary::of(&[
            r(0, RUST_WQ_Q_PERCPU, 10, 1),
            r(0, RUST_WQ_Q_UNBOUND, 30, 3),
            r(2, RUST_WQ_Q_PERCPU, 20, 2),
        ]);
        assert_eq!(s.all.items, 3);
        assert_eq!(s.all.latency_avg_ns(), 20_000);
        assert_eq!(s.by_cpu.len(), 2);
        let c0 = s.by_cpu[&0];
        assert_eq!(
            (c0.items, c0.latency_min_ns, c0.latency_max_ns),
            (2, 10_000, 30_000)
        );
        assert_eq!(c0.runtime_avg_ns(), 2_000);
        assert_eq!(s.by_queue[&RUST_WQ_Q_PERCPU].items, 2);
        let t = s.table();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 6, "{t}");
        assert!(lines[0].starts_with("cpu "));
        assert!(lines[1]
            .split_whitespace()
            .eq(["0", "2", "10", "20", "30", "2"]));
        assert!(lines[3].starts_with("queue "));
        assert!(lines[4].starts_with("percpu "));
        assert!(lines[5].starts_with("unbound "));
        let j = s.json();
        assert!(j.starts_with("{\"all\":{\"items\":3,"));
        assert!(j.contains("\"by_cpu\":{\"0\":{\"items\":2,"));
        assert!(j.contains("\"unbound\":{\"items\":1,"));
    }

    #[test]
    fn empty() {
        let s = Summary::of(&[]);
        assert_eq!(s.all.latency_avg_ns(), 0);
        assert_eq!(s.table().lines().count(), 2);
        assert_eq!(
            s.json(),
            "{\"all\":{\"items\":0,\"latency_min_ns\":0,\"latency_avg_ns\":0,\"latency_max_ns\":0,\"runtime_avg_ns\":0},\"by_cpu\":{},\"by_queue\":{}}"
        );
    }
}
