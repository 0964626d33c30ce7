use std::collections::BTreeMap;

use weft_model::{keys, Endpoint, Host, ModelError, Network, Record};

/// What an agent knows of the cluster: every network, host and endpoint record it has seen.
#[derive(Debug, Default, Clone)]
pub struct ClusterState {
    pub networks: BTreeMap<String, Network>,
    pub hosts: BTreeMap<String, Host>,
    /// Keyed by (network, endpoint id).
    pub endpoints: BTreeMap<(String, String), Endpoint>,
}

impl ClusterState {
    /// Applies one store change (`None` = deleted). Keys outside the model are ignored; a record that
    /// cannot be read is an error and leaves the state as it was.
    pub fn apply(&mut self, key: &str, value: Option<&[u8]>) -> Result<(), ModelError> {
        match keys::parse(key) {
            keys::Key::Network(name) => match value {
                Some(v) => {
                    self.networks
                        .insert(name.to_string(), Network::decode(key, v)?);
                }
                None => {
                    self.networks.remove(name);
                }
            },
            keys::Key::Host(id) => match value {
                Some(v) => {
                    self.hosts.insert(id.to_string(), Host::decode(key, v)?);
                }
                None => {
                    self.hosts.remove(id);
                }
            },
            keys::Key::Endpoint { network, id } => {
                let k = (network.to_string(), id.to_string());
                match value {
                    Some(v) => {
                        self.endpoints.insert(k, Endpoint::decode(key, v)?);
                    }
                    None => {
                        self.endpoints.remove(&k);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    pub fn endpoints_on<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a Endpoint> + 'a {
        self.endpoints.values().filter(move |e| e.host == host)
    }

    /// The containers of `host` (as their endpoints name them) and the networks each is on:
    /// who gets a resolver there, answering for which networks. `weft expose` endpoints are the
    /// host itself, not a container.
    pub fn containers_on(&self, host: &str) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for e in self.endpoints_on(host).filter(|e| e.kind.is_container()) {
            out.entry(e.container.clone())
                .or_default()
                .push(e.network.clone());
        }
        for nets in out.values_mut() {
            nets.dedup();
        }
        out
    }

    pub fn endpoints_in<'a>(&'a self, network: &'a str) -> impl Iterator<Item = &'a Endpoint> + 'a {
        self.endpoints
            .range((network.to_string(), String::new())..)
            .take_while(move |((n, _), _)| n == network)
            .map(|(_, e)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_model::SCHEMA_VERSION;

    #[test]
    fn apply_and_remove() {
        let mut s = ClusterState::default();
        let h = Host {
            schema: SCHEMA_VERSION,
            id: "h1".into(),
            name: "h1".into(),
            underlay: "192.0.2.1".parse().unwrap(),
            vxlan_port: 4789,
            secure_port: None,
            public_key: None,
            capabilities: vec![],
            agent_version: "t".into(),
            started_at_ms: 0,
            dns_domain: None,
        };
        s.apply(&keys::host("h1"), Some(&h.encode())).unwrap();
        assert_eq!(s.hosts.len(), 1);
        assert!(s.apply(&keys::host("h2"), Some(b"garbage")).is_err());
        assert_eq!(s.hosts.len(), 1);
        s.apply(&keys::host("h1"), None).unwrap();
        assert!(s.hosts.is_empty());
        s.apply("/weft/meta/whatever", Some(b"x")).unwrap();
    }

    #[test]
    fn containers_on_a_host_with_their_networks() {
        use crate::desired::tests::{cluster, endpoint};
        use weft_model::EndpointKind;
        let mut s = cluster();
        // A second network for h3's container e3, and h3 exposed on "a" (not a container).
        let mut again = endpoint("b", "g1", "h3", 9);
        again.container = "e3".into();
        s.apply(&keys::endpoint("b", "g1"), Some(&again.encode()))
            .unwrap();
        let mut exposed = endpoint("a", "x1", "h3", 10);
        exposed.kind = EndpointKind::Host;
        s.apply(&keys::endpoint("a", "x1"), Some(&exposed.encode()))
            .unwrap();
        let want = |pairs: &[(&str, &[&str])]| -> BTreeMap<String, Vec<String>> {
            pairs
                .iter()
                .map(|(c, n)| (c.to_string(), n.iter().map(|n| n.to_string()).collect()))
                .collect()
        };
        assert_eq!(
            s.containers_on("h3"),
            want(&[("e3", &["a", "b"]), ("e4", &["a"])])
        );
        assert_eq!(
            s.containers_on("h2"),
            want(&[("e2", &["a"]), ("f1", &["b"])])
        );
        assert!(s.containers_on("h9").is_empty());
    }
}
