use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Mac, ModelError, Publish, SCHEMA_VERSION};

/// Overhead of VXLAN over IPv4: outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14).
pub const VXLAN_OVERHEAD_V4: u32 = 50;
pub const DEFAULT_VXLAN_PORT: u16 = 4789;
pub const DEFAULT_UNDERLAY_MTU: u32 = 1500;

/// Overhead of the encrypted transport over IPv4: outer IPv4 (20) + UDP (8) + transport header (16)
/// + AEAD tag (16) + inner Ethernet (14); see docs/wire-format.md.
pub const ENCRYPTED_OVERHEAD_V4: u32 = 74;

/// Overhead of Ethernet over GRE on IPv4: outer IPv4 (20) + GRE with key (8) + inner Ethernet (14).
pub const GRE_OVERHEAD_V4: u32 = 42;

/// Host capability: the kernel's VXLAN device can carry plain networks.
pub const CAP_KERNEL_VXLAN: &str = "kernel-vxlan";
/// Host capability: weft's userspace engine (over TAP) can carry networks.
pub const CAP_USERSPACE_VXLAN: &str = "userspace-vxlan";

/// Host capability: the userspace engine can seal frames of encrypted networks.
pub const CAP_ENCRYPT: &str = "encrypt";

/// Where every container finds its host's cluster resolver (port 53; what plugins return as the
/// container's nameserver): a loopback address inside the container's own network namespace, where
/// the agent opens its sockets (on a free port, with port 53 redirected to it), so the resolver
/// knows the asker by the socket and the underlay cannot reach it. Not 127.0.0.11, which Docker's
/// embedded resolver DNATs inside its containers.
pub const RESOLVER_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 53);

/// The cluster DNS domain unless an agent is told otherwise: `NAME.NETWORK.weft.internal`.
pub const DEFAULT_DNS_DOMAIN: &str = "weft.internal";

/// Host capability: the userspace engine can carry GRE networks (on a raw IP socket).
pub const CAP_GRE: &str = "gre";

/// How a plain network's frames travel between hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encap {
    /// VXLAN (RFC 7348) over UDP: the kernel's or the engine's.
    #[default]
    Vxlan,
    /// Ethernet over GRE (RFC 2784/2890, key = VNI), as Linux gretap and Open vSwitch send it;
    /// carried by the userspace engine on every host.
    Gre,
}

impl Encap {
    pub fn as_str(self) -> &'static str {
        match self {
            Encap::Vxlan => "vxlan",
            Encap::Gre => "gre",
        }
    }
}

impl std::fmt::Display for Encap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Encap {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "vxlan" => Ok(Encap::Vxlan),
            "gre" => Ok(Encap::Gre),
            _ => Err(format!("invalid encapsulation {s:?}: use vxlan or gre")),
        }
    }
}

/// Which datapath a network asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatapathChoice {
    /// The kernel where the host has it, else the userspace engine.
    #[default]
    Auto,
    Kernel,
    Userspace,
}

impl std::str::FromStr for DatapathChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DatapathChoice::Auto),
            "kernel" => Ok(DatapathChoice::Kernel),
            "userspace" => Ok(DatapathChoice::Userspace),
            _ => Err(format!(
                "invalid datapath {s:?}: use auto, kernel or userspace"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub schema: u32,
    pub name: String,
    pub vni: u32,
    pub subnet4: Ipv4Net,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<Ipv6Net>,
    /// Reserved, never handed out: the first host address of each subnet.
    pub gateway4: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<Ipv6Addr>,
    pub mtu: u32,
    #[serde(default)]
    pub encrypted: bool,
    /// Fingerprint of the network's pre-shared key (the key itself never enters the store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psk_fingerprint: Option<String>,
    #[serde(default)]
    pub datapath: DatapathChoice,
    /// How plain frames travel between hosts (records written before GRE read as VXLAN).
    #[serde(default)]
    pub encap: Encap,
    /// Containers reach addresses beyond the overlay through their host, masqueraded (Docker's
    /// gateway bridge). On unless the network was created with `--no-egress`; records written
    /// before egress existed read as on.
    #[serde(default = "egress_default")]
    pub egress: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn egress_default() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    pub schema: u32,
    pub id: String,
    pub name: String,
    pub underlay: IpAddr,
    pub vxlan_port: u16,
    /// UDP port of this host's encrypted transport; `None` (records of older agents): the
    /// default, 51820.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Datapaths this host can run, e.g. `kernel-vxlan`.
    #[serde(default)]
    pub capabilities: Vec<String>,
    pub agent_version: String,
    /// Unix milliseconds when this agent registered.
    pub started_at_ms: u64,
    /// The cluster DNS domain this host's agent answers under (its resolver is at
    /// [`RESOLVER_ADDR`]); None when the agent serves no DNS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_domain: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub schema: u32,
    pub id: String,
    pub network: String,
    pub host: String,
    /// What the user named as the container: a netns name, path or PID, as given.
    pub container: String,
    /// The interface name inside the container.
    pub ifname: String,
    /// The host end of the veth pair.
    pub host_ifname: String,
    pub mac: Mac,
    pub ipv4: Ipv4Net,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Net>,
    #[serde(default)]
    pub names: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// A container, or the host itself on the network (`weft expose`).
    #[serde(default, skip_serializing_if = "EndpointKind::is_container")]
    pub kind: EndpointKind,
    /// Container ports reachable on the host's addresses; each host port is claimed under
    /// `/weft/ports/` so that no two endpoints of one host share it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<Publish>,
}

/// What an endpoint stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointKind {
    /// A container's veth on the network's bridge.
    #[default]
    Container,
    /// The host's own address on the network's bridge (`weft expose`): other hosts program
    /// entries for it as for a container; its MAC is the bridge's.
    Host,
}

