//! Detach: undoes an attach on this host. Other hosts drop their entries when the record goes.

use anyhow::{anyhow, bail, Result};
use weft_datapath::{Datapath, KernelDatapath, Removal};
use weft_model::Endpoint;
use weft_netlink::Netlink;
use weft_store::Store;

use crate::{attach, hosts, networks};

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
    let nl = Netlink::open()?;
    // The host end takes the container end with it.
    nl.delete_link(&ep.host_ifname).await?;
    attach::delete_records(store, &ep).await?;
    if !eps.iter().any(|e| e.host == host_id && e.id != ep.id) {
        if let Ok((host, _)) = hosts::registered(store, host_id).await {
            let dp = KernelDatapath::new(host.underlay, host.vxlan_port).await?;
            match dp.remove(net.vni).await? {
                Removal::Busy(ports) => {
                    bail!("detached, but bridge of {network} still has ports {ports:?}")
                }
                Removal::Removed | Removal::Absent => {}
            }
        }
    }
    Ok(ep)
}
