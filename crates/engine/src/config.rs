//! What the caller hands the engine: the engine's own settings and, per network, its TAP device
//! and forwarding entries.

use std::collections::BTreeMap;
use std::net::IpAddr;

use weft_secure::{KeyPair, Limits, PresharedKey, PublicKey, Suite};

/// An Ethernet MAC address as six bytes (`weft_model::Mac(pub [u8; 6])` converts with `.0`).
pub type MacBytes = [u8; 6];

/// Settings of a whole engine (one per host).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This host's underlay address: the UDP sockets bind it, and peers send to it.
    pub underlay: IpAddr,
    /// UDP port of VXLAN, on both ends (4789, [`crate::VXLAN_PORT`]). Bound only once a plain
    /// network is set, so that a host whose plain networks use the kernel's VXLAN (which holds
    /// this port) can run the engine for its encrypted networks.
    pub port: u16,
    /// UDP port of the encrypted transport, on both ends (51820, [`crate::SECURE_PORT`]).
    /// Bound only once an encrypted network is set.
    pub secure_port: u16,
    /// This host's static key pair: needed for encrypted networks (refused without it).
    pub keys: Option<KeyPair>,
    /// Timers and limits of the encrypted sessions ([`default_limits`]; tests shrink them).
    pub limits: Limits,
    /// AEAD of the encrypted sessions; every host of a network must use the same.
    pub suite: Suite,
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
    /// Defaults: ports 4789 and 51820, no key pair, one worker per available core (at most 4), offloads on.
    pub fn new(underlay: IpAddr) -> EngineConfig {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        EngineConfig {
            underlay,
            port: crate::VXLAN_PORT,
            secure_port: crate::SECURE_PORT,
            keys: None,
            limits: default_limits(),
            suite: Suite::default(),
            workers: cores.clamp(1, 4),
            offload: true,
            udp_gso: true,
        }
    }
}

/// The engine's session limits: WireGuard's, but for a handshake that gets no answer retried
/// after 1 s rather than 5 s. An overlay's hosts are a LAN apart, and the retry is what a lost
/// first initiation costs: when both sides start at once (two engines adding each other), the
/// greater key ignores the other's initiation and waits for the answer to its own, which is lost
/// if the peer's socket was not bound yet when it went out.
pub fn default_limits() -> Limits {
    Limits {
        rekey_timeout: std::time::Duration::from_secs(1),
        rekey_jitter: std::time::Duration::from_millis(100),
        ..Limits::default()
    }
}

/// How a network's frames travel between hosts. The seam for more transports: the engine
/// matches on this wherever a frame is framed for the wire (`tx`) or unframed from it (`rx`).
///
/// * `Vxlan` — plain VXLAN (RFC 7348) over UDP, wire-compatible with Linux's vxlan device.
/// * `Encrypted` — the inner frames sealed whole, one weft-secure session per (network, peer
///   host), on the engine's secure port (`weft_wire::secure` framing; docs/wire-format.md).
/// * `Gre` — Ethernet over GRE (RFC 2784/2890: protocol 0x6558, key = VNI), what Linux's
///   gretap and Open vSwitch's GRE ports send, on a raw IP socket (protocol 47) bound on first
///   use; needs no kernel GRE module and no UDP port, so any host can carry it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Encap {
    /// Plain VXLAN over UDP.
    #[default]
    Vxlan,
    /// Authenticated encryption between member hosts.
    Encrypted(Secure),
    /// Plain Ethernet over GRE, key = VNI.
    Gre,
}

impl Encap {
    pub fn is_encrypted(&self) -> bool {
        matches!(self, Encap::Encrypted(_))
    }
}

/// An encrypted network's keys: its pre-shared key and its member hosts. Frames go only to, and
/// are accepted only from, these hosts, each authenticated by its static key.
#[derive(Debug, Clone)]
pub struct Secure {
    /// Mixed into every handshake ([`PresharedKey::none`] when the network has none).
    pub psk: PresharedKey,
    /// Each peer host's underlay address and static public key.
    pub peers: Vec<(IpAddr, PublicKey)>,
    /// The secure port of each peer whose port is not this engine's own
    /// ([`EngineConfig::secure_port`]): its messages go there.
    pub ports: BTreeMap<IpAddr, u16>,
}

impl PartialEq for Secure {
    fn eq(&self, other: &Self) -> bool {
        self.psk.as_bytes() == other.psk.as_bytes()
            && self.peers == other.peers
            && self.ports == other.ports
    }
}

impl Eq for Secure {}

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
    /// The transport: plain VXLAN, GRE or encrypted. Changing between them replaces the TAP;
    /// a changed peer list or PSK of an encrypted network is applied in place (sessions of
    /// unchanged peers live on).
    pub encap: Encap,
    /// Accept VXLAN (or GRE) packets of this network from any underlay source, as Linux's vxlan
    /// device does. Off by default: only hosts named in `flood` or `fdb` are accepted, others are
    /// dropped and counted (`unknown_peer`), so a stray or departed host cannot inject frames.
    pub accept_any_source: bool,
}
