//! Validation of user input, with messages that name the problem.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::ModelError;

/// Network, container and host names: DNS labels, so that they can later be names in DNS.
pub fn name(kind: &str, s: &str) -> Result<(), ModelError> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ModelError::Invalid(format!(
            "invalid {kind} name {s:?}: use 1-63 lowercase letters, digits, '-' or '_', not starting or ending with '-'"
        )))
    }
}

/// A DNS domain such as `weft.internal`: dot-separated labels of the kind [`name`] accepts.
pub fn dns_domain(s: &str) -> Result<(), ModelError> {
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() || s.len() > 200 {
        return Err(ModelError::Invalid(format!(
            "invalid DNS domain {s:?}: use dot-separated labels, at most 200 characters in all"
        )));
    }
    for label in s.split('.') {
        name("DNS domain label", label)
            .map_err(|e| ModelError::Invalid(format!("invalid DNS domain {s:?}: {e}")))?;
    }
    Ok(())
}

pub fn parse_cidr(s: &str) -> Result<IpNet, ModelError> {
    s.parse::<IpNet>().map_err(|_| {
        ModelError::Invalid(format!(
            "invalid CIDR {s:?}: expected an address and prefix length like 10.0.0.0/24 or fd00::/64"
        ))
    })
}

/// Checks a network subnet: given in canonical form and big enough to hold endpoints.
pub fn subnet(net: IpNet) -> Result<(), ModelError> {
    if net.trunc() != net {
        return Err(ModelError::Invalid(format!(
            "subnet {net} has host bits set; did you mean {}?",
            net.trunc()
        )));
    }
    match net {
        IpNet::V4(n) if n.prefix_len() > 29 => Err(ModelError::Invalid(format!(
            "IPv4 subnet {n} is too small: use /29 or larger"
        ))),
        IpNet::V6(n) if n.prefix_len() > 120 => Err(ModelError::Invalid(format!(
            "IPv6 subnet {n} is too small: use /120 or larger"
        ))),
        _ => Ok(()),
    }
}

pub fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Splits the `--subnet` arguments into one IPv4 and at most one IPv6 subnet.
pub fn subnets(args: &[String]) -> Result<(Ipv4Net, Option<Ipv6Net>), ModelError> {
    let mut v4 = None;
    let mut v6 = None;
    for a in args {
        let net = parse_cidr(a)?;
        subnet(net)?;
        match net {
            IpNet::V4(n) if v4.is_none() => v4 = Some(n),
            IpNet::V6(n) if v6.is_none() => v6 = Some(n),
            IpNet::V4(_) => {
                return Err(ModelError::Invalid(
                    "more than one IPv4 --subnet given".into(),
                ))
            }
            IpNet::V6(_) => {
                return Err(ModelError::Invalid(
                    "more than one IPv6 --subnet given".into(),
                ))
            }
        }
    }
    let v4 = v4.ok_or_else(|| ModelError::Invalid("a network needs an IPv4 --subnet".into()))?;
    Ok((v4, v6))
}

pub fn vni(v: u32) -> Result<(), ModelError> {
    if (1..=0xFF_FFFF).contains(&v) {
        Ok(())
    } else {
        Err(ModelError::Invalid(format!(
            "invalid VNI {v}: must be 1..16777215"
        )))
    }
}

pub fn mtu(m: u32, has_v6: bool) -> Result<(), ModelError> {
    let min = if has_v6 { 1280 } else { 576 };
    if (min..=9000).contains(&m) {
        Ok(())
    } else {
        Err(ModelError::Invalid(format!(
            "invalid MTU {m}: must be {min}..9000{}",
            if has_v6 {
                " (IPv6 needs at least 1280)"
            } else {
                ""
            }
        )))
    }
}

pub fn ifname(s: &str) -> Result<(), ModelError> {
    if s.is_empty() || s.len() > 15 || s.contains(['/', ' ', ':']) || s == "." || s == ".." {
        return Err(ModelError::Invalid(format!(
            "invalid interface name {s:?}: 1-15 characters, no '/', ':' or spaces"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(name("network", "prod-1").is_ok());
        assert!(name("network", "").is_err());
        assert!(name("network", "Prod").is_err());
        assert!(name("network", "-x").is_err());
        assert!(name("network", &"a".repeat(64)).is_err());
        assert!(name("network", "a/b").is_err());
        assert!(dns_domain("weft.internal").is_ok());
        assert!(dns_domain("cluster.local.").is_ok());
        assert!(dns_domain("a..b").is_err());
        assert!(dns_domain("").is_err());
        assert!(dns_domain("Weft.internal").is_err());
    }

    #[test]
    fn cidrs() {
        assert!(parse_cidr("10.0.0.0/24").is_ok());
        let e = parse_cidr("10.0.0.0/33").unwrap_err().to_string();
        assert!(e.contains("invalid CIDR \"10.0.0.0/33\""), "{e}");
        assert!(parse_cidr("banana").is_err());
        assert!(subnet("10.0.0.1/24".parse().unwrap())
            .unwrap_err()
            .to_string()
            .contains("10.0.0.0/24"));
        assert!(subnet("10.0.0.0/30".parse().unwrap()).is_err());
        assert!(subnet("fd00::/64".parse().unwrap()).is_ok());
    }

    #[test]
    fn subnet_args() {
        let (v4, v6) = subnets(&["10.1.0.0/16".into(), "fd01::/64".into()]).unwrap();
        assert_eq!(v4.to_string(), "10.1.0.0/16");
        assert_eq!(v6.unwrap().to_string(), "fd01::/64");
        assert!(subnets(&["fd01::/64".into()]).is_err());
        assert!(subnets(&["10.1.0.0/16".into(), "10.2.0.0/16".into()]).is_err());
    }

    #[test]
    fn overlap() {
        let a: IpNet = "10.0.0.0/16".parse().unwrap();
        assert!(overlaps(a, "10.0.5.0/24".parse().unwrap()));
        assert!(overlaps("10.0.5.0/24".parse().unwrap(), a));
        assert!(!overlaps(a, "10.1.0.0/16".parse().unwrap()));
        assert!(!overlaps(a, "fd00::/64".parse().unwrap()));
    }

    #[test]
    fn numbers() {
        assert!(vni(0).is_err());
        assert!(vni(1 << 24).is_err());
        assert!(vni(42).is_ok());
        assert!(mtu(1450, true).is_ok());
        assert!(mtu(1000, true).is_err());
        assert!(mtu(1000, false).is_ok());
        assert!(ifname("eth0").is_ok());
        assert!(ifname("a-very-long-interface").is_err());
    }
}
