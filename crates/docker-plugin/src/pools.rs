//! Decisions about pools and networks, free of I/O. Docker 20.10 never tells a plugin a network's
//! name: its IPAM calls carry only pools, its driver calls only Docker's network id. So a pool is
//! named by its subnet (stateless, valid across restarts of either side), and the weft network
//! behind a pool is found in Docker's own list of networks by that subnet.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use weft_model::{validate, Network};

const POOL_PREFIX: &str = "weft:";

pub fn pool_id(subnet: IpNet) -> String {
    format!("{POOL_PREFIX}{subnet}")
}

pub fn parse_pool_id(id: &str) -> Result<IpNet, String> {
    id.strip_prefix(POOL_PREFIX)
        .and_then(|s| s.parse::<IpNet>().ok())
        .filter(|n| n.trunc() == *n)
        .ok_or_else(|| format!("unknown pool {id:?}: not one weft's IPAM driver handed out"))
}

/// A pool Docker asks for: the given subnet (checked), or a free one picked when none was given.
pub fn requested_pool(given: &str, v6: bool, used: &[IpNet]) -> Result<IpNet, String> {
    if given.is_empty() {
        return pick_subnet(v6, used);
    }
    let n: IpNet = given
        .parse()
        .map_err(|_| format!("invalid subnet {given:?}"))?;
    if n.trunc() != n {
        return Err(format!(
            "subnet {given} has host bits set; did you mean {}?",
            n.trunc()
        ));
    }
    if n.addr().is_ipv6() != v6 {
        return Err(format!(
            "subnet {given} is not an IPv{} subnet",
            if v6 { 6 } else { 4 }
        ));
    }
    validate::subnet(n).map_err(|e| e.to_string())?;
    Ok(n)
}

/// The first /24 of 10.128.0.0/9 (IPv4) or /64 of fd77:6566:7400::/48 (IPv6) overlapping nothing
/// in `used`.
pub fn pick_subnet(v6: bool, used: &[IpNet]) -> Result<IpNet, String> {
    let free = |n: IpNet| !used.iter().any(|u| validate::overlaps(n, *u));
    if v6 {
        let base: Ipv6Net = "fd77:6566:7400::/48".parse().expect("valid");
        base.subnets(64)
            .expect("64 > 48")
            .map(IpNet::V6)
            .find(|n| free(*n))
    } else {
        let base: Ipv4Net = "10.128.0.0/9".parse().expect("valid");
        base.subnets(24)
            .expect("24 > 9")
            .map(IpNet::V4)
            .find(|n| free(*n))
    }
    .ok_or_else(|| "no free subnet left to pick; give one with --subnet".to_string())
}

/// The gateway Docker is given for a pool: weft's (the first host address), which weft never hands
/// out. A different one asked for is refused rather than silently replaced.
pub fn gateway(pool: IpNet, asked: &str) -> Result<IpNet, String> {
    let gw = match pool {
        IpNet::V4(s) => IpAddr::V4(weft_ipam::gateway4(s)),
        IpNet::V6(s) => IpAddr::V6(weft_ipam::gateway6(s)),
    };
    if !asked.is_empty() {
        let a: IpAddr = asked
            .split('/')
            .next()
            .unwrap_or_default()
            .parse()
            .map_err(|_| format!("invalid gateway {asked:?}"))?;
        if a != gw {
            return Err(format!(
                "weft's gateway of {pool} is {gw}: drop --gateway or give --gateway {gw}"
            ));
        }
    }
    Ok(IpNet::new(gw, pool.prefix_len()).expect("prefix of the pool"))
}

/// A network as Docker lists it (the fields weft reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerNetwork {
    pub id: String,
    pub name: String,
    pub driver: String,
    pub subnets: Vec<IpNet>,
}

