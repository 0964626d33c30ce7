//! `weft lab agent stop|kill|start HOST`: what a host's agent going away and coming back looks like,
//! for tests and for trying out restarts by hand.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cmd::up;
use crate::process;
use crate::progress::Progress;
use crate::state;
use crate::weft;
use crate::PrefixArg;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Action {
    /// SIGTERM: the agent exits and leaves the datapath in place.
    Stop,
    /// SIGKILL: a crash.
    Kill,
    /// Start the host's agent again, as `up` started it.
    Start,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    pub action: Action,
    /// The host (h1…hN).
    pub host: String,
    #[command(flatten)]
    pub prefix: PrefixArg,
}

pub async fn run(args: Args) -> Result<()> {
    let lab = args.prefix.lab()?;
    let st = state::load(&lab)?;
    let h = st
        .host(&args.host)
        .ok_or_else(|| anyhow!("lab {} has no host {:?}", lab.prefix, args.host))?
        .clone();
    let p = Progress::new(lab.prefix.as_str());
    let pid_file = lab.agent_pid_file(&h.name);
    let running = process::read_pid_file(&pid_file).filter(|&pid| process::alive(pid));
    match args.action {
        Action::Stop | Action::Kill => {
            let pid = stop(running, args.action, &format!("the agent of {}", h.name))?;
            p.step(format!("agent {}: stopped (pid {pid})", h.name));
        }
        Action::Start => {
            if let Some(pid) = running {
                bail!("the agent of {} is already running (pid {pid})", h.name);
            }
            let pid = up::start_agent(&lab, &weft::exe()?, &h, &st)?;
            up::wait_registered(&lab, &st, up::REGISTER_TIMEOUT).await?;
            p.step(format!("agent {}: started (pid {pid})", h.name));
        }
    }
    Ok(())
}

/// Stops a lab daemon: SIGTERM (a clean stop) or SIGKILL (a crash); returns its pid.
pub fn stop(running: Option<i32>, action: Action, what: &str) -> Result<i32> {
    let Some(pid) = running else {
        bail!("{what} is not running");
    };
    if action == Action::Kill {
        kill(Pid::from_raw(pid), Signal::SIGKILL)?;
    }
    if process::stop_all(&BTreeSet::from([pid]), Duration::from_secs(5)) > 0 {
        bail!("{what} (pid {pid}) did not stop");
    }
    Ok(pid)
}
