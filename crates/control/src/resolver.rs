//! The container's resolver configuration: attach and detach keep `/etc/netns/NAME/resolv.conf` of
//! a named container pointing at the agent's resolver, with a search list of the networks it is on
//! here. Only for named namespaces (what `ip netns exec` reads), only when the host's agent serves
//! DNS, and never over a file weft did not write.

use anyhow::{Context, Result};
use weft_dns::resolvconf::{self, Written};
use weft_model::{keys, Endpoint};
use weft_netlink::NETNS_RUN_DIR;
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
    let Some(name) = netns_name(container) else {
        return Ok(None);
    };
    let nets = networks_of(store, host_id, container).await?;
    if nets.is_empty() {
        resolvconf::remove_for_netns(name)
            .with_context(|| format!("removing {}", resolvconf::path_for_netns(name).display()))?;
        return Ok(None);
    }
    let Some(domain) = domain else {
        return Ok(None);
    };
    let text = resolvconf::render(weft_model::RESOLVER_ADDR, domain, &nets);
    let w = resolvconf::write_for_netns(name, &text)
        .with_context(|| format!("writing {}", resolvconf::path_for_netns(name).display()))?;
    if let Written::NotOurs(p) = &w {
        tracing::info!(path = %p.display(), "not weft's: leaving it as it is");
    }
    Ok(Some(w))
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
