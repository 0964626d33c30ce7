//! What the caller hands the engine: the engine's own settings and, per network, its TAP device
//! and forwarding entries.

use std::net::IpAddr;

/// An Ethernet MAC address as six bytes (`weft_model::Mac(pub [u8; 6])` converts with `.0`).
pub type MacBytes = [u8; 6];

/// Settings of a whole engine (one per host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// This host's underlay address: the UDP socket binds it, and peers send to it.
    pub underlay: IpAddr,
    /// UDP port of VXLAN, on both ends (4789, [`crate::VXLAN_PORT`]).
    pub port: u16,
    /// Worker count: TAP queues per network (multiqueue TAP) and UDP sockets (SO_REUSEPORT),
    /// each served by its own thread. 0 counts as 1. One per core is the usual choice.
    pub workers: usize,
    /// Kernel offloads on the TAP (IFF_VNET_HDR with checksum and TCP segmentation offload):
    /// the kernel hands over and takes 64 KiB TCP super-frames, which the engine segments on
    /// the way out and coalesces on the way in. On by default; off only to measure or debug.
    pub offload: bool,
    /// UDP generic segmentation (one `sendmsg` sends many equal-sized VXLAN datagrams) and UDP
    /// GRO on receive. On by default; off only to measure or debug.
    pub udp_gso: bool,
}

impl EngineConfig {
    /// Defaults: port 4789, one worker per available core (at most 4), offloads on.
    pub fn new(underlay: IpAddr) -> EngineConfig {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        EngineConfig {
            underlay,
            port: crate::VXLAN_PORT,
            workers: cores.clamp(1, 4),
            offload: true,
            udp_gso: true,
        }
    }
}

/// How a network's frames travel between hosts. The seam for more transports: the engine
/// matches on this wherever a frame is framed for the wire (`tx`) or unframed from it (`rx`).
///
/// * `Vxlan` — plain VXLAN (RFC 7348) over UDP, wire-compatible with Linux's vxlan device.
/// * later `Encrypted { .. }` — the same inner frames sealed per peer session
///   (crates/secure + `weft_wire::secure` framing), demultiplexed by session before VNI;
/// * later `Gre` — Ethernet over GRE (key = VNI) on a raw IP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Encap {
    /// Plain VXLAN over UDP.
    #[default]
    Vxlan,
}

/// One network as the engine serves it on this host: what `weft_reconcile::NetDesired` says,
/// plus the TAP device's name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetConfig {
    /// VXLAN network identifier (24 bits).
    pub vni: u32,
    /// Name of the TAP device the engine creates (e.g. `wtp42`); the datapath layer attaches
    /// it to the network's bridge and sets it up.
    pub tap: String,
    /// Overlay MTU: the largest IP packet carried. Larger ones get an ICMP "fragmentation
    /// needed" / ICMPv6 "packet too big" back (IPv4 without DF is fragmented instead).
    pub mtu: u32,
    /// Unicast entries: remote MAC → the underlay address of the host that has it.
    pub fdb: Vec<(MacBytes, IpAddr)>,
    /// Head-end replication: broadcast, multicast and unknown unicast go to each of these.
    pub flood: Vec<IpAddr>,
    /// ARP requests and IPv6 neighbour solicitations for these addresses are answered
    /// locally (like the kernel's vxlan `proxy` flag); all others are dropped, as there.
    pub neigh: Vec<(IpAddr, MacBytes)>,
    /// The transport; plain VXLAN for now.
    pub encap: Encap,
    /// Accept VXLAN packets of this network from any underlay source, as Linux's vxlan device
    /// does. Off by default: only hosts named in `flood` or `fdb` are accepted, others are
    /// dropped and counted (`unknown_peer`), so a stray or departed host cannot inject frames.
    pub accept_any_source: bool,
}
