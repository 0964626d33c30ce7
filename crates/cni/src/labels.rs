//! How weft recognises the endpoints the CNI plugin made: the runtime's container ID and interface
//! name, kept as labels on the endpoint record (DEL, CHECK and GC find them by these).

use std::collections::BTreeMap;

use weft_model::Endpoint;

pub const CONTAINER_ID: &str = "cni.containerID";
pub const IFNAME: &str = "cni.ifname";

/// The labels an ADD records.
pub fn for_attachment(container_id: &str, ifname: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (CONTAINER_ID.to_string(), container_id.to_string()),
        (IFNAME.to_string(), ifname.to_string()),
    ])
}

/// The (container ID, interface) of an endpoint the CNI plugin made; None for others.
pub fn attachment(ep: &Endpoint) -> Option<(&str, &str)> {
    Some((
        ep.labels.get(CONTAINER_ID)?.as_str(),
        ep.labels.get(IFNAME)?.as_str(),
    ))
}

/// The endpoints of `host` that the plugin made for (container ID, interface).
pub fn matching<'a>(
    eps: &'a [Endpoint],
    host: &'a str,
    container_id: &'a str,
    ifname: &'a str,
) -> impl Iterator<Item = &'a Endpoint> + 'a {
    eps.iter()
        .filter(move |e| e.host == host && attachment(e) == Some((container_id, ifname)))
}

/// GC's choice: the plugin-made endpoints of `host` whose attachment is not in `valid`.
pub fn stale<'a>(eps: &'a [Endpoint], host: &str, valid: &[(String, String)]) -> Vec<&'a Endpoint> {
    eps.iter()
        .filter(|e| e.host == host)
        .filter(|e| match attachment(e) {
            Some((c, i)) => !valid.iter().any(|(vc, vi)| vc == c && vi == i),
            None => false,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_model::{Mac, SCHEMA_VERSION};

    fn ep(id: &str, host: &str, labels: BTreeMap<String, String>) -> Endpoint {
        Endpoint {
            schema: SCHEMA_VERSION,
            id: id.into(),
            network: "prod".into(),
            host: host.into(),
            container: format!("/run/netns/{id}"),
            ifname: "eth0".into(),
            host_ifname: format!("wve{id}"),
            mac: Mac::ZERO,
            ipv4: "10.0.0.2/24".parse().unwrap(),
            ipv6: None,
            names: vec![],
            labels,
            kind: Default::default(),
            publish: vec![],
        }
    }

    #[test]
    fn finds_and_collects_only_plugin_made_endpoints_of_this_host() {
        let eps = vec![
            ep("a", "h1", for_attachment("c1", "eth0")),
            ep("b", "h1", for_attachment("c2", "eth0")),
            ep("c", "h1", BTreeMap::new()),
            ep("d", "h2", for_attachment("c3", "eth0")),
            ep("e", "h1", for_attachment("c1", "eth1")),
        ];
        let ids = |v: Vec<&Endpoint>| v.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(matching(&eps, "h1", "c1", "eth0").collect()), ["a"]);
        assert_eq!(
            ids(matching(&eps, "h2", "c1", "eth0").collect()),
            Vec::<String>::new()
        );
        let valid = vec![("c1".to_string(), "eth0".to_string())];
        // c (not the plugin's) and d (another host's) are never touched.
        assert_eq!(ids(stale(&eps, "h1", &valid)), ["b", "e"]);
        assert_eq!(ids(stale(&eps, "h1", &[])), ["a", "b", "e"]);
    }
}
