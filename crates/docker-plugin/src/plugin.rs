//! The calls' effects on the store and this host. Stateless between calls: pools are named by
//! their subnet, endpoints are found by their Docker id in the store, so that either side may
//! restart at any point.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Result};
use ipnet::IpNet;
use serde_json::{json, Value};
use weft_control::{addresses, attach, hosts, networks};
use weft_model::{keys, Allocation, Endpoint, EndpointKind, Mac, Network, Record, SCHEMA_VERSION};
use weft_netlink::{MacAddr, Netlink};
use weft_reconcile::names;
use weft_store::{Compare, Op, Store};

use crate::pools::{self, DockerNetwork};
use crate::protocol::{self as p, Method};
use crate::{docker_api, DRIVER};

/// The owner recorded for an address Docker's IPAM asked for, until its endpoint is created.
pub const PENDING: &str = "docker-pending";
/// Labels on endpoint records made for Docker.
pub const LABEL_NETWORK: &str = "docker.network";
pub const LABEL_ENDPOINT: &str = "docker.endpoint";
/// Label on weft networks that Docker's `network create` made.
pub const LABEL_CREATED_BY: &str = "created-by";
/// The name prefix Docker gives the interface in the container (eth0, eth1…).
const DST_PREFIX: &str = "eth";

pub struct Plugin {
    pub store: Arc<dyn Store>,
    pub host: String,
    /// Docker's API socket, to learn a network's name.
    pub docker_api: PathBuf,
    /// Pools already mapped: subnet → (weft network, Docker network id). Spares asking Docker on
    /// every address; forgotten when that Docker network is deleted (a pool belongs to one Docker
    /// network at a time on a host).
    mapped: Mutex<HashMap<IpNet, (String, String)>>,
    /// Whether the firewall rule was seen in place since the last sweep.
    firewall_ok: AtomicBool,
}

/// A call's failure: a bad request (400) or a failed operation (500); both answer `{"Err": …}`.
pub enum Failure {
    BadRequest(String),
    Failed(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Failed(e.into())
    }
}

fn req<T: for<'de> serde::Deserialize<'de>>(body: &[u8]) -> Result<T, Failure> {
    p::parse(body).map_err(Failure::BadRequest)
}

fn bad(e: String) -> Failure {
    Failure::BadRequest(e)
}

impl Plugin {
    pub fn new(store: Arc<dyn Store>, host: String, docker_api: PathBuf) -> Plugin {
        Plugin {
            store,
            host,
            docker_api,
            mapped: Mutex::new(HashMap::new()),
            firewall_ok: AtomicBool::new(false),
        }
    }

    /// Makes the next Join check the firewall rule again (someone may have flushed it).
    pub fn recheck_firewall(&self) {
        self.firewall_ok.store(false, Ordering::Relaxed);
    }

    pub async fn call(&self, m: Method, body: &[u8]) -> Result<Value, Failure> {
        match m {
            Method::Activate => Ok(json!({"Implements": ["NetworkDriver", "IpamDriver"]})),
            // Local scope: each host's Docker keeps its own network record, weft joins them up.
            Method::NetGetCapabilities => {
                Ok(json!({"Scope": "local", "ConnectivityScope": "global"}))
            }
            Method::Ignored => Ok(json!({})),
            Method::IpamGetCapabilities => Ok(json!({"RequiresMACAddress": true})),
            Method::GetDefaultAddressSpaces => Ok(json!({
                "LocalDefaultAddressSpace": p::ADDRESS_SPACE,
                "GlobalDefaultAddressSpace": p::ADDRESS_SPACE,
            })),
            Method::RequestPool => self.request_pool(req(body)?).await,
            Method::ReleasePool => {
                let r: p::PoolRef = req(body)?;
                pools::parse_pool_id(&r.pool_id).map_err(bad)?;
                Ok(json!({}))
            }
            Method::RequestAddress => self.request_address(req(body)?).await,
            Method::ReleaseAddress => self.release_address(req(body)?).await,
            Method::CreateNetwork => self.create_network(req(body)?).await,
            Method::DeleteNetwork => self.delete_network(req(body)?).await,
            Method::CreateEndpoint => self.create_endpoint(req(body)?).await,
            Method::EndpointOperInfo => {
                let _: p::EndpointRef = req(body)?;
                Ok(json!({"Value": {}}))
            }
            Method::Join => self.join(req(body)?).await,
            Method::Leave => {
                let r: p::EndpointRef = req(body)?;
                if let Some(ep) = self.endpoint(&r.endpoint_id).await? {
                    Netlink::open()?.delete_link(&ep.host_ifname).await?;
                }
                Ok(json!({}))
            }
            Method::DeleteEndpoint => {
                let r: p::EndpointRef = req(body)?;
                if let Some(ep) = self.endpoint(&r.endpoint_id).await? {
                    Netlink::open()?.delete_link(&ep.host_ifname).await?;
                    attach::delete_records(self.store.as_ref(), &ep).await?;
                }
                Ok(json!({}))
            }
        }
    }

