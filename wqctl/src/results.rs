//! Results as text: the flags, the table `wqctl results` prints, and JSON.

use crate::abi::*;
use crate::parse;

/// The result flags and their names, in the order [`format_flags`] prints them.
const RESULT_FLAG_NAMES: [(u32, &str); 6] = [
    (RUST_WQ_RES_FROM_TASK, "FROM_TASK"),
    (RUST_WQ_RES_FROM_SOFTIRQ, "FROM_SOFTIRQ"),
    (RUST_WQ_RES_FROM_HARDIRQ, "FROM_HARDIRQ"),
    (RUST_WQ_RES_FROM_DEVICE_IRQ, "FROM_DEVICE_IRQ"),
    (RUST_WQ_RES_PROCESS_CTX, "PROCESS_CTX"),
    (RUST_WQ_RES_SLEPT, "SLEPT"),
];

/// Decodes result flags as `FROM_HARDIRQ|PROCESS_CTX|SLEPT` (or `-`).
pub fn format_flags(flags: u32) -> String {
    let mut v = Vec::new();
    let mut known = 0;
    for (bit, name) in RESULT_FLAG_NAMES {
        known |= bit;
        if flags & bit != 0 {
            v.push(name.to_string());
        }
    }
    let rest = flags & !known;
    if rest != 0 {
        v.push(format!("{rest:#x}"));
    }
    if v.is_empty() {
        "-".into()
    } else {
        v.join("|")
    }
}

/// The results table: `id tag seq queue req_cpu cpu latency_us runtime_us flags`.
pub fn format_results_table(results: &[RustWqResult]) -> String {
    let mut s = results_header() + "\n";
    for r in results {
        s += &result_row(r);
        s.push('\n');
    }
    s
}

/// The header line of [`format_results_table`] (without newline).
pub fn results_header() -> String {
    format!(
        "{:>6} {:>6} {:>8} {:<13} {:>7} {:>4} {:>11} {:>11} {}",
        "id", "tag", "seq", "queue", "req_cpu", "cpu", "latency_us", "runtime_us", "flags"
    )
}

/// One row of [`format_results_table`] (without newline).
pub fn result_row(r: &RustWqResult) -> String {
    format!(
        "{:>6} {:>6} {:>8} {:<13} {:>7} {:>4} {:>11} {:>11} {}",
        r.id,
        r.tag,
        r.seq,
        parse::format_queue(r.queue),
        parse::format_cpu(r.requested_cpu),
        r.cpu,
        r.latency_ns / 1000,
        r.runtime_ns / 1000,
        format_flags(r.flags)
    )
}

/// The context that queued an item, from its result flags: `device_irq` (the edu
/// device's interrupt handler), `hardirq`, `softirq`, `task`, or `unknown` (a module
/// that does not report it).
pub fn queued_from(flags: u32) -> &'static str {
    if flags & RUST_WQ_RES_FROM_DEVICE_IRQ != 0 {
        "device_irq"
    } else if flags & RUST_WQ_RES_FROM_HARDIRQ != 0 {
        "hardirq"
    } else if flags & RUST_WQ_RES_FROM_SOFTIRQ != 0 {
        "softirq"
    } else if flags & RUST_WQ_RES_FROM_TASK != 0 {
        "task"
    } else {
        "unknown"
    }
}

/// One result as a JSON object (hand-written; all values are numbers or
/// plain ASCII strings, so no escaping is needed).
pub fn result_json(r: &RustWqResult) -> String {
    let req = if r.requested_cpu == RUST_WQ_CPU_ANY {
        "\"any\"".to_string()
    } else {
        r.requested_cpu.to_string()
    };
    format!(
        "{{\"id\":{},\"tag\":{},\"seq\":{},\"queue\":\"{}\",\"requested_cpu\":{},\"cpu\":{},\
         \"latency_ns\":{},\"runtime_ns\":{},\"flags\":{},\"process_ctx\":{},\"slept\":{},\
         \"queued_from\":\"{}\"}}",
        r.id,
        r.tag,
        r.seq,
        parse::format_queue(r.queue),
        req,
        r.cpu,
        r.latency_ns,
        r.runtime_ns,
        r.flags,
        r.flags & RUST_WQ_RES_PROCESS_CTX != 0,
        r.flags & RUST_WQ_RES_SLEPT != 0,
        queued_from(r.flags)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_json() {
        let r = RustWqResult {
            id: 1,
            tag: 7,
            seq: 3,
            latency_ns: 20_500_000,
            runtime_ns: 1_000,
            requested_cpu: RUST_WQ_CPU_ANY,
            cpu: 2,
            queue: RUST_WQ_Q_SYSTEM_DFL,
            flags: RUST_WQ_RES_PROCESS_CTX | RUST_WQ_RES_SLEPT,
            reserved: 0,
        };
        let t = format_results_table(&[r]);
        assert!(t.lines().next().unwrap().contains("latency_us"));
        assert!(t.contains("system-dfl"));
        assert!(t.contains("20500"));
        assert!(t.contains("PROCESS_CTX|SLEPT"));
        let j = result_json(&r);
        assert!(j.starts_with("{\"id\":1,\"tag\":7,"));
        assert!(j.contains("\"requested_cpu\":\"any\""));
        assert!(j.ends_with("\"queued_from\":\"unknown\"}"));
        assert_eq!(format_flags(0), "-");
        assert_eq!(format_flags(0x40), "0x40");
        let f = RUST_WQ_RES_FROM_HARDIRQ | RUST_WQ_RES_PROCESS_CTX | RUST_WQ_RES_SLEPT;
        assert_eq!(format_flags(f), "FROM_HARDIRQ|PROCESS_CTX|SLEPT");
        assert_eq!(format_flags(RUST_WQ_RES_FROM_TASK | 0x80), "FROM_TASK|0x80");
        assert_eq!(queued_from(f), "hardirq");
        assert_eq!(queued_from(RUST_WQ_RES_FROM_SOFTIRQ), "softirq");
        assert_eq!(queued_from(RUST_WQ_RES_FROM_TASK), "task");
        let d = RUST_WQ_RES_FROM_HARDIRQ | RUST_WQ_RES_FROM_DEVICE_IRQ | RUST_WQ_RES_PROCESS_CTX;
        assert_eq!(format_flags(d), "FROM_HARDIRQ|FROM_DEVICE_IRQ|PROCESS_CTX");
        assert_eq!(queued_from(d), "device_irq");
        assert!(
            result_json(&RustWqResult { flags: f, ..r }).contains("\"queued_from\":\"hardirq\"")
        );
    }
}
