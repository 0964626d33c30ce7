//! The name map: which names exist on which network, with which addresses, built from the store's
//! network and endpoint records. Pure; rebuilt whole on every change (it is small and cheap).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use weft_model::{Endpoint, Network};

/// The addresses of one endpoint carrying a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addrs {
    pub v4: Ipv4Addr,
    pub v6: Option<Ipv6Addr>,
}

/// One network's names.
#[derive(Debug, Clone, Default)]
struct Zone {
    subnet4: Option<Ipv4Net>,
    subnet6: Option<Ipv6Net>,
    /// Name → every endpoint carrying it (a service when more than one), in endpoint-id order.
    names: BTreeMap<String, Vec<Addrs>>,
    /// Address → the endpoint's first name (its container name), for PTR.
    ptr: HashMap<IpAddr, String>,
}

#[derive(Debug, Clone)]
pub struct NameMap {
    /// The cluster domain's labels, lowercase, e.g. `["weft", "internal"]`.
    domain: Vec<String>,
    zones: BTreeMap<String, Zone>,
    /// Bumped on every rebuild; the SOA serial.
    generation: u32,
}

impl NameMap {
    /// An empty map for `domain` (e.g. `weft.internal`, checked by the caller).
    pub fn new(domain: &str) -> NameMap {
        NameMap {
            domain: domain
                .trim_end_matches('.')
                .split('.')
                .map(str::to_ascii_lowercase)
                .collect(),
            zones: BTreeMap::new(),
            generation: 0,
        }
    }

