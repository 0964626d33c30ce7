//! Attach: a container joins a network on this host. Records first (so that the agent never mistakes
//! the new interfaces for orphans), then the datapath, then the veth pair; any failure undoes all.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::os::fd::AsFd;

use anyhow::{anyhow, bail, Context, Result};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use weft_model::{
    keys, validate, Allocation, Endpoint, EndpointKind, Mac, Network, Record, SCHEMA_VERSION,
};
use weft_netlink::{Netlink, Netns, NetnsTarget};
use weft_reconcile::names;
use weft_store::{Compare, LeaseId, Op, Store};

use crate::{hosts, networks, ports, read, resolver};

#[derive(Debug, Clone)]
pub struct AttachRequest {
    pub target: String,
    pub network: String,
    pub ips: Vec<String>,
    pub mac: Option<String>,
    pub ifname: String,
    pub name: Option<String>,
    /// More names the container answers to in DNS (after `name`).
    pub aliases: Vec<String>,
    pub host: String,
    /// `HOSTPORT:PORT[/tcp|udp]` specs.
    pub publish: Vec<String>,
    /// Recorded on the endpoint: who made it and why (the CNI plugin keeps its container ID and
    /// interface name here, so that DEL and GC find what it made).
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct AttachOutcome {
    pub endpoint: Endpoint,
    /// False when the container was already attached (attach is idempotent).
    pub created: bool,
}

const ALLOC_ATTEMPTS: usize = 64;

/// The canonical form of a target as recorded in endpoints, so that one container named two ways
/// (name, path) is recognised.
pub fn canonical_target(target: &str) -> Result<String> {
    let t: NetnsTarget = target.parse().map_err(|e| anyhow!("{e}"))?;
    Ok(t.path().display().to_string())
}

pub async fn attach(store: &dyn Store, req: &AttachRequest) -> Result<AttachOutcome> {
    validate::ifname(&req.ifname)?;
    if let Some(n) = &req.name {
        validate::name("container", n)?;
    }
    for a in &req.aliases {
        validate::name("alias", a)?;
    }
    let mac: Option<Mac> = match &req.mac {
        Some(m) => {
            let m: Mac = m.parse().map_err(|e: String| anyhow!(e))?;
            if !m.is_unicast() {
                bail!("MAC address {m} is not a unicast address");
            }
            Some(m)
        }
        None => None,
    };
    let mut publish = weft_model::ports::parse_all(&req.publish)?;
    publish.sort();
    let net = networks::get(store, &req.network).await?;
    ports::check_network(&net, &publish)?;
    let (want4, want6) = requested_addresses(&net, &req.ips)?;
    let target: NetnsTarget = req.target.parse().map_err(|e| anyhow!("{e}"))?;
    let container = target.path().display().to_string();
    let netns = Netns::open(&target)?;
    let (host, lease) = hosts::registered(store, &req.host).await?;
    weft_reconcile::choose(&host, &net).map_err(|e| anyhow!(e))?;

    let cnl = Netlink::open_in(&netns).context("opening netlink in the container")?;
    let existing: Vec<Endpoint> = networks::endpoints(store, &net.name)
        .await?
        .into_iter()
        .filter(|e| e.host == req.host && e.container == container)
        .collect();
    for e in existing {
        let link = cnl.link_by_name(&e.ifname).await?;
        if e.ifname == req.ifname && link.as_ref().is_some_and(|l| l.mac.octets() == e.mac.0) {
            let same4 = want4.is_none_or(|a| a == e.ipv4);
            let same6 = want6.is_none() || want6 == e.ipv6;
            if e.publish != publish {
                bail!(
                    "{} is already attached to {} publishing {}; detach it first to change published ports",
                    req.target,
                    net.name,
                    if e.publish.is_empty() {
                        "nothing".to_string()
                    } else {
                        e.publish.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
                    }
                );
            }
            if !(same4 && same6) {
                bail!(
                    "{} is already attached to {} with {}; detach it first to change addresses",
                    req.target,
                    net.name,
                    e.ipv4
                );
            }
            return Ok(AttachOutcome {
                endpoint: e,
                created: false,
            });
        }
        if link.is_none() {
            // A record whose interface is gone (the container was recreated): drop it, attach anew.
            delete_records(store, &e).await?;
        }
    }
    if cnl.link_by_name(&req.ifname).await?.is_some() {
        bail!(
            "{} already has an interface named {}; choose another with --ifname",
            req.target,
            req.ifname
        );
    }

    let nl = Netlink::open()?;
    let (id, host_ifname) = loop {
        let id = format!("{:016x}", rand::random::<u64>());
        let hn = names::veth_host(&id);
        if nl.link_by_name(&hn).await?.is_none() {
            break (id, hn);
        }
    };
    let mut ep = Endpoint {
        schema: SCHEMA_VERSION,
        id: id.clone(),
        network: net.name.clone(),
        host: req.host.clone(),
        container,
        ifname: req.ifname.clone(),
        host_ifname: host_ifname.clone(),
        mac: mac.unwrap_or(Mac::ZERO),
        ipv4: Ipv4Net::new(std::net::Ipv4Addr::UNSPECIFIED, 32).expect("valid"),
        ipv6: None,
        names: dns_names(req.name.as_deref(), &req.aliases),
        labels: req.labels.clone(),
        kind: EndpointKind::Container,
        publish,
    };
    allocate_and_record(store, &net, &mut ep, mac, want4, want6, lease).await?;

    let done = async {
        plumb(store, &nl, &cnl, &netns, &host, &net, &ep).await?;
        // Last: nothing after it can fail, so a written resolv.conf never needs undoing.
        resolver::configure(store, &host.id, host.dns_domain.as_deref(), &ep.container).await
    };
    match done.await {
        Ok(_) => {
            if let Some(domain) = &host.dns_domain {
                let t = resolver::READY_TIMEOUT;
                match resolver::wait_answered(&netns, &ep, domain, t).await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(
                        "the resolver of host {} did not answer {}'s name within {} s; is its agent running?",
                        ep.host, req.target, t.as_secs()
                    ),
                    Err(e) => tracing::warn!("checking the resolver: {e:#}"),
                }
            }
            Ok(AttachOutcome {
                endpoint: ep,
                created: true,
            })
        }
        Err(e) => {
            // Deleting the host end removes the pair wherever the other end is.
            if let Err(ue) = nl.delete_link(&host_ifname).await {
                tracing::error!("rollback: deleting {host_ifname}: {ue}");
            }
            if let Err(ue) = delete_records(store, &ep).await {
                tracing::error!("rollback: deleting records of {}: {ue:#}", ep.id);
            }
            Err(e.context(format!(
                "attaching {} to {}; rolled back",
                req.target, net.name
            )))
        }
    }
}

