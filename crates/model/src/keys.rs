//! Store key layout. Every key lives under [`ROOT`] so that weft can share an etcd cluster.

use std::net::IpAddr;

pub const ROOT: &str = "/weft/";
pub const NETWORKS: &str = "/weft/networks/";
pub const VNIS: &str = "/weft/vnis/";
pub const HOSTS: &str = "/weft/hosts/";
pub const ENDPOINTS: &str = "/weft/endpoints/";
pub const IPAM: &str = "/weft/ipam/";
/// Published host ports: `/weft/ports/<host>/<proto>/<port>`, under the host's lease.
pub const PORTS: &str = "/weft/ports/";
/// Each agent's report of its datapath towards its peers, under its lease (read by `weft status`).
pub const STATUS: &str = "/weft/status/";
/// Which weft network each host's Docker network maps to (`docker-networks/<host>/<docker id>`
/// holds the network's name), under the host's lease: a network Docker made goes with the last.
pub const DOCKER_NETWORKS: &str = "/weft/docker-networks/";
/// Bumped by every network create/remove so that concurrent creators cannot both pass the overlap check.
pub const NETWORKS_GUARD: &str = "/weft/meta/networks-guard";

pub fn network(name: &str) -> String {
    format!("{NETWORKS}{name}")
}
pub fn vni(vni: u32) -> String {
    format!("{VNIS}{vni}")
}
pub fn status(host: &str) -> String {
    format!("{STATUS}{host}")
}
pub fn host(id: &str) -> String {
    format!("{HOSTS}{id}")
}
pub fn docker_network(host: &str, docker_id: &str) -> String {
    format!("{DOCKER_NETWORKS}{host}/{docker_id}")
}
pub fn endpoints_of(network: &str) -> String {
    format!("{ENDPOINTS}{network}/")
}
pub fn endpoint(network: &str, id: &str) -> String {
    format!("{ENDPOINTS}{network}/{id}")
}
pub fn ipam_of(network: &str) -> String {
    format!("{IPAM}{network}/")
}
pub fn ipam(network: &str, addr: IpAddr) -> String {
    format!("{IPAM}{network}/{addr}")
}
pub fn port(host: &str, proto: crate::Proto, port: u16) -> String {
    format!("{PORTS}{host}/{proto}/{port}")
}

/// What a key under [`ROOT`] names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key<'a> {
    Network(&'a str),
    Vni(&'a str),
    Host(&'a str),
    Endpoint { network: &'a str, id: &'a str },
    Ipam { network: &'a str, addr: &'a str },
    Other,
}

pub fn parse(key: &str) -> Key<'_> {
    if let Some(rest) = key.strip_prefix(NETWORKS) {
        return Key::Network(rest);
    }
    if let Some(rest) = key.strip_prefix(VNIS) {
        return Key::Vni(rest);
    }
    if let Some(rest) = key.strip_prefix(HOSTS) {
        return Key::Host(rest);
    }
    if let Some(rest) = key.strip_prefix(ENDPOINTS) {
        if let Some((network, id)) = rest.split_once('/') {
            return Key::Endpoint { network, id };
        }
    }
    if let Some(rest) = key.strip_prefix(IPAM) {
        if let Some((network, addr)) = rest.split_once('/') {
            return Key::Ipam { network, addr };
        }
    }
    Key::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(parse(&network("prod")), Key::Network("prod"));
        assert_eq!(parse(&host("h1")), Key::Host("h1"));
        assert_eq!(
            parse(&endpoint("prod", "ab12")),
            Key::Endpoint {
                network: "prod",
                id: "ab12"
            }
        );
        assert_eq!(
            parse(&ipam("prod", "10.0.0.2".parse().unwrap())),
            Key::Ipam {
                network: "prod",
                addr: "10.0.0.2"
            }
        );
        assert_eq!(parse("/weft/meta/x"), Key::Other);
        assert_eq!(parse(&vni(42)), Key::Vni("42"));
    }
}
