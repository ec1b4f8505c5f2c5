//! End-to-end tests of `wqctl session` and `wqctl run`: scripts run against the
//! device and their output is checked line by line.

use super::{diag, fail, Checker, Ctx, Outcome, TestFn, TestResult};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use wqctl::abi::*;
use wqctl::parse::format_queue;
use wqctl::results_header;

pub fn all() -> Vec<(&'static str, TestFn)> {
    vec![
        ("session_script", session_script),
        ("session_json", session_json),
        ("run_follows_results", run_follows_results),
    ]
}

/// The `wqctl` binary next to this one.
fn wqctl_bin() -> Result<PathBuf, Outcome> {
    let exe =
        std::env::current_exe().map_err(|e| Outcome::Fail(vec![format!("current_exe: {e}")]))?;
    let p = exe.with_file_name("wqctl");
    if !p.exists() {
        return fail(format!(
            "{} is missing (cargo build --release)",
            p.display()
        ));
    }
    Ok(p)
}

/// Runs `wqctl --device PATH ARGS...` with `stdin` as input; returns the exit
/// code and standard output and error merged in one pipe (in write order).
fn wqctl(ctx: &Ctx, args: &[&str], stdin: &str) -> Result<(i32, String), Outcome> {
    let bin = wqctl_bin()?;
    let err = |what: &str, e: std::io::Error| Outcome::Fail(vec![format!("{what}: {e}")]);
    let (mut r, w) = std::io::pipe().map_err(|e| err("pipe", e))?;
    let w2 = w.try_clone().map_err(|e| err("dup", e))?;
    let mut cmd = Command::new(&bin);
    cmd.arg("--device")
        .arg(&ctx.path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(w)
        .stderr(w2);
    let mut child = cmd.spawn().map_err(|e| err("spawn wqctl", e))?;
    // The command holds the write ends until it is dropped.
    drop(cmd);
    let input = stdin.to_string();
    let mut sin = child.stdin.take();
    let feeder = std::thread::spawn(move || {
        if let Some(s) = sin.as_mut() {
            let _ = s.write_all(input.as_bytes());
        }
    });
    let mut out = String::new();
    r.read_to_string(&mut out)
        .map_err(|e| err("read wqctl output", e))?;
    let _ = feeder.join();
    let st = child.wait().map_err(|e| err("wait", e))?;
    Ok((st.code().unwrap_or(-1), out))
}

/// Checks output lines one after the other, with good diagnostics.
struct Lines<'a> {
    lines: Vec<&'a str>,
    at: usize,
    c: Checker,
}

impl<'a> Lines<'a> {
    fn new(out: &'a str) -> Self {
        Lines {
            lines: out.lines().collect(),
            at: 0,
            c: Checker::new(),
        }
    }

    /// The next line, and whether there was one.
    fn next(&mut self, want: &str) -> Option<&'a str> {
        let l = self.lines.get(self.at).copied();
        if l.is_none() {
            self.c.fail(format!(
                "line {}: expected {want:?}, got end of output",
                self.at + 1
            ));
        }
        self.at += 1;
        l
    }

    fn exact(&mut self, want: &str) {
        if let Some(l) = self.next(want) {
            if l != want {
                self.c
                    .fail(format!("line {}: expected {want:?}\n  got {l:?}", self.at));
            }
        }
    }

    fn prefix(&mut self, want: &str) -> Option<&'a str> {
        let l = self.next(want)?;
        if !l.starts_with(want) {
            self.c.fail(format!(
                "line {}: expected {want:?}...\n  got {l:?}",
                self.at
            ));
            return None;
        }
        Some(&l[want.len()..])
    }

    fn end(mut self, out: &str) -> TestResult {
        if self.at < self.lines.len() {
            self.c.fail(format!(
                "{} unexpected line(s) from line {} on: {:?}",
                self.lines.len() - self.at,
                self.at + 1,
                &self.lines[self.at..]
            ));
        }
        if !self.c.errs.is_empty() {
            self.c.fail("whole output:".to_string());
            for l in out.lines().take(80) {
                self.c.fail(format!("| {l}"));
            }
        }
        self.c.done()
    }
}

/// A row of the results table: (id, tag, queue, req_cpu, cpu, latency_us).
fn row(l: &str) -> Option<(u64, u64, String, String, u32, u64)> {
    let f: Vec<&str> = l.split_whitespace().collect();
    if f.len() != 9 {
        return None;
    }
    Some((
        f[0].parse().ok()?,
        f[1].parse().ok()?,
        f[3].to_string(),
        f[4].to_string(),
        f[5].parse().ok()?,
        f[6].parse().ok()?,
    ))
}

