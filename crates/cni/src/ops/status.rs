//! STATUS: can this host serve ADD? Not without the store, the network or a running agent (50).
//! When the agent is gone while containers are still plugged into the network's bridge here,
//! nobody keeps their peers up to date: limited connectivity (51).

use rscni_plugin::error::Error;
use weft_model::Network;
use weft_netlink::Netlink;
use weft_reconcile::names;

use super::Ctx;
use crate::config::PluginConfig;

pub async fn run(cfg: PluginConfig) -> Result<(), Error> {
    let network = cfg.network.clone();
    let unavailable = |e: Error| Error::PluginNotAvailable(e.details().to_string());
    let ctx = Ctx::open(cfg).await.map_err(unavailable)?;
    let Some(net) = ctx.network().await.map_err(unavailable)? else {
        return Err(Error::PluginNotAvailable(format!(
            "no weft network {network:?} in the store"
        )));
    };
    if let Err(e) = weft_control::hosts::registered(ctx.store.as_ref(), &ctx.host).await {
        let details = format!("{e:#}");
        return Err(if containers_plugged_in(&net).await {
            Error::PluginNotAvailableLimitedConnectivity(format!(
                "{details}; containers here are still on {network} without an agent"
            ))
        } else {
            Error::PluginNotAvailable(details)
        });
    }
    Ok(())
}

/// Whether container interfaces are still ports of the network's bridge on this host.
async fn containers_plugged_in(net: &Network) -> bool {
    let Ok(nl) = Netlink::open() else {
        return false;
    };
    let Ok(Some(bridge)) = nl.link_by_name(&names::bridge(net.vni)).await else {
        return false;
    };
    nl.list_links().await.is_ok_and(|links| {
        links
            .iter()
            .any(|l| l.master == Some(bridge.index) && l.name.starts_with(names::VETH_HOST_PREFIX))
    })
}
