//! The nftables backend: hands the batch to `nft -j` (through the `nftables` crate) in the
//! caller's network namespace, and turns on forwarding (and, on bridges with published ports,
//! loopback routing) where the networks need it.

use anyhow::{anyhow, Context, Result};
use async_trait::async_trait;
use nftables::helper::{self, NftablesError};
use weft_netlink::sysctl;
use weft_reconcile::HostFirewall;

use nftables::schema::{NfListObject, NfObject};
use nftables::types::NfFamily;

use crate::{rules, Firewall, TABLE};

/// Forwarding is turned on when a network needs it and never turned off again: other things on
/// the host (a container engine, a VPN) may rely on it too, and weft cannot know. IPv6 forwarding
/// only for networks with an IPv6 subnet: with it on, Linux ignores router advertisements on
/// interfaces whose `accept_ra` is 1 (as Docker's IPv6 networks do too).
const FORWARD_V4: &str = "net.ipv4.ip_forward";
const FORWARD_V6: &str = "net.ipv6.conf.all.forwarding";

#[derive(Debug, Default, Clone)]
pub struct NftFirewall;

impl NftFirewall {
    pub fn new() -> NftFirewall {
        NftFirewall
    }
}

fn explain(e: NftablesError) -> anyhow::Error {
    match e {
        NftablesError::NftExecution { inner, .. }
            if inner.kind() == std::io::ErrorKind::NotFound =>
        {
            anyhow!(
                "the nft program is missing: install nftables (Debian: apt-get install nftables)"
            )
        }
        NftablesError::NftFailed { stderr, hint, .. } => {
            anyhow!("nft failed while {hint}: {}", stderr.trim())
        }
        other => anyhow!("{other}"),
    }
}

#[async_trait]
impl Firewall for NftFirewall {
    async fn apply(&self, fw: &HostFirewall) -> Result<()> {
        let (v4, v6) = fw.forwarding();
        // Before the rules, so that a container never gets a default route that goes nowhere.
        if v4 {
            sysctl::set(None, FORWARD_V4, "1").context("turning on IPv4 forwarding")?;
        }
        if v6 {
            sysctl::set(None, FORWARD_V6, "1").context("turning on IPv6 forwarding")?;
        }
        // A bridge routes loopback addresses only while it has published ports (so the host
        // reaches them at 127.0.0.1), and only while the rule that keeps containers off the
        // host's loopback is in place: turned off before the rules change, on after.
        let localnet = |on: bool| -> Result<()> {
            for n in fw
                .networks
                .values()
                .filter(|n| n.published.is_empty() != on)
            {
                // A bridge the datapath has not made yet: the agent writes the filter again
                // once it has.
                if !std::path::Path::new("/proc/sys/net/ipv4/conf")
                    .join(&n.bridge)
                    .exists()
                {
                    continue;
                }
                let key = format!("net.ipv4.conf.{}.route_localnet", n.bridge);
                sysctl::set(None, &key, if on { "1" } else { "0" })
                    .with_context(|| format!("setting {key}"))?;
            }
            Ok(())
        };
        localnet(false)?;
        let batch = rules::ruleset(fw);
        helper::apply_ruleset_async(&batch)
            .await
            .map_err(explain)
            .context("writing weft's nftables tables")?;
        localnet(true)
    }

    async fn in_place(&self, fw: &HostFirewall) -> Result<bool> {
        let listed =
            helper::get_current_ruleset_with_args_async(helper::DEFAULT_NFT, ["list", "tables"])
                .await
                .map_err(explain)
                .context("listing nftables tables")?;
        let ours = listed
            .objects
            .iter()
            .filter(|o| {
                matches!(o, NfObject::ListObject(NfListObject::Table(t)) if t.name == TABLE
                    && matches!(t.family, NfFamily::INet | NfFamily::Bridge))
            })
            .count();
        Ok(ours == if fw.networks.is_empty() { 0 } else { 2 })
    }
}