fn ids_text(first: u64, n: u64) -> String {
    if n == 1 {
        first.to_string()
    } else {
        format!("{first}..{}", first + n - 1)
    }
}

/// A scripted session (the commands of the issue: enqueue, stats, cancel,
/// mod-delay, flush, results, results --follow, reset, info, errors), its
/// output checked line by line; the end of input cancels what is pending.
fn session_script(ctx: &Ctx) -> TestResult {
    let cpus = &ctx.online;
    let n = cpus.len() as u64;
    let script = [
        "# a scripted session (rust_wq_e2e session_script)",
        "info",
        "enqueue -q unbound -d 10s -n 3 -t 7",
        "stats",
        "cancel --id 2",
        "cancel --id 2",
        "mod-delay --id 3 0",
        "mod-delay --id 99 1ms",
        "enqueue -q percpu -c all -t 1",
        "enqueue -q bogus",
        "",
        "flush",
        "results",
        "stats",
        "enqueue -q unbound -d 100ms -n 2 -t 9",
        "results --follow --timeout 20s",
        "enqueue -q ordered -d 10s -n 2",
        "reset",
        "stats",
        "enqueue -q unbound -t 6   # runs, and is never read",
        "flush",
        "sleep 50ms",
        "enqueue -q system-dfl -d 10s -n 4 -t 5",
    ];
    let line_of = |cmd: &str| script.iter().position(|l| *l == cmd).map_or(0, |i| i + 1);
    let input = script.join("\n") + "\n";
    let (code, out) = wqctl(ctx, &["session", "--echo"], &input)?;
    let mut l = Lines::new(&out);
    let i = ctx.info;
    l.exact(script[0]);
    l.exact("wqctl> info");
    l.exact("abi_version   1");
    l.exact(&format!("nr_cpu_ids    {}", i.nr_cpu_ids));
    l.exact(&format!(
        "online_cpus   {} (mask {:#x})",
        wqctl::parse::format_cpus(cpus),
        i.online_cpus
    ));
    l.exact("max_count     1024");
    l.exact("max_pending   4096");
    l.exact("max_delay     60s");
    l.exact("max_sleep     1s");
    l.exact("max_results   8192");
    // The edu device (scripts/vm.sh always adds one; an earlier test may have rebound it, so
    // its IRQ number is not compared) and the handler's module-wide counters (their form only).
    l.prefix("edu device    bound, irq ");
    if let Some(rest) = l.prefix("edu counters  ") {
        // "N interrupts, static item queued N times, ran N times"
        let w: Vec<&str> = rest.split(' ').collect();
        let num = |i: usize| w.get(i).is_some_and(|x| x.parse::<u64>().is_ok());
        let form = w.len() == 10
            && num(0)
            && num(5)
            && num(8)
            && w[1..5] == ["interrupts,", "static", "item", "queued"]
            && w[6..8] == ["times,", "ran"]
            && w[9] == "times";
        l.c.check(form, || {
            format!("edu counters line: unexpected form {rest:?}")
        });
    }
    l.exact("wqctl> enqueue -q unbound -d 10s -n 3 -t 7");
    l.exact("enqueued 3 item(s) on unbound cpu any delay 10s sleep 0 tag 7: ids 1..3");
    l.exact("wqctl> stats");
    for s in [
        "enqueued        3",
        "executed        0",
        "cancelled       0",
        "pending         3",
        "results_dropped 0",
    ] {
        l.exact(s);
    }
    l.exact("wqctl> cancel --id 2");
    l.exact("cancelled 1 item(s)");
    l.exact("wqctl> cancel --id 2");
    // The second time it is not pending any more: the errno, and the session goes on.
    l.exact(&format!(
        "wqctl: line {}: cancel: ENOENT (No such file or directory)",
        line_of("cancel --id 2") + 1
    ));
    l.exact("wqctl> mod-delay --id 3 0");
    l.exact("item 3 now runs 0 from now");
    l.exact("wqctl> mod-delay --id 99 1ms");
    l.exact(&format!(
        "wqctl: line {}: mod-delay: ENOENT (No such file or directory)",
        line_of("mod-delay --id 99 1ms")
    ));
    l.exact("wqctl> enqueue -q percpu -c all -t 1");
    for (k, cpu) in cpus.iter().enumerate() {
        l.exact(&format!(
            "enqueued 1 item(s) on percpu cpu {cpu} delay 0 sleep 0 tag 1: ids {}",
            4 + k as u64
        ));
    }
    l.exact("wqctl> enqueue -q bogus");
    l.prefix(&format!(
        "wqctl: line {}: enqueue: invalid value 'bogus' for '--queue <QUEUE>': unknown queue",
        line_of("enqueue -q bogus")
    ));
    l.exact("wqctl> flush");
    // Id 1 (delayed 10 s, its timer fired early by FLUSH) at least; id 3 and the per-CPU
    // items may have run already.
    if let Some(rest) = l.prefix("flushed ") {
        let k: Option<u64> = rest.strip_suffix(" item(s)").and_then(|v| v.parse().ok());
        l.c.check(k.is_some_and(|k| (1..=n + 2).contains(&k)), || {
            format!(
                "flush: expected `flushed K item(s)` with 1 <= K <= {}, got {rest:?}",
                n + 2
            )
        });
    }
    l.exact("wqctl> results");
    l.exact(&results_header());
    let mut seen = BTreeSet::new();
    for _ in 0..n + 2 {
        let Some(text) = l.next("a results row") else {
            break;
        };
        let Some((id, tag, queue, req, cpu, _)) = row(text) else {
            l.c.fail(format!("line {}: not a results row: {text:?}", l.at));
            continue;
        };
        seen.insert(id);
        let want = if id == 1 || id == 3 {
            Some((7, format_queue(RUST_WQ_Q_UNBOUND), "any".to_string()))
        } else if (4..4 + n).contains(&id) {
            let c = cpus[(id - 4) as usize];
            l.c.eq(&format!("cpu of percpu id {id} pinned to {c}"), cpu, c);
            Some((1, format_queue(RUST_WQ_Q_PERCPU), c.to_string()))
        } else {
            None
        };
        match want {
            Some(w) => {
                l.c.eq(
                    &format!("(tag, queue, req_cpu) of id {id}"),
                    (tag, queue, req),
                    w,
                );
            }
            None => l.c.fail(format!("results: unexpected id {id}")),
        }
    }
    let want_ids: BTreeSet<u64> = [1, 3].into_iter().chain(4..4 + n).collect();
    l.c.eq("ids in the results table", &seen, &want_ids);
    l.exact("wqctl> stats");
    for s in [
        format!("enqueued        {}", 3 + n),
        format!("executed        {}", 2 + n),
        "cancelled       1".into(),
        "pending         0".into(),
        "results_dropped 0".into(),
    ] {
        l.exact(&s);
    }
    let f = 4 + n;
    l.exact("wqctl> enqueue -q unbound -d 100ms -n 2 -t 9");
    l.exact(&format!(
        "enqueued 2 item(s) on unbound cpu any delay 100ms sleep 0 tag 9: ids {}",
        ids_text(f, 2)
    ));
    l.exact("wqctl> results --follow --timeout 20s");
    l.exact(&results_header());
    let mut followed = BTreeSet::new();
    for _ in 0..2 {
        let Some(text) = l.next("a followed results row") else {
            break;
        };
        match row(text) {
            Some((id, tag, _, _, _, lat_us)) => {
                followed.insert(id);
                l.c.eq(&format!("tag of followed id {id}"), tag, 9);
                // That the delay was applied; whether it is never early is `delay_never_early`'s
                // question (under emulation a lagging jiffies count can make it a few % early).
                l.c.check(lat_us >= 50_000, || {
                    format!(
                        "followed id {id}: latency {lat_us} us: its 100 ms delay was not applied"
                    )
                });
            }
            None => {
                l.c.fail(format!("line {}: not a results row: {text:?}", l.at))
            }
        }
    }
    l.c.eq("ids followed", followed, BTreeSet::from([f, f + 1]));
    if let Some(rest) = l.prefix("done: 2 result(s) in ") {
        l.c.check(rest.ends_with(" s, 0 pending"), || {
            format!("end of --follow: expected `... s, 0 pending`, got {rest:?}")
        });
    }
    l.exact("wqctl> enqueue -q ordered -d 10s -n 2");
    l.exact(&format!(
        "enqueued 2 item(s) on ordered cpu any delay 10s sleep 0 tag 0: ids {}",
        ids_text(f + 2, 2)
    ));
    l.exact("wqctl> reset");
    l.exact("reset");
    l.exact("wqctl> stats");
    for s in [
        "enqueued        0",
        "executed        0",
        "cancelled       0",
        "pending         0",
        "results_dropped 0",
    ] {
        l.exact(s);
    }
    // Ids are never reused in a file, RESET or not.
    l.exact("wqctl> enqueue -q unbound -t 6   # runs, and is never read");
    l.exact(&format!(
        "enqueued 1 item(s) on unbound cpu any delay 0 sleep 0 tag 6: ids {}",
        f + 4
    ));
    l.exact("wqctl> flush");
    // 1, or 0 if the item ran before the call.
    if let Some(rest) = l.prefix("flushed ") {
        l.c.check(matches!(rest, "0 item(s)" | "1 item(s)"), || {
            format!("flush of one item: {rest:?}")
        });
    }
    l.exact("wqctl> sleep 50ms");
    l.exact("wqctl> enqueue -q system-dfl -d 10s -n 4 -t 5");
    l.exact(&format!(
        "enqueued 4 item(s) on system-dfl cpu any delay 10s sleep 0 tag 5: ids {}",
        ids_text(f + 5, 4)
    ));
    l.exact("end of session: cancelled 4 pending item(s), discarded 1 unread result(s), closed the file");
    l.c.eq("exit status (3 commands failed)", code, 1);
    l.end(&out)
}

