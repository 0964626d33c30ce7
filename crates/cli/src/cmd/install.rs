//! `weft install …`: what a container runtime needs to use weft, one file per runtime.

use anyhow::Result;

#[derive(clap::Subcommand)]
pub enum InstallCmd {
    /// Docker: where its `weft` network and IPAM driver is found, and whether the agent serves it.
    Docker(super::install_docker::Args),
    /// CNI runtimes (Podman…): the plugin binary (weft-cni, as `weft`) and an example network
    /// configuration list.
    Cni(super::install_cni::Args),
}

/// `store` is weft's global --store: the CNI example names it.
pub async fn run(store: &str, cmd: InstallCmd) -> Result<i32> {
    match cmd {
        InstallCmd::Docker(a) => super::install_docker::run(a).await,
        InstallCmd::Cni(a) => super::install_cni::run(store, a),
    }
}