    /// Builds the map of every network and endpoint in the cluster; `generation` becomes the SOA
    /// serial. Names are lowercase DNS labels already (validated on attach).
    pub fn build<'a>(
        domain: &str,
        generation: u32,
        networks: impl IntoIterator<Item = &'a Network>,
        endpoints: impl IntoIterator<Item = &'a Endpoint>,
    ) -> NameMap {
        let mut map = NameMap::new(domain);
        map.generation = generation;
        for n in networks {
            let z = map.zones.entry(n.name.clone()).or_default();
            z.subnet4 = Some(n.subnet4);
            z.subnet6 = n.subnet6;
        }
        // Host exposures (`weft expose`) carry no names.
        for e in endpoints.into_iter().filter(|e| e.kind.is_container()) {
            let z = map.zones.entry(e.network.clone()).or_default();
            let addrs = Addrs {
                v4: e.ipv4.addr(),
                v6: e.ipv6.map(|a| a.addr()),
            };
            let mut seen = BTreeSet::new();
            for name in &e.names {
                let name = name.to_ascii_lowercase();
                if seen.insert(name.clone()) {
                    z.names.entry(name).or_default().push(addrs);
                }
            }
            if let Some(first) = e.names.first() {
                let first = first.to_ascii_lowercase();
                z.ptr.insert(IpAddr::V4(addrs.v4), first.clone());
                if let Some(v6) = addrs.v6 {
                    z.ptr.insert(IpAddr::V6(v6), first);
                }
            }
        }
        map
    }

    pub fn domain(&self) -> &[String] {
        &self.domain
    }

    pub fn generation(&self) -> u32 {
        self.generation
    }

    pub fn has_network(&self, network: &str) -> bool {
        self.zones.contains_key(network)
    }

    /// Every endpoint carrying `name` on any of `networks`, each address once.
    pub fn lookup(&self, networks: &[String], name: &str) -> Vec<Addrs> {
        let mut out: Vec<Addrs> = Vec::new();
        for n in networks {
            if let Some(found) = self.zones.get(n).and_then(|z| z.names.get(name)) {
                for a in found {
                    if !out.iter().any(|o| o.v4 == a.v4) {
                        out.push(*a);
                    }
                }
            }
        }
        out
    }

    /// The (network, name) owning `addr` among `networks`; `Err(true)` when no endpoint has it
    /// but it lies in one of those networks' subnets (weft's to deny), `Err(false)` otherwise.
    pub fn reverse(&self, networks: &[String], addr: IpAddr) -> Result<(String, String), bool> {
        let mut ours = false;
        for n in networks {
            let Some(z) = self.zones.get(n) else { continue };
            if let Some(name) = z.ptr.get(&addr) {
                return Ok((n.clone(), name.clone()));
            }
            ours |= match addr {
                IpAddr::V4(a) => z.subnet4.is_some_and(|s| s.contains(&a)),
                IpAddr::V6(a) => z.subnet6.is_some_and(|s| s.contains(&a)),
            };
        }
        Err(ours)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use weft_model::{DatapathChoice, Mac, SCHEMA_VERSION};

    pub fn net(name: &str, s4: &str, s6: &str) -> Network {
        let subnet4: Ipv4Net = s4.parse().unwrap();
        Network {
            schema: SCHEMA_VERSION,
            name: name.into(),
            vni: 1,
            subnet4,
            subnet6: Some(s6.parse().unwrap()),
            gateway4: subnet4.hosts().next().unwrap(),
            gateway6: None,
            mtu: 1450,
            encrypted: false,
            psk_fingerprint: None,
            datapath: DatapathChoice::Auto,
            encap: Default::default(),
            egress: true,
            labels: Default::default(),
        }
    }

    pub fn ep(id: &str, network: &str, v4: &str, v6: Option<&str>, names: &[&str]) -> Endpoint {
        Endpoint {
            schema: SCHEMA_VERSION,
            id: id.into(),
            network: network.into(),
            host: "h1".into(),
            container: format!("/run/netns/{id}"),
            ifname: "eth0".into(),
            host_ifname: format!("wv{id}"),
            mac: Mac::ZERO,
            ipv4: v4.parse().unwrap(),
            ipv6: v6.map(|s| s.parse().unwrap()),
            names: names.iter().map(|s| s.to_string()).collect(),
            labels: Default::default(),
            kind: Default::default(),
            publish: Vec::new(),
        }
    }

    /// Two networks: `a` (web; a service `svc` of three; db with an alias) and `b` (secret).
    pub fn sample() -> NameMap {
        let nets = [
            net("a", "10.1.0.0/24", "fd01::/64"),
            net("b", "10.2.0.0/24", "fd02::/64"),
        ];
        let eps = [
            ep("e1", "a", "10.1.0.2/24", Some("fd01::2/64"), &["web"]),
            ep("e2", "a", "10.1.0.3/24", None, &["db", "database"]),
            ep("e3", "a", "10.1.0.4/24", Some("fd01::4/64"), &["svc"]),
            ep("e4", "a", "10.1.0.5/24", Some("fd01::5/64"), &["svc"]),
            ep("e5", "a", "10.1.0.6/24", Some("fd01::6/64"), &["svc"]),
            ep("e6", "b", "10.2.0.2/24", Some("fd02::2/64"), &["secret"]),
            ep("e7", "a", "10.1.0.7/24", None, &[]),
        ];
        NameMap::build("weft.internal", 7, &nets, &eps)
    }

    fn nets(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_per_network() {
        let m = sample();
        assert_eq!(m.lookup(&nets(&["a"]), "web").len(), 1);
        assert_eq!(
            m.lookup(&nets(&["a"]), "database")[0].v4.to_string(),
            "10.1.0.3"
        );
        assert_eq!(m.lookup(&nets(&["a"]), "svc").len(), 3);
        assert!(m.lookup(&nets(&["a"]), "secret").is_empty());
        assert_eq!(m.lookup(&nets(&["a", "b"]), "secret").len(), 1);
        assert!(m.lookup(&nets(&["c"]), "web").is_empty());
    }

    #[test]
    fn reverse_only_on_own_networks() {
        let m = sample();
        let a = nets(&["a"]);
        assert_eq!(
            m.reverse(&a, "10.1.0.3".parse().unwrap()),
            Ok(("a".into(), "db".into()))
        );
        assert_eq!(
            m.reverse(&a, "fd01::2".parse().unwrap()),
            Ok(("a".into(), "web".into()))
        );
        // Unnamed endpoint and free address: inside the subnet, weft's to deny.
        assert_eq!(m.reverse(&a, "10.1.0.7".parse().unwrap()), Err(true));
        assert_eq!(m.reverse(&a, "10.1.0.99".parse().unwrap()), Err(true));
        // Another network's address looks like any address outside weft.
        assert_eq!(m.reverse(&a, "10.2.0.2".parse().unwrap()), Err(false));
        assert_eq!(m.reverse(&a, "192.0.2.1".parse().unwrap()), Err(false));
    }
}
