//! Building the lab's namespaces: the underlay bridge in `P-ul`, one netns per node (host or etcd
//! member) plugged into it by a veth (`ul0` on the node's side), and bare container namespaces.
//! Kernel objects go through `weft-netlink`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsFd;

use anyhow::{Context, Result};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use weft_netlink::{sysctl, Netlink, Netns};

use crate::netns;
use crate::state::HostEntry;
use crate::topology::{
    Lab, OUTSIDE_ADDRS, OUTSIDE_ADDRS6, OUTSIDE_NAME, OUTSIDE_NET, OUTSIDE_NET6, OUTSIDE_UNDERLAY,
    OUTSIDE_UNDERLAY6, UNDERLAY6_PREFIX_LEN, UNDERLAY_BRIDGE, UNDERLAY_IFNAME, UNDERLAY_MTU,
    UNDERLAY_PREFIX_LEN,
};

/// Sysctls of every lab netns: IPv6 on, and bridged traffic skips netfilter (br_netfilter is built
/// in here and on by default in each netns).
pub const LAB_SYSCTLS: [(&str, &str); 2] = [
    ("net.ipv6.conf.all.disable_ipv6", "0"),
    ("net.ipv6.conf.default.disable_ipv6", "0"),
];
/// Set where present (absent without br_netfilter: nothing to turn off then).
pub const BRIDGE_NF_SYSCTLS: [(&str, &str); 3] = [
    ("net.bridge.bridge-nf-call-iptables", "0"),
    ("net.bridge.bridge-nf-call-ip6tables", "0"),
    ("net.bridge.bridge-nf-call-arptables", "0"),
];

pub fn lab_sysctls(ns: &Netns) -> Result<()> {
    sysctl::set_all(Some(ns), &LAB_SYSCTLS)?;
    for (k, v) in BRIDGE_NF_SYSCTLS {
        match sysctl::set(Some(ns), k, v) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {
                tracing::debug!("{k} not present: br_netfilter not loaded")
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Creates `P-ul` with the underlay bridge.
pub async fn create_underlay(lab: &Lab) -> Result<()> {
    let name = lab.ul_ns();
    let ns = netns::create(&name)?;
    async {
        lab_sysctls(&ns)?;
        let nl = Netlink::open_in(&ns)?;
        nl.set_up("lo").await?;
        nl.ensure_bridge(UNDERLAY_BRIDGE, UNDERLAY_MTU).await?;
        anyhow::Ok(())
    }
    .await
    .with_context(|| format!("building the underlay bridge in {name}"))
}

/// Creates a node netns plugged into the underlay: `ul0` (MTU 1500) with `addr`/24 (and `addr6`/64
/// when given), lo up, lab sysctls. `node` names its bridge port in `P-ul` (`h1`, `e2`).
pub async fn create_node(
    lab: &Lab,
    name: &str,
    node: &str,
    addr: Ipv4Addr,
    addr6: Option<Ipv6Addr>,
) -> Result<()> {
    let ns = netns::create(name)?;
    let port = crate::topology::ul_port_name(node);
    async {
        let ul = Netlink::open_in(&netns::open(&lab.ul_ns())?)?;
        ul.create_veth_peer_in(&port, UNDERLAY_IFNAME, UNDERLAY_MTU, ns.as_fd())
            .await?;
        let br = ul.index_of(UNDERLAY_BRIDGE).await?;
        ul.set_master(&port, br).await?;
        ul.set_up(&port).await?;
        anyhow::Ok(())
    }
    .await
    .with_context(|| format!("plugging {name} into the underlay"))?;
    async {
        lab_sysctls(&ns)?;
        let nl = Netlink::open_in(&ns)?;
        nl.set_up("lo").await?;
        let net = Ipv4Net::new(addr, UNDERLAY_PREFIX_LEN)?;
        nl.add_address(UNDERLAY_IFNAME, IpNet::V4(net)).await?;
        if let Some(a6) = addr6 {
            let net6 = Ipv6Net::new(a6, UNDERLAY6_PREFIX_LEN)?;
            nl.add_address(UNDERLAY_IFNAME, IpNet::V6(net6)).await?;
        }
        nl.set_up(UNDERLAY_IFNAME).await?;
        anyhow::Ok(())
    }
    .await
    .with_context(|| format!("configuring {name}"))
}

/// Creates `P-out`, the outside world: on the underlay at [`OUTSIDE_UNDERLAY`] and
/// [`OUTSIDE_UNDERLAY6`] with the [`OUTSIDE_ADDRS`] and [`OUTSIDE_ADDRS6`] on its loopback (so that
/// they are its own whatever interface a packet came in by), and routes to [`OUTSIDE_NET`] and
/// [`OUTSIDE_NET6`] through it on every host.
pub async fn create_outside(lab: &Lab, hosts: &[HostEntry]) -> Result<()> {
    let name = lab.outside_ns();
    create_node(
        lab,
        &name,
        OUTSIDE_NAME,
        OUTSIDE_UNDERLAY,
        Some(OUTSIDE_UNDERLAY6),
    )
    .await?;
    async {
        let nl = Netlink::open_in(&netns::open(&name)?)?;
        for a in OUTSIDE_ADDRS {
            nl.add_address("lo", IpNet::V4(Ipv4Net::new(a, 32)?))
                .await?;
        }
        for a in OUTSIDE_ADDRS6 {
            nl.add_address("lo", IpNet::V6(Ipv6Net::new(a, 128)?))
                .await?;
        }
        anyhow::Ok(())
    }
    .await
    .with_context(|| format!("configuring {name}"))?;
    let routes: [(&str, IpAddr); 2] = [
        (OUTSIDE_NET, OUTSIDE_UNDERLAY.into()),
        (OUTSIDE_NET6, OUTSIDE_UNDERLAY6.into()),
    ];
    for h in hosts {
        let nl = Netlink::open_in(&netns::open(&h.netns)?)?;
        for (net, via) in routes {
            nl.add_route(net.parse()?, Some(via), None)
                .await
                .with_context(|| format!("routing {net} from {} to the outside", h.name))?;
        }
    }
    Ok(())
}

/// Creates a bare namespace (a container): lo up, lab sysctls.
pub async fn create_bare(name: &str) -> Result<()> {
    let ns = netns::create(name)?;
    async {
        lab_sysctls(&ns)?;
        Netlink::open_in(&ns)?.set_up("lo").await?;
        anyhow::Ok(())
    }
    .await
    .with_context(|| format!("configuring {name}"))
}
