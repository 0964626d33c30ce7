//! `weft lab docker start|stop|kill|cli HOST`: a real Docker engine on a lab host, whose `-d weft`
//! driver is that host's agent (see [`crate::docker`]).

use anyhow::{anyhow, Result};

use crate::docker;
use crate::progress::Progress;
use crate::state;
use crate::PrefixArg;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Action {
    /// Start the host's dockerd (private data and exec roots) and import the lab image weft-busybox.
    Start,
    /// Remove its containers, stop it and delete its data.
    Stop,
    /// Crash it: SIGKILL dockerd and everything it runs; its data stays for `start`.
    Kill,
    /// Run Debian's docker client against it: `weft lab docker cli h1 -- ps`.
    Cli,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    pub action: Action,
    /// The host (h1…hN).
    pub host: String,
    #[command(flatten)]
    pub prefix: PrefixArg,
    /// Arguments to the docker client (with `cli`).
    #[arg(last = true)]
    pub args: Vec<String>,
}

pub async fn run(a: Args) -> Result<i32> {
    let lab = a.prefix.lab()?;
    let st = state::load(&lab)?;
    let h = st
        .host(&a.host)
        .ok_or_else(|| anyhow!("lab {} has no host {:?}", lab.prefix, a.host))?
        .clone();
    let p = Progress::new(lab.prefix.as_str());
    match a.action {
        Action::Start => {
            let pid = docker::start(&lab, &h).await?;
            p.step(format!(
                "docker on {}: running (pid {pid}); client: {} -H unix://{}",
                h.name,
                docker::DOCKER_CLI,
                lab.docker_api_socket(&h.name).display()
            ));
        }
        Action::Stop => {
            docker::stop(&lab, &h.name).await?;
            p.step(format!("docker on {}: stopped, data removed", h.name));
        }
        Action::Kill => {
            let pid = docker::kill_engine(&lab, &h.name)?;
            p.step(format!(
                "docker on {}: killed (pid {pid}) with its containers",
                h.name
            ));
        }
        Action::Cli => {
            let status = docker::cli(&lab, &h.name).args(&a.args).status().await?;
            return Ok(status.code().unwrap_or(1));
        }
    }
    Ok(0)
}
