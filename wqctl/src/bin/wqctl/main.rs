//! `wqctl`: command-line control of /dev/rust_wq.

mod cli;
mod commands;
mod demo;
mod follow;
mod session;

use clap::Parser;
use cli::{Cli, Cmd};
use commands::exec;
use std::io::IsTerminal;
use std::process::ExitCode;
use wqctl::{Device, Errno};

/// An error with the operation that failed.
pub(crate) struct Failure {
    /// `<command>: <ERRNO> (<description>)` or another message.
    pub(crate) msg: String,
    pub(crate) errno: Option<Errno>,
}

impl Failure {
    fn msg(m: impl Into<String>) -> Self {
        Failure {
            msg: m.into(),
            errno: None,
        }
    }
}

pub(crate) fn op<T>(what: &str, r: Result<T, Errno>) -> Result<T, Failure> {
    r.map_err(|e| Failure {
        msg: format!("{what}: {e}"),
        errno: Some(e),
    })
}

/// How answers are printed.
#[derive(Clone, Copy)]
pub(crate) struct Out {
    /// Every answer as one JSON object per line (`session --json`).
    pub(crate) json: bool,
    /// Standard error is a terminal: show progress lines.
    pub(crate) tty: bool,
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
        Cmd::Session(o) => session::session(&cli.device, o),
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

pub(crate) fn open(path: &str) -> Result<Device, Failure> {
    Device::open(path).map_err(|e| Failure {
        msg: format!("open {path}: {e}"),
        errno: Some(e),
    })
}
