//! Hosts and cluster status.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde::Serialize;
use weft_model::{keys, Endpoint, Host, HostReport, Network, PeerReport};
use weft_store::{KeyValue, LeaseId, Store};

use crate::read;

/// This host's identity: `--host`/`WEFT_HOST` if given, else the kernel's hostname (as the agent does).
pub fn local_host_id(given: Option<&str>) -> Result<String> {
    if let Some(h) = given.filter(|h| !h.is_empty()) {
        return Ok(h.to_string());
    }
    let name = nix::unistd::gethostname()?
        .into_string()
        .unwrap_or_else(|_| "localhost".into());
    Ok(name.to_lowercase())
}

/// The registered host record and the lease it lives under; errors when no agent runs there.
pub async fn registered(store: &dyn Store, id: &str) -> Result<(Host, LeaseId)> {
    match read::get::<Host>(store, &keys::host(id)).await? {
        Some((h, KeyValue { lease: Some(lease), .. })) => Ok((h, lease)),
        Some(_) => bail!("host {id:?} is registered without a lease; restart its agent"),
        None => bail!(
            "host {id:?} is not registered: is `weft agent` running on this host (and using the same store)?"
        ),
    }
}

#[derive(Debug, Serialize)]
pub struct HostStatus {
    #[serde(flatten)]
    pub host: Host,
    /// Seconds left on the host's lease; the agent renews it well before it runs out.
    pub lease_ttl_s: Option<f64>,
    pub state: &'static str,
    pub endpoints: usize,
}

#[derive(Debug, Serialize)]
pub struct NetworkStatus {
    #[serde(flatten)]
    pub network: Network,
    pub endpoints: usize,
    pub hosts: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub store: String,
    pub revision: i64,
    pub hosts: Vec<HostStatus>,
    pub networks: Vec<NetworkStatus>,
    /// Per host and peer: the datapath used and the handshake state, as each agent reports them.
    pub peers: Vec<HostPeer>,
}

#[derive(Debug, Serialize)]
pub struct HostPeer {
    pub host: String,
    #[serde(flatten)]
    pub peer: PeerReport,
}

pub async fn status(store: &dyn Store, store_url: &str) -> Result<Status> {
    let (hosts, _) = read::list::<Host>(store, keys::HOSTS).await?;
    let (nets, _) = read::list::<Network>(store, keys::NETWORKS).await?;
    let (eps, revision) = read::list::<Endpoint>(store, keys::ENDPOINTS).await?;
    let mut per_host: BTreeMap<&str, usize> = BTreeMap::new();
    let mut per_net: BTreeMap<&str, (usize, Vec<String>)> = BTreeMap::new();
    for (e, _) in &eps {
        *per_host.entry(e.host.as_str()).or_default() += 1;
        let entry = per_net.entry(e.network.as_str()).or_default();
        entry.0 += 1;
        if !entry.1.contains(&e.host) {
            entry.1.push(e.host.clone());
        }
    }
    let mut host_status = Vec::new();
    for (h, kv) in hosts {
        let ttl = match kv.lease {
            Some(l) => store.lease_ttl(l).await?.map(|d| d.as_secs_f64()),
            None => None,
        };
        host_status.push(HostStatus {
            endpoints: per_host.get(h.id.as_str()).copied().unwrap_or(0),
            state: if ttl.is_some() { "alive" } else { "expiring" },
            lease_ttl_s: ttl,
            host: h,
        });
    }
    let networks = nets
        .into_iter()
        .map(|(n, _)| {
            let (count, mut hosts) = per_net.remove(n.name.as_str()).unwrap_or_default();
            hosts.sort();
            NetworkStatus {
                network: n,
                endpoints: count,
                hosts,
            }
        })
        .collect();
    let (reports, _) = read::list::<HostReport>(store, keys::STATUS).await?;
    let peers = reports
        .into_iter()
        .flat_map(|(r, _)| {
            let host = r.host;
            r.peers.into_iter().map(move |peer| HostPeer {
                host: host.clone(),
                peer,
            })
        })
        .collect();
    Ok(Status {
        peers,
        store: store_url.to_string(),
        revision,
        hosts: host_status,
        networks,
    })
}
