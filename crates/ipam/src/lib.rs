//! Address management, free of I/O. The store makes allocations conflict-free (an allocation is a
//! compare-and-swap create of `ipam/<network>/<address>`); this crate decides which addresses may be
//! handed out and in which order to try them.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IpamError {
    #[error("address {addr} is outside the network's subnet {subnet}")]
    OutsideSubnet { addr: IpAddr, subnet: IpNet },
    #[error("address {addr} is reserved in {subnet} (network, broadcast or gateway address)")]
    Reserved { addr: IpAddr, subnet: IpNet },
    #[error("address {addr}/{given} must use the subnet's prefix length /{expected}")]
    PrefixMismatch {
        addr: IpAddr,
        given: u8,
        expected: u8,
    },
    #[error("subnet {0} has no free address left")]
    Exhausted(IpNet),
}

/// The gateway address of a subnet: its first host address. Reserved even while no gateway exists,
/// so that a later `expose` (the host joining the network) always has it.
pub fn gateway4(subnet: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + 1)
}

pub fn gateway6(subnet: Ipv6Net) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(subnet.network()) + 1)
}

/// Whether an address may never be handed out: network, broadcast (IPv4) or gateway; for IPv6 the
/// subnet-router anycast address (all zero host bits) and the gateway.
pub fn is_reserved(subnet: IpNet, addr: IpAddr) -> bool {
    match (subnet, addr) {
        (IpNet::V4(s), IpAddr::V4(a)) => a == s.network() || a == s.broadcast() || a == gateway4(s),
        (IpNet::V6(s), IpAddr::V6(a)) => a == s.network() || a == gateway6(s),
        _ => true,
    }
}

/// Checks a requested static address (with its prefix) against the subnet.
pub fn check_static(subnet: IpNet, requested: IpNet) -> Result<IpAddr, IpamError> {
    let addr = requested.addr();
    if !subnet.contains(&addr) || subnet.addr().is_ipv4() != addr.is_ipv4() {
        return Err(IpamError::OutsideSubnet { addr, subnet });
    }
    if requested.prefix_len() != subnet.prefix_len() {
        return Err(IpamError::PrefixMismatch {
            addr,
            given: requested.prefix_len(),
            expected: subnet.prefix_len(),
        });
    }
    if is_reserved(subnet, addr) {
        return Err(IpamError::Reserved { addr, subnet });
    }
    Ok(addr)
}

/// Free addresses in ascending order, lowest first, so that a pool returns to its start once
/// released. `limit` bounds the work for huge IPv6 subnets.
pub fn candidates(subnet: IpNet, taken: &HashSet<IpAddr>, limit: usize) -> Vec<IpAddr> {
    let mut out = Vec::new();
    match subnet {
        IpNet::V4(s) => {
            let first = u32::from(s.network()) as u64 + 1;
            let last = u32::from(s.broadcast()) as u64;
            for n in first..last {
                let a = IpAddr::V4(Ipv4Addr::from(n as u32));
                if !is_reserved(subnet, a) && !taken.contains(&a) {
                    out.push(a);
                    if out.len() >= limit {
                        break;
                    }
                }
            }
        }
        IpNet::V6(s) => {
            let first = u128::from(s.network()) + 1;
            let last = u128::from(s.broadcast());
            let mut n = first;
            // Bounded: scans at most taken.len() + limit + 2 addresses.
            while n <= last && out.len() < limit {
                let a = IpAddr::V6(Ipv6Addr::from(n));
                if !is_reserved(subnet, a) && !taken.contains(&a) {
                    out.push(a);
                }
                n += 1;
            }
        }
    }
    out
}

/// The next free address, or `Exhausted`.
pub fn next_free(subnet: IpNet, taken: &HashSet<IpAddr>) -> Result<IpAddr, IpamError> {
    candidates(subnet, taken, 1)
        .into_iter()
        .next()
        .ok_or(IpamError::Exhausted(subnet))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn reserved_v4() {
        let s = n("10.0.0.0/24");
        assert!(is_reserved(s, a("10.0.0.0")));
        assert!(is_reserved(s, a("10.0.0.1")));
        assert!(is_reserved(s, a("10.0.0.255")));
        assert!(!is_reserved(s, a("10.0.0.2")));
    }

    #[test]
    fn first_free_skips_reserved_and_taken() {
        let s = n("10.0.0.0/24");
        let mut taken = HashSet::new();
        assert_eq!(next_free(s, &taken).unwrap(), a("10.0.0.2"));
        taken.insert(a("10.0.0.2"));
        assert_eq!(next_free(s, &taken).unwrap(), a("10.0.0.3"));
        let c = candidates(s, &taken, 3);
        assert_eq!(c, vec![a("10.0.0.3"), a("10.0.0.4"), a("10.0.0.5")]);
    }

    #[test]
    fn exhaustion() {
        let s = n("10.0.0.0/29"); // .2 .. .6 usable
        let taken: HashSet<_> = (2..=6).map(|i| a(&format!("10.0.0.{i}"))).collect();
        assert_eq!(next_free(s, &taken), Err(IpamError::Exhausted(s)));
        assert_eq!(candidates(s, &HashSet::new(), 100).len(), 5);
    }

    #[test]
    fn v6() {
        let s = n("fd00::/64");
        assert_eq!(next_free(s, &HashSet::new()).unwrap(), a("fd00::2"));
        assert!(is_reserved(s, a("fd00::")));
        assert!(is_reserved(s, a("fd00::1")));
        let taken: HashSet<_> = [a("fd00::2")].into();
        assert_eq!(candidates(s, &taken, 2), vec![a("fd00::3"), a("fd00::4")]);
    }

    #[test]
    fn static_checks() {
        let s = n("10.0.0.0/24");
        assert_eq!(check_static(s, n("10.0.0.9/24")).unwrap(), a("10.0.0.9"));
        assert!(matches!(
            check_static(s, n("10.0.1.9/24")),
            Err(IpamError::OutsideSubnet { .. })
        ));
        assert!(matches!(
            check_static(s, n("10.0.0.1/24")),
            Err(IpamError::Reserved { .. })
        ));
        assert!(matches!(
            check_static(s, n("10.0.0.255/24")),
            Err(IpamError::Reserved { .. })
        ));
        assert!(matches!(
            check_static(s, n("10.0.0.9/16")),
            Err(IpamError::PrefixMismatch { .. })
        ));
        assert!(matches!(
            check_static(s, n("fd00::9/64")),
            Err(IpamError::OutsideSubnet { .. })
        ));
        let e = check_static(s, n("10.0.1.9/24")).unwrap_err().to_string();
        assert_eq!(
            e,
            "address 10.0.1.9 is outside the network's subnet 10.0.0.0/24"
        );
    }

    #[test]
    fn gateways() {
        assert_eq!(
            gateway4("10.9.0.0/16".parse().unwrap()),
            "10.9.0.1".parse::<Ipv4Addr>().unwrap()
        );
        assert_eq!(
            gateway6("fd00:1::/64".parse().unwrap()),
            "fd00:1::1".parse::<Ipv6Addr>().unwrap()
        );
    }
}
