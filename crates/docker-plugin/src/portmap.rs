//! `docker run -p` on a weft network (pure): Docker hands the port bindings of a container whose
//! gateway is a weft network to its driver in `ProgramExternalConnectivity`; they become the
//! endpoint's published ports, as `weft attach --publish` makes them. Host ports are chosen as
//! Docker's bridge chooses them: the given one, the first free one of a range (`-p 8000-8010:80`),
//! or a free one of the dynamic range (`-p 80`, `-P`).

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::ops::RangeInclusive;

use serde::Deserialize;
use serde_json::Value;
use weft_model::{Proto, Publish};

/// The option of `ProgramExternalConnectivity` carrying the bindings.
pub const OPT_PORTMAP: &str = "com.docker.network.portmap";

/// Docker's dynamic port range when the kernel's cannot be read (libnetwork's portallocator).
pub const DYNAMIC_PORTS: RangeInclusive<u16> = 49153..=65535;

/// IANA protocol numbers as Docker sends them.
const TCP: u8 = 6;
const UDP: u8 = 17;

/// One of Docker's `types.PortBinding`, as libnetwork marshals it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortBinding {
    pub proto: u8,
    /// The container address (Docker leaves it empty: the driver knows it).
    #[serde(default, rename = "IP")]
    pub ip: Option<String>,
    pub port: u16,
    /// The host address to publish on (`-p 127.0.0.1:8080:80`); empty for all.
    #[serde(default, rename = "HostIP")]
    pub host_ip: Option<String>,
    /// 0: any free port.
    #[serde(default)]
    pub host_port: u16,
    /// The end of a host port range (`-p 8000-8010:80`); 0 or `host_port` for a single port.
    #[serde(default)]
    pub host_port_end: u16,
}

/// What one binding asks for: a container port and the host ports it may take.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Wanted {
    proto: Proto,
    port: u16,
    /// None: any free port of the dynamic range.
    host: Option<RangeInclusive<u16>>,
}

/// The bindings in a call's options (none when the option is absent or null).
pub fn bindings(options: &BTreeMap<String, Value>) -> Result<Vec<PortBinding>, String> {
    match options.get(OPT_PORTMAP) {
        None | Some(Value::Null) => Ok(vec![]),
        Some(v) => {
            serde_json::from_value(v.clone()).map_err(|e| format!("bad {OPT_PORTMAP} option: {e}"))
        }
    }
}

fn wanted(b: &PortBinding) -> Result<Wanted, String> {
    let proto = match b.proto {
        TCP => Proto::Tcp,
        UDP => Proto::Udp,
        132 => return Err("weft publishes tcp and udp ports, not sctp".into()),
        other => return Err(format!("unknown port protocol number {other}")),
    };
    if b.port == 0 {
        return Err(format!("container port 0/{proto} cannot be published"));
    }
    // weft's published ports answer on every address of the host (its DNAT matches no address).
    if let Some(ip) = b.host_ip.as_deref().filter(|s| !s.is_empty()) {
        let addr: IpAddr = ip
            .parse()
            .map_err(|_| format!("invalid host address {ip:?}"))?;
        if !addr.is_unspecified() {
            return Err(format!(
                "weft publishes ports on all of the host's addresses, not on {ip} alone: leave the address out of -p {ip}:{}:{}/{proto}",
                b.host_port, b.port
            ));
        }
    }
    let host = match (b.host_port, b.host_port_end) {
        (0, 0) => None,
        (0, end) => return Err(format!("host port range 0-{end} has no start")),
        (start, 0) => Some(start..=start),
        (start, end) if end < start => {
            return Err(format!(
                "host port range {start}-{end} ends before it starts"
            ))
        }
        (start, end) => Some(start..=end),
    };
    Ok(Wanted {
        proto,
        port: b.port,
        host,
    })
}