/// The endpoint's DNS names: its name first (what PTR answers), then the aliases, each once.
fn dns_names(name: Option<&str>, aliases: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in name.into_iter().chain(aliases.iter().map(String::as_str)) {
        if !out.iter().any(|o| o == n) {
            out.push(n.to_string());
        }
    }
    out
}

pub(crate) fn requested_addresses(
    net: &Network,
    ips: &[String],
) -> Result<(Option<Ipv4Net>, Option<Ipv6Net>)> {
    let mut v4 = None;
    let mut v6 = None;
    for s in ips {
        let ip = validate::parse_cidr(s)?;
        match ip {
            IpNet::V4(a) => {
                if v4.replace(a).is_some() {
                    bail!("more than one IPv4 --ip given");
                }
                weft_ipam::check_static(IpNet::V4(net.subnet4), ip)?;
            }
            IpNet::V6(a) => {
                let Some(s6) = net.subnet6 else {
                    bail!(
                        "network {} has no IPv6 subnet, cannot use --ip {ip}",
                        net.name
                    );
                };
                if v6.replace(a).is_some() {
                    bail!("more than one IPv6 --ip given");
                }
                weft_ipam::check_static(IpNet::V6(s6), ip)?;
            }
        }
    }
    Ok((v4, v6))
}