/// `session --json`: one JSON object per answer, errors included.
fn session_json(ctx: &Ctx) -> TestResult {
    let script = "enqueue -q unbound -n 2 -t 3\nflush\nresults\ncancel --id 1\nstats\n\
                  enqueue -q percpu -d 10s\nnot-a-command\n";
    let (code, out) = wqctl(ctx, &["session", "--json"], script)?;
    let mut l = Lines::new(&out);
    l.exact("{\"cmd\":\"enqueue\",\"ok\":true,\"enqueued\":[{\"queue\":\"unbound\",\"cpu\":\"any\",\"count\":2,\"delay_us\":0,\"sleep_us\":0,\"tag\":3,\"first_id\":1,\"last_id\":2}]}");
    if let Some(rest) = l.prefix("{\"cmd\":\"flush\",\"ok\":true,\"count\":") {
        l.c.check(matches!(rest, "0}" | "1}" | "2}"), || {
            format!("flush count: {rest:?}")
        });
    }
    if let Some(rest) = l.prefix("{\"cmd\":\"results\",\"ok\":true,\"dropped\":0,\"results\":[") {
        l.c.eq(
            "results in the JSON line",
            rest.matches("{\"id\":").count(),
            2,
        );
        for id in [1, 2] {
            l.c.check(rest.contains(&format!("{{\"id\":{id},\"tag\":3,")), || {
                format!("no result for id {id} with tag 3 in {rest:?}")
            });
        }
        l.c.check(rest.ends_with("}]}"), || format!("unterminated: {rest:?}"));
    }
    l.exact("{\"cmd\":\"cancel\",\"ok\":false,\"errno\":\"ENOENT\",\"error\":\"line 4: cancel: ENOENT (No such file or directory)\"}");
    l.exact("{\"cmd\":\"stats\",\"ok\":true,\"enqueued\":2,\"executed\":2,\"cancelled\":0,\"pending\":0,\"results_dropped\":0}");
    l.exact("{\"cmd\":\"enqueue\",\"ok\":true,\"enqueued\":[{\"queue\":\"percpu\",\"cpu\":\"any\",\"count\":1,\"delay_us\":10000000,\"sleep_us\":0,\"tag\":0,\"first_id\":3,\"last_id\":3}]}");
    l.prefix("{\"cmd\":\"not-a-command\",\"ok\":false,\"errno\":null,\"error\":\"line 7: not-a-command: unrecognized subcommand");
    l.exact("{\"cmd\":\"end\",\"ok\":false,\"cancelled\":1,\"unread_results\":0}");
    l.c.eq("exit status (2 commands failed)", code, 1);
    l.end(&out)
}

