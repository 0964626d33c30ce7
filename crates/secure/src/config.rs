//! A peer's configuration: its index space, network, cipher suite, clock anchor and limits.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The Noise cipher suite. Both ends must use the same one (the protocol name is hashed into the
/// handshake, so a mismatch fails as [`crate::DropReason::Authentication`]); it is a property of
/// the network, not of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Suite {
    /// `Noise_IKpsk2_25519_AESGCM_BLAKE2s`: AES-256-GCM through ring. The default: measured
    /// about 3× faster than ChaCha20-Poly1305 on hosts with AES instructions (see the crate docs).
    #[default]
    AesGcm,
    /// `Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s`: WireGuard's choice; better on CPUs without AES
    /// instructions.
    ChaChaPoly,
}

impl Suite {
    /// The Noise protocol name.
    pub fn noise_name(self) -> &'static str {
        match self {
            Suite::AesGcm => "Noise_IKpsk2_25519_AESGCM_BLAKE2s",
            Suite::ChaChaPoly => "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s",
        }
    }
}

/// Ties the monotonic clock the caller passes in to wall-clock time: the wall clock read
/// `unix` (since the Unix epoch) at the instant `at`. The engine makes one when it starts
/// (`WallClock { unix: SystemTime::now().duration_since(UNIX_EPOCH)?, at: Instant::now() }`);
/// this crate never reads a clock itself.
///
/// It is used for the handshake timestamps (which must keep growing across agent restarts, so
/// they cannot be monotonic-clock readings) and for the times in [`crate::PeerState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallClock {
    pub unix: Duration,
    pub at: Instant,
}

impl WallClock {
    /// Wall-clock time (since the Unix epoch) of `instant`.
    pub fn unix_at(&self, instant: Instant) -> Duration {
        match instant.checked_duration_since(self.at) {
            Some(after) => self.unix.saturating_add(after),
            None => self.unix.saturating_sub(self.at.duration_since(instant)),
        }
    }
}

/// Timers and limits, WireGuard's by default (whitepaper section 6). All are configurable so
/// that tests can make them small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Start a new handshake once a session is this old (the session's initiator; its responder
    /// waits `rekey_timeout` longer, so that the two rarely start at once).
    pub rekey_after_time: Duration,
    /// Never send or accept on a session older than this.
    pub reject_after_time: Duration,
    /// Start a new handshake once this many messages were sent on a session.
    pub rekey_after_messages: u64,
    /// Never send or accept a counter at or beyond this.
    pub reject_after_messages: u64,
    /// Retransmit a handshake initiation that got no response after this long (plus jitter).
    pub rekey_timeout: Duration,
    /// Random extra delay, up to this much, added to each retransmission.
    pub rekey_jitter: Duration,
    /// Give up a handshake (and tell the engine to drop its queue) after trying this long.
    pub rekey_attempt_time: Duration,
    /// Send a keepalive when data was received but nothing sent for this long.
    pub keepalive_timeout: Duration,
    /// Accept at most one handshake initiation from a peer per this interval.
    pub initiation_min_interval: Duration,
}

/// Bound of [`Limits::reject_after_messages`]: WireGuard's 2^64 − 2^13 − 1.
pub const MAX_REJECT_AFTER_MESSAGES: u64 = u64::MAX - (1 << 13);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            rekey_after_time: Duration::from_secs(120),
            reject_after_time: Duration::from_secs(180),
            rekey_after_messages: 1 << 60,
            reject_after_messages: MAX_REJECT_AFTER_MESSAGES,
            rekey_timeout: Duration::from_secs(5),
            rekey_jitter: Duration::from_millis(333),
            rekey_attempt_time: Duration::from_secs(90),
            keepalive_timeout: Duration::from_secs(10),
            initiation_min_interval: Duration::from_millis(20),
        }
    }
}

/// The configuration of one [`crate::Peer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// This peer's slot in the engine's index space, below 2^24: every receiver index this peer
    /// hands out is `index << 8 | n`, so the engine routes a response or transport message to
    /// its peer by `receiver >> 8` (see [`crate::message::peer_slot`]). Unique per engine
    /// socket.
    pub index: u32,
    /// The network (its VNI). Carried in the initiation and bound into the handshake's
    /// prologue, so a session can never serve another network, even one with the same PSK.
    pub network_id: u32,
    pub suite: Suite,
    pub wall_clock: WallClock,
    pub limits: Limits,
}

impl Config {
    /// A configuration with the default suite and limits.
    pub fn new(index: u32, network_id: u32, wall_clock: WallClock) -> Self {
        Config {
            index,
            network_id,
            suite: Suite::default(),
            wall_clock,
            limits: Limits::default(),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        let l = &self.limits;
        if self.index >= 1 << 24 {
            return Err(format!("peer index {} is not below 2^24", self.index));
        }
        if l.rekey_after_time >= l.reject_after_time {
            return Err("rekey_after_time must be below reject_after_time".into());
        }
        if l.rekey_after_messages == 0 || l.rekey_after_messages >= l.reject_after_messages {
            return Err(
                "rekey_after_messages must be above 0 and below reject_after_messages".into(),
            );
        }
        if l.reject_after_messages > MAX_REJECT_AFTER_MESSAGES {
            return Err(format!(
                "reject_after_messages is above {MAX_REJECT_AFTER_MESSAGES}"
            ));
        }
        if l.rekey_timeout.is_zero() {
            return Err("rekey_timeout must not be zero".into());
        }
        Ok(())
    }
}
