//! Expose: the host itself gets an address on a network (as `weave expose` did), allocated like
//! an endpoint's and recorded as one (kind `host`, the bridge's MAC), so that every other host
//! programs entries for it and the host reaches containers on all hosts.

use anyhow::{anyhow, bail, Context, Result};
use ipnet::Ipv4Net;
use weft_model::{Endpoint, EndpointKind, SCHEMA_VERSION};
use weft_reconcile::names;
use weft_store::Store;

use crate::{attach, hosts, networks};

#[derive(Debug, Clone)]
pub struct ExposeRequest {
    pub network: String,
    /// Static address(es) with prefix, as `weft attach --ip` takes them.
    pub ips: Vec<String>,
    pub host: String,
}

/// The host's exposure on a network, if it has one.
pub async fn exposure(store: &dyn Store, host: &str, network: &str) -> Result<Option<Endpoint>> {
    Ok(networks::endpoints(store, network)
        .await?
        .into_iter()
        .find(|e| e.host == host && e.kind == EndpointKind::Host))
}

pub async fn expose(store: &dyn Store, req: &ExposeRequest) -> Result<Endpoint> {
    let net = networks::get(store, &req.network).await?;
    let (want4, want6) = attach::requested_addresses(&net, &req.ips)?;
    let (host, lease) = hosts::registered(store, &req.host).await?;
    weft_reconcile::choose(&host, &net).map_err(|e| anyhow!(e))?;
    if let Some(e) = exposure(store, &req.host, &net.name).await? {
        bail!(
            "host {} is already exposed on network {} as {}; `weft hide {}` first to change it",
            req.host,
            net.name,
            e.ipv4,
            net.name
        );
    }
    let bridge = names::bridge(net.vni);
    let mac = names::bridge_mac(host.underlay, net.vni);
    let mut ep = Endpoint {
        schema: SCHEMA_VERSION,
        id: format!("{:016x}", rand::random::<u64>()),
        network: net.name.clone(),
        host: req.host.clone(),
        container: "host".into(),
        ifname: bridge.clone(),
        host_ifname: bridge,
        mac,
        ipv4: Ipv4Net::new(std::net::Ipv4Addr::UNSPECIFIED, 32).expect("valid"),
        ipv6: None,
        names: vec![],
        labels: Default::default(),
        kind: EndpointKind::Host,
        publish: vec![],
    };
    attach::allocate_and_record(store, &net, &mut ep, Some(mac), want4, want6, lease).await?;
    let programmed = async {
        let (state, _) = crate::state::load(store).await?;
        let want = weft_reconcile::desired(&ep.host, &state);
        let d = want
            .get(&net.name)
            .ok_or_else(|| anyhow!("the exposure record of {} vanished", net.name))?;
        weft_datapath::prepare_attach(d, host.underlay, host.vxlan_port).await?;
        crate::firewall::apply_state(&ep.host, &state).await
    }
    .await;
    if let Err(e) = programmed {
        // Nothing half-done: the record and address go, and the bridge goes back to what the
        // host's other endpoints need (or goes, if none).
        if let Err(ue) = attach::delete_records(store, &ep).await {
            tracing::error!("rollback: deleting the exposure record: {ue:#}");
        }
        if let Err(ue) = crate::detach::settle_local(store, &ep.host, &net).await {
            tracing::error!(
                "rollback: restoring this host's side of {}: {ue:#}",
                net.name
            );
        }
        return Err(e)
            .with_context(|| format!("exposing host {} on {}; rolled back", req.host, net.name));
    }
    Ok(ep)
}
