//! Which weft network a Docker pool stands for: the one with that subnet, or the one named as
//! Docker's network of that pool (read from Docker's API), created if absent.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use ipnet::IpNet;
use weft_control::{hosts, networks};
use weft_model::{keys, Network};

use crate::docker_api;
use crate::plugin::{Plugin, LABEL_CREATED_BY};
use crate::pools::{self, DockerNetwork};

impl Plugin {
    /// The weft network whose IPv4 or IPv6 subnet is `pool`.
    pub(crate) async fn weft_network_with(&self, pool: IpNet) -> Result<Option<Network>> {
        Ok(networks::list(self.store.as_ref())
            .await?
            .into_iter()
            .find(|n| subnets_of(n).contains(&pool)))
    }

    /// The weft network behind a pool: Docker's network of that pool, by name, created in weft
    /// if absent (with the Docker network's subnets) or joined if its subnets agree.
    pub async fn network_of_pool(&self, pool: IpNet) -> Result<Network> {
        let cached = self
            .mapped
            .lock()
            .expect("not poisoned")
            .get(&pool)
            .cloned();
        if let Some((name, _)) = cached {
            if let Some(n) = self.weft_network_with(pool).await? {
                if n.name == name {
                    return Ok(n);
                }
            }
        }
        let (net, docker_id) = self.resolve_pool(pool).await?;
        if let Some(id) = docker_id {
            self.mapped
                .lock()
                .expect("not poisoned")
                .insert(pool, (net.name.clone(), id.clone()));
            let (_, lease) = hosts::registered(self.store.as_ref(), &self.host).await?;
            self.store
                .put(
                    &keys::docker_network(&self.host, &id),
                    net.name.clone().into_bytes(),
                    Some(lease),
                )
                .await?;
        }
        Ok(net)
    }

    /// The weft network of a pool, and the id of Docker's network of it when Docker was asked.
    pub(crate) async fn resolve_pool(&self, pool: IpNet) -> Result<(Network, Option<String>)> {
        let holder = self.weft_network_with(pool).await?;
        let docker = match docker_api::list_networks(&self.docker_api).await {
            Ok(nets) => pools::network_of_pool(&nets, pool)
                .cloned()
                .map_err(|e| anyhow!(e)),
            Err(e) => Err(e.context(
                "reading Docker's networks (Docker never tells a plugin a network's name; set the agent's --docker-api)",
            )),
        };
        let docker: DockerNetwork = match (docker, holder.clone()) {
            (Ok(d), _) => d,
            // Without Docker's word, a pool that is a weft network's subnet is that network.
            (Err(e), Some(h)) => {
                tracing::debug!("{e:#}; using weft network {} of {pool}", h.name);
                return Ok((h, None));
            }
            (Err(e), None) => return Err(e),
        };
        if let Some(h) = holder {
            if h.name != docker.name {
                bail!(
                    "subnet {pool} is weft network {:?}'s, not {:?}'s: give Docker network {:?} another subnet",
                    h.name, docker.name, docker.name
                );
            }
        }
        let mut last = None;
        for _ in 0..3 {
            match networks::get(self.store.as_ref(), &docker.name).await {
                Ok(existing) => {
                    pools::check_same_subnets(&existing, &docker).map_err(|e| anyhow!(e))?;
                    return Ok((existing, Some(docker.id)));
                }
                Err(_) => {
                    let spec = networks::NetworkSpec {
                        name: docker.name.clone(),
                        subnets: pools::subnets_for_create(&docker).map_err(|e| anyhow!(e))?,
                        labels: BTreeMap::from([(LABEL_CREATED_BY.into(), "docker".into())]),
                        ..Default::default()
                    };
                    match networks::create(self.store.as_ref(), &spec).await {
                        Ok(n) => {
                            tracing::info!(network = %n.name, vni = n.vni, "weft network created for Docker");
                            return Ok((n, Some(docker.id)));
                        }
                        // Another host's Docker may have created it meanwhile: read it again.
                        Err(e) => last = Some(e),
                    }
                }
            }
        }
        Err(last
            .unwrap_or_else(|| anyhow!("no answer"))
            .context(format!("creating weft network {:?}", docker.name)))
    }
}

pub fn subnets_of(n: &Network) -> Vec<IpNet> {
    let mut v = vec![IpNet::V4(n.subnet4)];
    v.extend(n.subnet6.map(IpNet::V6));
    v
}
