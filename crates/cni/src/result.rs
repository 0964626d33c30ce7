//! ADD results built from weft's endpoint record, and CHECK's comparisons: pure. The runtime's
//! version decides the layout on the wire (0.3.x/0.4.0 or 1.x), which rscni renders.

use ipnet::IpNet;
use rscni_plugin::types::{CNIResult, Dns, Interface, IpConfig, Route};
use weft_model::{Endpoint, Network};

/// The container side of the result: what weft made, where.
#[derive(Debug, Clone)]
pub struct Made<'a> {
    pub endpoint: &'a Endpoint,
    pub network: &'a Network,
    /// CNI_NETNS as the runtime gave it (results name the sandbox the same way).
    pub netns: &'a str,
    /// The host end's MAC, when known.
    pub host_mac: Option<String>,
    pub dns: &'a Dns,
}

/// The gateways of the network: with egress, every host's bridge holds them and attach routes the
/// container through them (IPv6 only for an endpoint with an IPv6 address).
fn gateways(m: &Made) -> (Option<std::net::IpAddr>, Option<std::net::IpAddr>) {
    if !m.network.egress {
        return (None, None);
    }
    (
        Some(m.network.gateway4.into()),
        m.network
            .gateway6
            .filter(|_| m.endpoint.ipv6.is_some())
            .map(Into::into),
    )
}

/// The result of an ADD: weft's interfaces, addresses and routes appended to `prev` (what earlier
/// plugins in the chain reported), with interface indices shifted past `prev`'s.
pub fn build(m: &Made, prev: Option<&CNIResult>) -> CNIResult {
    let mut out = prev.cloned().unwrap_or_default();
    let base = out.interfaces.len() as u32;
    out.interfaces.push(Interface {
        name: m.endpoint.host_ifname.clone(),
        mac: m.host_mac.clone().unwrap_or_default(),
        mtu: Some(m.network.mtu),
        sandbox: None,
        socket_path: None,
        pci_id: None,
    });
    out.interfaces.push(Interface {
        name: m.endpoint.ifname.clone(),
        mac: m.endpoint.mac.to_string(),
        mtu: Some(m.network.mtu),
        sandbox: Some(m.netns.to_string()),
        socket_path: None,
        pci_id: None,
    });
    let (gw4, gw6) = gateways(m);
    for a in m.endpoint.addresses() {
        let gateway = if a.addr().is_ipv4() { gw4 } else { gw6 };
        out.ips.push(IpConfig {
            interface: Some(base + 1),
            address: a,
            gateway,
        });
    }
    // The subnets are on-link; with egress, everything else goes through the gateway.
    let mut routes = vec![route(IpNet::V4(m.network.subnet4), None)];
    if let Some(s6) = m.network.subnet6 {
        routes.push(route(IpNet::V6(s6), None));
    }
    if let Some(g) = gw4 {
        routes.push(route("0.0.0.0/0".parse().expect("valid"), Some(g)));
    }
    if let Some(g) = gw6 {
        routes.push(route("::/0".parse().expect("valid"), Some(g)));
    }
    out.routes.extend(routes);
    if !dns_is_empty(m.dns) {
        out.dns = Some(m.dns.clone());
    }
    out
}

fn route(dst: IpNet, gw: Option<std::net::IpAddr>) -> Route {
    Route {
        dst,
        gw,
        mtu: None,
        advmss: None,
        priority: None,
        table: None,
        scope: None,
    }
}

/// The DNS a result announces: the configuration's when it gives any; else, when the host's agent
/// serves names (its record carries its cluster domain), weft's resolver inside the container
/// with the network's and the cluster's search domains.
pub fn dns_for(configured: &Dns, network: &str, domain: Option<&str>) -> Dns {
    if !dns_is_empty(configured) {
        return configured.clone();
    }
    match domain {
        Some(d) => Dns {
            nameservers: vec![weft_model::RESOLVER_ADDR.to_string()],
            domain: None,
            search: Some(vec![format!("{network}.{d}"), d.to_string()]),
            options: None,
        },
        None => Dns::default(),
    }
}

fn dns_is_empty(d: &Dns) -> bool {
    d.nameservers.is_empty()
        && d.domain.as_deref().unwrap_or("").is_empty()
        && d.search.as_ref().is_none_or(Vec::is_empty)
        && d.options.as_ref().is_none_or(Vec::is_empty)
}

/// What CHECK finds of the container's interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    pub mac: String,
    pub mtu: u32,
    pub addresses: Vec<IpNet>,
    /// The host end exists and is a port of the network's bridge.
    pub host_end_on_bridge: bool,
}

