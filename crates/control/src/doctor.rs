//! `weft doctor`: looks at what this host holds (links, forwarding and neighbour entries, container
//! namespaces, the agent's peer report) next to what the cluster state wants of it; the judgement
//! itself is `weft_reconcile::diagnose` (pure).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use weft_datapath::{Datapath, KernelDatapath};
use weft_model::{keys, Host, HostReport};
use weft_netlink::{LinkInfo, Netlink};
use weft_reconcile::diagnose::{self, EndpointSeen, HostSeen, LinkSeen, NetSeen};
pub use weft_reconcile::diagnose::{exit_code, Finding, Level};
use weft_reconcile::{desired, names, Path as DpPath};
use weft_store::Store;

use crate::{read, state};

#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub host: String,
    pub store: String,
    pub revision: i64,
    pub findings: Vec<Finding>,
}

async fn seen_link(nl: &Netlink, name: &str) -> Result<Option<LinkSeen>> {
    let Some(l): Option<LinkInfo> = nl.link_by_name(name).await? else {
        return Ok(None);
    };
    let master = match l.master {
        Some(i) => nl.link_by_index(i).await?.map(|m| m.name),
        None => None,
    };
    Ok(Some(LinkSeen {
        up: l.up,
        mtu: l.mtu,
        master,
    }))
}

pub async fn doctor(store: &dyn Store, store_url: &str, host: &str) -> Result<Report> {
    let (state, revision) = state::load(store).await?;
    let lease_ttl_s = match read::get::<Host>(store, &keys::host(host)).await? {
        Some((_, kv)) => match kv.lease {
            Some(l) => store.lease_ttl(l).await?.map(|d| d.as_secs_f64()),
            None => None,
        },
        None => None,
    };
    let want = desired(host, &state);
    let nl = Netlink::open()?;
    // Only read through it: the underlay and port matter for creating devices, not for looking.
    let (underlay, port) = state
        .hosts
        .get(host)
        .map(|h| (h.underlay, h.vxlan_port))
        .unwrap_or((std::net::Ipv4Addr::UNSPECIFIED.into(), 4789));
    let kernel = KernelDatapath::new(underlay, port).await?;

    let mut networks = BTreeMap::new();
    for (name, d) in &want {
        let uplink = match d.path {
            DpPath::Kernel => d.vxlan.clone(),
            DpPath::Userspace => names::tap(d.vni),
        };
        let bridge = seen_link(&nl, &d.bridge).await?;
        let uplink_seen = seen_link(&nl, &uplink).await?;
        let drift = if d.path == DpPath::Kernel && uplink_seen.is_some() {
            Some(kernel.drift(d).await?)
        } else {
            None
        };
        networks.insert(
            name.clone(),
            NetSeen {
                bridge,
                uplink: uplink_seen,
                drift,
            },
        );
    }

    let mut endpoints = BTreeMap::new();
    // The host's own exposure (`weft expose`) has no veth or namespace to look at.
    for e in state
        .endpoints_on(host)
        .filter(|e| e.kind == weft_model::EndpointKind::Container)
    {
        endpoints.insert(
            (e.network.clone(), e.id.clone()),
            EndpointSeen {
                host_link: seen_link(&nl, &e.host_ifname).await?,
                netns_exists: Path::new(&e.container).exists(),
            },
        );
    }

    let wanted_vnis: Vec<u32> = want.values().map(|d| d.vni).collect();
    let stray_vnis = kernel
        .present()
        .await?
        .into_iter()
        .filter(|v| !wanted_vnis.contains(v))
        .collect();
    let report = read::get::<HostReport>(store, &keys::status(host))
        .await?
        .map(|(r, _)| r);

    let seen = HostSeen {
        host: host.to_string(),
        lease_ttl_s,
        networks,
        endpoints,
        report,
        stray_vnis,
    };
    Ok(Report {
        host: host.to_string(),
        store: store_url.to_string(),
        revision,
        findings: diagnose::diagnose(&state, &want, &seen),
    })
}
