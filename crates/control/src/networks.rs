//! Network create, list, inspect and remove.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use ipnet::IpNet;
use serde::Serialize;
use weft_model::{
    keys, validate, Allocation, DatapathChoice, Encap, Endpoint, Network, PortClaim, Record,
    DEFAULT_UNDERLAY_MTU, ENCRYPTED_OVERHEAD_V4, GRE_OVERHEAD_V4, SCHEMA_VERSION,
    VXLAN_OVERHEAD_V4,
};
use weft_store::{Compare, Op, Store};

use crate::read;

#[derive(Debug, Clone, Default)]
pub struct NetworkSpec {
    pub name: String,
    pub subnets: Vec<String>,
    pub vni: Option<u32>,
    pub mtu: Option<u32>,
    pub datapath: DatapathChoice,
    /// Frames between hosts sealed by the userspace engine.
    pub encrypted: bool,
    /// Encapsulation of a plain network: VXLAN (default) or GRE.
    pub encap: Encap,
    /// Fingerprint of the network's pre-shared key, if it has one (the key stays on the hosts).
    pub psk_fingerprint: Option<String>,
    /// Containers get no way beyond the overlay (egress is on unless this is set).
    pub no_egress: bool,
    pub labels: BTreeMap<String, String>,
}

/// VNIs picked automatically start here, leaving low numbers to users who pick their own.
const AUTO_VNI_START: u32 = 4096;
const CREATE_ATTEMPTS: usize = 20;

pub async fn create(store: &dyn Store, spec: &NetworkSpec) -> Result<Network> {
    validate::name("network", &spec.name)?;
    let (subnet4, subnet6) = validate::subnets(&spec.subnets)?;
    if let Some(v) = spec.vni {
        validate::vni(v)?;
    }
    if spec.psk_fingerprint.is_some() && !spec.encrypted {
        bail!("a pre-shared key only applies to an encrypted network: add --encrypt");
    }
    if spec.encrypted && spec.datapath == DatapathChoice::Kernel {
        bail!("an encrypted network needs the userspace datapath; drop --datapath kernel");
    }
    if spec.encap == Encap::Gre && spec.encrypted {
        bail!("--encap gre applies to plain networks: an encrypted network has its own framing (the encrypted transport over UDP)");
    }
    if spec.encap == Encap::Gre && spec.datapath == DatapathChoice::Kernel {
        bail!("a GRE network is carried by weft's userspace engine on every host; drop --datapath kernel");
    }
    let overhead = match (spec.encrypted, spec.encap) {
        (true, _) => ENCRYPTED_OVERHEAD_V4,
        (false, Encap::Gre) => GRE_OVERHEAD_V4,
        (false, Encap::Vxlan) => VXLAN_OVERHEAD_V4,
    };
    let mtu = spec.mtu.unwrap_or(DEFAULT_UNDERLAY_MTU - overhead);
    validate::mtu(mtu, subnet6.is_some())?;

    for _ in 0..CREATE_ATTEMPTS {
        let guard = store.get(keys::NETWORKS_GUARD).await?;
        let (existing, _) = read::list::<Network>(store, keys::NETWORKS).await?;
        if existing.iter().any(|(n, _)| n.name == spec.name) {
            bail!("network {:?} already exists", spec.name);
        }
        for (other, _) in &existing {
            let mut theirs = vec![IpNet::V4(other.subnet4)];
            theirs.extend(other.subnet6.map(IpNet::V6));
            let mut ours = vec![IpNet::V4(subnet4)];
            ours.extend(subnet6.map(IpNet::V6));
            for a in &ours {
                if let Some(b) = theirs.iter().find(|b| validate::overlaps(*a, **b)) {
                    bail!("subnet {a} overlaps subnet {b} of network {:?}", other.name);
                }
            }
        }
        let used: Vec<u32> = existing.iter().map(|(n, _)| n.vni).collect();
        let vni = match spec.vni {
            Some(v) => {
                if let Some((n, _)) = existing.iter().find(|(n, _)| n.vni == v) {
                    bail!("VNI {v} is already used by network {:?}", n.name);
                }
                v
            }
            None => (AUTO_VNI_START..=0xFF_FFFF)
                .find(|v| !used.contains(v))
                .expect("fewer networks than VNIs"),
        };
        let net = Network {
            schema: SCHEMA_VERSION,
            name: spec.name.clone(),
            vni,
            subnet4,
            subnet6,
            gateway4: weft_ipam::gateway4(subnet4),
            gateway6: subnet6.map(weft_ipam::gateway6),
            mtu,
            encrypted: spec.encrypted,
            psk_fingerprint: spec.psk_fingerprint.clone(),
            datapath: spec.datapath,
            encap: spec.encap,
            egress: !spec.no_egress,
            labels: spec.labels.clone(),
        };
        // The guard key makes the overlap and VNI checks above atomic with the create: any concurrent
        // create or remove bumps it, and our transaction then fails and is retried.
        let guard_cmp = match &guard {
            Some(kv) => Compare::ModRevision(keys::NETWORKS_GUARD.into(), kv.mod_revision),
            None => Compare::Absent(keys::NETWORKS_GUARD.into()),
        };
        let res = store
            .txn(
                vec![
                    guard_cmp,
                    Compare::Absent(keys::network(&net.name)),
                    Compare::Absent(keys::vni(vni)),
                ],
                vec![
                    Op::Put {
                        key: keys::network(&net.name),
                        value: net.encode(),
                        lease: None,
                    },
                    Op::Put {
                        key: keys::vni(vni),
                        value: net.name.clone().into_bytes(),
                        lease: None,
                    },
                    Op::Put {
                        key: keys::NETWORKS_GUARD.into(),
                        value: net.name.clone().into_bytes(),
                        lease: None,
                    },
                ],
            )
            .await?;
        if res.succeeded {
            return Ok(net);
        }
    }
    bail!(
        "network {:?}: too much concurrent change in the store, try again",
        spec.name
    )
}