impl EndpointKind {
    pub fn is_container(&self) -> bool {
        *self == EndpointKind::Container
    }
}

/// The owner of a published host port (one host, one protocol).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortClaim {
    pub schema: u32,
    pub network: String,
    pub endpoint: String,
}

impl Endpoint {
    pub fn addresses(&self) -> Vec<IpNet> {
        let mut v = vec![IpNet::V4(self.ipv4)];
        if let Some(a) = self.ipv6 {
            v.push(IpNet::V6(a));
        }
        v
    }
}

/// What an agent reports of its datapath: one entry per (network, peer host) it carries traffic
/// for. Written by the agent when it changes; read by `weft status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostReport {
    pub schema: u32,
    pub host: String,
    pub peers: Vec<PeerReport>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PeerReport {
    pub network: String,
    pub peer: String,
    /// The datapath this host uses towards the peer: `kernel` or `userspace`.
    pub path: String,
    /// The peer's own datapath, from its host record.
    pub peer_path: String,
    /// Handshake state of an encrypted session; `none` on plain networks.
    pub handshake: String,
}

/// The owner of one allocated address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub schema: u32,
    pub endpoint: String,
    pub host: String,
}

/// A record stored as versioned JSON.
pub trait Record: Serialize + DeserializeOwned {
    fn schema(&self) -> u32;

    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("records always serialize")
    }

    /// Decodes a record, refusing a schema version this build does not know rather than guessing.
    fn decode(key: &str, bytes: &[u8]) -> Result<Self, ModelError> {
        #[derive(Deserialize)]
        struct Probe {
            schema: Option<u32>,
        }
        let probe: Probe = serde_json::from_slice(bytes).map_err(|e| ModelError::Decode {
            key: key.to_string(),
            reason: e.to_string(),
        })?;
        match probe.schema {
            Some(SCHEMA_VERSION) => {}
            Some(found) => {
                return Err(ModelError::Schema {
                    key: key.to_string(),
                    found,
                })
            }
            None => {
                return Err(ModelError::Decode {
                    key: key.to_string(),
                    reason: "missing schema version".into(),
                })
            }
        }
        serde_json::from_slice(bytes).map_err(|e| ModelError::Decode {
            key: key.to_string(),
            reason: e.to_string(),
        })
    }
}

macro_rules! record {
    ($($t:ty),*) => {$(
        impl Record for $t {
            fn schema(&self) -> u32 {
                self.schema
            }
        }
    )*};
}
record!(Network, Host, Endpoint, Allocation, HostReport, PortClaim);

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> Network {
        Network {
            schema: SCHEMA_VERSION,
            name: "prod".into(),
            vni: 42,
            subnet4: "10.0.0.0/24".parse().unwrap(),
            subnet6: Some("fd00::/64".parse().unwrap()),
            gateway4: "10.0.0.1".parse().unwrap(),
            gateway6: Some("fd00::1".parse().unwrap()),
            mtu: 1450,
            encrypted: false,
            psk_fingerprint: None,
            datapath: DatapathChoice::Auto,
            encap: Encap::Vxlan,
            egress: true,
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn egress_defaults_on_for_old_records() {
        let mut v: serde_json::Value = serde_json::from_slice(&net().encode()).unwrap();
        v.as_object_mut().unwrap().remove("egress");
        let n = Network::decode("k", &serde_json::to_vec(&v).unwrap()).unwrap();
        assert!(n.egress);
        let mut off = net();
        off.egress = false;
        assert!(!Network::decode("k", &off.encode()).unwrap().egress);
    }

    #[test]
    fn records_without_encap_read_as_vxlan() {
        let mut v: serde_json::Value = serde_json::from_slice(&net().encode()).unwrap();
        v.as_object_mut().unwrap().remove("encap");
        let old = Network::decode("k", &serde_json::to_vec(&v).unwrap()).unwrap();
        assert_eq!(old.encap, Encap::Vxlan);
        let mut gre = net();
        gre.encap = Encap::Gre;
        let bytes = gre.encode();
        assert!(String::from_utf8_lossy(&bytes).contains(r#""encap":"gre""#));
        assert_eq!(Network::decode("k", &bytes).unwrap(), gre);
        assert_eq!("gre".parse::<Encap>(), Ok(Encap::Gre));
        let e = "geneve".parse::<Encap>().unwrap_err();
        assert!(e.contains("use vxlan or gre"), "{e}");
    }

    #[test]
    fn encode_decode() {
        let n = net();
        let bytes = n.encode();
        assert_eq!(Network::decode("k", &bytes).unwrap(), n);
    }

    #[test]
    fn refuses_unknown_schema() {
        let mut n = net();
        n.schema = 99;
        let err = Network::decode("/weft/networks/prod", &n.encode()).unwrap_err();
        assert_eq!(
            err,
            ModelError::Schema {
                key: "/weft/networks/prod".into(),
                found: 99
            }
        );
        assert!(err.to_string().contains("schema version 99"));
    }

    #[test]
    fn refuses_garbage() {
        assert!(matches!(
            Network::decode("k", b"{not json"),
            Err(ModelError::Decode { .. })
        ));
        assert!(matches!(
            Network::decode("k", br#"{"name":"x"}"#),
            Err(ModelError::Decode { .. })
        ));
    }
}
