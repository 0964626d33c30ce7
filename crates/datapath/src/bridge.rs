//! What both drivers share: a network's Linux bridge, with containers' veths and one uplink (the
//! kernel's VXLAN device or the engine's TAP) plugged in.

use std::collections::HashSet;

use anyhow::{Context, Result};
use ipnet::IpNet;
use weft_netlink::{LinkInfo, MacAddr, Netlink};
use weft_reconcile::{names, NetDesired};

/// Makes sure the network's bridge exists with its own layer 3 as desired: the fixed MAC, the
/// gateway and any exposed address, and one route per subnet with the chosen source. The
/// addresses carry no prefix route of their own, so that the route's source is weft's choice (the
/// exposed address when there is one: replies from other hosts' containers must come back here,
/// and the gateway exists on every host).
pub async fn ensure(nl: &Netlink, net: &NetDesired) -> Result<LinkInfo> {
    let l3 = &net.bridge_l3;
    nl.ensure_bridge(&net.bridge, net.mtu).await?;
    async {
        let info = nl
            .link_by_name(&net.bridge)
            .await?
            .ok_or_else(|| anyhow::anyhow!("bridge {} vanished", net.bridge))?;
        if info.mac.octets() != l3.mac.0 {
            nl.set_mac(&net.bridge, MacAddr(l3.mac.0)).await?;
        }
        let have: Vec<IpNet> = nl
            .list_addresses(&net.bridge)
            .await?
            .into_iter()
            .filter(|a| !is_link_local(a))
            .collect();
        for a in &l3.addresses {
            if !have.contains(a) {
                nl.add_address_noprefixroute(&net.bridge, *a).await?;
            }
        }
        for (subnet, src) in &l3.routes {
            if nl.route_src(*subnet, &net.bridge).await? != Some(Some(*src)) {
                nl.replace_route_src(*subnet, &net.bridge, *src).await?;
            }
        }
        // Only once no route uses them as source: the kernel takes such routes away with them.
        for a in have.iter().filter(|a| !l3.addresses.contains(a)) {
            nl.del_address(&net.bridge, *a).await?;
        }
        anyhow::Ok(info)
    }
    .await
    .with_context(|| {
        format!(
            "the addresses of bridge {} (network {})",
            net.bridge, net.network
        )
    })
}

fn is_link_local(a: &IpNet) -> bool {
    match a {
        IpNet::V6(n) => n.addr().segments()[0] & 0xffc0 == 0xfe80,
        IpNet::V4(n) => n.addr().is_link_local(),
    }
}

/// VNIs of the networks that have any weft device on this host.
pub async fn present(nl: &Netlink) -> Result<Vec<u32>> {
    let mut vnis: Vec<u32> = nl
        .list_links()
        .await?
        .iter()
        .filter_map(|l| names::vni_of(&l.name))
        .collect();
    vnis.sort();
    vnis.dedup();
    Ok(vnis)
}

/// The bridge's ports other than its uplinks: the containers still plugged in. None without bridge.
pub async fn endpoint_ports(nl: &Netlink, vni: u32) -> Result<Option<Vec<String>>> {
    let Some(br) = nl.link_by_name(&names::bridge(vni)).await? else {
        return Ok(None);
    };
    let uplinks = [names::vxlan(vni), names::tap(vni)];
    Ok(Some(
        nl.list_links()
            .await?
            .into_iter()
            .filter(|l| l.master == Some(br.index) && !uplinks.contains(&l.name))
            .map(|l| l.name)
            .collect(),
    ))
}

/// Deletes endpoint veths on weft bridges that are not in `keep`; returns their names.
pub async fn collect_orphans(nl: &Netlink, keep: &HashSet<String>) -> Result<Vec<String>> {
    let links = nl.list_links().await?;
    let bridges: HashSet<u32> = links
        .iter()
        .filter(|l| l.name.starts_with(names::BRIDGE_PREFIX))
        .map(|l| l.index)
        .collect();
    let mut gone = Vec::new();
    for l in &links {
        let on_weft_bridge = l.master.is_some_and(|m| bridges.contains(&m));
        if l.name.starts_with(names::VETH_HOST_PREFIX) && on_weft_bridge && !keep.contains(&l.name)
        {
            nl.delete_link(&l.name).await?;
            gone.push(l.name.clone());
        }
    }
    Ok(gone)
}
