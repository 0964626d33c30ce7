//! `weft trace A B`: gathers the cluster state, the agents' peer reports and, when this host is one
//! of the ends, its forwarding entries; the reasoning is `weft_reconcile::trace` (pure). `probe`
//! sends real pings from A when A lives on this host.

use std::collections::BTreeMap;

use anyhow::{anyhow, Context, Result};
use weft_datapath::KernelDatapath;
use weft_model::{keys, HostReport};
pub use weft_reconcile::trace::Trace;
use weft_reconcile::trace::{self, LocalEntries};
use weft_reconcile::{desired, Path};
use weft_store::Store;

use crate::{read, state};

pub async fn trace(store: &dyn Store, local_host: &str, a: &str, b: &str) -> Result<Trace> {
    let (state, _) = state::load(store).await?;
    let (reports, _) = read::list::<HostReport>(store, keys::STATUS).await?;
    let reports: BTreeMap<String, HostReport> = reports
        .into_iter()
        .map(|(r, _)| (r.host.clone(), r))
        .collect();
    // This host's entries for the network the two share, where the kernel holds them.
    let mut local = None;
    let ends: Vec<_> = trace::find(&state, a)
        .into_iter()
        .chain(trace::find(&state, b))
        .filter(|e| e.host == local_host)
        .map(|e| e.network.clone())
        .collect();
    let want = desired(local_host, &state);
    for net in ends {
        let Some(d) = want.get(&net).filter(|d| d.path == Path::Kernel) else {
            continue;
        };
        let h = &state.hosts[local_host];
        let kernel = KernelDatapath::new(h.underlay, h.vxlan_port).await?;
        if let Ok((fdb, _, neigh)) = kernel.entries(d).await {
            local = Some(LocalEntries {
                host: local_host.to_string(),
                fdb,
                neigh,
            });
            break;
        }
    }
    trace::trace(&state, &reports, a, b, local.as_ref()).map_err(|e| anyhow!(e))
}

#[derive(Debug, serde::Serialize)]
pub struct Probe {
    pub target: String,
    pub sent: u32,
    pub received: u32,
}

/// Pings each of B's addresses from inside A's namespace (A must live on this host).
pub async fn probe(t: &Trace, local_host: &str, count: u32) -> Result<Vec<Probe>> {
    if t.a.host != local_host {
        anyhow::bail!(
            "--probe sends from {}, which lives on host {}: run it there",
            t.a.query,
            t.a.host
        );
    }
    let mut out = Vec::new();
    for cidr in &t.b.addresses {
        let addr = cidr.split('/').next().unwrap_or(cidr);
        let o = tokio::process::Command::new("nsenter")
            .arg(format!("--net={}", t.a.container))
            .args(["ping", "-n", "-q", "-i", "0.2", "-W", "1", "-c"])
            .arg(count.to_string())
            .arg(addr)
            .output()
            .await
            .context("running ping in the container (needs nsenter and ping)")?;
        let text = String::from_utf8_lossy(&o.stdout);
        out.push(Probe {
            target: addr.to_string(),
            sent: count,
            received: parse_received(&text).unwrap_or(0),
        });
    }
    Ok(out)
}

/// `3 packets transmitted, 2 received, …` → 2.
fn parse_received(ping_output: &str) -> Option<u32> {
    let line = ping_output.lines().find(|l| l.contains("transmitted"))?;
    let after = line.split(',').nth(1)?;
    after.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_ping_summaries() {
        let s = "--- 10.0.0.3 ping statistics ---\n3 packets transmitted, 2 received, 33.3333% packet loss, time 401ms\n";
        assert_eq!(super::parse_received(s), Some(2));
        assert_eq!(super::parse_received("garbage"), None);
    }
}
