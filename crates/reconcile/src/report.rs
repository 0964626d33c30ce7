//! What an agent reports of its datapath towards each peer (pure).

use std::collections::BTreeMap;
use std::net::IpAddr;

use weft_model::{PeerReport, CAP_KERNEL_VXLAN};

use crate::{ClusterState, NetDesired, Path};

fn path_name(p: Path) -> &'static str {
    match p {
        Path::Kernel => "kernel",
        Path::Userspace => "userspace",
    }
}

/// How `weft status` shows an encrypted session: `established 12s ago` (the last completed
/// handshake, either role; `, rekeying` while a new one is under way), `initiated`, or `none`.
/// `since_ms`: milliseconds since that handshake, if one completed.
pub fn handshake_text(
    established: bool,
    initiated: bool,
    since_ms: Option<u64>,
    rekeying: bool,
) -> String {
    if established {
        let ago = since_ms
            .map(|ms| format!(" {}s ago", ms / 1000))
            .unwrap_or_default();
        let re = if rekeying { ", rekeying" } else { "" };
        format!("established{ago}{re}")
    } else if initiated {
        "initiated".into()
    } else {
        "none".into()
    }
}

/// One entry per (network, remote host with endpoints in it), sorted; handshake `none`.
pub fn peers(state: &ClusterState, applied: &BTreeMap<String, NetDesired>) -> Vec<PeerReport> {
    peers_with(state, applied, |_, _| None)
}

/// Like [`peers`], with the handshake state of each encrypted network's peer as `handshake`
/// gives it for (the network, the peer's underlay address); `none` where it gives nothing.
pub fn peers_with(
    state: &ClusterState,
    applied: &BTreeMap<String, NetDesired>,
    handshake: impl Fn(&NetDesired, IpAddr) -> Option<String>,
) -> Vec<PeerReport> {
    let mut out = Vec::new();
    for (name, d) in applied {
        for host in state
            .hosts
            .values()
            .filter(|h| d.flood.contains(&h.underlay))
        {
            // The peer's own choice for this network, as it makes it; failing that (a record
            // not seen yet), what its capabilities suggest.
            let peer_path = match state.networks.get(name).map(|n| crate::choose(host, n)) {
                Some(Ok(p)) => path_name(p),
                _ if host.capabilities.iter().any(|c| c == CAP_KERNEL_VXLAN) => "kernel",
                _ => "userspace",
            };
            out.push(PeerReport {
                network: name.clone(),
                peer: host.id.clone(),
                path: path_name(d.path).into(),
                peer_path: peer_path.into(),
                handshake: if d.encrypted {
                    handshake(d, host.underlay)
                } else {
                    None
                }
                .unwrap_or_else(|| "none".into()),
            });
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::tests::cluster;

    #[test]
    fn one_entry_per_network_and_peer() {
        let s = cluster();
        let applied = crate::desired("h1", &s);
        let r = peers(&s, &applied);
        let pairs: Vec<(&str, &str)> = r
            .iter()
            .map(|p| (p.network.as_str(), p.peer.as_str()))
            .collect();
        assert_eq!(pairs, vec![("a", "h2"), ("a", "h3")]);
        assert!(r
            .iter()
            .all(|p| p.path == "kernel" && p.handshake == "none"));
    }

    #[test]
    fn encrypted_networks_report_the_handshake() {
        let s = cluster();
        let mut applied = crate::desired("h1", &s);
        applied.get_mut("a").unwrap().encrypted = true;
        let r = peers_with(&s, &applied, |d, ip| {
            (ip.to_string() == "192.0.2.2").then(|| format!("{} ok", d.network))
        });
        let hs: Vec<&str> = r.iter().map(|p| p.handshake.as_str()).collect();
        assert_eq!(hs, vec!["a ok", "none"]);
        assert_eq!(
            handshake_text(true, false, Some(12_300), false),
            "established 12s ago"
        );
        assert_eq!(
            handshake_text(true, true, Some(0), true),
            "established 0s ago, rekeying"
        );
        assert_eq!(handshake_text(false, true, None, false), "initiated");
        assert_eq!(handshake_text(false, false, None, false), "none");
    }
}
