//! ADD: attach the container (CNI_NETNS) to the weft network as CNI_IFNAME, labelled with its
//! container ID so that DEL, CHECK and GC find it; answer interfaces, addresses, routes and DNS.

use rscni_plugin::error::Error;
use rscni_plugin::types::{Args, CNIResult};
use weft_control::attach::AttachRequest;
use weft_netlink::{Netlink, Netns, NetnsTarget};

use super::Ctx;
use crate::config::{self, PluginConfig};
use crate::errors::{self, Step};
use crate::labels;
use crate::result::{self, Made};

pub async fn run(args: &Args, cfg: PluginConfig) -> Result<CNIResult, Error> {
    let (container_id, ifname) = super::attachment(args)?;
    let netns = super::netns(args)?;
    let wanted = config::wanted(args.config(), args.args())?;
    // A missing or wrong CNI_NETNS is the caller's, found before anything is written.
    netns
        .parse::<NetnsTarget>()
        .map_err(anyhow::Error::from)
        .and_then(|t| Ok(Netns::open(&t)?))
        .map_err(|e| errors::at(Step::Netns, &e))?;
    let ctx = Ctx::open(cfg).await?;
    let net = ctx.network().await?.ok_or_else(|| {
        Error::InvalidNetworkConfig(format!(
            "no weft network {:?}: create it first with `weft network create {} --subnet …`",
            ctx.cfg.network, ctx.cfg.network
        ))
    })?;
    let (host, _) = weft_control::hosts::registered(ctx.store.as_ref(), &ctx.host)
        .await
        .map_err(|e| errors::at(Step::Host, &e))?;
    let ips = config::static_cidrs(&wanted.ips, &net)?;
    let labels = labels::for_attachment(&container_id, &ifname);
    let req = AttachRequest {
        target: netns.clone(),
        network: net.name.clone(),
        ips,
        mac: wanted.mac,
        ifname,
        name: wanted.name,
        aliases: vec![],
        host: ctx.host.clone(),
        labels,
        // Port mappings are the chained portmap plugin's (runtimeConfig.portMappings), not weft's.
        publish: vec![],
    };
    let out = weft_control::attach::attach(ctx.store.as_ref(), &req)
        .await
        .map_err(|e| errors::at(Step::Attach, &e))?;
    let ep = out.endpoint;
    // attach is idempotent per (netns, interface): what it found must be this attachment's, not
    // another container ID's or a `weft attach` of the same namespace.
    if !out.created && labels::attachment(&ep) != Some((container_id.as_str(), ep.ifname.as_str()))
    {
        return Err(errors::at(
            Step::Attach,
            &anyhow::anyhow!(
                "{netns} is already attached to {} as {} by something else (endpoint {})",
                net.name,
                ep.ifname,
                ep.id
            ),
        ));
    }
    let host_mac = match Netlink::open() {
        Ok(nl) => nl
            .link_by_name(&ep.host_ifname)
            .await
            .ok()
            .flatten()
            .map(|l| l.mac.to_string()),
        Err(_) => None,
    };
    let dns = result::dns_for(&ctx.cfg.dns, &net.name, host.dns_domain.as_deref());
    let made = Made {
        endpoint: &ep,
        network: &net,
        netns: &netns,
        host_mac,
        dns: &dns,
    };
    Ok(result::build(&made, args.config().prev_result.as_ref()))
}
