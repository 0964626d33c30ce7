//! The lab's naming and address plan. Pure: no I/O.
//!
//! A lab is named by its prefix `P` (letters and digits, no `-`, so that `P-` can never be the start of
//! another lab's names). Everything it creates carries the prefix:
//! - namespaces `P-ul` (the underlay bridge), `P-h1`…`P-hN` (hosts), `P-e1`…`P-e3` (etcd members),
//!   `P-c-NAME` (containers), `P-out` (the outside world, with `up --outside`);
//! - its state directory `/run/weft/lab/P/`.
//!
//! The underlay is 192.0.2.0/24 (TEST-NET-1): host N is 192.0.2.(10+N), etcd member i is 192.0.2.(200+i).
//! The outside sits on the underlay at 192.0.2.254 and holds "internet" addresses in 198.51.100.0/24
//! (TEST-NET-2), which every host routes through it.
//!
//! The underlay is dual-stack: its IPv6 side is 2001:db8::/64 (documentation space), where host N is
//! 2001:db8::(10+N) and the outside 2001:db8::254 (the IPv4 numbers, written as hex digits), and the
//! outside's IPv6 "internet" is 2001:db8:100::/64, routed from every host through it.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

pub const DEFAULT_PREFIX: &str = "weft";
/// Where every lab keeps its state: `<STATE_ROOT>/<prefix>/`.
pub const STATE_ROOT: &str = "/run/weft/lab";
/// The underlay subnet's prefix length.
pub const UNDERLAY_PREFIX_LEN: u8 = 24;
pub const UNDERLAY_MTU: u32 = 1500;
/// The host end of every underlay veth, in hosts and etcd members.
pub const UNDERLAY_IFNAME: &str = "ul0";
/// The underlay bridge, inside `P-ul`.
pub const UNDERLAY_BRIDGE: &str = "br0";
pub const MAX_HOSTS: u32 = 100;
pub const ETCD_MEMBERS: u32 = 3;
pub const ETCD_CLIENT_PORT: u16 = 2379;
pub const ETCD_PEER_PORT: u16 = 2380;
/// The outside's address on the underlay: hosts' next hop to the "internet".
pub const OUTSIDE_UNDERLAY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
/// The "internet" the outside plays, routed from every host through [`OUTSIDE_UNDERLAY`].
pub const OUTSIDE_NET: &str = "198.51.100.0/24";
/// The outside's own addresses in [`OUTSIDE_NET`] (on its loopback): what tests reach out to.
pub const OUTSIDE_ADDRS: [Ipv4Addr; 2] = [
    Ipv4Addr::new(198, 51, 100, 1),
    Ipv4Addr::new(198, 51, 100, 2),
];
/// The underlay's IPv6 prefix length (2001:db8::/64).
pub const UNDERLAY6_PREFIX_LEN: u8 = 64;
/// The outside's IPv6 address on the underlay: hosts' next hop to the IPv6 "internet".
pub const OUTSIDE_UNDERLAY6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x254);
/// The IPv6 "internet" the outside plays, routed from every host through [`OUTSIDE_UNDERLAY6`].
pub const OUTSIDE_NET6: &str = "2001:db8:100::/64";
/// The outside's own addresses in [`OUTSIDE_NET6`] (on its loopback).
pub const OUTSIDE_ADDRS6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 1),
    Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 2),
];
/// The outside's name in lab commands (`weft lab exec out -- …`) and its underlay bridge port.
pub const OUTSIDE_NAME: &str = "out";

/// A validated lab prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Prefix(String);

