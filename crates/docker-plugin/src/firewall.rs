//! Docker sets the FORWARD policy to DROP, and with br_netfilter (on in every namespace here)
//! frames a bridge forwards pass iptables' FORWARD chain too: Docker's policy would drop IPv4
//! between containers on a weft bridge. One rule in DOCKER-USER (the chain Docker keeps for its
//! users and never flushes) lets frames that stay within weft bridges through.

use anyhow::{bail, Context, Result};
use tokio::process::Command;

/// The rule, as iptables arguments after the chain.
const RULE: &[&str] = &[
    "-i",
    "wbr+",
    "-o",
    "wbr+",
    "-m",
    "comment",
    "--comment",
    "weft: bridged traffic of weft networks",
    "-j",
    "ACCEPT",
];
const CHAIN: &str = "DOCKER-USER";

async fn iptables(args: &[&str]) -> Result<bool> {
    let out = Command::new("iptables")
        .arg("-w")
        .args(args)
        .output()
        .await
        .context("running iptables")?;
    Ok(out.status.success())
}

/// Adds the rule once, if Docker's chain exists (no Docker's firewall, nothing to let through).
pub async fn allow_bridged() -> Result<()> {
    if !iptables(&["-S", CHAIN]).await.unwrap_or(false) {
        return Ok(());
    }
    let mut check = vec!["-C", CHAIN];
    check.extend_from_slice(RULE);
    if iptables(&check).await? {
        return Ok(());
    }
    let mut insert = vec!["-I", CHAIN];
    insert.extend_from_slice(RULE);
    if !iptables(&insert).await? {
        bail!("iptables could not insert weft's rule into {CHAIN}");
    }
    tracing::info!("let bridged traffic of weft networks through Docker's FORWARD policy");
    Ok(())
}
