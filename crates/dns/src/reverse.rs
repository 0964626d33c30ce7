//! Reverse names (`4.3.2.1.in-addr.arpa`, nibbles under `ip6.arpa`) to addresses. Pure.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Which reverse tree a name is under, and the address it names when it names a whole one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reverse {
    V4(Option<Ipv4Addr>),
    V6(Option<Ipv6Addr>),
}

impl Reverse {
    pub fn addr(self) -> Option<IpAddr> {
        match self {
            Reverse::V4(a) => a.map(IpAddr::V4),
            Reverse::V6(a) => a.map(IpAddr::V6),
        }
    }

    /// The apex of the tree, e.g. `["in-addr", "arpa"]`.
    pub fn apex(self) -> [&'static str; 2] {
        match self {
            Reverse::V4(_) => ["in-addr", "arpa"],
            Reverse::V6(_) => ["ip6", "arpa"],
        }
    }
}

/// `labels` lowercase, most specific first; None when not under a reverse tree.
pub fn parse(labels: &[String]) -> Option<Reverse> {
    let n = labels.len();
    if n < 2 || labels[n - 1] != "arpa" {
        return None;
    }
    let rest = &labels[..n - 2];
    match labels[n - 2].as_str() {
        "in-addr" => {
            let addr = (rest.len() == 4)
                .then(|| {
                    let mut o = [0u8; 4];
                    for (i, l) in rest.iter().enumerate() {
                        // Canonical decimal only: "01" names nothing.
                        if l.len() > 1 && l.starts_with('0') {
                            return None;
                        }
                        o[3 - i] = l.parse().ok()?;
                    }
                    Some(Ipv4Addr::from(o))
                })
                .flatten();
            Some(Reverse::V4(addr))
        }
        "ip6" => {
            let addr = (rest.len() == 32)
                .then(|| {
                    let mut v: u128 = 0;
                    for l in rest.iter().rev() {
                        if l.len() != 1 {
                            return None;
                        }
                        v = (v << 4) | u128::from(l.chars().next()?.to_digit(16)?);
                    }
                    Some(Ipv6Addr::from(v))
                })
                .flatten();
            Some(Reverse::V6(addr))
        }
        _ => None,
    }
}

/// The reverse name of `addr`, labels most specific first (for tests and tools).
pub fn name_of(addr: IpAddr) -> Vec<String> {
    let mut labels: Vec<String> = match addr {
        IpAddr::V4(a) => a.octets().iter().rev().map(|o| o.to_string()).collect(),
        IpAddr::V6(a) => {
            let v = u128::from(a);
            (0..32)
                .map(|i| format!("{:x}", (v >> (4 * i)) & 0xf))
                .collect()
        }
    };
    let apex = match addr {
        IpAddr::V4(_) => "in-addr",
        IpAddr::V6(_) => "ip6",
    };
    labels.extend([apex.to_string(), "arpa".to_string()]);
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(s: &str) -> Vec<String> {
        s.split('.').map(String::from).collect()
    }

    #[test]
    fn round_trips() {
        for a in ["10.1.0.3", "fd01::2", "255.0.0.1", "2001:db8::ff00:42:8329"] {
            let addr: IpAddr = a.parse().unwrap();
            assert_eq!(parse(&name_of(addr)).unwrap().addr(), Some(addr), "{a}");
        }
        assert_eq!(
            name_of("10.1.0.3".parse().unwrap()).join("."),
            "3.0.1.10.in-addr.arpa"
        );
    }

    #[test]
    fn partial_and_foreign() {
        assert_eq!(
            parse(&labels("0.1.10.in-addr.arpa")),
            Some(Reverse::V4(None))
        );
        assert_eq!(
            parse(&labels("300.0.1.10.in-addr.arpa")),
            Some(Reverse::V4(None))
        );
        assert_eq!(
            parse(&labels("03.0.1.10.in-addr.arpa")),
            Some(Reverse::V4(None))
        );
        assert_eq!(parse(&labels("ip6.arpa")), Some(Reverse::V6(None)));
        assert_eq!(parse(&labels("web.a")), None);
        assert_eq!(parse(&labels("arpa")), None);
    }
}
