//! Which resolvers the agent forwards to: `--dns-upstream ADDR…` (an address, `ADDR:PORT`, or
//! `none`), else the host's /etc/resolv.conf.

use std::net::{IpAddr, SocketAddr};

use crate::resolvconf;

/// The host's resolv.conf.
pub const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";

/// Parses `--dns-upstream` values; None when none were given (use the host's). `none` alone means
/// no forwarding at all.
pub fn parse_args(args: &[String]) -> Result<Option<Vec<SocketAddr>>, String> {
    if args.is_empty() {
        return Ok(None);
    }
    if args.iter().any(|a| a == "none") {
        if args.len() > 1 {
            return Err("--dns-upstream none cannot be combined with addresses".into());
        }
        return Ok(Some(Vec::new()));
    }
    args.iter()
        .map(|a| {
            a.parse::<SocketAddr>()
                .or_else(|_| a.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                .map_err(|_| {
                    format!(
                        "invalid --dns-upstream {a:?}: use an address (192.0.2.53, 2001:db8::53), ADDR:PORT ([2001:db8::53]:5353), or none"
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The host's nameservers; none if its resolv.conf cannot be read.
pub fn from_host() -> Vec<SocketAddr> {
    match std::fs::read_to_string(HOST_RESOLV_CONF) {
        Ok(t) => resolvconf::nameservers(&t),
        Err(e) => {
            tracing::warn!("reading {HOST_RESOLV_CONF}: {e}; names outside weft get REFUSED");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses() {
        assert_eq!(parse_args(&[]), Ok(None));
        assert_eq!(parse_args(&args(&["none"])), Ok(Some(vec![])));
        assert_eq!(
            parse_args(&args(&[
                "192.0.2.254",
                "[2001:db8::1]:5353",
                "198.51.100.1:53"
            ]))
            .unwrap(),
            Some(vec![
                "192.0.2.254:53".parse().unwrap(),
                "[2001:db8::1]:5353".parse().unwrap(),
                "198.51.100.1:53".parse().unwrap(),
            ])
        );
        assert!(parse_args(&args(&["none", "192.0.2.1"])).is_err());
        let e = parse_args(&args(&["resolver.example"])).unwrap_err();
        assert!(
            e.contains("invalid --dns-upstream \"resolver.example\""),
            "{e}"
        );
    }
}
