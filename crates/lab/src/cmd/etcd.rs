//! `weft lab etcd stop|kill|start eN`: losing and regaining a member of the lab's etcd cluster.

use anyhow::{anyhow, bail, Result};

use crate::cmd::agent::{stop, Action};
use crate::etcd;
use crate::process;
use crate::progress::Progress;
use crate::state;
use crate::PrefixArg;

#[derive(Debug, clap::Args)]
pub struct Args {
    pub action: Action,
    /// The member (e1…e3).
    pub member: String,
    #[command(flatten)]
    pub prefix: PrefixArg,
}

pub async fn run(args: Args) -> Result<()> {
    let lab = args.prefix.lab()?;
    let st = state::load(&lab)?;
    let i = st
        .etcd
        .iter()
        .position(|m| m.name == args.member)
        .map(|i| i as u32 + 1)
        .ok_or_else(|| anyhow!("lab {} has no etcd member {:?}", lab.prefix, args.member))?;
    let p = Progress::new(lab.prefix.as_str());
    let running = process::read_pid_file(&lab.etcd_pid_file(i)).filter(|&pid| process::alive(pid));
    let what = format!("etcd member {}", args.member);
    match args.action {
        Action::Stop | Action::Kill => {
            let pid = stop(running, args.action, &what)?;
            p.step(format!("{what}: stopped (pid {pid})"));
        }
        Action::Start => {
            if let Some(pid) = running {
                bail!("{what} is already running (pid {pid})");
            }
            let pid = etcd::start_member(&lab, i)?;
            p.step(format!("{what}: started (pid {pid})"));
        }
    }
    Ok(())
}
