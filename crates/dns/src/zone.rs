//! Which names are weft's, and what a name means to one asker. Pure.
//!
//! For a container on networks N (the asker), with cluster domain D:
//! - `NAME.NET.D` and `NAME.NET` (NET in N), and the single label `NAME`: the endpoints carrying NAME
//!   on those networks, else NXDOMAIN;
//! - `D`, `NET.D`: exist, hold no addresses; anything else under D: NXDOMAIN;
//! - reverse names of addresses in N's subnets: PTR to `NAME.NET.D`, else NXDOMAIN;
//! - everything else is not weft's: forwarded upstream. A network the asker is not on is nothing
//!   special, so `x.othernet` goes where `x.example` goes, and single labels never leave the host.

use crate::names::{Addrs, NameMap};
use crate::reverse;

/// What a name means to an asker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Endpoints carrying the name (not yet rotated).
    Addrs(Vec<Addrs>),
    /// A reverse name of an endpoint: its container name, as labels of the full name.
    Ptr(Vec<String>),
    /// The cluster domain's apex: its SOA lives here.
    Apex,
    /// The name exists in weft's zones but carries no records.
    Empty,
    /// In weft's zones, not known.
    NxDomain,
    /// Not weft's: forward upstream.
    NotOurs,
}

/// The zone whose SOA stands in negative answers, as labels (empty: the cluster domain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    pub resolution: Resolution,
    pub zone: Vec<String>,
}

/// `labels`: the query name, lowercase, most specific first, without the root.
pub fn resolve(map: &NameMap, networks: &[String], labels: &[String]) -> Answered {
    let domain = map.domain();
    let in_zone = |res: Resolution, zone: Vec<String>| Answered {
        resolution: res,
        zone,
    };
    let found = |name: &str| {
        let addrs = map.lookup(networks, name);
        if addrs.is_empty() {
            Resolution::NxDomain
        } else {
            Resolution::Addrs(addrs)
        }
    };
    let is_mine = |net: &String| networks.contains(net);
    if labels.len() >= domain.len() && labels[labels.len() - domain.len()..] == *domain {
        let rest = &labels[..labels.len() - domain.len()];
        let res = match rest {
            [] => Resolution::Apex,
            [net] if is_mine(net) => Resolution::Empty,
            [name, net] if is_mine(net) => found(name),
            _ => Resolution::NxDomain,
        };
        return in_zone(res, domain.to_vec());
    }
    if let Some(rev) = reverse::parse(labels) {
        let zone: Vec<String> = rev.apex().iter().map(|s| s.to_string()).collect();
        let Some(addr) = rev.addr() else {
            return in_zone(Resolution::NotOurs, zone);
        };
        return match map.reverse(networks, addr) {
            Ok((net, name)) => {
                let mut full = vec![name, net];
                full.extend(domain.iter().cloned());
                in_zone(Resolution::Ptr(full), zone)
            }
            Err(true) => in_zone(Resolution::NxDomain, zone),
            Err(false) => in_zone(Resolution::NotOurs, zone),
        };
    }
    match labels {
        [name, net] if is_mine(net) => in_zone(found(name), vec![net.clone()]),
        [name] => in_zone(found(name), domain.to_vec()),
        _ => in_zone(Resolution::NotOurs, vec![]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::tests::sample;

    fn q(networks: &[&str], name: &str) -> Resolution {
        let nets: Vec<String> = networks.iter().map(|s| s.to_string()).collect();
        let labels: Vec<String> = name.split('.').map(String::from).collect();
        resolve(&sample(), &nets, &labels).resolution
    }

    fn count(r: Resolution) -> usize {
        match r {
            Resolution::Addrs(a) => a.len(),
            other => panic!("expected addresses, got {other:?}"),
        }
    }

    #[test]
    fn three_forms_of_a_name() {
        for n in ["web", "web.a", "web.a.weft.internal"] {
            assert_eq!(count(q(&["a"], n)), 1, "{n}");
        }
        assert_eq!(count(q(&["a"], "svc.a")), 3);
        assert_eq!(count(q(&["a"], "database")), 1);
    }

    #[test]
    fn unknown_names_in_weft_zones() {
        assert_eq!(q(&["a"], "nope"), Resolution::NxDomain);
        assert_eq!(q(&["a"], "nope.a"), Resolution::NxDomain);
        assert_eq!(q(&["a"], "nope.a.weft.internal"), Resolution::NxDomain);
        assert_eq!(q(&["a"], "x.y.a.weft.internal"), Resolution::NxDomain);
        assert_eq!(q(&["a"], "weft.internal"), Resolution::Apex);
        assert_eq!(q(&["a"], "a.weft.internal"), Resolution::Empty);
    }

    #[test]
    fn other_networks_look_like_unknown_names() {
        // Exactly what a name nobody has gets, in each form.
        assert_eq!(q(&["a"], "secret"), q(&["a"], "nobody"));
        assert_eq!(q(&["a"], "secret.b"), q(&["a"], "nobody.nowhere"));
        assert_eq!(q(&["a"], "secret.b"), Resolution::NotOurs);
        assert_eq!(
            q(&["a"], "secret.b.weft.internal"),
            q(&["a"], "nobody.nowhere.weft.internal")
        );
        assert_eq!(q(&["a"], "b.weft.internal"), Resolution::NxDomain);
        assert_eq!(q(&["a"], "2.0.2.10.in-addr.arpa"), Resolution::NotOurs);
        assert_eq!(count(q(&["a", "b"], "secret")), 1);
    }

    #[test]
    fn reverse() {
        assert_eq!(
            q(&["a"], "3.0.1.10.in-addr.arpa"),
            Resolution::Ptr(vec![
                "db".into(),
                "a".into(),
                "weft".into(),
                "internal".into()
            ])
        );
        assert_eq!(q(&["a"], "99.0.1.10.in-addr.arpa"), Resolution::NxDomain);
        assert_eq!(q(&["a"], "1.0.0.127.in-addr.arpa"), Resolution::NotOurs);
        assert_eq!(q(&["a"], "0.1.10.in-addr.arpa"), Resolution::NotOurs);
    }

    #[test]
    fn the_rest_is_forwarded() {
        assert_eq!(q(&["a"], "example.com"), Resolution::NotOurs);
        assert_eq!(q(&["a"], "www.example.com"), Resolution::NotOurs);
        assert_eq!(q(&[], "web.a"), Resolution::NotOurs);
    }
}
