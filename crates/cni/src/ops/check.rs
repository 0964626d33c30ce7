//! CHECK: the interface in CNI_NETNS still has the record's MAC, MTU and addresses, its host end is
//! on the network's bridge, and the runtime's cached result (prevResult) agrees.

use rscni_plugin::error::Error;
use rscni_plugin::types::Args;
use weft_netlink::{Netlink, Netns, NetnsTarget};
use weft_reconcile::names;

use super::Ctx;
use crate::config::PluginConfig;
use crate::errors::{self, Step};
use crate::labels;
use crate::result::{self, Live};

pub async fn run(args: &Args, cfg: PluginConfig) -> Result<(), Error> {
    let (container_id, ifname) = super::attachment(args)?;
    let netns = super::netns(args)?;
    let ctx = Ctx::open(cfg).await?;
    let net = ctx.network().await?.ok_or_else(|| {
        Error::InvalidNetworkConfig(format!("no weft network {:?}", ctx.cfg.network))
    })?;
    let eps = ctx.endpoints().await?;
    let ep = labels::matching(&eps, &ctx.host, &container_id, &ifname)
        .next()
        .ok_or_else(|| {
            errors::at(
                Step::Check,
                &anyhow::anyhow!(
                    "no weft endpoint for container {container_id} interface {ifname} on host {}",
                    ctx.host
                ),
            )
        })?;
    let target: NetnsTarget = netns
        .parse()
        .map_err(|e| errors::at(Step::Netns, &anyhow::Error::from(e)))?;
    let ns = Netns::open(&target).map_err(|e| errors::at(Step::Netns, &e.into()))?;
    let live = read_live(&ns, ep, net.vni)
        .await
        .map_err(|e| errors::at(Step::Check, &e))?;
    result::check(
        ep,
        &net,
        &netns,
        live.as_ref(),
        args.config().prev_result.as_ref(),
    )
    .map_err(|p| errors::at(Step::Check, &anyhow::anyhow!(p)))
}

async fn read_live(
    ns: &Netns,
    ep: &weft_model::Endpoint,
    vni: u32,
) -> anyhow::Result<Option<Live>> {
    let cnl = Netlink::open_in(ns)?;
    let Some(link) = cnl.link_by_name(&ep.ifname).await? else {
        return Ok(None);
    };
    let addresses = cnl.list_addresses(&ep.ifname).await?;
    let nl = Netlink::open()?;
    let bridge = nl.link_by_name(&names::bridge(vni)).await?;
    let host_end = nl.link_by_name(&ep.host_ifname).await?;
    let host_end_on_bridge = match (bridge, host_end) {
        (Some(b), Some(h)) => h.master == Some(b.index),
        _ => false,
    };
    Ok(Some(Live {
        mac: link.mac.to_string(),
        mtu: link.mtu,
        addresses,
        host_end_on_bridge,
    }))
}
