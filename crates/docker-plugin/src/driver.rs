//! NetworkDriver calls: Docker networks, endpoints (records that take over their reserved
//! addresses), Join (the veth on the network's bridge) and the last network's removal.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use anyhow::anyhow;
use ipnet::IpNet;
use serde_json::{json, Value};
use weft_control::{addresses, attach, hosts, networks};
use weft_model::{keys, Allocation, Endpoint, EndpointKind, Mac, Record, SCHEMA_VERSION};
use weft_netlink::{MacAddr, Netlink};
use weft_reconcile::names;
use weft_store::{Compare, Op};

use crate::plugin::{
    bad, Failure, Plugin, DST_PREFIX, LABEL_CREATED_BY, LABEL_ENDPOINT, LABEL_NETWORK, PENDING,
};
use crate::protocol as p;

/// Attempts at a Join (see there).
const JOIN_ATTEMPTS: usize = 3;
use crate::{pools, DRIVER};

impl Plugin {
    pub(crate) async fn create_network(&self, r: p::CreateNetwork) -> Result<Value, Failure> {
        if r.ipv4_data.is_empty()
            || r.ipv4_data
                .iter()
                .chain(&r.ipv6_data)
                .any(|d| d.address_space != p::ADDRESS_SPACE)
        {
            return Err(bad(format!(
                "weft networks take their addresses from weft's cluster-wide IPAM: create it with `-d {DRIVER} --ipam-driver {DRIVER}`"
            )));
        }
        if r.ipv4_data.len() > 1 || r.ipv6_data.len() > 1 {
            return Err(bad(
                "a weft network has exactly one IPv4 subnet and at most one IPv6 subnet".into(),
            ));
        }
        let mut pools_v: Vec<IpNet> = Vec::new();
        for d in r.ipv4_data.iter().chain(&r.ipv6_data) {
            pools_v.push(
                d.pool
                    .parse()
                    .map_err(|_| bad(format!("invalid pool {:?}", d.pool)))?,
            );
        }
        tracing::info!(docker_network = %r.network_id, pools = ?pools_v, options = ?r.options, "Docker network created");
        // Docker stores the network (and so its name) only once this call returns: the weft
        // network is made or joined when Docker asks for its first address, or by this
        // background look-up, whichever comes first.
        let me = Plugin::new(
            self.store.clone(),
            self.host.clone(),
            self.docker_api.clone(),
        );
        let pool = pools_v[0];
        tokio::spawn(async move {
            let mut last = None;
            for _ in 0..50 {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                match me.network_of_pool(pool).await {
                    Ok(n) => {
                        tracing::info!(network = %n.name, %pool, "Docker network mapped to the weft network");
                        return;
                    }
                    Err(e) => last = Some(e),
                }
            }
            if let Some(e) = last {
                tracing::warn!(%pool, "mapping the Docker network: {e:#}");
            }
        });
        Ok(json!({}))
    }

    /// Forgets this host's use of the network; the last host's Docker to let go of a network
    /// that Docker made removes it from weft (one with endpoints, or made by `weft network
    /// create`, stays).
    pub(crate) async fn delete_network(&self, r: p::NetworkRef) -> Result<Value, Failure> {
        self.mapped
            .lock()
            .expect("not poisoned")
            .retain(|_, (_, id)| *id != r.network_id);
        let key = keys::docker_network(&self.host, &r.network_id);
        let Some(kv) = self.store.get(&key).await? else {
            return Ok(json!({}));
        };
        self.store.delete(&key).await?;
        let name = String::from_utf8_lossy(&kv.value).into_owned();
        let (uses, _) = self.store.list(keys::DOCKER_NETWORKS).await?;
        if uses.iter().any(|u| u.value == kv.value) {
            return Ok(json!({}));
        }
        let Ok(net) = networks::get(self.store.as_ref(), &name).await else {
            return Ok(json!({}));
        };
        if net.labels.get(LABEL_CREATED_BY).map(String::as_str) != Some("docker") {
            return Ok(json!({}));
        }
        match networks::remove(self.store.as_ref(), &name, false).await {
            Ok(_) => {
                tracing::info!(network = %name, "weft network removed with the last Docker network of it")
            }
            Err(e) => tracing::info!(network = %name, "weft network kept: {e:#}"),
        }
        Ok(json!({}))
    }

