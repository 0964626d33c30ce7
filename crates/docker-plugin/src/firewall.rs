//! Docker sets the FORWARD policy to DROP, and with br_netfilter (on in every namespace here)
//! frames a bridge forwards pass iptables' FORWARD chain too: Docker's policy would drop IPv4
//! between containers on a weft bridge, and their way out (egress) through the host. Two rules in
//! DOCKER-USER (the chain Docker keeps for its users and never flushes) let traffic into and out
//! of weft's bridges through: what crosses between weft's networks and the outside is weft's own
//! firewall's business (its nftables tables), not Docker's.

use anyhow::{bail, Context, Result};
use tokio::process::Command;

const CHAIN: &str = "DOCKER-USER";
const COMMENT: &str = "weft: its networks' traffic, filtered by weft's own firewall";

/// The rules, as iptables arguments after the chain.
fn rules() -> [Vec<&'static str>; 2] {
    [
        vec![
            "-i",
            "wbr+",
            "-m",
            "comment",
            "--comment",
            COMMENT,
            "-j",
            "ACCEPT",
        ],
        vec![
            "-o",
            "wbr+",
            "-m",
            "comment",
            "--comment",
            COMMENT,
            "-j",
            "ACCEPT",
        ],
    ]
}

async fn iptables(args: &[&str]) -> Result<bool> {
    let out = Command::new("iptables")
        .arg("-w")
        .args(args)
        .output()
        .await
        .context("running iptables")?;
    Ok(out.status.success())
}

/// Adds the rules once, if Docker's chain exists (no Docker's firewall, nothing to let through).
pub async fn allow_bridged() -> Result<()> {
    if !iptables(&["-S", CHAIN]).await.unwrap_or(false) {
        return Ok(());
    }
    for rule in rules() {
        let mut check = vec!["-C", CHAIN];
        check.extend_from_slice(&rule);
        if iptables(&check).await? {
            continue;
        }
        let mut insert = vec!["-I", CHAIN];
        insert.extend_from_slice(&rule);
        if !iptables(&insert).await? {
            bail!("iptables could not insert weft's rule into {CHAIN}");
        }
        tracing::info!("let weft's networks' traffic through Docker's FORWARD policy");
    }
    Ok(())
}