pub async fn get(store: &dyn Store, name: &str) -> Result<Network> {
    match read::get::<Network>(store, &keys::network(name)).await? {
        Some((n, _)) => Ok(n),
        None => bail!("no such network: {name:?}"),
    }
}

pub async fn list(store: &dyn Store) -> Result<Vec<Network>> {
    Ok(read::list::<Network>(store, keys::NETWORKS)
        .await?
        .0
        .into_iter()
        .map(|(n, _)| n)
        .collect())
}

pub async fn endpoints(store: &dyn Store, network: &str) -> Result<Vec<Endpoint>> {
    Ok(read::list::<Endpoint>(store, &keys::endpoints_of(network))
        .await?
        .0
        .into_iter()
        .map(|(e, _)| e)
        .collect())
}

#[derive(Debug, Serialize)]
pub struct NetworkDetail {
    #[serde(flatten)]
    pub network: Network,
    pub endpoints: Vec<Endpoint>,
    pub allocations: BTreeMap<String, Allocation>,
    /// The host ports its endpoints publish, as `HOST/PROTO/PORT`.
    pub ports: BTreeMap<String, PortClaim>,
}

pub async fn inspect(store: &dyn Store, name: &str) -> Result<NetworkDetail> {
    let network = get(store, name).await?;
    let endpoints = endpoints(store, name).await?;
    let (allocs, _) = read::list::<Allocation>(store, &keys::ipam_of(name)).await?;
    let prefix = keys::ipam_of(name);
    let allocations = allocs
        .into_iter()
        .map(|(a, kv)| (kv.key[prefix.len()..].to_string(), a))
        .collect();
    let (claims, _) = read::list::<PortClaim>(store, keys::PORTS).await?;
    let ports = claims
        .into_iter()
        .filter(|(c, _)| c.network == name)
        .map(|(c, kv)| (kv.key[keys::PORTS.len()..].to_string(), c))
        .collect();
    Ok(NetworkDetail {
        network,
        endpoints,
        allocations,
        ports,
    })
}

/// Removes a network. With endpoints present it refuses unless `force`, in which case their records
/// go too and each host's agent removes the interfaces it holds for them.
pub async fn remove(store: &dyn Store, name: &str, force: bool) -> Result<usize> {
    let (net, kv) = match read::get::<Network>(store, &keys::network(name)).await? {
        Some(x) => x,
        None => bail!("no such network: {name:?}"),
    };
    let eps = endpoints(store, name).await?;
    if !eps.is_empty() && !force {
        let mut hosts: Vec<&str> = eps.iter().map(|e| e.host.as_str()).collect();
        hosts.sort();
        hosts.dedup();
        let exposed = eps
            .iter()
            .filter(|e| e.kind == weft_model::EndpointKind::Host)
            .count();
        let how = if exposed > 0 {
            format!("detach them ({exposed} are hosts: `weft hide {name}` there) first")
        } else {
            "detach them first".to_string()
        };
        bail!(
            "network {name:?} still has {} endpoint(s) on host(s) {}: {how} or use --force",
            eps.len(),
            hosts.join(", ")
        );
    }
    let (ep_kvs, _) = store.list(&keys::endpoints_of(name)).await?;
    let (ipam_kvs, _) = store.list(&keys::ipam_of(name)).await?;
    let mut ops: Vec<Op> = vec![
        Op::Delete {
            key: keys::network(name),
        },
        Op::Delete {
            key: keys::vni(net.vni),
        },
        Op::Put {
            key: keys::NETWORKS_GUARD.into(),
            value: name.as_bytes().to_vec(),
            lease: None,
        },
    ];
    ops.extend(ep_kvs.iter().map(|kv| Op::Delete {
        key: kv.key.clone(),
    }));
    ops.extend(ipam_kvs.iter().map(|kv| Op::Delete {
        key: kv.key.clone(),
    }));
    for ep in &eps {
        ops.extend(crate::ports::release(store, ep).await?);
    }
    let res = store
        .txn(
            vec![Compare::ModRevision(keys::network(name), kv.mod_revision)],
            ops,
        )
        .await?;
    if !res.succeeded {
        bail!("network {name:?} changed while removing it; try again");
    }
    Ok(ep_kvs.len())
}
