//! `weft trace A B`'s reasoning, free of I/O: which endpoints the user means, whether they share a
//! network, the hops a frame takes between them, and what along the way is known to be wrong —
//! from the cluster state, the agents' peer reports, and (when this host is one of the two ends)
//! the forwarding entries this host holds.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Serialize;
use weft_model::{Endpoint, HostReport};

use crate::diagnose::{Finding, Level};
use crate::{names, ClusterState, FdbEntry, NeighEntry, Path};

/// Endpoints a user's word can mean: a container name or alias, an endpoint id, the container's
/// netns (path, or the name under /run/netns) or one of its addresses.
pub fn find<'a>(state: &'a ClusterState, what: &str) -> Vec<&'a Endpoint> {
    let ip: Option<IpAddr> = what.parse().ok();
    state
        .endpoints
        .values()
        .filter(|e| {
            e.names.iter().any(|n| n == what)
                || e.id == what
                || e.container == what
                || std::path::Path::new(&e.container)
                    .file_name()
                    .is_some_and(|f| f == what)
                || ip.is_some_and(|ip| {
                    IpAddr::V4(e.ipv4.addr()) == ip
                        || e.ipv6.is_some_and(|a| IpAddr::V6(a.addr()) == ip)
                })
        })
        .collect()
}

/// The forwarding state this host holds for one network's uplink (kernel path).
#[derive(Debug, Clone, Default)]
pub struct LocalEntries {
    pub host: String,
    pub fdb: BTreeSet<FdbEntry>,
    pub neigh: BTreeSet<NeighEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct End {
    pub query: String,
    pub endpoint: String,
    pub host: String,
    pub container: String,
    pub addresses: Vec<String>,
    pub mac: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Trace {
    pub a: End,
    pub b: End,
    /// The network they share (None: none, so they are isolated).
    pub network: Option<String>,
    pub hops: Vec<String>,
    pub findings: Vec<Finding>,
}

fn end(query: &str, e: &Endpoint) -> End {
    let mut addresses = vec![e.ipv4.to_string()];
    if let Some(a) = e.ipv6 {
        addresses.push(a.to_string());
    }
    End {
        query: query.into(),
        endpoint: e.id.clone(),
        host: e.host.clone(),
        container: e.container.clone(),
        addresses,
        mac: e.mac.to_string(),
    }
}

fn finding(level: Level, subject: &str, message: String, hint: Option<&str>) -> Finding {
    Finding {
        level,
        subject: subject.into(),
        message,
        hint: hint.map(String::from),
    }
}

/// Picks the pair to trace: the two queries' endpoints on a network they share (the first such by
/// name), else any one of each to explain the isolation. Errors name a query that matches nothing.
fn pick<'a>(
    state: &'a ClusterState,
    qa: &str,
    qb: &str,
) -> Result<(&'a Endpoint, &'a Endpoint, bool), String> {
    let a = find(state, qa);
    let b = find(state, qb);
    for (q, v) in [(qa, &a), (qb, &b)] {
        if v.is_empty() {
            return Err(format!(
                "no endpoint matches {q:?} (give a container name or alias, its netns, or an address; `weft endpoints` lists them)"
            ));
        }
    }
    for ea in &a {
        if let Some(eb) = b
            .iter()
            .find(|eb| eb.network == ea.network && eb.id != ea.id)
        {
            return Ok((ea, eb, true));
        }
    }
    Ok((a[0], b[0], false))
}

pub fn trace(
    state: &ClusterState,
    reports: &BTreeMap<String, HostReport>,
    qa: &str,
    qb: &str,
    local: Option<&LocalEntries>,
) -> Result<Trace, String> {
    let (a, b, shared) = pick(state, qa, qb)?;
    let mut t = Trace {
        a: end(qa, a),
        b: end(qb, b),
        network: None,
        hops: vec![],
        findings: vec![],
    };
    if !shared {
        let nets = |q: &str| {
            let mut v: Vec<String> = find(state, q).iter().map(|e| e.network.clone()).collect();
            v.sort();
            v.dedup();
            v.join(", ")
        };
        t.findings.push(finding(
            Level::Fail,
            "isolation",
            format!(
                "{qa} (on {}) and {qb} (on {}) share no network: nothing carries frames between them, by design",
                nets(qa),
                nets(qb)
            ),
            Some("attach both to one network to let them talk"),
        ));
        return Ok(t);
    }
    let net_name = a.network.clone();
    t.network = Some(net_name.clone());
    let subject = format!("network {net_name}");
    let Some(net) = state.networks.get(&net_name) else {
        t.findings.push(finding(
            Level::Fail,
            &subject,
            "has no network record (removed?)".into(),
            None,
        ));
        return Ok(t);
    };
    let bridge = names::bridge(net.vni);
    let mut paths = BTreeMap::new();
    for e in [a, b] {
        match state.hosts.get(&e.host) {
            None => t.findings.push(finding(
                Level::Fail,
                &format!("host {}", e.host),
                format!("is down (no host record): {} is unreachable", e.id),
                Some("start its agent; its endpoints vanish when its lease expires"),
            )),
            Some(h) => match crate::choose(h, net) {
                Ok(p) => {
                    paths.insert(e.host.clone(), p);
                }
                Err(why) => t.findings.push(finding(Level::Fail, &subject, why, None)),
            },
        }
    }
    let side = |e: &Endpoint| {
        format!(
            "{} {} ({} in {}, host {})",
            e.names.first().unwrap_or(&e.id),
            e.ipv4.addr(),
            e.ifname,
            e.container,
            e.host
        )
    };
    t.hops.push(format!("{} → veth {}", side(a), a.host_ifname));
    if a.host == b.host {
        t.hops.push(format!(
            "bridge {bridge} (both on host {}: frames stay there)",
            a.host
        ));
    } else {
        let uplink = |h: &str| match paths.get(h) {
            Some(Path::Kernel) => {
                format!("vxlan {} (kernel, VNI {})", names::vxlan(net.vni), net.vni)
            }
            Some(Path::Userspace) => format!(
                "tap {} (weft engine{})",
                names::tap(net.vni),
                if net.encrypted {
                    ", encrypted"
                } else {
                    ", VXLAN"
                }
            ),
            None => "?".into(),
        };
        let (ha, hb) = (state.hosts.get(&a.host), state.hosts.get(&b.host));
        t.hops
            .push(format!("bridge {bridge} → {}", uplink(&a.host)));
        if let (Some(ha), Some(hb)) = (ha, hb) {
            let wire = if net.encrypted {
                "UDP, Noise session + AEAD".to_string()
            } else {
                format!("UDP {}, VXLAN VNI {}", hb.vxlan_port, net.vni)
            };
            t.hops.push(format!(
                "underlay {} → {} ({wire})",
                ha.underlay, hb.underlay
            ));
        }
        t.hops
            .push(format!("{} → bridge {bridge}", uplink(&b.host)));
        // What each end's agent last said of the other.
        for (from, to) in [(a, b), (b, a)] {
            let Some(r) = reports.get(&from.host) else {
                t.findings.push(finding(
                    Level::Warn,
                    &format!("host {}", from.host),
                    "its agent has not reported its peers".into(),
                    Some("is `weft agent` running there?"),
                ));
                continue;
            };
            match r.peers.iter().find(|p| p.network == net_name && p.peer == to.host) {
                None => t.findings.push(finding(
                    Level::Warn,
                    &format!("host {}", from.host),
                    format!("does not (yet) carry {net_name} towards {}", to.host),
                    Some("its agent may not have seen the other endpoint yet; `weft doctor` there"),
                )),
                // Reports refresh every few seconds, so a young session may not show yet: a warning.
                Some(p) if net.encrypted && !p.handshake.starts_with("established") => {
                    t.findings.push(finding(
                        Level::Warn,
                        &format!("host {}", from.host),
                        format!("reports no encrypted session with {} (handshake {})", to.host, p.handshake),
                        Some("both hosts need the network's pre-shared key and UDP reachability on the secure port; reports lag a few seconds"),
                    ))
                }
                Some(p) => t.findings.push(finding(
                    Level::Ok,
                    &format!("host {}", from.host),
                    format!(
                        "carries {net_name} towards {} ({} → {}{})",
                        to.host,
                        p.path,
                        p.peer_path,
                        if net.encrypted { format!(", {}", p.handshake) } else { String::new() }
                    ),
                    None,
                )),
            }
        }
        if let (Some(l), Some(hb), Some(ha)) = (local, hb, ha) {
            let other = if l.host == a.host {
                Some((b, hb))
            } else if l.host == b.host {
                Some((a, ha))
            } else {
                None
            };
            if let Some((o, oh)) = other {
                let fdb = FdbEntry {
                    mac: o.mac,
                    dst: oh.underlay,
                };
                let neigh = NeighEntry {
                    ip: IpAddr::V4(o.ipv4.addr()),
                    mac: o.mac,
                };
                let here = format!("host {}", l.host);
                if l.fdb.contains(&fdb) && l.neigh.contains(&neigh) {
                    t.findings.push(finding(
                        Level::Ok,
                        &here,
                        format!(
                            "holds {} → {} and {} is {} on {}",
                            o.mac,
                            oh.underlay,
                            o.ipv4.addr(),
                            o.mac,
                            names::vxlan(net.vni)
                        ),
                        None,
                    ));
                } else {
                    let mut missing = vec![];
                    if !l.fdb.contains(&fdb) {
                        missing.push(format!("forwarding entry {} → {}", o.mac, oh.underlay));
                    }
                    if !l.neigh.contains(&neigh) {
                        missing.push(format!("neighbour entry {} is {}", o.ipv4.addr(), o.mac));
                    }
                    t.findings.push(finding(
                        Level::Fail,
                        &here,
                        format!(
                            "lacks the {} on {}",
                            missing.join(" and the "),
                            names::vxlan(net.vni)
                        ),
                        Some("the agent adds it within seconds; `weft doctor` says more"),
                    ));
                }
            }
        }
    }
    t.hops
        .push(format!("veth {} → {} {}", b.host_ifname, side(b), b.ifname));
    if t.findings.iter().all(|f| f.level == Level::Ok) {
        t.findings.push(finding(
            Level::Ok,
            &subject,
            format!("{} and {} share it (MTU {})", a.id, b.id, net.mtu),
            None,
        ));
    }
    t.findings.sort_by_key(|f| std::cmp::Reverse(f.level));
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::tests::{cluster, endpoint, network};
    use weft_model::PeerReport;

    fn report(host: &str, peers: &[(&str, &str, &str)]) -> HostReport {
        HostReport {
            schema: 1,
            host: host.into(),
            peers: peers
                .iter()
                .map(|(n, p, hs)| PeerReport {
                    network: n.to_string(),
                    peer: p.to_string(),
                    path: "kernel".into(),
                    peer_path: "kernel".into(),
                    handshake: hs.to_string(),
                })
                .collect(),
        }
    }

    /// Two endpoints of network `a` on different hosts, from the shared fixture.
    fn pair(st: &ClusterState) -> (Endpoint, Endpoint) {
        let mut v: Vec<&Endpoint> = st.endpoints_in("a").collect();
        v.sort_by(|x, y| x.host.cmp(&y.host));
        let first = v[0].clone();
        let other = v.iter().find(|e| e.host != first.host).unwrap();
        (first, (*other).clone())
    }

    #[test]
    fn finds_by_id_address_and_netns_name() {
        let st = cluster();
        let (a, _) = pair(&st);
        assert_eq!(find(&st, &a.id)[0].id, a.id);
        assert_eq!(find(&st, &a.ipv4.addr().to_string())[0].id, a.id);
        let base = std::path::Path::new(&a.container)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(find(&st, &base).iter().any(|e| e.id == a.id));
        assert!(find(&st, "nobody").is_empty());
    }

    #[test]
    fn healthy_pair_has_hops_and_no_problems() {
        let st = cluster();
        let (a, b) = pair(&st);
        let reports = BTreeMap::from([
            (a.host.clone(), report(&a.host, &[("a", &b.host, "none")])),
            (b.host.clone(), report(&b.host, &[("a", &a.host, "none")])),
        ]);
        let local = LocalEntries {
            host: a.host.clone(),
            fdb: BTreeSet::from([FdbEntry {
                mac: b.mac,
                dst: st.hosts[&b.host].underlay,
            }]),
            neigh: BTreeSet::from([NeighEntry {
                ip: IpAddr::V4(b.ipv4.addr()),
                mac: b.mac,
            }]),
        };
        let t = trace(&st, &reports, &a.id, &b.id, Some(&local)).unwrap();
        assert_eq!(t.network.as_deref(), Some("a"));
        assert!(
            t.findings.iter().all(|f| f.level == Level::Ok),
            "{:#?}",
            t.findings
        );
        let hops = t.hops.join("\n");
        assert!(hops.contains("underlay"), "{hops}");
        assert!(
            hops.contains(&a.host_ifname) && hops.contains(&b.host_ifname),
            "{hops}"
        );
    }

    #[test]
    fn missing_entry_and_missing_report_are_named() {
        let st = cluster();
        let (a, b) = pair(&st);
        let reports =
            BTreeMap::from([(a.host.clone(), report(&a.host, &[("a", &b.host, "none")]))]);
        let local = LocalEntries {
            host: a.host.clone(),
            ..Default::default()
        };
        let t = trace(&st, &reports, &a.id, &b.id, Some(&local)).unwrap();
        assert_eq!(t.findings[0].level, Level::Fail);
        assert!(
            t.findings[0].message.contains(&b.mac.to_string()),
            "{:#?}",
            t.findings
        );
        assert!(t
            .findings
            .iter()
            .any(|f| f.level == Level::Warn && f.subject == format!("host {}", b.host)));
    }

    #[test]
    fn isolated_pairs_and_unknown_names() {
        let mut st = cluster();
        st.networks
            .insert("z".into(), network("z", 999, "10.99.0.0/24"));
        let other = endpoint("z", "ez", "h2", 9);
        st.endpoints.insert(("z".into(), "ez".into()), other);
        let (a, _) = pair(&st);
        let t = trace(&st, &BTreeMap::new(), &a.id, "ez", None).unwrap();
        assert!(t.network.is_none());
        assert_eq!(t.findings[0].level, Level::Fail);
        assert!(t.findings[0].message.contains("share no network"));
        let e = trace(&st, &BTreeMap::new(), &a.id, "ghost", None).unwrap_err();
        assert!(e.contains("\"ghost\""), "{e}");
    }
}