/// Allocates the endpoint's addresses and writes its record in one transaction: every address key
/// must be absent, so concurrent attaches anywhere in the cluster never share an address (and
/// every published host port of this host, so that no two endpoints share one).
pub(crate) async fn allocate_and_record(
    store: &dyn Store,
    net: &Network,
    ep: &mut Endpoint,
    mac: Option<Mac>,
    want4: Option<Ipv4Net>,
    want6: Option<Ipv6Net>,
    lease: LeaseId,
) -> Result<()> {
    let alloc = Allocation {
        schema: SCHEMA_VERSION,
        endpoint: ep.id.clone(),
        host: ep.host.clone(),
    };
    // Addresses others tried and lost in this loop are skipped on the next round.
    let mut lost: HashSet<IpAddr> = HashSet::new();
    for _ in 0..ALLOC_ATTEMPTS {
        ports::check_free(store, ep).await?;
        let mut taken = crate::addresses::taken(store, &net.name).await?;
        taken.extend(lost.iter().copied());
        let a4 = match want4 {
            Some(a) => {
                if taken.contains(&IpAddr::V4(a.addr())) {
                    bail!(
                        "address {} is already taken in network {}{}",
                        a.addr(),
                        net.name,
                        owner(store, net, IpAddr::V4(a.addr())).await
                    );
                }
                a
            }
            None => match weft_ipam::next_free(IpNet::V4(net.subnet4), &taken)? {
                IpAddr::V4(a) => Ipv4Net::new(a, net.subnet4.prefix_len())?,
                IpAddr::V6(_) => unreachable!("v4 subnet yields v4"),
            },
        };
        let a6 = match (net.subnet6, want6) {
            (_, Some(a)) => {
                if taken.contains(&IpAddr::V6(a.addr())) {
                    bail!(
                        "address {} is already taken in network {}{}",
                        a.addr(),
                        net.name,
                        owner(store, net, IpAddr::V6(a.addr())).await
                    );
                }
                Some(a)
            }
            (Some(s6), None) => match weft_ipam::next_free(IpNet::V6(s6), &taken)? {
                IpAddr::V6(a) => Some(Ipv6Net::new(a, s6.prefix_len())?),
                IpAddr::V4(_) => unreachable!("v6 subnet yields v6"),
            },
            (None, None) => None,
        };
        ep.ipv4 = a4;
        ep.ipv6 = a6;
        // Derived from the address unless given, as Docker does: a reused address keeps its MAC,
        // so peers' ARP/ND caches stay right and nobody waits out a stale entry.
        ep.mac = mac.unwrap_or_else(|| Mac::from_ipv4(a4.addr()));
        let mut compares = vec![Compare::Absent(keys::endpoint(&net.name, &ep.id))];
        let mut ops = vec![Op::Put {
            key: keys::endpoint(&net.name, &ep.id),
            value: ep.encode(),
            lease: Some(lease),
        }];
        for a in ep.addresses() {
            let k = keys::ipam(&net.name, a.addr());
            compares.push(Compare::Absent(k.clone()));
            ops.push(Op::Put {
                key: k,
                value: alloc.encode(),
                lease: Some(lease),
            });
        }
        let (c, o) = ports::claim(ep, lease);
        compares.extend(c);
        ops.extend(o);
        // The network must still exist, unchanged, or the endpoint would be an orphan.
        let (_, net_kv) = read::get::<Network>(store, &keys::network(&net.name))
            .await?
            .ok_or_else(|| anyhow!("network {:?} was removed meanwhile", net.name))?;
        compares.push(Compare::ModRevision(
            keys::network(&net.name),
            net_kv.mod_revision,
        ));
        if store.txn(compares, ops).await?.succeeded {
            return Ok(());
        }
        lost.insert(IpAddr::V4(a4.addr()));
        if let Some(a) = a6 {
            lost.insert(IpAddr::V6(a.addr()));
        }
        // A static address that lost the race is reported by the check at the top of the next round.
        if want4.is_some() {
            lost.remove(&IpAddr::V4(a4.addr()));
        }
        if let Some(a) = want6 {
            lost.remove(&IpAddr::V6(a.addr()));
        }
    }
    Err(anyhow::Error::new(Contention(format!(
        "could not allocate an address in network {}: too much contention, try again",
        net.name
    ))))
}

/// Every allocation attempt lost a race to concurrent attaches: worth retrying later (the CNI
/// plugin answers "try again later" for it).
#[derive(Debug)]
pub struct Contention(pub String);

impl std::fmt::Display for Contention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Contention {}

async fn owner(store: &dyn Store, net: &Network, addr: IpAddr) -> String {
    crate::addresses::owner(store, &net.name, addr).await
}

