//! Parsing of command-line values: durations, queue names and CPUs.

use crate::abi::*;

/// Parses a duration into microseconds.
///
/// Accepted: `0`, or an integer followed by `us`, `ms` or `s`
/// (`50ms`, `1us`, `2s`).  A non-zero number without a unit is rejected
/// because it would be ambiguous.
pub fn parse_duration_us(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "invalid duration {s:?}: expected e.g. 50ms, 1us, 2s or 0"
        ));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: number too large"))?;
    let mult: u64 = match unit {
        "" if n == 0 => 1,
        "" => {
            return Err(format!(
                "duration {s:?} needs a unit: us, ms or s (e.g. {n}ms)"
            ))
        }
        "us" => 1,
        "ms" => 1_000,
        "s" => 1_000_000,
        _ => return Err(format!("invalid duration unit in {s:?}: use us, ms or s")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("duration {s:?} is too large"))
}

/// Formats microseconds back in the largest exact unit (`1500us`, `20ms`, `2s`).
pub fn format_duration_us(us: u64) -> String {
    if us == 0 {
        "0".into()
    } else if us.is_multiple_of(1_000_000) {
        format!("{}s", us / 1_000_000)
    } else if us.is_multiple_of(1_000) {
        format!("{}ms", us / 1_000)
    } else {
        format!("{us}us")
    }
}

/// Parses a queue name: `percpu`, `unbound`, `ordered`, `system-percpu`,
/// `system-dfl` (underscores are accepted instead of dashes, case-insensitive),
/// or the numeric RUST_WQ_Q_* value.
pub fn parse_queue(s: &str) -> Result<u32, String> {
    let norm = s.trim().to_ascii_lowercase().replace('_', "-");
    let q = match norm.as_str() {
        "percpu" => RUST_WQ_Q_PERCPU,
        "unbound" => RUST_WQ_Q_UNBOUND,
        "ordered" => RUST_WQ_Q_ORDERED,
        "system-percpu" => RUST_WQ_Q_SYSTEM_PERCPU,
        "system-dfl" => RUST_WQ_Q_SYSTEM_DFL,
        n if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => match n.parse::<u32>() {
            Ok(v) if v < RUST_WQ_Q_COUNT => v,
            _ => {
                return Err(format!(
                    "unknown queue number {s:?} (0..{})",
                    RUST_WQ_Q_COUNT - 1
                ))
            }
        },
        _ => {
            return Err(format!(
                "unknown queue {s:?}: use percpu, unbound, ordered, system-percpu or system-dfl"
            ))
        }
    };
    Ok(q)
}

/// Parses `any` (RUST_WQ_CPU_ANY) or a CPU number.
pub fn parse_cpu(s: &str) -> Result<u32, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("any") {
        return Ok(RUST_WQ_CPU_ANY);
    }
    match t.parse::<u32>() {
        Ok(v) if v != RUST_WQ_CPU_ANY => Ok(v),
        _ => Err(format!("invalid cpu {s:?}: use `any` or a CPU number")),
    }
}

/// The CPUs an `--cpu` option selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuSel {
    /// No CPU requested (RUST_WQ_CPU_ANY).
    Any,
    /// Every online CPU, one ENQUEUE each.
    All,
    /// These CPUs, one ENQUEUE each.
    List(Vec<u32>),
}

/// Parses `any`, `all` (every online CPU), a CPU number or a cpulist (`0,2-3`).
pub fn parse_cpu_sel(s: &str) -> Result<CpuSel, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("all") {
        return Ok(CpuSel::All);
    }
    if t.contains([',', '-']) {
        let v = parse_cpulist(t).map_err(|_| {
            format!("invalid cpu {s:?}: use `any`, `all`, a CPU number or a list like 0,2-3")
        })?;
        if v.is_empty() || v.contains(&RUST_WQ_CPU_ANY) {
            return Err(format!("invalid cpu list {s:?}"));
        }
        return Ok(CpuSel::List(v));
    }
    match parse_cpu(t)? {
        RUST_WQ_CPU_ANY => Ok(CpuSel::Any),
        c => Ok(CpuSel::List(vec![c])),
    }
}