    async fn request_pool(&self, r: p::RequestPool) -> Result<Value, Failure> {
        if !r.sub_pool.is_empty() {
            return Err(bad(format!(
                "--ip-range {} is not supported: weft hands out addresses from the whole subnet",
                r.sub_pool
            )));
        }
        let nets = networks::list(self.store.as_ref()).await?;
        let used: Vec<IpNet> = nets.iter().flat_map(subnets_of).collect();
        let pool = pools::requested_pool(&r.pool, r.v6, &used).map_err(bad)?;
        // A subnet either is a weft network's (joining it) or overlaps none.
        for n in &nets {
            for s in subnets_of(n) {
                if s != pool && weft_model::validate::overlaps(s, pool) {
                    return Err(bad(format!(
                        "subnet {pool} overlaps subnet {s} of weft network {:?}",
                        n.name
                    )));
                }
            }
        }
        Ok(json!({"PoolID": pools::pool_id(pool), "Pool": pool.to_string(), "Data": {}}))
    }

    async fn request_address(&self, r: p::RequestAddress) -> Result<Value, Failure> {
        let pool = pools::parse_pool_id(&r.pool_id).map_err(bad)?;
        if r.options.get(p::OPT_REQUEST_TYPE).map(String::as_str) == Some(p::GATEWAY_REQUEST) {
            // weft's gateway address is reserved in every network, never allocated.
            let gw = pools::gateway(pool, &r.address).map_err(bad)?;
            return Ok(json!({"Address": gw.to_string(), "Data": {}}));
        }
        let want = if r.address.is_empty() {
            None
        } else {
            Some(
                r.address
                    .parse::<IpAddr>()
                    .map_err(|_| bad(format!("invalid address {:?}", r.address)))?,
            )
        };
        let net = self.network_of_pool(pool).await?;
        let (_, lease) = hosts::registered(self.store.as_ref(), &self.host).await?;
        let alloc = Allocation {
            schema: SCHEMA_VERSION,
            endpoint: PENDING.into(),
            host: self.host.clone(),
        };
        let a = addresses::reserve(
            self.store.as_ref(),
            &net,
            pool.addr().is_ipv6(),
            want,
            &alloc,
            lease,
        )
        .await?;
        Ok(json!({"Address": a.to_string(), "Data": {}}))
    }

    async fn release_address(&self, r: p::ReleaseAddress) -> Result<Value, Failure> {
        let pool = pools::parse_pool_id(&r.pool_id).map_err(bad)?;
        let addr: IpAddr = r
            .address
            .split('/')
            .next()
            .unwrap_or_default()
            .parse()
            .map_err(|_| bad(format!("invalid address {:?}", r.address)))?;
        // An address that made it into an endpoint went back to the pool with the endpoint
        // (DeleteEndpoint); only one reserved for an endpoint never created is still held here.
        if let Some(net) = self.weft_network_with(pool).await? {
            addresses::release(self.store.as_ref(), &net.name, addr, &self.host, PENDING).await?;
        }
        Ok(json!({}))
    }

    async fn create_network(&self, r: p::CreateNetwork) -> Result<Value, Failure> {
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
    async fn delete_network(&self, r: p::NetworkRef) -> Result<Value, Failure> {
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

    async fn create_endpoint(&self, r: p::CreateEndpoint) -> Result<Value, Failure> {
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
            // Docker publishes ports itself (its proxy and NAT rules), not through weft.
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

    async fn join(&self, r: p::Join) -> Result<Value, Failure> {
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
        let plugged = async {
            if !self.firewall_ok.load(Ordering::Relaxed) {
                crate::firewall::allow_bridged().await?;
                self.firewall_ok.store(true, Ordering::Relaxed);
            }
            let state =
                attach::plug_host_side(self.store.as_ref(), &nl, &host, &net, &ep, &peer).await?;
            nl.set_mac(&peer, MacAddr(ep.mac.0)).await?;
            weft_control::firewall::apply_state(&self.host, &state).await?;
            // Recorded once the veth exists, so the stale-endpoint sweep never takes a joining
            // endpoint for a dead one.
            let mut joined = ep.clone();
            joined.container = r.sandbox_key.clone();
            self.store
                .put(
                    &keys::endpoint(&ep.network, &ep.id),
                    joined.encode(),
                    Some(lease),
                )
                .await?;
            Ok::<_, anyhow::Error>(())
        }
        .await;
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

    /// This host's endpoint record of a Docker endpoint.
    async fn endpoint(&self, docker_id: &str) -> Result<Option<Endpoint>, Failure> {
        let id = pools::endpoint_id(docker_id).map_err(bad)?;
        let (eps, _) =
            weft_control::read::list::<Endpoint>(self.store.as_ref(), keys::ENDPOINTS).await?;
        Ok(eps
            .into_iter()
            .map(|(e, _)| e)
            .find(|e| e.id == id && e.host == self.host))
    }

    /// The weft network whose IPv4 or IPv6 subnet is `pool`.
    async fn weft_network_with(&self, pool: IpNet) -> Result<Option<Network>> {
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
    async fn resolve_pool(&self, pool: IpNet) -> Result<(Network, Option<String>)> {
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