/// The published ports for `bindings`, sorted. `taken`: host ports other endpoints of this host
/// publish; `dynamic`: where ports are chosen for bindings without one. A single host port is
/// returned even when taken, so that the claim names its owner; a range skips taken ports.
pub fn choose(
    bindings: &[PortBinding],
    taken: &HashSet<(Proto, u16)>,
    dynamic: RangeInclusive<u16>,
) -> Result<Vec<Publish>, String> {
    let mut want: Vec<Wanted> = Vec::new();
    for b in bindings {
        let w = wanted(b)?;
        // Docker may send one binding per address family: the same port once.
        if !want.contains(&w) {
            want.push(w);
        }
    }
    // Fixed ports first, so that ranges and dynamic ports keep off them.
    want.sort_by_key(|w| match &w.host {
        Some(r) if r.start() == r.end() => 0,
        Some(_) => 1,
        None => 2,
    });
    let mut out: Vec<Publish> = Vec::new();
    for w in want {
        let used = |p: u16| {
            taken.contains(&(w.proto, p))
                || out.iter().any(|o| o.proto == w.proto && o.host_port == p)
        };
        let host_port = match &w.host {
            Some(r) if r.start() == r.end() => {
                let p = *r.start();
                if let Some(o) = out.iter().find(|o| o.proto == w.proto && o.host_port == p) {
                    return Err(format!(
                        "host port {p}/{} is asked for both container ports {} and {}",
                        w.proto, o.port, w.port
                    ));
                }
                p
            }
            Some(r) => r.clone().find(|p| !used(*p)).ok_or_else(|| {
                format!(
                    "no free host port in {}-{}/{} on this host",
                    r.start(),
                    r.end(),
                    w.proto
                )
            })?,
            None => dynamic.clone().find(|p| !used(*p)).ok_or_else(|| {
                format!(
                    "no free host port in the dynamic range {}-{}/{} on this host",
                    dynamic.start(),
                    dynamic.end(),
                    w.proto
                )
            })?,
        };
        out.push(Publish {
            host_port,
            port: w.port,
            proto: w.proto,
        });
    }
    out.sort();
    Ok(out)
}

