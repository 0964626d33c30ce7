//! The container's resolver configuration: attach and detach keep `/etc/netns/NAME/resolv.conf` of
//! a named container pointing at the agent's resolver, with a search list of the networks it is on
//! here. Only for named namespaces (what `ip netns exec` reads), only when the host's agent serves
//! DNS, and never over a file weft did not write.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use weft_dns::resolvconf::{self, Written};
use weft_model::{keys, Endpoint};
use weft_netlink::{Netns, NETNS_RUN_DIR};
use weft_store::Store;

use crate::read;

/// The netns name of a container recorded as `/run/netns/NAME`; None for other paths.
pub fn netns_name(container: &str) -> Option<&str> {
    let name = container.strip_prefix(NETNS_RUN_DIR)?.strip_prefix('/')?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// Networks the container is on at this host, per the store, sorted.
async fn networks_of(store: &dyn Store, host: &str, container: &str) -> Result<Vec<String>> {
    let (eps, _) = read::list::<Endpoint>(store, keys::ENDPOINTS).await?;
    let mut nets: Vec<String> = eps
        .into_iter()
        .map(|(e, _)| e)
        .filter(|e| e.host == host && e.container == container)
        .map(|e| e.network)
        .collect();
    nets.sort();
    nets.dedup();
    Ok(nets)
}

/// Writes (or rewrites, or removes when it is on no network here any more) the container's
/// resolv.conf from the store's endpoints; `domain` is the host's agent's (None: it serves no DNS,
/// so nothing is written). What it wrote is returned, for a rollback.
pub async fn configure(
    store: &dyn Store,
    host_id: &str,
    domain: Option<&str>,
    container: &str,
) -> Result<Option<Written>> {
    if netns_name(container).is_none() {
        return Ok(None);
    }
    let nets = networks_of(store, host_id, container).await?;
    sync_file(container, domain, &nets)
}

/// Brings the resolv.conf of the named container to `nets` under `domain`: written when it
/// differs, removed when `nets` is empty (or `domain` is None), never over a file weft did not
/// write. Attach and detach call it, and the agent keeps it so as the store changes (for example
/// when `network rm --force` takes a container's last endpoint). Nothing for unnamed containers.
pub fn sync_file(
    container: &str,
    domain: Option<&str>,
    nets: &[String],
) -> Result<Option<Written>> {
    let Some(name) = netns_name(container) else {
        return Ok(None);
    };
    let (Some(domain), false) = (domain, nets.is_empty()) else {
        resolvconf::remove_for_netns(name)
            .with_context(|| format!("removing {}", resolvconf::path_for_netns(name).display()))?;
        return Ok(None);
    };
    let text = resolvconf::render(weft_model::RESOLVER_ADDR, domain, nets);
    let w = resolvconf::write_for_netns(name, &text)
        .with_context(|| format!("writing {}", resolvconf::path_for_netns(name).display()))?;
    if let Written::NotOurs(p) = &w {
        tracing::debug!(path = %p.display(), "not weft's: leaving it as it is");
    }
    Ok(Some(w))
}

/// How long attach waits for the host's resolver to answer the new container's name.
pub const READY_TIMEOUT: Duration = Duration::from_secs(3);

/// Waits until the resolver inside `netns` answers `NAME.NETWORK.DOMAIN` of `ep` (its first name)
/// with its address, so that a container started right after attach finds names. False when it
/// did not within `timeout` (the agent is down or slow); true at once for an endpoint without
/// names.
pub async fn wait_answered(
    netns: &Netns,
    ep: &Endpoint,
    domain: &str,
    timeout: Duration,
) -> Result<bool> {
    let Some(name) = ep.names.first() else {
        return Ok(true);
    };
    let fqdn = format!("{name}.{}.{domain}", ep.network);
    let want = IpAddr::V4(ep.ipv4.addr());
    let ns = netns.try_clone()?;
    tokio::task::spawn_blocking(move || {
        weft_netlink::in_netns(&ns, || ask_until(&fqdn, want, timeout))?
    })
    .await
    .context("waiting for the resolver")?
}

/// Asks the resolver of the calling thread's namespace for `fqdn` until `want` is in the answer.
fn ask_until(fqdn: &str, want: IpAddr, timeout: Duration) -> Result<bool> {
    let start = Instant::now();
    let sock = UdpSocket::bind("127.0.0.1:0").context("a UDP socket in the container")?;
    sock.connect(SocketAddr::from((weft_model::RESOLVER_ADDR, 53)))?;
    sock.set_read_timeout(Some(Duration::from_millis(50)))?;
    let mut buf = [0u8; 1500];
    let mut id: u16 = rand::random();
    while start.elapsed() < timeout {
        id = id.wrapping_add(1);
        let q = weft_dns::probe::query(id, fqdn, false)
            .with_context(|| format!("{fqdn} is not a DNS name"))?;
        // Refused (nothing listening yet) or lost: try again shortly.
        if sock.send(&q).is_err() {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        match sock.recv(&mut buf) {
            Ok(n) => {
                if let Some((_, addrs)) = weft_dns::probe::addresses(id, &buf[..n]) {
                    if addrs.contains(&want) {
                        return Ok(true);
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netns_names() {
        assert_eq!(netns_name("/run/netns/web"), Some("web"));
        assert_eq!(netns_name("/run/netns/"), None);
        assert_eq!(netns_name("/run/netns/a/b"), None);
        assert_eq!(netns_name("/proc/12/ns/net"), None);
        assert_eq!(netns_name("/run/netnsx/web"), None);
    }
}
