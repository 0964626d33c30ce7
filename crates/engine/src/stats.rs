//! Counters: updated lock-free by the workers (relaxed atomics, one cache line per direction so
//! the TAP-reading and socket-reading threads do not share a line), read as serde-serializable
//! snapshots by [`crate::Engine::stats`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};
use weft_secure::{DropReason, PeerState};

/// Declares an atomic counter block and its plain snapshot type with the same field names.
macro_rules! counters {
    ($(#[$m:meta])* $atomic:ident => $snap:ident { $($(#[$fm:meta])* $f:ident),* $(,)? }) => {
        #[derive(Debug, Default)]
        #[repr(align(64))]
        pub(crate) struct $atomic {
            $(pub $f: AtomicU64,)*
        }

        $(#[$m])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct $snap {
            $($(#[$fm])* pub $f: u64,)*
        }

        impl $atomic {
            pub(crate) fn snapshot(&self) -> $snap {
                $snap { $($f: self.$f.load(Relaxed),)* }
            }
        }
    };
}

counters!(
    /// The TAP → wire direction of one network.
    TxCounters => TxStats {
        /// Frames read from the TAP (a TCP super-frame counts once).
        frames,
        /// UDP datagrams sent (a segmented super-frame counts each segment, a flooded frame
        /// each copy).
        packets,
        /// UDP payload bytes sent (VXLAN header included).
        bytes,
        /// ARP requests answered locally.
        arp_replies,
        /// IPv6 neighbour solicitations answered locally.
        nd_replies,
        /// ICMP "fragmentation needed" / ICMPv6 "packet too big" written back into the TAP.
        icmp_errors,
        /// IPv4 packets without DF, larger than the MTU, fragmented before encapsulation.
        fragmented,
        /// Dropped: unicast to a MAC with no FDB entry and nowhere to flood, or a peer of the
        /// other address family than the underlay.
        drop_no_route,
        /// Dropped: larger than the MTU, and no ICMP error may be sent about it (not IP, an
        /// ICMP error itself, a multicast source, …).
        drop_too_big,
        /// Dropped: a frame or offload header that does not parse.
        drop_malformed,
        /// ARP frames consumed without answer (unknown target, gratuitous, replies), as the
        /// kernel's vxlan proxy mode does.
        drop_arp,
        /// Neighbour solicitations consumed without answer (unknown or invalid).
        drop_nd,
        /// Dropped: the UDP send failed.
        drop_send_error,
        /// Encrypted networks: frames held for a peer while its handshake is under way (sent
        /// once the session is up).
        queued,
        /// Encrypted networks: dropped because the peer's queue was full, its handshake was
        /// given up, or the destination is no member with a key.
        drop_no_session,
    }
);

counters!(
    /// The wire → TAP direction of one network.
    RxCounters => RxStats {
        /// VXLAN datagrams received for this network.
        packets,
        /// Their UDP payload bytes (VXLAN header included).
        bytes,
        /// Writes into the TAP (coalesced TCP super-frames count once).
        frames,
        /// Segments merged into a larger TCP frame before the TAP write (receive offload).
        coalesced,
        /// Dropped: from an underlay address that is no peer of this network.
        drop_unknown_peer,
        /// Dropped: inner frame too short to be Ethernet.
        drop_malformed,
        /// Dropped: inner TCP/UDP checksum wrong.
        drop_bad_checksum,
        /// Dropped: the TAP write failed (device down, gone).
        drop_tap_error,
    }
);

counters!(
    /// What the shared UDP sockets saw before a network was known.
    GlobalCounters => GlobalStats {
        /// UDP datagrams received (all networks, including dropped ones).
        rx_packets,
        /// Their UDP payload bytes.
        rx_bytes,
        /// Dropped: VNI of no network this engine serves.
        drop_unknown_vni,
        /// Dropped: not a VXLAN packet (too short, I flag clear).
        drop_malformed,
        /// Socket receive errors.
        recv_errors,
    }
);

/// Why the encrypted transport dropped a datagram besides weft-secure's own reasons
/// ([`DropReason::as_str`]): it came from an underlay address that is no member host of the
/// network it names (or of any encrypted network here).
pub const DROP_UNKNOWN_SOURCE: &str = "unknown_source";

const SECURE_REASONS: usize = DropReason::ALL.len() + 1;

/// Counters of the encrypted transport's sockets, engine-wide.
#[derive(Debug, Default)]
pub(crate) struct SecureCounters {
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    /// Messages sent outside the TAP workers' batches: handshake messages, keepalives, and
    /// frames held during a handshake and sent by the timer.
    pub tx_control: AtomicU64,
    pub recv_errors: AtomicU64,
    drops: [AtomicU64; SECURE_REASONS],
}

impl SecureCounters {
    pub(crate) fn drop(&self, reason: DropReason) {
        inc(&self.drops[reason.index()]);
    }

    pub(crate) fn drop_unknown_source(&self) {
        inc(&self.drops[DropReason::ALL.len()]);
    }

    pub(crate) fn snapshot(&self) -> SecureStats {
        let mut drops = BTreeMap::new();
        for r in DropReason::ALL {
            drops.insert(r.as_str().to_string(), self.drops[r.index()].load(Relaxed));
        }
        drops.insert(
            DROP_UNKNOWN_SOURCE.to_string(),
            self.drops[DropReason::ALL.len()].load(Relaxed),
        );
        SecureStats {
            rx_packets: self.rx_packets.load(Relaxed),
            rx_bytes: self.rx_bytes.load(Relaxed),
            tx_control: self.tx_control.load(Relaxed),
            recv_errors: self.recv_errors.load(Relaxed),
            drops,
        }
    }
}

/// What the encrypted transport's sockets saw, engine-wide.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecureStats {
    /// Datagrams received on the secure port (all of them, dropped ones included).
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Handshake messages, keepalives and held frames sent outside the TAP workers' batches.
    pub tx_control: u64,
    pub recv_errors: u64,
    /// Datagrams dropped, by reason: every `weft_secure::DropReason::as_str` name, and
    /// [`DROP_UNKNOWN_SOURCE`]. Every reason is present (0 when none).
    pub drops: BTreeMap<String, u64>,
}

impl SecureStats {
    /// Drops of `reason` (a [`DropReason::as_str`] name or [`DROP_UNKNOWN_SOURCE`]).
    pub fn dropped(&self, reason: &str) -> u64 {
        self.drops.get(reason).copied().unwrap_or(0)
    }
}

/// One encrypted session's peer: which network and host, and the session's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStats {
    pub vni: u32,
    /// The peer host's underlay address.
    pub addr: IpAddr,
    /// Frames waiting for the handshake.
    pub queued: usize,
    pub state: PeerState,
}

#[derive(Debug, Default)]
pub(crate) struct NetCounters {
    pub tx: TxCounters,
    pub rx: RxCounters,
}

/// Counters of one network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetStats {
    pub vni: u32,
    pub tap: String,
    pub tx: TxStats,
    pub rx: RxStats,
}

/// Everything [`crate::Engine::stats`] reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineStats {
    /// The VXLAN sockets (zero until a plain network is set).
    pub global: GlobalStats,
    /// The encrypted transport's sockets (zero until an encrypted network is set).
    pub secure: SecureStats,
    /// Networks served now, by VNI.
    pub networks: Vec<NetStats>,
    /// Every encrypted network's peers, by VNI and address.
    pub peers: Vec<PeerStats>,
}

impl EngineStats {
    /// The network with `vni`, if served.
    pub fn network(&self, vni: u32) -> Option<&NetStats> {
        self.networks.iter().find(|n| n.vni == vni)
    }

    /// The peer at `addr` of encrypted network `vni`.
    pub fn peer(&self, vni: u32, addr: IpAddr) -> Option<&PeerStats> {
        self.peers.iter().find(|p| p.vni == vni && p.addr == addr)
    }
}

/// `counter += n`, relaxed.
#[inline]
pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Relaxed);
}

/// `counter += 1`, relaxed.
#[inline]
pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}
