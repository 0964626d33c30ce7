//! What a host's packet filter must do for the networks it carries (pure): the gateway kept off
//! the overlay, egress masqueraded, networks kept apart when routed, published ports forwarded.
//! `weft-firewall` turns it into rules.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use weft_model::{EndpointKind, Publish};

use crate::{names, ClusterState, NetDesired};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostFirewall {
    /// By network name.
    pub networks: BTreeMap<String, NetFirewall>,
}

impl HostFirewall {
    /// Whether the host must forward IPv4 / IPv6 between its interfaces.
    pub fn forwarding(&self) -> (bool, bool) {
        let routed = |n: &&NetFirewall| n.egress || !n.published.is_empty();
        let v4 = self.networks.values().any(|n| routed(&n));
        let v6 = self
            .networks
            .values()
            .any(|n| routed(&n) && n.subnet6.is_some());
        (v4, v6)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetFirewall {
    pub bridge: String,
    /// The devices that carry the network to other hosts (the kernel's VXLAN, the engine's TAP).
    pub uplinks: Vec<String>,
    pub subnet4: Ipv4Net,
    pub subnet6: Option<Ipv6Net>,
    pub gateway4: Ipv4Addr,
    pub gateway6: Option<Ipv6Addr>,
    pub egress: bool,
    pub published: Vec<PublishedPort>,
}

/// A published port of a container on this host.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PublishedPort {
    pub publish: Publish,
    pub ipv4: Ipv4Addr,
    pub ipv6: Option<Ipv6Addr>,
}

/// The filter for `local`, over the networks it carries (`desired`).
pub fn firewall(
    local: &str,
    state: &ClusterState,
    desired: &BTreeMap<String, NetDesired>,
) -> HostFirewall {
    let mut out = HostFirewall::default();
    for (name, d) in desired {
        let Some(net) = state.networks.get(name) else {
            continue;
        };
        let mut published: Vec<PublishedPort> = state
            .endpoints_in(name)
            .filter(|e| e.host == local && e.kind == EndpointKind::Container)
            .flat_map(|e| {
                e.publish.iter().map(|p| PublishedPort {
                    publish: *p,
                    ipv4: e.ipv4.addr(),
                    ipv6: e.ipv6.map(|a| a.addr()),
                })
            })
            .collect();
        published.sort();
        out.networks.insert(
            name.clone(),
            NetFirewall {
                bridge: d.bridge.clone(),
                uplinks: vec![names::vxlan(d.vni), names::tap(d.vni)],
                subnet4: net.subnet4.trunc(),
                subnet6: net.subnet6.map(|s| s.trunc()),
                gateway4: net.gateway4,
                gateway6: net.gateway6,
                egress: net.egress,
                published,
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired;
    use crate::desired::tests::{cluster, endpoint};
    use weft_model::{keys, Proto, Record};

    #[test]
    fn networks_carried_here_with_their_ports() {
        let mut s = cluster();
        let mut e = endpoint("a", "p1", "h1", 20);
        e.publish = vec!["8080:80".parse().unwrap(), "5353:53/udp".parse().unwrap()];
        s.apply(&keys::endpoint("a", "p1"), Some(&e.encode()))
            .unwrap();
        // Another host's published port is not this host's business.
        let mut other = endpoint("a", "p2", "h2", 21);
        other.publish = vec!["9090:90".parse().unwrap()];
        s.apply(&keys::endpoint("a", "p2"), Some(&other.encode()))
            .unwrap();
        let fw = firewall("h1", &s, &desired("h1", &s));
        assert_eq!(fw.networks.keys().collect::<Vec<_>>(), vec!["a"]);
        let a = &fw.networks["a"];
        assert_eq!(a.bridge, "wbr10");
        assert_eq!(a.uplinks, vec!["wvx10", "wtp10"]);
        assert!(a.egress);
        let ports: Vec<(u16, Proto, String)> = a
            .published
            .iter()
            .map(|p| (p.publish.host_port, p.publish.proto, p.ipv4.to_string()))
            .collect();
        assert_eq!(
            ports,
            vec![
                (5353, Proto::Udp, "10.0.0.20".to_string()),
                (8080, Proto::Tcp, "10.0.0.20".to_string())
            ]
        );
        assert_eq!(fw.forwarding(), (true, true));
    }

    #[test]
    fn no_egress_and_no_networks() {
        let mut s = cluster();
        let mut a = crate::desired::tests::network("a", 10, "10.0.0.0/24");
        a.egress = false;
        a.subnet6 = None;
        s.apply(&keys::network("a"), Some(&a.encode())).unwrap();
        let fw = firewall("h1", &s, &desired("h1", &s));
        assert!(!fw.networks["a"].egress);
        assert_eq!(fw.forwarding(), (false, false));
        // A host with no endpoints carries nothing: its filter is empty.
        assert!(firewall("h9", &s, &desired("h9", &s)).networks.is_empty());
    }
}
