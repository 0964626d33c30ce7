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
}
