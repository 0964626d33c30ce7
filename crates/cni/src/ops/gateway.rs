//! `hostGateway`: this host's bridge of the network holds the network's gateway address, and the
//! container routes everything off the subnet through it. The kernel VXLAN device answers ARP/ND
//! itself (proxy) and never floods it, so each host's gateway stays local to its own containers.

use anyhow::{Context, Result};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use weft_model::{Endpoint, Network};
use weft_netlink::{sysctl, Netlink, Netns, NetnsTarget};
use weft_reconcile::names;

pub async fn ensure(net: &Network, ep: &Endpoint) -> Result<()> {
    let nl = Netlink::open()?;
    let bridge = names::bridge(net.vni);
    nl.add_address(
        &bridge,
        IpNet::V4(Ipv4Net::new(net.gateway4, net.subnet4.prefix_len())?),
    )
    .await?;
    let v6 = match (net.gateway6, net.subnet6) {
        (Some(g), Some(s)) => Some((g, s)),
        _ => None,
    };
    if let Some((g, s)) = v6 {
        nl.add_address(&bridge, IpNet::V6(Ipv6Net::new(g, s.prefix_len())?))
            .await?;
    }
    // Port mappings and the host's own traffic are routed between the bridge and the host's
    // other interfaces, as the reference bridge plugin's isGateway does.
    sysctl::set(None, sysctl::IPV4_FORWARD, "1")?;
    if v6.is_some() {
        sysctl::set(None, sysctl::IPV6_FORWARD, "1")?;
    }
    let target: NetnsTarget = ep.container.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let cnl = Netlink::open_in(&Netns::open(&target)?).context("netlink in the container")?;
    cnl.add_route(
        "0.0.0.0/0".parse()?,
        Some(net.gateway4.into()),
        Some(&ep.ifname),
    )
    .await?;
    if let Some((g, _)) = v6 {
        cnl.add_route("::/0".parse()?, Some(g.into()), Some(&ep.ifname))
            .await?;
    }
    Ok(())
}
