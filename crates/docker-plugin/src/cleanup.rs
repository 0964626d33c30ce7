//! Endpoints Docker will never clean up: after Docker or the agent restarted (or a container died
//! while the agent was down) Docker's calls to remove them may never come or may have been lost.
//! The decision is pure; the sweep runs at start and then periodically.

use std::collections::HashSet;

use anyhow::Result;
use weft_control::{attach, read};
use weft_model::{keys, Allocation, Endpoint};
use weft_netlink::Netlink;

use crate::plugin::{Plugin, LABEL_ENDPOINT, LABEL_NETWORK, PENDING};

/// This host's Docker endpoints that are dead, with why: their veth is gone after they joined
/// (the container's namespace went), or Docker no longer has their network (`docker_networks`
/// is None when Docker could not be asked).
pub fn stale<'a>(
    endpoints: &'a [Endpoint],
    host: &str,
    links: &HashSet<String>,
    docker_networks: Option<&HashSet<String>>,
) -> Vec<(&'a Endpoint, String)> {
    endpoints
        .iter()
        .filter(|e| e.host == host && e.labels.contains_key(LABEL_ENDPOINT))
        .filter_map(|e| {
            let dnet = e
                .labels
                .get(LABEL_NETWORK)
                .map(String::as_str)
                .unwrap_or("");
            if let Some(nets) = docker_networks {
                if !nets.contains(dnet) {
                    return Some((e, format!("Docker has no network {dnet}")));
                }
            }
            if !e.container.is_empty() && !links.contains(&e.host_ifname) {
                return Some((e, format!("its interface {} is gone", e.host_ifname)));
            }
            None
        })
        .collect()
}

impl Plugin {
    /// Removes stale endpoints (interfaces, records, addresses). At start (`at_start`) also
    /// releases addresses reserved for endpoints that were never created: nothing is in flight
    /// before the socket is served.
    pub async fn sweep(&self, at_start: bool) -> Result<usize> {
        let store = self.store.as_ref();
        let (eps, _) = read::list::<Endpoint>(store, keys::ENDPOINTS).await?;
        let eps: Vec<Endpoint> = eps.into_iter().map(|(e, _)| e).collect();
        let nl = Netlink::open()?;
        let links: HashSet<String> = nl.list_links().await?.into_iter().map(|l| l.name).collect();
        let docker = match crate::docker_api::list_networks(&self.docker_api).await {
            Ok(nets) => Some(nets.into_iter().map(|n| n.id).collect::<HashSet<_>>()),
            Err(e) => {
                tracing::debug!("stale endpoint sweep without Docker's networks: {e:#}");
                None
            }
        };
        let mut removed = 0;
        for (ep, why) in stale(&eps, &self.host, &links, docker.as_ref()) {
            tracing::info!(endpoint = %ep.id, network = %ep.network, "removing stale Docker endpoint: {why}");
            nl.delete_link(&ep.host_ifname).await?;
            attach::delete_records(store, ep).await?;
            removed += 1;
        }
        // Uses of Docker networks that Docker no longer has (its data went with it).
        if let Some(nets) = &docker {
            let mine = keys::docker_network(&self.host, "");
            let (uses, _) = store.list(&mine).await?;
            for u in uses {
                if !nets.contains(&u.key[mine.len()..]) {
                    store.delete(&u.key).await?;
                }
            }
        }
        if at_start {
            let (allocs, _) = read::list::<Allocation>(store, weft_model::keys::IPAM).await?;
            for (a, kv) in allocs {
                if a.host == self.host && a.endpoint == PENDING {
                    tracing::info!(key = %kv.key, "releasing an address reserved for Docker but never used");
                    store.delete(&kv.key).await?;
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use weft_model::{Mac, SCHEMA_VERSION};

    fn ep(id: &str, host: &str, container: &str, docker_net: Option<&str>) -> Endpoint {
        let mut labels = BTreeMap::new();
        if let Some(n) = docker_net {
            labels.insert(LABEL_NETWORK.to_string(), n.to_string());
            labels.insert(LABEL_ENDPOINT.to_string(), format!("{id}0000"));
        }
        Endpoint {
            schema: SCHEMA_VERSION,
            id: id.into(),
            network: "prod".into(),
            host: host.into(),
            container: container.into(),
            ifname: "eth".into(),
            host_ifname: format!("wve{id}"),
            mac: Mac::ZERO,
            ipv4: "10.0.0.2/24".parse().unwrap(),
            ipv6: None,
            names: vec![],
            labels,
            kind: Default::default(),
            publish: vec![],
        }
    }

    #[test]
    fn finds_dead_docker_endpoints_only() {
        let eps = vec![
            ep("a", "h1", "/run/docker/netns/1", Some("n1")), // alive
            ep("b", "h1", "/run/docker/netns/2", Some("n1")), // veth gone
            ep("c", "h1", "", Some("n1")),                    // created, not joined yet
            ep("d", "h1", "/run/docker/netns/3", Some("gone")), // network gone from Docker
            ep("e", "h2", "/x", Some("n1")),                  // another host's
            ep("f", "h1", "/run/netns/web", None),            // weft attach's
        ];
        let links: HashSet<String> = ["wvea", "wved"].iter().map(|s| s.to_string()).collect();
        let nets: HashSet<String> = ["n1".to_string()].into();
        let ids =
            |v: Vec<(&Endpoint, String)>| v.iter().map(|(e, _)| e.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(stale(&eps, "h1", &links, Some(&nets))), vec!["b", "d"]);
        // Docker unreachable: only what the host itself shows.
        assert_eq!(ids(stale(&eps, "h1", &links, None)), vec!["b"]);
        let why = stale(&eps, "h1", &links, Some(&nets));
        assert_eq!(why[0].1, "its interface wveb is gone");
        assert_eq!(why[1].1, "Docker has no network gone");
    }
}