/// CHECK: the interface matches the record, and the runtime's cached result (prevResult) agrees
/// with both. Returns every difference found, one line each.
pub fn check(
    ep: &Endpoint,
    net: &Network,
    netns: &str,
    live: Option<&Live>,
    prev: Option<&CNIResult>,
) -> Result<(), String> {
    let mut problems = Vec::new();
    match live {
        None => problems.push(format!("interface {} is missing in {netns}", ep.ifname)),
        Some(l) => {
            if !l.mac.eq_ignore_ascii_case(&ep.mac.to_string()) {
                problems.push(format!(
                    "interface {} has MAC {}, the record says {}",
                    ep.ifname, l.mac, ep.mac
                ));
            }
            if l.mtu != net.mtu {
                problems.push(format!(
                    "interface {} has MTU {}, network {} has {}",
                    ep.ifname, l.mtu, net.name, net.mtu
                ));
            }
            for a in ep.addresses() {
                if !l.addresses.contains(&a) {
                    problems.push(format!("interface {} lacks address {a}", ep.ifname));
                }
            }
            if !l.host_end_on_bridge {
                problems.push(format!(
                    "host end {} is missing or not on the network's bridge",
                    ep.host_ifname
                ));
            }
        }
    }
    if let Some(p) = prev {
        let idx = p
            .interfaces
            .iter()
            .position(|i| i.name == ep.ifname && i.sandbox.as_deref() == Some(netns));
        match idx {
            None => problems.push(format!(
                "prevResult has no interface {} in {netns}",
                ep.ifname
            )),
            Some(i) => {
                let iface = &p.interfaces[i];
                if !iface.mac.is_empty() && !iface.mac.eq_ignore_ascii_case(&ep.mac.to_string()) {
                    problems.push(format!(
                        "prevResult gives {} MAC {}, the record says {}",
                        ep.ifname, iface.mac, ep.mac
                    ));
                }
                let mut said: Vec<IpNet> = p
                    .ips
                    .iter()
                    .filter(|ip| ip.interface == Some(i as u32))
                    .map(|ip| ip.address)
                    .collect();
                let mut have = ep.addresses();
                said.sort();
                have.sort();
                if said != have {
                    problems.push(format!(
                        "prevResult gives {} addresses {said:?}, the record says {have:?}",
                        ep.ifname
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rscni_types::legacy;
    use rscni_types::types::CNIResultWithVersion;
    use rscni_types::version::SpecVersion;
    use std::collections::BTreeMap;
    use weft_model::{Mac, SCHEMA_VERSION};

    /// A network record as the store holds it (optional fields at their defaults).
    fn net() -> Network {
        serde_json::from_value(serde_json::json!({
            "schema": weft_model::SCHEMA_VERSION,
            "name": "prod",
            "vni": 7,
            "subnet4": "10.9.0.0/24",
            "subnet6": "fd00:9::/64",
            "gateway4": "10.9.0.1",
            "gateway6": "fd00:9::1",
            "mtu": 1450,
        }))
        .unwrap()
    }

    fn ep() -> Endpoint {
        Endpoint {
            schema: SCHEMA_VERSION,
            id: "ab".into(),
            network: "prod".into(),
            host: "h1".into(),
            container: "/run/netns/x".into(),
            ifname: "eth0".into(),
            host_ifname: "wveab".into(),
            mac: Mac::from_ipv4("10.9.0.2".parse().unwrap()),
            ipv4: "10.9.0.2/24".parse().unwrap(),
            ipv6: Some("fd00:9::2/64".parse().unwrap()),
            names: vec![],
            labels: BTreeMap::new(),
            kind: Default::default(),
            publish: vec![],
        }
    }

    #[test]
    fn dns_is_weft_resolver_unless_configured() {
        let d = dns_for(&Dns::default(), "prod", Some("weft.internal"));
        assert_eq!(d.nameservers, ["127.0.0.53"]);
        assert_eq!(
            d.search.unwrap(),
            [
                "prod.weft.internal".to_string(),
                "weft.internal".to_string()
            ]
        );
        assert!(dns_is_empty(&dns_for(&Dns::default(), "prod", None)));
        let mine = Dns {
            nameservers: vec!["10.9.0.53".into()],
            ..Default::default()
        };
        assert_eq!(
            dns_for(&mine, "prod", Some("weft.internal")).nameservers,
            ["10.9.0.53"]
        );
    }

    fn made<'a>(e: &'a Endpoint, n: &'a Network, dns: &'a Dns) -> Made<'a> {
        Made {
            endpoint: e,
            network: n,
            netns: "/run/netns/x",
            host_mac: Some("aa:bb:cc:dd:ee:ff".into()),
            dns,
        }
    }

    #[test]
    fn result_in_both_layouts() {
        let (e, n, dns) = (ep(), net(), Dns::default());
        let r = build(&made(&e, &n, &dns), None);
        let v1 = serde_json::to_value(CNIResultWithVersion::new(
            SpecVersion::new(1, 0, 0),
            r.clone(),
        ))
        .unwrap();
        assert_eq!(v1["cniVersion"], "1.0.0");
        assert_eq!(v1["interfaces"][1]["name"], "eth0");
        assert_eq!(v1["interfaces"][1]["sandbox"], "/run/netns/x");
        assert_eq!(v1["interfaces"][1]["mac"], e.mac.to_string());
        assert_eq!(v1["ips"][0]["address"], "10.9.0.2/24");
        assert_eq!(v1["ips"][0]["gateway"], "10.9.0.1");
        assert_eq!(v1["ips"][0]["interface"], 1);
        assert_eq!(v1["ips"][1]["address"], "fd00:9::2/64");
        assert!(v1["ips"][0].get("version").is_none());
        assert_eq!(v1["routes"][2]["dst"], "0.0.0.0/0");
        assert_eq!(v1["routes"][2]["gw"], "10.9.0.1");
        assert!(v1.get("dns").is_none());
        // 0.4.0: every IP says its family, DNS is always there.
        let v04 =
            serde_json::to_value(legacy::CNIResult::new(SpecVersion::new(0, 4, 0), r)).unwrap();
        assert_eq!(v04["cniVersion"], "0.4.0");
        assert_eq!(v04["ips"][0]["version"], "4");
        assert_eq!(v04["ips"][1]["version"], "6");
        assert_eq!(v04["dns"], serde_json::json!({}));
    }

    #[test]
    fn without_egress_only_on_link_routes() {
        let (e, mut n) = (ep(), net());
        n.egress = false;
        let dns = Dns {
            nameservers: vec!["10.9.0.53".into()],
            ..Dns::default()
        };
        let r = build(&made(&e, &n, &dns), None);
        assert!(r.ips.iter().all(|i| i.gateway.is_none()));
        let dsts: Vec<String> = r.routes.iter().map(|r| r.dst.to_string()).collect();
        assert_eq!(dsts, ["10.9.0.0/24", "fd00:9::/64"]);
        assert_eq!(r.dns.unwrap().nameservers, ["10.9.0.53"]);
    }

    #[test]
    fn chained_after_another_plugin_indices_shift() {
        let (e, n, dns) = (ep(), net(), Dns::default());
        let prev: CNIResult = serde_json::from_str(
            r#"{"cniVersion":"0.4.0","interfaces":[{"name":"lo","sandbox":"/run/netns/x"}],
                "ips":[{"version":"4","interface":0,"address":"127.0.0.1/8"}],"dns":{}}"#,
        )
        .unwrap();
        let r = build(&made(&e, &n, &dns), Some(&prev));
        assert_eq!(r.interfaces.len(), 3);
        assert_eq!(r.ips[0].address.to_string(), "127.0.0.1/8");
        assert_eq!(r.ips[1].interface, Some(2));
        assert_eq!(r.interfaces[2].name, "eth0");
    }

    fn live(e: &Endpoint) -> Live {
        Live {
            mac: e.mac.to_string(),
            mtu: 1450,
            addresses: vec![
                e.addresses()[0],
                e.addresses()[1],
                "fe80::1/64".parse().unwrap(),
            ],
            host_end_on_bridge: true,
        }
    }

    #[test]
    fn check_passes_on_what_add_made() {
        let (e, n, dns) = (ep(), net(), Dns::default());
        let r = build(&made(&e, &n, &dns), None);
        check(&e, &n, "/run/netns/x", Some(&live(&e)), Some(&r)).unwrap();
        check(&e, &n, "/run/netns/x", Some(&live(&e)), None).unwrap();
    }

    #[test]
    fn check_names_each_difference() {
        let (e, n, dns) = (ep(), net(), Dns::default());
        assert!(check(&e, &n, "/run/netns/x", None, None)
            .unwrap_err()
            .contains("missing"));
        let mut l = live(&e);
        l.mac = "02:00:00:00:00:99".into();
        l.addresses.remove(0);
        l.mtu = 1500;
        l.host_end_on_bridge = false;
        let err = check(&e, &n, "/run/netns/x", Some(&l), None).unwrap_err();
        for needle in ["MAC", "MTU", "lacks address 10.9.0.2/24", "host end"] {
            assert!(err.contains(needle), "{needle}: {err}");
        }
        let mut r = build(&made(&e, &n, &dns), None);
        r.ips[0].address = "10.9.0.99/24".parse().unwrap();
        let err = check(&e, &n, "/run/netns/x", Some(&live(&e)), Some(&r)).unwrap_err();
        assert!(err.contains("prevResult gives eth0 addresses"), "{err}");
        let err = check(&e, &n, "/run/netns/other", Some(&live(&e)), Some(&r)).unwrap_err();
        assert!(err.contains("prevResult has no interface"), "{err}");
    }
}
