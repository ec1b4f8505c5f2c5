//! `wqctl session`: one open file, commands read one per line.

use crate::cli::{Line, SessionCmd, SessionOpts};
use crate::commands::exec;
use crate::{open, Failure, Out};
use clap::error::ErrorKind;
use clap::Parser;
use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;
use wqctl::session::{json_str, split_words};
use wqctl::{Errno, Target};

/// `wqctl session`: one open file, commands from a script or standard input.
pub(crate) fn session(path: &str, o: &SessionOpts) -> Result<bool, Failure> {
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
pub(crate) fn report(out: Out, at: &str, cmd: Option<&str>, f: &Failure) {
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
