//! What the agent tells of its engine: the handshake state per peer in the peer report
//! (`weft status`), and every engine counter in a stats file.
//!
//! The stats file (`--stats-file`, default `/run/weft/stats/HOST.json`) is the engine's
//! `EngineStats` as JSON, rewritten every [`STATS_EVERY`] while the engine runs: per network
//! the TAP and wire counters, for the encrypted transport the datagrams dropped by reason
//! (`secure.drops`: every `weft_secure::DropReason` name — `authentication`, `replayed`,
//! `not_member`, … — and `unknown_source`), and every peer's session state (`peers`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use weft_engine::{Engine, PeerStats};
use weft_reconcile::report::handshake_text;
use weft_reconcile::NetDesired;
use weft_secure::HandshakeStatus;

/// How often the stats file is rewritten.
pub const STATS_EVERY: Duration = Duration::from_secs(1);

/// Where the stats file goes unless told otherwise; per host name, as the key file.
pub fn default_stats_file(host: &str) -> PathBuf {
    PathBuf::from(format!("/run/weft/stats/{host}.json"))
}

/// Where the resolver's counters go: beside the engine's, `NAME.dns.json`.
pub fn dns_stats_file(stats_file: &Path) -> PathBuf {
    stats_file.with_extension("dns.json")
}

/// Writes the resolver's counters (atomically), when they changed since `last`.
pub(crate) fn write_dns_stats(
    path: &Path,
    stats: &weft_dns::DnsStats,
    last: &mut Option<weft_dns::DnsStats>,
) {
    if last.as_ref() == Some(stats) {
        return;
    }
    let res = serde_json::to_vec_pretty(stats)
        .map_err(std::io::Error::other)
        .and_then(|json| write_atomically(path, &json));
    if let Err(e) = res {
        // Once per change of the counters at most; the next change tries again.
        tracing::warn!(path = %path.display(), "writing the resolver's stats: {e}");
    }
    *last = Some(stats.clone());
}

/// The handshake text of the peer at `addr` of network `net`, from the engine's peer states.
pub(crate) fn handshake(peers: &[PeerStats], net: &NetDesired, addr: IpAddr) -> Option<String> {
    let p = peers.iter().find(|p| p.vni == net.vni && p.addr == addr)?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let since = p
        .state
        .last_handshake_unix_ms
        .map(|t| now_ms.saturating_sub(t));
    Some(handshake_text(
        matches!(p.state.handshake, HandshakeStatus::Established { .. }),
        matches!(p.state.handshake, HandshakeStatus::Initiated { .. }),
        since,
        p.state.rekeying,
    ))
}

/// Rewrites `path` with the engine's counters every [`STATS_EVERY`] (atomically: a reader never
/// sees half a file), until the task is dropped.
pub(crate) async fn write_stats_forever(engine: Arc<Engine>, path: PathBuf) {
    let mut every = tokio::time::interval(STATS_EVERY);
    let mut warned = false;
    loop {
        every.tick().await;
        let stats = engine.stats();
        let res = match serde_json::to_vec_pretty(&stats) {
            Ok(json) => write_atomically(&path, &json),
            Err(e) => Err(std::io::Error::other(e)),
        };
        match res {
            Ok(()) => warned = false,
            Err(e) if !warned => {
                tracing::warn!(path = %path.display(), "writing the engine's stats: {e}");
                warned = true;
            }
            Err(_) => {}
        }
    }
}

fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}