impl CpuSel {
    /// The `cpu` values to enqueue with; `online` is used for [`CpuSel::All`].
    pub fn cpus(&self, online: &[u32]) -> Vec<u32> {
        match self {
            CpuSel::Any => vec![RUST_WQ_CPU_ANY],
            CpuSel::All => online.to_vec(),
            CpuSel::List(v) => v.clone(),
        }
    }
}

/// The queues a `--queue` option selects (RUST_WQ_Q_* values, in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSel(pub Vec<u32>);

/// Parses a queue name (see [`parse_queue`]), a comma-separated list of them,
/// or `all` (every queue, in RUST_WQ_Q_* order).
pub fn parse_queue_sel(s: &str) -> Result<QueueSel, String> {
    if s.trim().eq_ignore_ascii_case("all") {
        return Ok(QueueSel((0..RUST_WQ_Q_COUNT).collect()));
    }
    let v = s
        .split(',')
        .map(parse_queue)
        .collect::<Result<Vec<u32>, String>>()?;
    Ok(QueueSel(v))
}

/// Formats a cpu field (`any` for RUST_WQ_CPU_ANY).
pub fn format_cpu(cpu: u32) -> String {
    if cpu == RUST_WQ_CPU_ANY {
        "any".into()
    } else {
        cpu.to_string()
    }
}

/// Formats a queue field (its name, or the raw number if unknown).
pub fn format_queue(queue: u32) -> String {
    queue_name(queue).map_or_else(|| queue.to_string(), str::to_string)
}

/// Parses the Linux cpulist format used by `/sys/devices/system/cpu/online`
/// (`0-3,5,7-8`).
pub fn parse_cpulist(s: &str) -> Result<Vec<u32>, String> {
    let mut v = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let err = || format!("invalid cpu list {s:?}");
        if let Some((a, b)) = part.split_once('-') {
            let a: u32 = a.parse().map_err(|_| err())?;
            let b: u32 = b.parse().map_err(|_| err())?;
            if a > b {
                return Err(err());
            }
            v.extend(a..=b);
        } else {
            v.push(part.parse().map_err(|_| err())?);
        }
    }
    Ok(v)
}

