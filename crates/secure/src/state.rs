//! What `weft status` shows of a peer.

use serde::{Deserialize, Serialize};

use crate::config::Suite;
use crate::keys::PublicKey;

/// A snapshot of a [`crate::Peer`]. Times are wall-clock milliseconds since the Unix epoch
/// (through the peer's [`crate::WallClock`]), so the CLI can print "12 s ago".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerState {
    pub public_key: PublicKey,
    pub network_id: u32,
    pub suite: Suite,
    pub handshake: HandshakeStatus,
    /// A new handshake is under way while the current session still carries traffic.
    pub rekeying: bool,
    /// When the last handshake completed (either role).
    pub last_handshake_unix_ms: Option<u64>,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Handshakes completed.
    pub handshakes: u64,
    /// Handshakes that replaced a session still in use.
    pub rekeys: u64,
}

/// Where the peer's handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum HandshakeStatus {
    /// No session and no handshake under way.
    None,
    /// A handshake is under way (ours sent, or theirs answered and awaiting confirmation),
    /// and there is no session to send on yet.
    Initiated { since_unix_ms: u64 },
    /// A session is established.
    Established { since_unix_ms: u64 },
}