    pub(crate) async fn create_endpoint(&self, r: p::CreateEndpoint) -> Result<Value, Failure> {
        let id = pools::endpoint_id(&r.endpoint_id).map_err(bad)?;
        let i = r.interface.unwrap_or_default();
        if i.address.is_empty() {
            return Err(bad(format!(
                "no IPv4 address for the endpoint: create the network with --ipam-driver {DRIVER}"
            )));
        }
        let a4: IpNet = i
            .address
            .parse()
            .map_err(|_| bad(format!("invalid address {:?}", i.address)))?;
        let a6: Option<IpNet> = if i.address_ipv6.is_empty() {
            None
        } else {
            Some(
                i.address_ipv6
                    .parse()
                    .map_err(|_| bad(format!("invalid address {:?}", i.address_ipv6)))?,
            )
        };
        let (mac, mac_generated) = if i.mac_address.is_empty() {
            (None, true)
        } else {
            let m: Mac = i.mac_address.parse().map_err(bad)?;
            (Some(m), false)
        };
        let net = self
            .weft_network_with(a4.trunc())
            .await?
            .ok_or_else(|| anyhow!("no weft network has subnet {}", a4.trunc()))?;
        let (IpNet::V4(ipv4), ipv6) = (a4, a6) else {
            return Err(bad(format!("{a4} is not an IPv4 address")));
        };
        let ipv6 = match ipv6 {
            None => None,
            Some(IpNet::V6(a)) if net.subnet6.is_some_and(|s| s.contains(&a.addr())) => Some(a),
            Some(a) => {
                return Err(bad(format!(
                    "{a} is not in the IPv6 subnet of weft network {}",
                    net.name
                )))
            }
        };
        if let Some(e) = self.endpoint(&r.endpoint_id).await? {
            if e.ipv4 == ipv4 && e.ipv6 == ipv6 {
                return Ok(json!({"Interface": {}}));
            }
            return Err(anyhow!("endpoint {id} exists with other addresses").into());
        }
        let mac = mac.unwrap_or_else(|| Mac::from_ipv4(ipv4.addr()));
        let ep = Endpoint {
            schema: SCHEMA_VERSION,
            id: id.clone(),
            network: net.name.clone(),
            host: self.host.clone(),
            // Set by Join to the container's netns.
            container: String::new(),
            ifname: DST_PREFIX.into(),
            host_ifname: names::veth_host(&id),
            mac,
            ipv4,
            ipv6,
            names: vec![],
            labels: BTreeMap::from([
                (LABEL_NETWORK.to_string(), r.network_id.clone()),
                (LABEL_ENDPOINT.to_string(), r.endpoint_id.clone()),
            ]),
            kind: EndpointKind::Container,
            // Set by ProgramExternalConnectivity from `docker run -p`.
            publish: vec![],
        };
        let (_, lease) = hosts::registered(self.store.as_ref(), &self.host).await?;
        // The reserved addresses pass to the endpoint in the same transaction as its record.
        let mut compares = vec![Compare::Absent(keys::endpoint(&net.name, &id))];
        let mut ops = vec![Op::Put {
            key: keys::endpoint(&net.name, &id),
            value: ep.encode(),
            lease: Some(lease),
        }];
        for a in ep.addresses() {
            let k = keys::ipam(&net.name, a.addr());
            let held = weft_control::read::get::<Allocation>(self.store.as_ref(), &k).await?;
            match held {
                Some((al, kv)) if al.host == self.host && al.endpoint == PENDING => {
                    compares.push(Compare::ModRevision(k.clone(), kv.mod_revision));
                }
                _ => {
                    return Err(anyhow!(
                        "address {} was not reserved on this host by weft's IPAM{}",
                        a.addr(),
                        addresses::owner(self.store.as_ref(), &net.name, a.addr()).await
                    )
                    .into())
                }
            }
            ops.push(Op::Put {
                key: k,
                value: Allocation {
                    schema: SCHEMA_VERSION,
                    endpoint: id.clone(),
                    host: self.host.clone(),
                }
                .encode(),
                lease: Some(lease),
            });
        }
        if !self.store.txn(compares, ops).await?.succeeded {
            return Err(
                anyhow!("endpoint {id}: its addresses changed meanwhile; try again").into(),
            );
        }
        tracing::info!(endpoint = %id, network = %net.name, %ipv4, "Docker endpoint created");
        if mac_generated {
            return Ok(json!({"Interface": {"MacAddress": mac.to_string()}}));
        }
        Ok(json!({"Interface": {}}))
    }