/// Removes an endpoint's record and its allocations in one transaction.
pub async fn delete_records(store: &dyn Store, ep: &Endpoint) -> Result<()> {
    let mut ops = vec![Op::Delete {
        key: keys::endpoint(&ep.network, &ep.id),
    }];
    for a in ep.addresses() {
        let k = keys::ipam(&ep.network, a.addr());
        // Only release addresses this endpoint owns.
        if let Some((al, _)) = read::get::<Allocation>(store, &k).await? {
            if al.endpoint == ep.id {
                ops.push(Op::Delete { key: k });
            }
        }
    }
    ops.extend(ports::release(store, ep).await?);
    store.txn(vec![], ops).await?;
    Ok(())
}

/// Programs this host's side of the endpoint's network now, from the store as it stands (so that
/// the container reaches its peers as soon as its interface is up; the agent would get there too),
/// and creates the endpoint's veth pair with the host end up on the network's bridge. The
/// container end stays in this namespace, named `peer`, for the caller to hand over: `attach`
/// moves it itself, Docker's plugin lets Docker move it. The endpoint's record must be written.
/// Returns the cluster state it programmed from, for the firewall once the container is up.
pub async fn plug_host_side(
    store: &dyn Store,
    nl: &Netlink,
    host: &weft_model::Host,
    net: &Network,
    ep: &Endpoint,
    peer: &str,
) -> Result<weft_reconcile::ClusterState> {
    let (state, _) = crate::state::load(store).await?;
    let want = weft_reconcile::desired(&ep.host, &state);
    let d = want
        .get(&net.name)
        .ok_or_else(|| anyhow!("endpoint record of {} vanished while plugging it in", ep.id))?;
    weft_datapath::prepare_attach(d, host.underlay, host.vxlan_port).await?;
    let bridge = nl
        .link_by_name(&d.bridge)
        .await?
        .ok_or_else(|| anyhow!("bridge {} missing after creating it", d.bridge))?;
    nl.create_veth(&ep.host_ifname, peer, net.mtu).await?;
    nl.set_master(&ep.host_ifname, bridge.index).await?;
    nl.set_up(&ep.host_ifname).await?;
    Ok(state)
}

async fn plumb(
    store: &dyn Store,
    nl: &Netlink,
    cnl: &Netlink,
    netns: &Netns,
    host: &weft_model::Host,
    net: &Network,
    ep: &Endpoint,
) -> Result<()> {
    let peer = names::veth_peer(&ep.id);
    let state = plug_host_side(store, nl, host, net, ep, &peer).await?;
    nl.move_to_netns(&peer, netns.as_fd()).await?;
    cnl.rename(&peer, &ep.ifname).await?;
    cnl.set_mac(&ep.ifname, weft_netlink::MacAddr(ep.mac.0))
        .await?;
    cnl.set_mtu(&ep.ifname, net.mtu).await?;
    for a in ep.addresses() {
        cnl.add_address(&ep.ifname, a).await?;
    }
    // A test hook to prove rollback from the worst place: everything made, nothing finished.
    if std::env::var("WEFT_FAILPOINT").is_ok_and(|f| f == "attach-before-up") {
        bail!("failpoint attach-before-up");
    }
    cnl.set_up(&ep.ifname).await?;
    // The resolver listens on a loopback address in the container.
    cnl.set_up("lo").await?;
    if net.egress {
        default_routes(cnl, net, ep).await?;
    }
    crate::firewall::apply_state(&ep.host, &state).await?;
    Ok(())
}

/// The container's way out: a default route via the network's gateway (its own host's bridge),
/// unless it already has one (from a network it joined before: the first one keeps it).
async fn default_routes(cnl: &Netlink, net: &Network, ep: &Endpoint) -> Result<()> {
    let mut gateways = vec![(IpNet::V4(Ipv4Net::default()), IpAddr::V4(net.gateway4))];
    if let (Some(g6), Some(_)) = (net.gateway6, ep.ipv6) {
        gateways.push((IpNet::V6(Ipv6Net::default()), IpAddr::V6(g6)));
    }
    for (default, gw) in gateways {
        if cnl.routes_to(default).await?.is_empty() {
            cnl.add_route(default, Some(gw), Some(&ep.ifname)).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_then_aliases_once() {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            dns_names(Some("web"), &a(&["www", "web", "www"])),
            a(&["web", "www"])
        );
        assert_eq!(dns_names(None, &a(&["svc"])), a(&["svc"]));
        assert!(dns_names(None, &[]).is_empty());
    }
}
