use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use weft_model::{Encap, EndpointKind, Mac};

use crate::{names, ClusterState, Path};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FdbEntry {
    pub mac: Mac,
    pub dst: IpAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NeighEntry {
    pub ip: IpAddr,
    pub mac: Mac,
}

/// The datapath one host needs for one network.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetDesired {
    pub network: String,
    /// The datapath that carries the network on this host.
    pub path: Path,
    /// Frames must be sealed between hosts: a datapath that cannot must refuse the network.
    pub encrypted: bool,
    /// Fingerprint of the encrypted network's pre-shared key (the key itself is a file on each
    /// host); `None`: no PSK.
    pub psk_fingerprint: Option<String>,
    /// How plain frames travel (VXLAN or GRE); GRE networks always take the userspace path.
    pub encap: Encap,
    pub vni: u32,
    pub mtu: u32,
    pub bridge: String,
    pub vxlan: String,
    /// Unicast entries: each remote endpoint's MAC → its host's underlay address.
    pub fdb: BTreeSet<FdbEntry>,
    /// Head-end replication: every other host with endpoints in the network gets BUM traffic.
    pub flood: BTreeSet<IpAddr>,
    /// ARP/ND answered locally for every remote endpoint address.
    pub neigh: BTreeSet<NeighEntry>,
    /// The static public key (base64) of each peer host, by underlay address: encrypted networks
    /// admit exactly these.
    pub peer_keys: BTreeMap<IpAddr, String>,
    /// The encrypted transport's port of each peer host that advertises one, by underlay
    /// address (others use the default).
    pub peer_ports: BTreeMap<IpAddr, u16>,
    /// The bridge's own layer 3: its MAC, its addresses and the routes to the subnets.
    pub bridge_l3: BridgeL3,
}

/// What the host itself has on a network's bridge: the gateway (the same address on every host,
/// answered by each host's own bridge) and, when exposed, the host's own address on the network.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BridgeL3 {
    /// Fixed (not the kernel's pick, which follows the lowest port MAC and would change as
    /// containers come and go, leaving stale gateway entries in their caches); also the MAC of
    /// the host's exposed address in other hosts' entries.
    pub mac: Mac,
    /// Gateways and exposed addresses, with the subnet's prefix length.
    pub addresses: BTreeSet<IpNet>,
    /// One route per subnet out of the bridge, with the source the host uses towards it: its
    /// exposed address if it has one (so that replies from other hosts' containers come back
    /// here), else the gateway.
    pub routes: BTreeMap<IpNet, IpAddr>,
}

/// For `local`, one entry per network that has at least one endpoint on it. Remote endpoints whose
/// host record is gone (lease expired) contribute nothing. Without its own host record a host
/// knows not which datapaths it has, and gets nothing; a network its datapaths cannot carry is
/// left out (attach refuses such endpoints in the first place).
pub fn desired(local: &str, state: &ClusterState) -> BTreeMap<String, NetDesired> {
    let mut out = BTreeMap::new();
    let Some(me) = state.hosts.get(local) else {
        return out;
    };
    let local_underlay = Some(me.underlay);
    for (name, net) in &state.networks {
        if !state.endpoints_in(name).any(|e| e.host == local) {
            continue;
        }
        let Ok(path) = crate::choose(me, net) else {
            continue;
        };
        let mut d = NetDesired {
            path,
            encrypted: net.encrypted,
            psk_fingerprint: net.psk_fingerprint.clone(),
            encap: net.encap,
            network: name.clone(),
            vni: net.vni,
            mtu: net.mtu,
            bridge: names::bridge(net.vni),
            vxlan: names::vxlan(net.vni),
            bridge_l3: bridge_l3(
                me.underlay,
                net,
                state
                    .endpoints_in(name)
                    .filter(|e| e.host == local && e.kind == EndpointKind::Host),
            ),
            ..Default::default()
        };
        for ep in state.endpoints_in(name) {
            if ep.host == local {
                continue;
            }
            let Some(host) = state.hosts.get(&ep.host) else {
                continue;
            };
            if Some(host.underlay) == local_underlay {
                continue;
            }
            d.fdb.insert(FdbEntry {
                mac: ep.mac,
                dst: host.underlay,
            });
            d.flood.insert(host.underlay);
            if let Some(k) = &host.public_key {
                d.peer_keys.insert(host.underlay, k.clone());
            }
            if let Some(p) = host.secure_port {
                d.peer_ports.insert(host.underlay, p);
            }
            d.neigh.insert(NeighEntry {
                ip: IpAddr::V4(ep.ipv4.addr()),
                mac: ep.mac,
            });
            if let Some(v6) = ep.ipv6 {
                d.neigh.insert(NeighEntry {
                    ip: IpAddr::V6(v6.addr()),
                    mac: ep.mac,
                });
            }
        }
        out.insert(name.clone(), d);
    }
    out
}

