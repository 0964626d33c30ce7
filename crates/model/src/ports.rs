//! Published ports: `HOSTPORT:PORT[/tcp|udp]`, as `docker run -p` writes them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ModelError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(&self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A container port made reachable on its host's addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Publish {
    pub host_port: u16,
    pub port: u16,
    pub proto: Proto,
}

impl fmt::Display for Publish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.host_port, self.port, self.proto)
    }
}

fn port(spec: &str, what: &str, s: &str) -> Result<u16, ModelError> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(ModelError::Invalid(format!(
            "invalid --publish {spec:?}: {what} {s:?} is not a port (1-65535)"
        ))),
    }
}

impl FromStr for Publish {
    type Err = ModelError;

    fn from_str(spec: &str) -> Result<Publish, ModelError> {
        let (ports, proto) = match spec.split_once('/') {
            Some((p, "tcp")) => (p, Proto::Tcp),
            Some((p, "udp")) => (p, Proto::Udp),
            Some((_, other)) => {
                return Err(ModelError::Invalid(format!(
                    "invalid --publish {spec:?}: protocol {other:?} is not tcp or udp"
                )))
            }
            None => (spec, Proto::Tcp),
        };
        let Some((host, ctr)) = ports.split_once(':') else {
            return Err(ModelError::Invalid(format!(
                "invalid --publish {spec:?}: expected HOSTPORT:PORT[/tcp|udp], e.g. 8080:80"
            )));
        };
        Ok(Publish {
            host_port: port(spec, "host port", host)?,
            port: port(spec, "container port", ctr)?,
            proto,
        })
    }
}

/// Parses `--publish` arguments; the same host port and protocol twice is refused.
pub fn parse_all(specs: &[String]) -> Result<Vec<Publish>, ModelError> {
    let mut out: Vec<Publish> = Vec::new();
    for s in specs {
        let p: Publish = s.parse()?;
        if let Some(q) = out
            .iter()
            .find(|q| q.host_port == p.host_port && q.proto == p.proto)
        {
            return Err(ModelError::Invalid(format!(
                "--publish {p} and {q} both use host port {}/{}",
                p.host_port, p.proto
            )));
        }
        out.push(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(
            "8080:80".parse::<Publish>().unwrap(),
            Publish {
                host_port: 8080,
                port: 80,
                proto: Proto::Tcp
            }
        );
        let u: Publish = "5353:53/udp".parse().unwrap();
        assert_eq!((u.host_port, u.port, u.proto), (5353, 53, Proto::Udp));
        assert_eq!(u.to_string(), "5353:53/udp");
    }

    #[test]
    fn refuses_malformed() {
        for (bad, says) in [
            ("80", "expected HOSTPORT:PORT"),
            ("0:80", "host port \"0\""),
            ("70000:80", "host port \"70000\""),
            ("80:x", "container port \"x\""),
            ("80:80/sctp", "protocol \"sctp\""),
            ("", "expected HOSTPORT:PORT"),
            (":80", "host port \"\""),
            ("1:2:3", "container port \"2:3\""),
        ] {
            let e = bad.parse::<Publish>().unwrap_err().to_string();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn same_host_port_twice() {
        assert!(parse_all(&["80:80".into(), "80:80/udp".into()]).is_ok());
        let e = parse_all(&["80:80".into(), "80:81".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("host port 80/tcp"), "{e}");
    }
}