/// CPU numbers as a comma-separated list without ranges (`0,1,3`), as
/// `wqctl info` and `wqctl demo` print the online CPUs.
pub fn format_cpus(cpus: &[u32]) -> String {
    cpus.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// CPUs whose bit is set in `info.online_cpus` (only CPUs 0..63 are representable).
pub fn cpus_in_mask(mask: u64, nr_cpu_ids: u32) -> Vec<u32> {
    (0..nr_cpu_ids.min(64))
        .filter(|c| mask & (1u64 << c) != 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_as_list() {
        assert_eq!(format_cpus(&[0, 1, 3]), "0,1,3");
        assert_eq!(format_cpus(&[7]), "7");
        assert_eq!(format_cpus(&[]), "");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_us("50ms"), Ok(50_000));
        assert_eq!(parse_duration_us("1us"), Ok(1));
        assert_eq!(parse_duration_us("2s"), Ok(2_000_000));
        assert_eq!(parse_duration_us("0"), Ok(0));
        assert_eq!(parse_duration_us("0ms"), Ok(0));
        assert_eq!(parse_duration_us(" 20ms "), Ok(20_000));
        assert_eq!(parse_duration_us("60s"), Ok(RUST_WQ_MAX_DELAY_US));
        assert!(parse_duration_us("5").unwrap_err().contains("unit"));
        assert!(parse_duration_us("").is_err());
        assert!(parse_duration_us("ms").is_err());
        assert!(parse_duration_us("-1ms").is_err());
        assert!(parse_duration_us("1.5ms").is_err());
        assert!(parse_duration_us("10min").is_err());
        assert!(parse_duration_us("1ns").is_err());
        assert!(parse_duration_us("18446744073709551615s").is_err());
        assert!(parse_duration_us("99999999999999999999999us").is_err());
    }

    #[test]
    fn duration_roundtrip() {
        for s in ["0", "1us", "1500us", "20ms", "2s"] {
            assert_eq!(format_duration_us(parse_duration_us(s).unwrap()), s);
        }
    }

    #[test]
    fn queues() {
        assert_eq!(parse_queue("percpu"), Ok(RUST_WQ_Q_PERCPU));
        assert_eq!(parse_queue("unbound"), Ok(RUST_WQ_Q_UNBOUND));
        assert_eq!(parse_queue("ordered"), Ok(RUST_WQ_Q_ORDERED));
        assert_eq!(parse_queue("system-percpu"), Ok(RUST_WQ_Q_SYSTEM_PERCPU));
        assert_eq!(parse_queue("system_dfl"), Ok(RUST_WQ_Q_SYSTEM_DFL));
        assert_eq!(parse_queue("SYSTEM-DFL"), Ok(RUST_WQ_Q_SYSTEM_DFL));
        assert_eq!(parse_queue("2"), Ok(RUST_WQ_Q_ORDERED));
        assert!(parse_queue("5").is_err());
        assert!(parse_queue("system").is_err());
        assert!(parse_queue("").is_err());
        for q in 0..RUST_WQ_Q_COUNT {
            assert_eq!(parse_queue(&format_queue(q)), Ok(q));
        }
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpu("any"), Ok(RUST_WQ_CPU_ANY));
        assert_eq!(parse_cpu("ANY"), Ok(RUST_WQ_CPU_ANY));
        assert_eq!(parse_cpu("0"), Ok(0));
        assert_eq!(parse_cpu("63"), Ok(63));
        assert_eq!(parse_cpu("4096"), Ok(4096));
        assert!(parse_cpu("-1").is_err());
        assert!(parse_cpu("4294967295").is_err());
        assert!(parse_cpu("4294967296").is_err());
        assert!(parse_cpu("x").is_err());
        assert!(parse_cpu("").is_err());
        assert_eq!(format_cpu(RUST_WQ_CPU_ANY), "any");
        assert_eq!(format_cpu(3), "3");
    }

    #[test]
    fn selections() {
        assert_eq!(parse_cpu_sel("any"), Ok(CpuSel::Any));
        assert_eq!(parse_cpu_sel("ALL"), Ok(CpuSel::All));
        assert_eq!(parse_cpu_sel("3"), Ok(CpuSel::List(vec![3])));
        assert_eq!(parse_cpu_sel("0,2-3"), Ok(CpuSel::List(vec![0, 2, 3])));
        assert!(parse_cpu_sel("3-1").is_err());
        assert!(parse_cpu_sel("x").is_err());
        assert!(parse_cpu_sel(",").is_err());
        assert_eq!(CpuSel::All.cpus(&[0, 1]), vec![0, 1]);
        assert_eq!(CpuSel::Any.cpus(&[0, 1]), vec![RUST_WQ_CPU_ANY]);
        assert_eq!(parse_queue_sel("all"), Ok(QueueSel(vec![0, 1, 2, 3, 4])));
        assert_eq!(
            parse_queue_sel("unbound,system-dfl"),
            Ok(QueueSel(vec![RUST_WQ_Q_UNBOUND, RUST_WQ_Q_SYSTEM_DFL]))
        );
        assert!(parse_queue_sel("percpu,").is_err());
        assert!(parse_queue_sel("nope").is_err());
    }

    #[test]
    fn cpulists() {
        assert_eq!(parse_cpulist("0-3\n"), Ok(vec![0, 1, 2, 3]));
        assert_eq!(parse_cpulist("0,2-3,7"), Ok(vec![0, 2, 3, 7]));
        assert_eq!(parse_cpulist("0"), Ok(vec![0]));
        assert!(parse_cpulist("3-1").is_err());
        assert!(parse_cpulist("a").is_err());
        assert_eq!(cpus_in_mask(0b1011, 4), vec![0, 1, 3]);
        assert_eq!(cpus_in_mask(0b1011, 2), vec![0, 1]);
        assert_eq!(cpus_in_mask(u64::MAX, 128).len(), 64);
    }
}