/// The Docker network of weft's driver that holds `pool`.
pub fn network_of_pool(nets: &[DockerNetwork], pool: IpNet) -> Result<&DockerNetwork, String> {
    let mut found = nets
        .iter()
        .filter(|n| n.driver == crate::DRIVER && n.subnets.contains(&pool));
    match (found.next(), found.next()) {
        (Some(n), None) => Ok(n),
        (None, _) => Err(format!(
            "no Docker network of driver {} has subnet {pool} (yet)",
            crate::DRIVER
        )),
        (Some(a), Some(b)) => Err(format!(
            "Docker networks {:?} and {:?} both have subnet {pool}",
            a.name, b.name
        )),
    }
}

/// Checks that a Docker network's subnets agree with the weft network of the same name.
pub fn check_same_subnets(weft: &Network, docker: &DockerNetwork) -> Result<(), String> {
    for s in &docker.subnets {
        let ok = match s {
            IpNet::V4(s4) => *s4 == weft.subnet4,
            IpNet::V6(s6) => weft.subnet6 == Some(*s6),
        };
        if !ok {
            let mut theirs = weft.subnet4.to_string();
            if let Some(s6) = weft.subnet6 {
                theirs.push_str(&format!(" and {s6}"));
            }
            return Err(format!(
                "Docker network {:?} has subnet {s} but weft network {:?} has {theirs}: recreate it with those subnets (--subnet) or under another name",
                docker.name, weft.name
            ));
        }
    }
    Ok(())
}

/// The subnets to create a weft network with, from a Docker network's.
pub fn subnets_for_create(docker: &DockerNetwork) -> Result<Vec<String>, String> {
    let v4 = docker.subnets.iter().filter(|s| s.addr().is_ipv4()).count();
    let v6 = docker.subnets.len() - v4;
    if v4 != 1 || v6 > 1 {
        return Err(format!(
            "Docker network {:?} has {v4} IPv4 and {v6} IPv6 subnets; a weft network has exactly one IPv4 subnet and at most one IPv6 subnet",
            docker.name
        ));
    }
    Ok(docker.subnets.iter().map(|s| s.to_string()).collect())
}