    pub(crate) async fn join(&self, r: p::Join) -> Result<Value, Failure> {
        let ep = self
            .endpoint(&r.endpoint_id)
            .await?
            .ok_or_else(|| anyhow!("unknown endpoint {}", r.endpoint_id))?;
        let net = networks::get(self.store.as_ref(), &ep.network).await?;
        let (host, lease) = hosts::registered(self.store.as_ref(), &self.host).await?;
        let nl = Netlink::open()?;
        // A Join retried after a failure finds the pair it made: start afresh.
        nl.delete_link(&ep.host_ifname).await?;
        let peer = names::veth_peer(&ep.id);
        // The agent may be taking the network's devices away just now (this host's previous
        // endpoint of it went a moment ago, before this one's record): what it removes under our
        // feet is made again on the next attempt, once it has seen the new record.
        let mut plugged = Err(anyhow!("not tried"));
        for attempt in 0..JOIN_ATTEMPTS {
            if attempt > 0 {
                nl.delete_link(&ep.host_ifname).await?;
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            plugged = self
                .plug(&nl, &host, &net, &ep, &peer, &r.sandbox_key, lease)
                .await;
            match &plugged {
                Ok(()) => break,
                Err(e) => tracing::info!(endpoint = %ep.id, attempt, "joining: {e:#}"),
            }
        }
        if let Err(e) = plugged {
            if let Err(ue) = nl.delete_link(&ep.host_ifname).await {
                tracing::error!("rollback: deleting {}: {ue:#}", ep.host_ifname);
            }
            return Err(e
                .context(format!("joining endpoint {} to {}", ep.id, net.name))
                .into());
        }
        tracing::info!(endpoint = %ep.id, network = %net.name, sandbox = %r.sandbox_key, "Docker endpoint joined");
        let mut answer = json!({
            "InterfaceName": p::InterfaceName { src_name: peer, dst_prefix: DST_PREFIX.into() },
        });
        // A network with egress is the container's way out, through its host's bridge, as for
        // `weft attach`; without, Docker adds its own gateway network.
        if net.egress {
            answer["Gateway"] = json!(net.gateway4.to_string());
            if let (Some(g6), Some(_)) = (net.gateway6, ep.ipv6) {
                answer["GatewayIPv6"] = json!(g6.to_string());
            }
        }
        Ok(answer)
    }

    /// The host side of a Join: the veth on the network's bridge, its container end named `peer`
    /// with the endpoint's MAC, the host's firewall, and the record naming the container's netns.
    #[allow(clippy::too_many_arguments)]
    async fn plug(
        &self,
        nl: &Netlink,
        host: &weft_model::Host,
        net: &weft_model::Network,
        ep: &Endpoint,
        peer: &str,
        sandbox: &str,
        lease: weft_store::LeaseId,
    ) -> anyhow::Result<()> {
        if !self.firewall_ok.load(Ordering::Relaxed) {
            crate::firewall::allow_bridged().await?;
            self.firewall_ok.store(true, Ordering::Relaxed);
        }
        let state = attach::plug_host_side(self.store.as_ref(), nl, host, net, ep, peer).await?;
        nl.set_mac(peer, MacAddr(ep.mac.0)).await?;
        weft_control::firewall::apply_state(&self.host, &state).await?;
        // Recorded once the veth exists, so the stale-endpoint sweep never takes a joining
        // endpoint for a dead one.
        let mut joined = ep.clone();
        joined.container = sandbox.to_string();
        self.store
            .put(
                &keys::endpoint(&ep.network, &ep.id),
                joined.encode(),
                Some(lease),
            )
            .await?;
        Ok(())
    }

    /// This host's endpoint record of a Docker endpoint.
    pub(crate) async fn endpoint(&self, docker_id: &str) -> Result<Option<Endpoint>, Failure> {
        Ok(self.endpoint_kv(docker_id).await?.map(|(e, _)| e))
    }

    /// The same with its revision, for a change that must not overwrite another.
    pub(crate) async fn endpoint_kv(
        &self,
        docker_id: &str,
    ) -> Result<Option<(Endpoint, weft_store::KeyValue)>, Failure> {
        let id = pools::endpoint_id(docker_id).map_err(bad)?;
        let (eps, _) =
            weft_control::read::list::<Endpoint>(self.store.as_ref(), keys::ENDPOINTS).await?;
        Ok(eps
            .into_iter()
            .find(|(e, _)| e.id == id && e.host == self.host))
    }
}
