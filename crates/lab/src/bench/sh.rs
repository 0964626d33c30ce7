//! Running one command line inside a lab namespace (or in the root namespace) for the benchmark's
//! hand-built beds, with a clear error naming the command, the namespace and what it printed.

use std::ffi::OsStr;
use std::process::Stdio;

use anyhow::{bail, Context, Result};

use crate::netns;

/// A command line as the beds plan them: where (None: this process's namespace) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub ns: Option<String>,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Line {
    pub fn new(ns: Option<&str>, argv: &[&str]) -> Line {
        Line {
            ns: ns.map(str::to_string),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
        }
    }

    pub fn with_env(mut self, env: &[(String, String)]) -> Line {
        self.env = env.to_vec();
        self
    }

    /// `ns: argv…`, for tests and messages.
    pub fn display(&self) -> String {
        format!(
            "{}: {}",
            self.ns.as_deref().unwrap_or("(root)"),
            self.argv.join(" ")
        )
    }
}

fn command(ns: Option<&str>, program: &OsStr) -> Result<tokio::process::Command> {
    match ns {
        Some(ns) => netns::command(ns, program),
        None => Ok(tokio::process::Command::new(program)),
    }
}

/// Runs a line; returns its stdout. `what` names the bed in the error.
pub async fn run(what: &str, line: &Line) -> Result<String> {
    run_with_stdin(what, line, None).await
}

/// Runs a line with `stdin` as its standard input (for `wg pubkey`).
pub async fn run_with_stdin(what: &str, line: &Line, stdin: Option<&[u8]>) -> Result<String> {
    use tokio::io::AsyncWriteExt;
    let (program, args) = line.argv.split_first().context("empty command line")?;
    let mut cmd = command(line.ns.as_deref(), OsStr::new(program))?;
    cmd.args(args)
        .envs(line.env.iter().map(|(k, v)| (k, v)))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("{what}: starting `{}`", line.display()))?;
    if let (Some(data), Some(mut w)) = (stdin, child.stdin.take()) {
        w.write_all(data).await?;
        drop(w);
    }
    let out = child
        .wait_with_output()
        .await
        .with_context(|| format!("{what}: running `{}`", line.display()))?;
    if !out.status.success() {
        bail!(
            "{what}: `{}` failed ({}): {}",
            line.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs lines in order, stopping at the first failure.
pub async fn run_all(what: &str, lines: &[Line]) -> Result<()> {
    for l in lines {
        run(what, l).await?;
    }
    Ok(())
}
