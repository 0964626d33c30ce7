//! One file per subcommand.

pub mod agent;
pub mod attach;
pub mod detach;
pub mod doctor;
pub mod endpoints;
pub mod expose;
pub mod hide;
pub mod install;
pub mod install_docker;
pub mod network;
pub mod status;
pub mod trace;

use anyhow::{bail, Result};

use crate::{Cli, Command};

/// Runs a command; returns the process exit code.
pub async fn run(cli: Cli) -> Result<i32> {
    let store = cli.store;
    match cli.command {
        Command::Agent(a) => agent::run(&store, a).await,
        Command::Network(n) => network::run(&store, n).await,
        Command::Attach(a) => attach::run(&store, a).await,
        Command::Detach(a) => detach::run(&store, a).await,
        Command::Endpoints(a) => endpoints::run(&store, a).await,
        Command::Expose(a) => expose::run(&store, a).await,
        Command::Hide(a) => hide::run(&store, a).await,
        Command::Status(a) => status::run(&store, a).await,
        Command::Doctor(a) => doctor::run(&store, a).await,
        Command::Trace(a) => trace::run(&store, a).await,
        Command::Install { runtime } => install::run(runtime).await,
        Command::Lab { command } => {
            require_root("weft lab")?;
            weft_lab::run_code(command).await
        }
    }
}

/// Commands that program the kernel or write the cluster state need root; say so plainly.
pub fn require_root(what: &str) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("{what} must run as root (it changes network interfaces or the cluster store)");
    }
    Ok(())
}
