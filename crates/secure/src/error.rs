//! Why a packet was dropped, and the errors of the calls that are not about packets.

use serde::{Deserialize, Serialize};

/// Why a received packet was dropped. The engine counts drops by this reason (`as_str` gives a
/// stable label); none of them is fatal to the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// Too short, wrong length for its type, or an unknown message type.
    #[error("malformed packet")]
    Malformed,
    /// The receiver index names no session or pending handshake of this peer.
    #[error("unknown receiver index")]
    UnknownIndex,
    /// The AEAD tag or a handshake message did not verify (forged, corrupted, or a wrong
    /// pre-shared key).
    #[error("authentication failed")]
    Authentication,
    /// The counter was already received, or is older than the replay window.
    #[error("replayed counter")]
    Replayed,
    /// The session the packet names is past its time or message limit.
    #[error("session expired")]
    Expired,
    /// A handshake initiation from a static key that is not this peer's (not a member).
    #[error("initiator is not a member")]
    NotMember,
    /// A handshake initiation whose timestamp is not newer than the last one accepted from
    /// that peer (a replayed initiation).
    #[error("stale handshake timestamp")]
    StaleTimestamp,
    /// Handshake initiations from this peer arrive faster than the configured minimum interval.
    #[error("handshake initiations too frequent")]
    RateLimited,
    /// A handshake initiation for another network than this peer's.
    #[error("initiation for another network")]
    WrongNetwork,
}

impl DropReason {
    /// Every reason, in a fixed order (for counter arrays).
    pub const ALL: [DropReason; 9] = [
        DropReason::Malformed,
        DropReason::UnknownIndex,
        DropReason::Authentication,
        DropReason::Replayed,
        DropReason::Expired,
        DropReason::NotMember,
        DropReason::StaleTimestamp,
        DropReason::RateLimited,
        DropReason::WrongNetwork,
    ];

    /// A stable snake_case label, for metrics and `weft status`.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::UnknownIndex => "unknown_index",
            DropReason::Authentication => "authentication",
            DropReason::Replayed => "replayed",
            DropReason::Expired => "expired",
            DropReason::NotMember => "not_member",
            DropReason::StaleTimestamp => "stale_timestamp",
            DropReason::RateLimited => "rate_limited",
            DropReason::WrongNetwork => "wrong_network",
        }
    }

    /// Position of this reason in [`DropReason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Errors of the calls that are not about a received packet.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A plaintext larger than one Noise message can carry.
    #[error("plaintext of {len} bytes exceeds the maximum of {max}")]
    TooLarge { len: usize, max: usize },
    /// An invalid [`crate::Config`] or peer key given to [`crate::Peer::new`].
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A key that cannot be decoded.
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
    /// The Noise library refused an operation that should not fail (a bug, reported, never a
    /// panic).
    #[error("noise: {0}")]
    Noise(String),
}

impl From<snow::Error> for Error {
    fn from(e: snow::Error) -> Self {
        Error::Noise(e.to_string())
    }
}