fn bridge_l3<'a>(
    underlay: IpAddr,
    net: &weft_model::Network,
    exposed: impl Iterator<Item = &'a weft_model::Endpoint>,
) -> BridgeL3 {
    let mut l3 = BridgeL3 {
        mac: names::bridge_mac(underlay, net.vni),
        ..Default::default()
    };
    let s4 = IpNet::V4(net.subnet4.trunc());
    l3.addresses
        .insert(IpNet::new(IpAddr::V4(net.gateway4), s4.prefix_len()).expect("valid"));
    l3.routes.insert(s4, IpAddr::V4(net.gateway4));
    let s6 = net.subnet6.map(|s| IpNet::V6(s.trunc()));
    if let (Some(s6), Some(g6)) = (s6, net.gateway6) {
        l3.addresses
            .insert(IpNet::new(IpAddr::V6(g6), s6.prefix_len()).expect("valid"));
        l3.routes.insert(s6, IpAddr::V6(g6));
    }
    for ep in exposed {
        for a in ep.addresses() {
            l3.addresses.insert(a);
            l3.routes.insert(a.trunc(), a.addr());
        }
    }
    l3
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use weft_model::{keys, Endpoint, Host, Network, Record, SCHEMA_VERSION};

    pub fn host(id: &str, ip: &str) -> Host {
        Host {
            schema: SCHEMA_VERSION,
            id: id.into(),
            name: id.into(),
            underlay: ip.parse().unwrap(),
            vxlan_port: 4789,
            secure_port: None,
            public_key: None,
            capabilities: vec![
                weft_model::CAP_KERNEL_VXLAN.into(),
                weft_model::CAP_USERSPACE_VXLAN.into(),
            ],
            agent_version: "t".into(),
            started_at_ms: 0,
            dns_domain: None,
        }
    }

    pub fn network(name: &str, vni: u32, v4: &str) -> Network {
        let subnet4: ipnet::Ipv4Net = v4.parse().unwrap();
        Network {
            schema: SCHEMA_VERSION,
            name: name.into(),
            vni,
            subnet4,
            subnet6: Some(format!("fd00:{vni}::/64").parse().unwrap()),
            gateway4: "10.0.0.1".parse().unwrap(),
            gateway6: None,
            mtu: 1450,
            encrypted: false,
            psk_fingerprint: None,
            datapath: Default::default(),
            encap: Default::default(),
            egress: true,
            labels: Default::default(),
        }
    }

    pub fn endpoint(net: &str, id: &str, host: &str, last: u8) -> Endpoint {
        Endpoint {
            schema: SCHEMA_VERSION,
            id: id.into(),
            network: net.into(),
            host: host.into(),
            container: id.into(),
            ifname: "eth0".into(),
            host_ifname: names::veth_host(id),
            mac: Mac::from_ipv4(std::net::Ipv4Addr::new(10, 0, 0, last)),
            ipv4: format!("10.0.0.{last}/24").parse().unwrap(),
            ipv6: Some(format!("fd00::{last}/64").parse().unwrap()),
            names: vec![],
            labels: Default::default(),
            kind: Default::default(),
            publish: vec![],
        }
    }

    pub fn cluster() -> ClusterState {
        let mut s = ClusterState::default();
        for (id, ip) in [
            ("h1", "192.0.2.1"),
            ("h2", "192.0.2.2"),
            ("h3", "192.0.2.3"),
        ] {
            s.apply(&keys::host(id), Some(&host(id, ip).encode()))
                .unwrap();
        }
        s.apply(
            &keys::network("a"),
            Some(&network("a", 10, "10.0.0.0/24").encode()),
        )
        .unwrap();
        s.apply(
            &keys::network("b"),
            Some(&network("b", 11, "10.1.0.0/24").encode()),
        )
        .unwrap();
        for (net, id, h, last) in [
            ("a", "e1", "h1", 2),
            ("a", "e2", "h2", 3),
            ("a", "e3", "h3", 4),
            ("a", "e4", "h3", 5),
            ("b", "f1", "h2", 2),
        ] {
            s.apply(
                &keys::endpoint(net, id),
                Some(&endpoint(net, id, h, last).encode()),
            )
            .unwrap();
        }
        s
    }

    #[test]
    fn only_networks_with_local_endpoints() {
        let s = cluster();
        let d1 = desired("h1", &s);
        assert_eq!(d1.keys().collect::<Vec<_>>(), vec!["a"]);
        let d2 = desired("h2", &s);
        assert_eq!(d2.keys().collect::<Vec<_>>(), vec!["a", "b"]);
        // h2 is alone in b: a bridge but nothing remote.
        assert!(d2["b"].fdb.is_empty() && d2["b"].flood.is_empty());
    }

    #[test]
    fn remote_entries() {
        let d = &desired("h1", &cluster())["a"];
        assert_eq!(d.bridge, "wbr10");
        assert_eq!(d.vxlan, "wvx10");
        assert_eq!(d.fdb.len(), 3);
        let flood: Vec<String> = d.flood.iter().map(|a| a.to_string()).collect();
        assert_eq!(flood, vec!["192.0.2.2", "192.0.2.3"]);
        // v4 + v6 for each of the three remote endpoints.
        assert_eq!(d.neigh.len(), 6);
        assert!(d.neigh.iter().all(|n| n.ip.to_string() != "10.0.0.2"));
    }

    #[test]
    fn encrypted_networks_carry_keys_and_fingerprint() {
        let mut s = cluster();
        let mut h2 = host("h2", "192.0.2.2");
        h2.public_key = Some("k2".into());
        h2.secure_port = Some(51999);
        s.apply(&keys::host("h2"), Some(&h2.encode())).unwrap();
        let mut me = host("h1", "192.0.2.1");
        me.capabilities.push(weft_model::CAP_ENCRYPT.into());
        s.apply(&keys::host("h1"), Some(&me.encode())).unwrap();
        let mut a = network("a", 10, "10.0.0.0/24");
        a.encrypted = true;
        a.psk_fingerprint = Some("f00d".into());
        s.apply(&keys::network("a"), Some(&a.encode())).unwrap();
        let d = &desired("h1", &s)["a"];
        assert!(d.encrypted);
        assert_eq!(d.path, Path::Userspace);
        assert_eq!(d.psk_fingerprint.as_deref(), Some("f00d"));
        // h3 publishes no key: it is in the flood list but cannot be sealed for.
        let keys: Vec<(String, String)> = d
            .peer_keys
            .iter()
            .map(|(a, k)| (a.to_string(), k.clone()))
            .collect();
        assert_eq!(keys, vec![("192.0.2.2".to_string(), "k2".to_string())]);
        // h2 names its secure port; h3's record (an older agent's) names none: the default.
        let ports: Vec<(String, u16)> = d
            .peer_ports
            .iter()
            .map(|(a, p)| (a.to_string(), *p))
            .collect();
        assert_eq!(ports, vec![("192.0.2.2".to_string(), 51999)]);
    }

    #[test]
    fn bridge_holds_the_gateway_and_an_exposed_address() {
        let mut s = cluster();
        let d = &desired("h1", &s)["a"];
        let text = |d: &NetDesired| {
            let a: Vec<String> = d
                .bridge_l3
                .addresses
                .iter()
                .map(|a| a.to_string())
                .collect();
            let r: Vec<String> = d
                .bridge_l3
                .routes
                .iter()
                .map(|(n, src)| format!("{n} src {src}"))
                .collect();
            (a, r)
        };
        assert_eq!(
            text(d),
            (
                vec!["10.0.0.1/24".to_string()],
                vec!["10.0.0.0/24 src 10.0.0.1".to_string()]
            )
        );
        assert_eq!(
            d.bridge_l3.mac,
            names::bridge_mac("192.0.2.1".parse().unwrap(), 10)
        );
        // h1 exposed at 10.0.0.9: the bridge holds it too and the host sources from it.
        let mut e = endpoint("a", "x1", "h1", 9);
        e.kind = EndpointKind::Host;
        e.ipv6 = None;
        s.apply(&keys::endpoint("a", "x1"), Some(&e.encode()))
            .unwrap();
        let d = &desired("h1", &s)["a"];
        assert_eq!(
            text(d),
            (
                vec!["10.0.0.1/24".to_string(), "10.0.0.9/24".to_string()],
                vec!["10.0.0.0/24 src 10.0.0.9".to_string()]
            )
        );
        // Other hosts reach the exposed address like an endpoint's.
        let d2 = &desired("h2", &s)["a"];
        assert!(d2.neigh.iter().any(|n| n.ip.to_string() == "10.0.0.9"));
        // The exposure alone keeps the network on h1.
        s.apply(&keys::endpoint("a", "e1"), None).unwrap();
        assert!(desired("h1", &s).contains_key("a"));
    }

    #[test]
    fn dead_host_contributes_nothing() {
        let mut s = cluster();
        s.apply(&keys::host("h3"), None).unwrap();
        let d = &desired("h1", &s)["a"];
        assert_eq!(d.fdb.len(), 1);
        assert_eq!(d.flood.len(), 1);
    }
}
