//! Names as containers see them: one UDP socket per host, opened inside a container there and
//! aimed at that host's resolver, asking for a name every millisecond until every host gives the
//! wanted answer (the address after an attach, NXDOMAIN after a detach).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use weft_dns::probe;

use crate::netns;

/// How often each resolver is asked, and for how long.
pub const ASK_EVERY: Duration = Duration::from_millis(1);
pub const ASK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one answer is waited for before asking again.
const ANSWER_WAIT: Duration = Duration::from_millis(20);

/// One socket per host, each in a container of that host.
pub struct Resolvers {
    socks: Vec<(String, UdpSocket)>,
}

/// What a resolver must say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// An answer holding this address.
    Addr(Ipv4Addr),
    /// NXDOMAIN.
    Gone,
}

impl Resolvers {
    /// `containers`: (host, container netns) pairs.
    pub fn open(containers: &[(&str, &str)]) -> Result<Resolvers> {
        let mut socks = Vec::new();
        for (host, ns) in containers {
            let netns = netns::open(ns)?;
            let s = weft_netlink::in_netns(&netns, || -> std::io::Result<UdpSocket> {
                let s = UdpSocket::bind("127.0.0.1:0")?;
                s.connect(SocketAddr::from((weft_model::RESOLVER_ADDR, 53)))?;
                s.set_read_timeout(Some(ANSWER_WAIT))?;
                Ok(s)
            })?
            .with_context(|| format!("a socket towards the resolver in {ns}"))?;
            socks.push((host.to_string(), s));
        }
        Ok(Resolvers { socks })
    }

    /// From `t0`, the time until every resolver said what is wanted of `name` (the slowest host);
    /// None if one did not within [`ASK_TIMEOUT`].
    pub async fn every_host(&self, name: &str, want: Want, t0: Instant) -> Result<Option<f64>> {
        let socks: Vec<UdpSocket> = self
            .socks
            .iter()
            .map(|(_, s)| s.try_clone())
            .collect::<std::io::Result<_>>()?;
        let name = name.to_string();
        tokio::task::spawn_blocking(move || {
            let mut slowest: f64 = 0.0;
            for s in &socks {
                match until(s, &name, want, t0) {
                    Some(ms) => slowest = slowest.max(ms),
                    None => return None,
                }
            }
            Some(slowest)
        })
        .await
        .context("asking the resolvers")
    }
}

/// Asks one resolver every [`ASK_EVERY`] until it says `want`; ms since `t0`.
fn until(s: &UdpSocket, name: &str, want: Want, t0: Instant) -> Option<f64> {
    // Any start will do: ids only tell this socket's answers apart.
    let mut id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u16)
        .unwrap_or(1);
    let mut buf = [0u8; 1500];
    while t0.elapsed() < ASK_TIMEOUT {
        id = id.wrapping_add(1);
        let q = probe::query(id, name, false)?;
        if s.send(&q).is_ok() {
            let asked = Instant::now();
            while asked.elapsed() < ANSWER_WAIT {
                let Ok(n) = s.recv(&mut buf) else { break };
                let Some((code, addrs)) = probe::addresses(id, &buf[..n]) else {
                    continue;
                };
                let ok = match want {
                    Want::Addr(a) => addrs.contains(&IpAddr::V4(a)),
                    Want::Gone => code == probe::ResponseCode::NXDomain,
                };
                if ok {
                    return Some(super::convergence::ms(t0.elapsed()));
                }
                break;
            }
        }
        std::thread::sleep(ASK_EVERY);
    }
    None
}
