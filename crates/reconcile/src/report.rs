//! What an agent reports of its datapath towards each peer (pure).

use std::collections::BTreeMap;

use weft_model::{PeerReport, CAP_KERNEL_VXLAN};

use crate::{ClusterState, NetDesired, Path};

fn path_name(p: Path) -> &'static str {
    match p {
        Path::Kernel => "kernel",
        Path::Userspace => "userspace",
    }
}

/// One entry per (network, remote host with endpoints in it), sorted.
pub fn peers(state: &ClusterState, applied: &BTreeMap<String, NetDesired>) -> Vec<PeerReport> {
    let mut out = Vec::new();
    for (name, d) in applied {
        for host in state
            .hosts
            .values()
            .filter(|h| d.flood.contains(&h.underlay))
        {
            let kernel = host.capabilities.iter().any(|c| c == CAP_KERNEL_VXLAN);
            out.push(PeerReport {
                network: name.clone(),
                peer: host.id.clone(),
                path: path_name(d.path).into(),
                peer_path: if kernel { "kernel" } else { "userspace" }.into(),
                handshake: "none".into(),
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
}
