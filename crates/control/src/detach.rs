//! Detach: undoes an attach on this host. Other hosts drop their entries when the record goes.

use anyhow::{anyhow, Result};
use weft_datapath::{Datapath, KernelDatapath, Removal};
use weft_model::{Endpoint, Network};
use weft_netlink::Netlink;
use weft_store::Store;

use crate::{attach, hosts, networks, resolver};

pub async fn detach(
    store: &dyn Store,
    host_id: &str,
    target: &str,
    network: &str,
) -> Result<Endpoint> {
    let net = networks::get(store, network).await?;
    let container = attach::canonical_target(target)?;
    let eps = networks::endpoints(store, network).await?;
    let ep = eps
        .iter()
        .find(|e| e.host == host_id && e.container == container)
        .cloned()
        .ok_or_else(|| {
            anyhow!("{target} is not attached to network {network} on host {host_id}")
        })?;
    detach_endpoint(store, &net, &ep).await?;
    Ok(ep)
}

/// Removes one endpoint of this host: its interfaces (already gone with a deleted container is
/// fine), its records and addresses, then settles the host's side of the network.
pub async fn detach_endpoint(store: &dyn Store, net: &Network, ep: &Endpoint) -> Result<()> {
    let nl = Netlink::open()?;
    // The host end takes the container end with it.
    nl.delete_link(&ep.host_ifname).await?;
    attach::delete_records(store, ep).await?;
    // The records are gone: a resolv.conf that cannot be rewritten is worth a warning, not a
    // failed detach.
    let domain = hosts::registered(store, &ep.host)
        .await
        .ok()
        .and_then(|(h, _)| h.dns_domain);
    if let Err(e) = resolver::configure(store, &ep.host, domain.as_deref(), &ep.container).await {
        tracing::warn!("{e:#}");
    }
    settle_local(store, &ep.host, net).await
}

/// After this host's records of a network changed (detach, hide): the bridge's addresses follow
/// (an exposure gone), or the host's last endpoint of the network takes the network's devices
/// with it; then the packet filter. Reads the store afresh: an attach running meanwhile has
/// written its record before plugging anything in.
pub(crate) async fn settle_local(store: &dyn Store, host_id: &str, net: &Network) -> Result<()> {
    let Ok((host, _)) = hosts::registered(store, host_id).await else {
        return Ok(());
    };
    let (state, _) = crate::state::load(store).await?;
    match weft_reconcile::desired(host_id, &state).get(&net.name) {
        Some(d) => {
            weft_datapath::bridge::ensure(&Netlink::open()?, d).await?;
        }
        None => {
            let dp = KernelDatapath::new(host.underlay, host.vxlan_port).await?;
            if let Removal::Busy(ports) = dp.remove(net.vni).await? {
                tracing::info!(
                    ?ports,
                    "network {} still has ports here; the agent removes it once unused",
                    net.name
                );
            }
        }
    }
    crate::firewall::apply_state(host_id, &state).await
}
