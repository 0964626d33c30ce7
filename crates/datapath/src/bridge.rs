//! What both drivers share: a network's Linux bridge, with containers' veths and one uplink (the
//! kernel's VXLAN device or the engine's TAP) plugged in.

use std::collections::HashSet;

use anyhow::Result;
use weft_netlink::Netlink;
use weft_reconcile::names;

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