/// `wqctl run`: every result printed as it arrives, then the summary per CPU
/// and per queue; with --timeout, what has not run is reported and exit is 1.
fn run_follows_results(ctx: &Ctx) -> TestResult {
    let cpus = &ctx.online;
    let n = cpus.len() as u64;
    let (code, out) = wqctl(
        ctx,
        &[
            "run",
            "-q",
            "percpu,unbound",
            "-c",
            "all",
            "-n",
            "3",
            "-d",
            "20ms",
        ],
        "",
    )?;
    let mut l = Lines::new(&out);
    for q in ["percpu", "unbound"] {
        for (k, cpu) in cpus.iter().enumerate() {
            let first = if q == "percpu" { 1 } else { 1 + 3 * n } + 3 * k as u64;
            l.exact(&format!(
                "enqueued 3 item(s) on {q} cpu {cpu} delay 20ms sleep 0 tag 0: ids {}",
                ids_text(first, 3)
            ));
        }
    }
    l.exact(&results_header());
    let total = 6 * n;
    let mut ids = BTreeSet::new();
    for _ in 0..total {
        let Some(text) = l.next("a results row") else {
            break;
        };
        match row(text) {
            Some((id, _, queue, req, cpu, lat)) => {
                ids.insert(id);
                // The delay was applied (see session_script on "never early").
                l.c.check(lat >= 10_000, || {
                    format!("id {id}: latency {lat} us: its 20 ms delay was not applied")
                });
                if queue == "percpu" {
                    l.c.eq(&format!("cpu of percpu id {id}"), cpu.to_string(), req);
                }
            }
            None => {
                l.c.fail(format!("line {}: not a results row: {text:?}", l.at))
            }
        }
    }
    l.c.eq(
        "distinct ids printed",
        ids,
        (1..=total).collect::<BTreeSet<u64>>(),
    );
    if let Some(rest) = l.prefix(&format!(
        "run done: {total} item(s) enqueued, {total} ran in "
    )) {
        l.c.check(rest.ends_with(" s, 0 pending"), || {
            format!("summary line tail: {rest:?}")
        });
    }
    // Per CPU: each CPU ran its 3 pinned percpu items (unbound ones go anywhere).
    l.prefix("cpu ");
    let mut per_cpu_total = 0;
    let mut cpu_rows = 0;
    while l.lines.get(l.at).is_some_and(|s| !s.starts_with("queue ")) {
        let text = l.lines[l.at];
        l.at += 1;
        cpu_rows += 1;
        let f: Vec<&str> = text.split_whitespace().collect();
        match (
            f.first().and_then(|v| v.parse::<u32>().ok()),
            f.get(1).and_then(|v| v.parse::<u64>().ok()),
        ) {
            (Some(cpu), Some(items)) if f.len() == 6 => {
                per_cpu_total += items;
                l.c.check(!cpus.contains(&cpu) || items >= 3, || {
                    format!("summary: cpu {cpu} has {items} item(s), expected at least its 3 pinned ones")
                });
            }
            _ => l.c.fail(format!("summary: bad cpu row {text:?}")),
        }
    }
    l.c.check(cpu_rows >= n as usize, || {
        format!("summary: {cpu_rows} cpu rows for {n} online CPUs")
    });
    l.c.eq("summary: items over all cpu rows", per_cpu_total, total);
    l.prefix("queue ");
    for q in ["percpu", "unbound"] {
        if let Some(rest) = l.prefix(&format!("{q} ")) {
            let items = rest.split_whitespace().next();
            l.c.eq(
                &format!("summary: items on {q}"),
                items,
                Some((3 * n).to_string().as_str()),
            );
        }
    }
    l.c.eq("exit status of a complete run", code, 0);
    let r1 = l.end(&out);

    // Items that cannot run in time: the run ends at the timeout and says so.
    let (code, out) = wqctl(
        ctx,
        &[
            "run",
            "-q",
            "unbound",
            "-d",
            "10s",
            "-n",
            "2",
            "--timeout",
            "300ms",
            "--quiet",
        ],
        "",
    )?;
    let mut l = Lines::new(&out);
    l.exact("enqueued 2 item(s) on unbound cpu any delay 10s sleep 0 tag 0: ids 1..2");
    if let Some(rest) = l.prefix("run timeout: 2 item(s) enqueued, 0 ran in ") {
        l.c.check(rest.ends_with(" s, 2 pending (cancelled at exit)"), || {
            format!("summary line tail: {rest:?}")
        });
    }
    l.prefix("cpu ");
    l.prefix("queue ");
    l.c.eq("exit status of a run that timed out", code, 1);
    let r2 = l.end(&out);
    match (r1, r2) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(Outcome::Fail(mut a)), Err(Outcome::Fail(b))) => {
            a.extend(b);
            Err(Outcome::Fail(a))
        }
        (Err(e), _) | (_, Err(e)) => {
            diag("run_follows_results: see above");
            Err(e)
        }
    }
}
