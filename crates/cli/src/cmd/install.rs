//! `weft install …`: puts weft where container runtimes look for it.

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum InstallCmd {
    /// The CNI plugin binary (weft-cni) and an example network configuration list.
    Cni(super::install_cni::Args),
}

pub async fn run(store: &str, cmd: InstallCmd) -> Result<i32> {
    match cmd {
        InstallCmd::Cni(a) => super::install_cni::run(store, a),
    }
}
