//! `weft doctor`'s judgement, free of I/O: what the cluster wants of one host against what that host
//! was seen holding, as findings that name the object concerned, say what is wrong and what to do.

use std::collections::BTreeMap;

use serde::Serialize;
use weft_model::HostReport;

use crate::{names, ClusterState, NetChanges, NetDesired, Path};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub level: Level,
    /// What the finding is about: `host h1`, `network prod`, `endpoint web/prod`.
    pub subject: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// A link as seen on the host; `master` by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkSeen {
    pub up: bool,
    pub mtu: u32,
    pub master: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetSeen {
    pub bridge: Option<LinkSeen>,
    /// The VXLAN device (kernel path) or the engine's TAP (userspace path).
    pub uplink: Option<LinkSeen>,
    /// What would turn the kernel's entries into the wanted ones; `None` where they are not
    /// observable from outside the agent (the engine holds its own tables).
    pub drift: Option<NetChanges>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointSeen {
    /// The host end of the endpoint's veth pair.
    pub host_link: Option<LinkSeen>,
    /// Whether the container's network namespace still exists.
    pub netns_exists: bool,
}

/// Everything `weft doctor` looked at on one host.
#[derive(Debug, Clone, Default)]
pub struct HostSeen {
    pub host: String,
    /// Seconds left on the host record's lease; `None` if the record is absent.
    pub lease_ttl_s: Option<f64>,
    /// Per network this host should carry (the keys of `desired`).
    pub networks: BTreeMap<String, NetSeen>,
    /// Per local endpoint, by (network, endpoint id).
    pub endpoints: BTreeMap<(String, String), EndpointSeen>,
    /// The agent's latest report of its peers.
    pub report: Option<HostReport>,
    /// VNIs the host has weft devices for that no network of this host needs.
    pub stray_vnis: Vec<u32>,
}

fn f(level: Level, subject: impl Into<String>, message: impl Into<String>) -> Finding {
    Finding {
        level,
        subject: subject.into(),
        message: message.into(),
        hint: None,
    }
}

impl Finding {
    fn hint(mut self, h: impl Into<String>) -> Finding {
        self.hint = Some(h.into());
        self
    }
}

const AGENT_HINT: &str = "the agent converges this within seconds; if it stays, look at the agent's log (is it running? can it reach the store?)";

/// Findings for host `seen.host`, worst first (stable within a level).
pub fn diagnose(
    state: &ClusterState,
    desired: &BTreeMap<String, NetDesired>,
    seen: &HostSeen,
) -> Vec<Finding> {
    let local = seen.host.as_str();
    let mut out = Vec::new();
    let me = format!("host {local}");
    match (state.hosts.get(local), seen.lease_ttl_s) {
        (Some(h), Some(ttl)) => out.push(f(
            Level::Ok,
            &me,
            format!(
                "registered (underlay {}, datapaths {}), lease {ttl:.0}s left",
                h.underlay,
                h.capabilities.join(",")
            ),
        )),
        (Some(_), None) => out.push(
            f(Level::Warn, &me, "registered, but its lease is expiring")
                .hint("the agent renews the lease; is it still running?"),
        ),
        (None, _) => out.push(
            f(Level::Fail, &me, "has no host record in the store")
                .hint("start `weft agent` on this host (same --store as here); attach needs a registered host"),
        ),
    }

    // Remote endpoints of hosts whose record is gone carry no entries anywhere.
    let mut orphaned: BTreeMap<&str, usize> = BTreeMap::new();
    for e in state.endpoints.values() {
        if !state.hosts.contains_key(&e.host) {
            *orphaned.entry(e.host.as_str()).or_default() += 1;
        }
    }
    for (h, n) in orphaned {
        if h != local {
            out.push(
                f(
                    Level::Warn,
                    format!("host {h}"),
                    format!("has {n} endpoint record(s) but no host record: it is down, its endpoints are unreachable"),
                )
                .hint("its records vanish when its lease expires; if they stay, the store holds them without a lease"),
            );
        }
    }

    for e in state.endpoints_on(local) {
        if !desired.contains_key(&e.network) {
            let why = match (state.networks.get(&e.network), state.hosts.get(local)) {
                (None, _) => "its network record is gone".to_string(),
                (Some(n), Some(h)) => match crate::choose(h, n) {
                    Err(e) => e,
                    Ok(_) => "the network is not carried here".into(),
                },
                (Some(_), None) => "this host is not registered".into(),
            };
            out.push(
                f(
                    Level::Fail,
                    format!("endpoint {}/{}", e.id, e.network),
                    format!("is not carried by this host: {why}"),
                )
                .hint(format!("`weft detach {} {}`", e.container, e.network)),
            );
        }
    }

    for (name, d) in desired {
        out.extend(network_findings(name, d, seen.networks.get(name)));
    }

    for ((net, id), e) in &seen.endpoints {
        let subject = format!("endpoint {id}/{net}");
        let bridge = desired.get(net).map(|d| d.bridge.as_str());
        let veth = names::veth_host(id);
        match &e.host_link {
            None => out.push(
                f(
                    Level::Fail,
                    &subject,
                    format!("host interface {veth} is missing"),
                )
                .hint("the container lost its link; detach and attach it again"),
            ),
            Some(l) if bridge.is_some() && l.master.as_deref() != bridge => out.push(
                f(
                    Level::Fail,
                    &subject,
                    format!(
                        "host interface {veth} is plugged into {} instead of {}",
                        l.master.as_deref().unwrap_or("nothing"),
                        bridge.unwrap_or("?")
                    ),
                )
                .hint("detach and attach it again"),
            ),
            Some(l) if !l.up => out.push(
                f(
                    Level::Fail,
                    &subject,
                    format!("host interface {veth} is down"),
                )
                .hint(format!("`ip link set {veth} up`")),
            ),
            Some(_) => {}
        }
        if !e.netns_exists {
            out.push(
                f(
                    Level::Fail,
                    &subject,
                    "its container's network namespace is gone",
                )
                .hint("the container ended without a detach; `weft detach` it to free its address"),
            );
        }
    }

    match &seen.report {
        None if !desired.is_empty() => out.push(
            f(Level::Warn, &me, "its agent has not reported its peers")
                .hint("is `weft agent` running on this host?"),
        ),
        None => {}
        Some(r) => {
            for p in &r.peers {
                let encrypted = desired.get(&p.network).is_some_and(|d| d.encrypted);
                if encrypted && !p.handshake.starts_with("established") {
                    out.push(
                        f(
                            Level::Warn,
                            format!("network {}", p.network),
                            format!("no session with peer {} (handshake {})", p.peer, p.handshake),
                        )
                        .hint("both hosts need the network's pre-shared key (same fingerprint) and UDP reachability on the secure port; a first handshake takes a moment"),
                    );
                }
            }
        }
    }

    for vni in &seen.stray_vnis {
        out.push(
            f(
                Level::Warn,
                format!("vni {vni}"),
                format!(
                    "{} is present but no network of this host needs it",
                    names::bridge(*vni)
                ),
            )
            .hint(AGENT_HINT),
        );
    }

    out.sort_by_key(|f| std::cmp::Reverse(f.level));
    out
}

fn network_findings(name: &str, d: &NetDesired, seen: Option<&NetSeen>) -> Vec<Finding> {
    let subject = format!("network {name}");
    let empty = NetSeen::default();
    let seen = seen.unwrap_or(&empty);
    let mut out = Vec::new();
    let uplink_name = match d.path {
        Path::Kernel => d.vxlan.clone(),
        Path::Userspace => names::tap(d.vni),
    };
    match &seen.bridge {
        None => {
            out.push(
                f(
                    Level::Fail,
                    &subject,
                    format!("bridge {} is missing", d.bridge),
                )
                .hint(AGENT_HINT),
            );
            return out;
        }
        Some(b) if !b.up => out.push(
            f(
                Level::Fail,
                &subject,
                format!("bridge {} is down", d.bridge),
            )
            .hint(AGENT_HINT),
        ),
        Some(b) if b.mtu > d.mtu => out.push(f(
            Level::Warn,
            &subject,
            format!(
                "bridge {} has MTU {} above the network's {}",
                d.bridge, b.mtu, d.mtu
            ),
        )),
        Some(_) => {}
    }
    match &seen.uplink {
        None => out.push(
            f(
                Level::Fail,
                &subject,
                format!("uplink {uplink_name} ({}) is missing", path_text(d.path)),
            )
            .hint(AGENT_HINT),
        ),
        Some(u) if u.master.as_deref() != Some(d.bridge.as_str()) => out.push(
            f(
                Level::Fail,
                &subject,
                format!(
                    "uplink {uplink_name} is plugged into {} instead of {}",
                    u.master.as_deref().unwrap_or("nothing"),
                    d.bridge
                ),
            )
            .hint(AGENT_HINT),
        ),
        Some(u) if !u.up => out.push(
            f(
                Level::Fail,
                &subject,
                format!("uplink {uplink_name} is down"),
            )
            .hint(AGENT_HINT),
        ),
        Some(_) => {}
    }
    if let Some(c) = &seen.drift {
        let missing = c.fdb_add.len() + c.flood_add.len() + c.neigh_add.len();
        let stale = c.fdb_del.len() + c.flood_del.len() + c.neigh_del.len();
        if missing > 0 {
            let mut example = String::new();
            if let Some(e) = c.fdb_add.first() {
                example = format!(" (e.g. {} → {})", e.mac, e.dst);
            } else if let Some(n) = c.neigh_add.first() {
                example = format!(" (e.g. {} is {})", n.ip, n.mac);
            }
            out.push(
                f(
                    Level::Fail,
                    &subject,
                    format!("{missing} forwarding/neighbour entries missing on {}{example}: those peers are unreachable", d.vxlan),
                )
                .hint(AGENT_HINT),
            );
        }
        if stale > 0 {
            out.push(
                f(
                    Level::Warn,
                    &subject,
                    format!("{stale} stale forwarding/neighbour entries on {}", d.vxlan),
                )
                .hint(AGENT_HINT),
            );
        }
    }
    if out.is_empty() {
        let entries = match &seen.drift {
            Some(_) => format!(
                ", {} FDB, {} flood, {} neighbour entries as wanted",
                d.fdb.len(),
                d.flood.len(),
                d.neigh.len()
            ),
            None => String::new(),
        };
        out.push(f(
            Level::Ok,
            &subject,
            format!(
                "{} path{}: {} + {uplink_name} up, MTU {}{entries}",
                path_text(d.path),
                if d.encrypted { ", encrypted" } else { "" },
                d.bridge,
                d.mtu
            ),
        ));
    }
    out
}

fn path_text(p: Path) -> &'static str {
    match p {
        Path::Kernel => "kernel VXLAN",
        Path::Userspace => "userspace engine",
    }
}