impl Prefix {
    pub fn new(s: &str) -> Result<Prefix> {
        let ok = !s.is_empty()
            && s.len() <= 16
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && s.as_bytes()[0].is_ascii_lowercase();
        if !ok {
            bail!(
                "invalid lab prefix {s:?}: use 1-16 lowercase letters and digits, starting with a letter (no '-', so that one lab's names never match another's)"
            );
        }
        Ok(Prefix(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a namespace of a lab is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsKind {
    Underlay,
    Host(u32),
    Etcd(u32),
    Container(String),
    Outside,
}

/// A lab: its prefix and where its state lives. All names derive from here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lab {
    pub prefix: Prefix,
    pub dir: PathBuf,
}

impl Lab {
    pub fn new(prefix: Prefix) -> Lab {
        let dir = Path::new(STATE_ROOT).join(prefix.as_str());
        Lab { prefix, dir }
    }

    pub fn named(prefix: &str) -> Result<Lab> {
        Ok(Lab::new(Prefix::new(prefix)?))
    }

    pub fn ns_name(&self, kind: &NsKind) -> String {
        let p = &self.prefix;
        match kind {
            NsKind::Underlay => format!("{p}-ul"),
            NsKind::Host(n) => format!("{p}-h{n}"),
            NsKind::Etcd(i) => format!("{p}-e{i}"),
            NsKind::Container(c) => format!("{p}-c-{c}"),
            NsKind::Outside => format!("{p}-{OUTSIDE_NAME}"),
        }
    }

    pub fn ul_ns(&self) -> String {
        self.ns_name(&NsKind::Underlay)
    }
    pub fn host_ns(&self, n: u32) -> String {
        self.ns_name(&NsKind::Host(n))
    }
    pub fn etcd_ns(&self, i: u32) -> String {
        self.ns_name(&NsKind::Etcd(i))
    }
    pub fn container_ns(&self, name: &str) -> String {
        self.ns_name(&NsKind::Container(name.to_string()))
    }
    pub fn outside_ns(&self) -> String {
        self.ns_name(&NsKind::Outside)
    }

    /// Which of this lab's namespaces `ns` is, if it is one. Never matches another prefix's names.
    pub fn classify(&self, ns: &str) -> Option<NsKind> {
        let rest = ns.strip_prefix(self.prefix.as_str())?.strip_prefix('-')?;
        if rest == "ul" {
            return Some(NsKind::Underlay);
        }
        if rest == OUTSIDE_NAME {
            return Some(NsKind::Outside);
        }
        if let Some(c) = rest.strip_prefix("c-") {
            return (!c.is_empty()).then(|| NsKind::Container(c.to_string()));
        }
        if let Some(n) = rest.strip_prefix('h').and_then(parse_index) {
            return Some(NsKind::Host(n));
        }
        if let Some(i) = rest.strip_prefix('e').and_then(parse_index) {
            return Some(NsKind::Etcd(i));
        }
        None
    }

    /// Whether `ns` is named like something of this prefix (`P-` followed by anything): what `down`
    /// deletes. Safe because prefixes contain no `-`.
    pub fn owns_ns(&self, ns: &str) -> bool {
        ns.strip_prefix(self.prefix.as_str())
            .and_then(|r| r.strip_prefix('-'))
            .is_some_and(|r| !r.is_empty())
    }

    /// Where the logs of a failed `up` (or demo) are kept after its undo: `/run/weft/lab/P.failed`
    /// (no prefix contains '.', so this is never another lab's state dir).
    pub fn failed_logs_dir(&self) -> PathBuf {
        self.dir.with_file_name(format!("{}.failed", self.prefix))
    }

    pub fn state_file(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.dir.join("state.lock")
    }
    pub fn store_db(&self) -> PathBuf {
        self.dir.join("store.db")
    }
    pub fn embedded_store_url(&self) -> String {
        format!("file://{}", self.store_db().display())
    }
    pub fn agent_pid_file(&self, host: &str) -> PathBuf {
        self.dir.join(format!("agent-{host}.pid"))
    }
    pub fn agent_log(&self, host: &str) -> PathBuf {
        self.dir.join(format!("agent-{host}.log"))
    }
    pub fn etcd_pid_file(&self, i: u32) -> PathBuf {
        self.dir.join(format!("etcd-e{i}.pid"))
    }
    pub fn etcd_log(&self, i: u32) -> PathBuf {
        self.dir.join(format!("etcd-e{i}.log"))
    }
    pub fn etcd_data_dir(&self, i: u32) -> PathBuf {
        self.dir.join("etcd").join(format!("e{i}"))
    }
    /// A host's own directory of pre-shared keys: on one machine the lab's hosts would otherwise
    /// share /etc/weft/psk (its agent's `--psk-dir`; `WEFT_PSK_DIR` under `lab exec`).
    pub fn psk_dir(&self, host: &str) -> PathBuf {
        self.dir.join("psk").join(host)
    }
    /// A host's Docker engine (`weft lab docker`): its data and exec roots, API socket, logs.
    pub fn docker_dir(&self, host: &str) -> PathBuf {
        self.dir.join("docker").join(host)
    }
    /// The directory that host's Docker sees as /run/docker/plugins: its agent's plugin socket
    /// lives there (one per host, where a real host has the one path).
    pub fn docker_plugins_dir(&self, host: &str) -> PathBuf {
        self.docker_dir(host).join("plugins")
    }
    pub fn docker_api_socket(&self, host: &str) -> PathBuf {
        self.docker_dir(host).join("docker.sock")
    }
    /// Where a host's agent writes its engine's counters (its `--stats-file`).
    pub fn stats_file(&self, host: &str) -> PathBuf {
        self.dir.join("stats").join(format!("{host}.json"))
    }
}

fn parse_index(s: &str) -> Option<u32> {
    if s.is_empty() || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&n| n >= 1)
}

pub fn host_name(n: u32) -> String {
    format!("h{n}")
}

/// `h3` → 3.
pub fn parse_host_name(s: &str) -> Option<u32> {
    s.strip_prefix('h').and_then(parse_index)
}

pub fn etcd_name(i: u32) -> String {
    format!("e{i}")
}

pub fn parse_etcd_name(s: &str) -> Option<u32> {
    s.strip_prefix('e')
        .and_then(parse_index)
        .filter(|&i| i <= ETCD_MEMBERS)
}

pub fn check_hosts(n: u32) -> Result<()> {
    if !(1..=MAX_HOSTS).contains(&n) {
        bail!("--hosts {n} is out of range: a lab has 1 to {MAX_HOSTS} hosts");
    }
    Ok(())
}

/// Host N's underlay address: 192.0.2.(10+N).
pub fn host_addr(n: u32) -> Ipv4Addr {
    assert!((1..=MAX_HOSTS).contains(&n), "host index {n} out of range");
    Ipv4Addr::new(192, 0, 2, 10 + n as u8)
}

/// Host N's IPv6 underlay address: 2001:db8::(10+N), the decimal digits of its IPv4 address's last
/// byte read as hex (h1 is 192.0.2.11 and 2001:db8::11), so that the two are easy to pair by eye.
pub fn host_addr6(n: u32) -> Ipv6Addr {
    let last = host_addr(n).octets()[3];
    let digits = u16::from_str_radix(&last.to_string(), 16).expect("decimal digits are hex digits");
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, digits)
}

/// etcd member i's underlay address: 192.0.2.(200+i).
pub fn etcd_addr(i: u32) -> Ipv4Addr {
    assert!(
        (1..=ETCD_MEMBERS).contains(&i),
        "etcd member {i} out of range"
    );
    Ipv4Addr::new(192, 0, 2, 200 + i as u8)
}

/// The bridge port in `P-ul` for a node (`h3`, `e1`): the node's own name, unique inside `P-ul`.
pub fn ul_port_name(node: &str) -> String {
    node.to_string()
}

/// The store URL of the lab's own etcd cluster.
pub fn etcd_store_url() -> String {
    let eps: Vec<String> = (1..=ETCD_MEMBERS)
        .map(|i| format!("{}:{ETCD_CLIENT_PORT}", etcd_addr(i)))
        .collect();
    format!("etcd://{}", eps.join(","))
}

/// etcd's `--initial-cluster`: `e1=http://192.0.2.201:2380,…`.
pub fn etcd_initial_cluster() -> String {
    (1..=ETCD_MEMBERS)
        .map(|i| format!("{}=http://{}:{ETCD_PEER_PORT}", etcd_name(i), etcd_addr(i)))
        .collect::<Vec<_>>()
        .join(",")
}

/// etcdctl's `--endpoints` for the lab's etcd cluster.
pub fn etcd_client_endpoints() -> String {
    (1..=ETCD_MEMBERS)
        .map(|i| format!("http://{}:{ETCD_CLIENT_PORT}", etcd_addr(i)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Container names: the same rule as every weft name (DNS labels), and short enough for a netns name.
pub fn check_container_name(name: &str) -> Result<()> {
    weft_model::validate::name("container", name)?;
    if parse_host_name(name).is_some() || parse_etcd_name(name).is_some() || name == "ul" {
        bail!("invalid container name {name:?}: it would shadow a lab host or member name (h<N>, e<N>, ul)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert!(Prefix::new("weft").is_ok());
        assert!(Prefix::new("wl1a2b").is_ok());
        for bad in [
            "",
            "we-ft",
            "Weft",
            "1abc",
            "a b",
            "abcdefghijklmnopq",
            "x/y",
        ] {
            assert!(Prefix::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn names() {
        let lab = Lab::named("weft").unwrap();
        assert_eq!(lab.ul_ns(), "weft-ul");
        assert_eq!(lab.host_ns(3), "weft-h3");
        assert_eq!(lab.etcd_ns(1), "weft-e1");
        assert_eq!(lab.container_ns("web-1"), "weft-c-web-1");
        assert_eq!(lab.outside_ns(), "weft-out");
        assert_eq!(lab.dir, Path::new("/run/weft/lab/weft"));
        assert_eq!(
            lab.embedded_store_url(),
            "file:///run/weft/lab/weft/store.db"
        );
        assert_eq!(
            lab.agent_log("h2"),
            Path::new("/run/weft/lab/weft/agent-h2.log")
        );
    }

    #[test]
    fn classify_round_trips_and_ignores_others() {
        let lab = Lab::named("weft").unwrap();
        for kind in [
            NsKind::Underlay,
            NsKind::Host(1),
            NsKind::Host(42),
            NsKind::Etcd(3),
            NsKind::Container("web".into()),
            NsKind::Container("h1".into()),
            NsKind::Outside,
        ] {
            assert_eq!(lab.classify(&lab.ns_name(&kind)), Some(kind.clone()));
            assert!(lab.owns_ns(&lab.ns_name(&kind)));
        }
        for other in [
            "weft",
            "weft-",
            "wefty-h1",
            "weftx-ul",
            "xweft-h1",
            "other-h1",
            "weft2-c-a",
        ] {
            assert!(!lab.owns_ns(other), "{other} owned");
            assert_eq!(lab.classify(other), None);
        }
        assert_eq!(lab.classify("weft-h0"), None);
        assert_eq!(lab.classify("weft-h01"), None);
        assert_eq!(lab.classify("weft-zz"), None);
        assert!(lab.owns_ns("weft-zz"));
    }

    #[test]
    fn addresses() {
        assert_eq!(host_addr(1), Ipv4Addr::new(192, 0, 2, 11));
        assert_eq!(host_addr(100), Ipv4Addr::new(192, 0, 2, 110));
        assert_eq!(etcd_addr(3), Ipv4Addr::new(192, 0, 2, 203));
        assert_eq!(host_addr6(1), "2001:db8::11".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            host_addr6(100),
            "2001:db8::110".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            OUTSIDE_UNDERLAY6,
            "2001:db8::254".parse::<Ipv6Addr>().unwrap()
        );
        // Every host and the outside are on the underlay's IPv6 prefix; the "internet" is not.
        let ul6: ipnet::Ipv6Net = "2001:db8::/64".parse().unwrap();
        let net6: ipnet::Ipv6Net = OUTSIDE_NET6.parse().unwrap();
        for n in 1..=MAX_HOSTS {
            assert!(ul6.contains(&host_addr6(n)) && !net6.contains(&host_addr6(n)));
        }
        assert!(ul6.contains(&OUTSIDE_UNDERLAY6));
        assert!(OUTSIDE_ADDRS6
            .iter()
            .all(|a| net6.contains(a) && !ul6.contains(a)));
        assert_eq!(ul6.prefix_len(), UNDERLAY6_PREFIX_LEN);
        assert_eq!(
            etcd_store_url(),
            "etcd://192.0.2.201:2379,192.0.2.202:2379,192.0.2.203:2379"
        );
        assert_eq!(
            etcd_initial_cluster(),
            "e1=http://192.0.2.201:2380,e2=http://192.0.2.202:2380,e3=http://192.0.2.203:2380"
        );
        assert!(check_hosts(0).is_err());
        assert!(check_hosts(101).is_err());
        assert!(check_hosts(3).is_ok());
    }

    #[test]
    fn host_and_container_names() {
        assert_eq!(parse_host_name("h3"), Some(3));
        assert_eq!(parse_host_name("h"), None);
        assert_eq!(parse_host_name("h03"), None);
        assert_eq!(parse_host_name("web"), None);
        assert_eq!(parse_etcd_name("e2"), Some(2));
        assert_eq!(parse_etcd_name("e4"), None);
        assert!(check_container_name("web-1").is_ok());
        assert!(check_container_name("h1").is_err());
        assert!(check_container_name("ul").is_err());
        assert!(check_container_name("Web").is_err());
        assert!(check_container_name("a/b").is_err());
    }
}
