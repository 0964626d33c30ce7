//! `weft install …`: what a container runtime needs to use weft, one file per runtime.

use anyhow::Result;

#[derive(clap::Subcommand)]
pub enum InstallCmd {
    /// Docker: where its `weft` network and IPAM driver is found, and whether the agent serves it.
    Docker(super::install_docker::Args),
}

pub async fn run(cmd: InstallCmd) -> Result<i32> {
    match cmd {
        InstallCmd::Docker(a) => super::install_docker::run(a).await,
    }
}