/// The process exit status `weft doctor` gives for these findings: 1 when anything failed.
pub fn exit_code(findings: &[Finding]) -> i32 {
    i32::from(findings.iter().any(|f| f.level == Level::Fail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired;
    use crate::desired::tests::cluster;

    fn healthy(state: &ClusterState, host: &str) -> (BTreeMap<String, NetDesired>, HostSeen) {
        let want = desired(host, state);
        let mut seen = HostSeen {
            host: host.into(),
            lease_ttl_s: Some(9.0),
            report: Some(HostReport {
                schema: 1,
                host: host.into(),
                peers: vec![],
            }),
            ..Default::default()
        };
        for (name, d) in &want {
            seen.networks.insert(
                name.clone(),
                NetSeen {
                    bridge: Some(LinkSeen {
                        up: true,
                        mtu: d.mtu,
                        master: None,
                    }),
                    uplink: Some(LinkSeen {
                        up: true,
                        mtu: d.mtu,
                        master: Some(d.bridge.clone()),
                    }),
                    drift: Some(NetChanges::default()),
                },
            );
        }
        for e in state.endpoints_on(host) {
            seen.endpoints.insert(
                (e.network.clone(), e.id.clone()),
                EndpointSeen {
                    host_link: Some(LinkSeen {
                        up: true,
                        mtu: 1450,
                        master: Some(want[&e.network].bridge.clone()),
                    }),
                    netns_exists: true,
                },
            );
        }
        (want, seen)
    }

    #[test]
    fn a_healthy_host_has_only_ok_findings() {
        let st = cluster();
        let (want, seen) = healthy(&st, "h1");
        assert!(!want.is_empty());
        let found = diagnose(&st, &want, &seen);
        assert!(found.iter().all(|f| f.level == Level::Ok), "{found:#?}");
        // One line for the host and one per network.
        assert_eq!(found.len(), 1 + want.len());
        assert_eq!(exit_code(&found), 0);
    }

    #[test]
    fn missing_entries_and_devices_fail_with_names() {
        let st = cluster();
        let (want, mut seen) = healthy(&st, "h1");
        let (name, d) = want.iter().next().unwrap();
        let e = *d.fdb.iter().next().unwrap();
        seen.networks.get_mut(name).unwrap().drift = Some(NetChanges {
            fdb_add: vec![e],
            ..Default::default()
        });
        let found = diagnose(&st, &want, &seen);
        assert_eq!(found[0].level, Level::Fail);
        assert!(found[0]
            .message
            .contains("1 forwarding/neighbour entries missing"));
        assert!(
            found[0].message.contains(&e.mac.to_string()),
            "{}",
            found[0].message
        );
        assert_eq!(exit_code(&found), 1);

        seen.networks.get_mut(name).unwrap().uplink = None;
        let found = diagnose(&st, &want, &seen);
        assert!(found.iter().any(|f| f.level == Level::Fail
            && f.message.contains(&d.vxlan)
            && f.message.contains("missing")));
    }

    #[test]
    fn endpoint_problems_are_named() {
        let st = cluster();
        let (want, mut seen) = healthy(&st, "h1");
        let key = seen.endpoints.keys().next().unwrap().clone();
        let e = seen.endpoints.get_mut(&key).unwrap();
        e.netns_exists = false;
        e.host_link.as_mut().unwrap().master = Some("wbr999".into());
        let found = diagnose(&st, &want, &seen);
        let subject = format!("endpoint {}/{}", key.1, key.0);
        let mine: Vec<_> = found.iter().filter(|f| f.subject == subject).collect();
        assert_eq!(mine.len(), 2, "{found:#?}");
        assert!(mine.iter().all(|f| f.level == Level::Fail));
        assert!(mine.iter().any(|f| f.message.contains("wbr999")));
        assert!(mine.iter().any(|f| f.message.contains("namespace is gone")));
    }

    #[test]
    fn unregistered_host_and_dead_peer() {
        let mut st = cluster();
        let (want, mut seen) = healthy(&st, "h1");
        seen.lease_ttl_s = None;
        st.hosts.remove("h2");
        let found = diagnose(&st, &want, &seen);
        assert!(found.iter().any(|f| f.subject == "host h2"
            && f.level == Level::Warn
            && f.message.contains("no host record")));
        st.hosts.remove("h1");
        let found = diagnose(&st, &want, &seen);
        assert!(found
            .iter()
            .any(|f| f.subject == "host h1" && f.level == Level::Fail));
    }

    #[test]
    fn stale_entries_and_stray_devices_warn() {
        let st = cluster();
        let (want, mut seen) = healthy(&st, "h1");
        let name = want.keys().next().unwrap().clone();
        seen.networks.get_mut(&name).unwrap().drift = Some(NetChanges {
            flood_del: vec!["192.0.2.99".parse().unwrap()],
            ..Default::default()
        });
        seen.stray_vnis = vec![4242];
        let found = diagnose(&st, &want, &seen);
        assert_eq!(exit_code(&found), 0);
        assert!(found
            .iter()
            .any(|f| f.level == Level::Warn && f.message.contains("1 stale")));
        assert!(found.iter().any(|f| f.subject == "vni 4242"));
    }
}
