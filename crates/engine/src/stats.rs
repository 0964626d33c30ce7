//! Counters: updated lock-free by the workers (relaxed atomics, one cache line per direction so
//! the TAP-reading and socket-reading threads do not share a line), read as serde-serializable
//! snapshots by [`crate::Engine::stats`].

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

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
    pub global: GlobalStats,
    /// Networks served now, by VNI.
    pub networks: Vec<NetStats>,
}

impl EngineStats {
    /// The network with `vni`, if served.
    pub fn network(&self, vni: u32) -> Option<&NetStats> {
        self.networks.iter().find(|n| n.vni == vni)
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