/// weft's endpoint id for a Docker endpoint id: its first 16 hex digits (Docker's ids are 64).
pub fn endpoint_id(docker_id: &str) -> Result<String, String> {
    if docker_id.len() < 16 || !docker_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("invalid endpoint id {docker_id:?}"));
    }
    Ok(docker_id[..16].to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn dnet(name: &str, driver: &str, subnets: &[&str]) -> DockerNetwork {
        DockerNetwork {
            id: format!("{name}-id"),
            name: name.into(),
            driver: driver.into(),
            subnets: subnets.iter().map(|s| n(s)).collect(),
        }
    }

    fn weft_net(v4: &str, v6: Option<&str>) -> Network {
        let s4: Ipv4Net = v4.parse().unwrap();
        Network {
            schema: weft_model::SCHEMA_VERSION,
            name: "prod".into(),
            vni: 4096,
            subnet4: s4,
            subnet6: v6.map(|s| s.parse().unwrap()),
            gateway4: weft_ipam::gateway4(s4),
            gateway6: None,
            mtu: 1450,
            encrypted: false,
            psk_fingerprint: None,
            datapath: Default::default(),
            encap: Default::default(),
            labels: Default::default(),
            egress: true,
        }
    }

    #[test]
    fn pool_ids_round_trip() {
        let s = n("10.99.0.0/24");
        assert_eq!(parse_pool_id(&pool_id(s)).unwrap(), s);
        let s6 = n("fd00:99::/64");
        assert_eq!(parse_pool_id(&pool_id(s6)).unwrap(), s6);
        assert!(parse_pool_id("10.99.0.0/24").is_err());
        assert!(parse_pool_id("weft:10.99.0.1/24").is_err());
        assert!(parse_pool_id("weft:nonsense").is_err());
    }

    #[test]
    fn requested_pools() {
        assert_eq!(
            requested_pool("10.9.0.0/24", false, &[]).unwrap(),
            n("10.9.0.0/24")
        );
        assert!(requested_pool("10.9.0.1/24", false, &[])
            .unwrap_err()
            .contains("did you mean 10.9.0.0/24"));
        assert!(requested_pool("fd00::/64", false, &[])
            .unwrap_err()
            .contains("not an IPv4"));
        assert!(requested_pool("banana", false, &[]).is_err());
        assert_eq!(requested_pool("", false, &[]).unwrap(), n("10.128.0.0/24"));
    }

    #[test]
    fn picks_around_used_subnets() {
        let used = [n("10.128.0.0/23"), n("10.128.3.0/24")];
        assert_eq!(pick_subnet(false, &used).unwrap(), n("10.128.2.0/24"));
        assert_eq!(
            pick_subnet(false, &[n("10.0.0.0/8")]).unwrap_err(),
            "no free subnet left to pick; give one with --subnet"
        );
        assert_eq!(
            pick_subnet(true, &[n("fd77:6566:7400::/64")]).unwrap(),
            n("fd77:6566:7400:1::/64")
        );
    }

    #[test]
    fn gateways() {
        assert_eq!(gateway(n("10.9.0.0/24"), "").unwrap(), n("10.9.0.1/24"));
        assert_eq!(
            gateway(n("fd00:9::/64"), "fd00:9::1").unwrap(),
            n("fd00:9::1/64")
        );
        assert_eq!(
            gateway(n("10.9.0.0/24"), "10.9.0.254").unwrap_err(),
            "weft's gateway of 10.9.0.0/24 is 10.9.0.1: drop --gateway or give --gateway 10.9.0.1"
        );
    }

    #[test]
    fn finds_the_network_of_a_pool() {
        let nets = [
            dnet("bridge", "bridge", &["172.17.0.0/16"]),
            dnet("prod", "weft", &["10.9.0.0/24", "fd00:9::/64"]),
            dnet("other", "weft", &["10.8.0.0/24"]),
        ];
        assert_eq!(
            network_of_pool(&nets, n("fd00:9::/64")).unwrap().name,
            "prod"
        );
        assert!(network_of_pool(&nets, n("172.17.0.0/16")).is_err());
        let dup = [nets[1].clone(), dnet("copy", "weft", &["10.9.0.0/24"])];
        assert!(network_of_pool(&dup, n("10.9.0.0/24"))
            .unwrap_err()
            .contains("both have subnet"));
    }

    #[test]
    fn subnets_must_agree_with_the_weft_network() {
        let w = weft_net("10.9.0.0/24", Some("fd00:9::/64"));
        assert!(check_same_subnets(&w, &dnet("prod", "weft", &["10.9.0.0/24"])).is_ok());
        assert!(
            check_same_subnets(&w, &dnet("prod", "weft", &["10.9.0.0/24", "fd00:9::/64"])).is_ok()
        );
        let e = check_same_subnets(&w, &dnet("prod", "weft", &["10.7.0.0/24"])).unwrap_err();
        assert!(
            e.contains(
                "has subnet 10.7.0.0/24 but weft network \"prod\" has 10.9.0.0/24 and fd00:9::/64"
            ),
            "{e}"
        );
        let w4 = weft_net("10.9.0.0/24", None);
        assert!(
            check_same_subnets(&w4, &dnet("prod", "weft", &["10.9.0.0/24", "fd00:9::/64"]))
                .is_err()
        );
    }

    #[test]
    fn create_subnets() {
        assert_eq!(
            subnets_for_create(&dnet("p", "weft", &["10.9.0.0/24", "fd00:9::/64"])).unwrap(),
            vec!["10.9.0.0/24", "fd00:9::/64"]
        );
        assert!(subnets_for_create(&dnet("p", "weft", &["10.9.0.0/24", "10.8.0.0/24"])).is_err());
        assert!(subnets_for_create(&dnet("p", "weft", &["fd00:9::/64"])).is_err());
    }

    #[test]
    fn endpoint_ids() {
        assert_eq!(
            endpoint_id("3bd289adcdd87ea6e5d08d0884bb4d7eced948510f3858a2cfae061b83504103")
                .unwrap(),
            "3bd289adcdd87ea6"
        );
        assert!(endpoint_id("short").is_err());
        assert!(endpoint_id("../../../../etc/passwd/xxxxxx").is_err());
    }
}