/// The kernel's local port range (`ip_local_port_range`'s text), where Docker's bridge takes
/// ports for `-p PORT`; Docker's default when unreadable or nonsensical.
pub fn dynamic_range(text: Option<&str>) -> RangeInclusive<u16> {
    let parsed = text.and_then(|t| {
        let mut it = t.split_whitespace().map(|s| s.parse::<u16>().ok());
        let (a, b) = (it.next()??, it.next()??);
        (a > 0 && a <= b).then_some(a..=b)
    });
    parsed.unwrap_or(DYNAMIC_PORTS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Vec<PortBinding> {
        let opts: BTreeMap<String, Value> = serde_json::from_str(json).unwrap();
        bindings(&opts).unwrap()
    }

    fn pubs(v: &[Publish]) -> Vec<String> {
        v.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn fixed_ports_tcp_and_udp() {
        // As Docker 20.10 sends `-p 8080:80 -p 5353:53/udp`.
        let b = parse(
            r#"{"com.docker.network.portmap":[
                {"Proto":6,"IP":"","Port":80,"HostIP":"","HostPort":8080,"HostPortEnd":8080},
                {"Proto":17,"IP":"","Port":53,"HostIP":"","HostPort":5353,"HostPortEnd":5353}],
               "com.docker.network.endpoint.exposedports":[{"Proto":6,"Port":80},{"Proto":17,"Port":53}]}"#,
        );
        let got = choose(&b, &HashSet::new(), DYNAMIC_PORTS).unwrap();
        assert_eq!(pubs(&got), vec!["5353:53/udp", "8080:80/tcp"]);
        // A taken fixed port is still asked for: the claim refuses it, naming its owner.
        let taken = HashSet::from([(Proto::Tcp, 8080)]);
        assert_eq!(choose(&b, &taken, DYNAMIC_PORTS).unwrap(), got);
    }

    #[test]
    fn no_option_no_ports() {
        assert!(parse("{}").is_empty());
        assert!(parse(r#"{"com.docker.network.portmap":null}"#).is_empty());
        let opts: BTreeMap<String, Value> =
            serde_json::from_str(r#"{"com.docker.network.portmap":"x"}"#).unwrap();
        assert!(bindings(&opts)
            .unwrap_err()
            .contains("bad com.docker.network.portmap"));
    }

    #[test]
    fn dynamic_and_ranges_skip_taken_ports() {
        let b = parse(
            r#"{"com.docker.network.portmap":[
                {"Proto":6,"Port":80,"HostPort":0,"HostPortEnd":0},
                {"Proto":6,"Port":81,"HostPort":8000,"HostPortEnd":8002},
                {"Proto":6,"Port":82,"HostPort":8001,"HostPortEnd":8001}]}"#,
        );
        let taken = HashSet::from([(Proto::Tcp, 8000), (Proto::Tcp, 49153), (Proto::Udp, 49154)]);
        let got = choose(&b, &taken, DYNAMIC_PORTS).unwrap();
        // 8001 is 82's (fixed ports first), 8000 someone else's: 81 gets 8002.
        assert_eq!(
            pubs(&got),
            vec!["8001:82/tcp", "8002:81/tcp", "49154:80/tcp"]
        );
        let full = HashSet::from([(Proto::Tcp, 8000), (Proto::Tcp, 8001), (Proto::Tcp, 8002)]);
        let e = choose(&b[1..2], &full, DYNAMIC_PORTS).unwrap_err();
        assert_eq!(e, "no free host port in 8000-8002/tcp on this host");
        let e = choose(&b[..1], &HashSet::from([(Proto::Tcp, 7)]), 7..=7).unwrap_err();
        assert!(e.contains("dynamic range 7-7/tcp"), "{e}");
    }

    #[test]
    fn one_port_per_family_is_one_port() {
        let b = parse(
            r#"{"com.docker.network.portmap":[
                {"Proto":6,"Port":80,"HostIP":"0.0.0.0","HostPort":8080,"HostPortEnd":8080},
                {"Proto":6,"Port":80,"HostIP":"::","HostPort":8080,"HostPortEnd":8080}]}"#,
        );
        assert_eq!(
            pubs(&choose(&b, &HashSet::new(), DYNAMIC_PORTS).unwrap()),
            vec!["8080:80/tcp"]
        );
    }

    #[test]
    fn refusals() {
        for (json, says) in [
            (
                r#"{"Proto":6,"Port":80,"HostIP":"127.0.0.1","HostPort":8080}"#,
                "not on 127.0.0.1 alone",
            ),
            (
                r#"{"Proto":6,"Port":80,"HostIP":"nope","HostPort":8080}"#,
                "invalid host address",
            ),
            (r#"{"Proto":132,"Port":80,"HostPort":8080}"#, "not sctp"),
            (
                r#"{"Proto":1,"Port":80,"HostPort":8080}"#,
                "protocol number 1",
            ),
            (
                r#"{"Proto":6,"Port":0,"HostPort":8080}"#,
                "container port 0/tcp",
            ),
            (
                r#"{"Proto":6,"Port":80,"HostPort":9,"HostPortEnd":8}"#,
                "9-8 ends before",
            ),
            (
                r#"{"Proto":6,"Port":80,"HostPort":0,"HostPortEnd":8}"#,
                "has no start",
            ),
        ] {
            let b = parse(&format!(r#"{{"com.docker.network.portmap":[{json}]}}"#));
            let e = choose(&b, &HashSet::new(), DYNAMIC_PORTS).unwrap_err();
            assert!(e.contains(says), "{json}: {e}");
        }
        let b = parse(
            r#"{"com.docker.network.portmap":[
                {"Proto":6,"Port":80,"HostPort":8080},{"Proto":6,"Port":81,"HostPort":8080}]}"#,
        );
        let e = choose(&b, &HashSet::new(), DYNAMIC_PORTS).unwrap_err();
        assert!(
            e.contains("host port 8080/tcp is asked for both container ports 80 and 81"),
            "{e}"
        );
    }

    #[test]
    fn kernel_range() {
        assert_eq!(dynamic_range(Some("32768\t60999\n")), 32768..=60999);
        assert_eq!(dynamic_range(Some("garbage")), DYNAMIC_PORTS);
        assert_eq!(dynamic_range(Some("9 3")), DYNAMIC_PORTS);
        assert_eq!(dynamic_range(None), DYNAMIC_PORTS);
    }
}
