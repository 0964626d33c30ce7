//! # weft-engine: the userspace datapath
//!
//! A library the agent runs in-process. Each network gets a TAP device that the datapath layer
//! attaches to the network's bridge; between hosts, frames travel on one of three transports,
//! each bound on the underlay address only once the first network that uses it is set (UDP: one
//! socket per worker, SO_REUSEPORT):
//!
//! * plain networks: VXLAN (RFC 7348) on port 4789, shared by every plain network and
//!   demultiplexed by VNI, wire-compatible both ways with the Linux kernel's vxlan device, so
//!   hosts on the kernel path and hosts on the engine share a network;
//! * encrypted networks ([`Encap::Encrypted`]): weft-secure sessions on port 51820, one per
//!   (network, peer host), with this host's key pair from [`EngineConfig::keys`];
//! * GRE networks ([`Encap::Gre`]): Ethernet over GRE (protocol 0x6558, key = VNI), as Linux's
//!   gretap and Open vSwitch's GRE ports send it, on one raw IP socket (protocol 47), needing no
//!   kernel GRE module and no UDP port.
//!
//! Binding lazily lets a host whose plain networks use the kernel's VXLAN (which holds 4789)
//! run the engine for its encrypted networks only.
//!
//! ```no_run
//! use weft_engine::{Engine, EngineConfig, NetConfig};
//! # fn main() -> weft_engine::Result<()> {
//! let engine = Engine::start(EngineConfig::new("198.51.100.1".parse().unwrap()))?;
//! engine.set_network(NetConfig {
//!     vni: 42,
//!     tap: "wtp42".into(),
//!     mtu: 1450,
//!     fdb: vec![([2, 0x57, 10, 0, 0, 3], "198.51.100.2".parse().unwrap())],
//!     flood: vec!["198.51.100.2".parse().unwrap()],
//!     neigh: vec![("10.0.0.3".parse().unwrap(), [2, 0x57, 10, 0, 0, 3])],
//!     ..Default::default()
//! })?;
//! // … attach wtp42 to the bridge and set it up (netlink), then:
//! println!("{}", serde_json::to_string(&engine.stats()).unwrap());
//! # Ok(()) }
//! ```
//!
//! ## Forwarding (the kernel's vxlan device with `nolearning proxy`; encrypted networks alike)
//! TAP → wire, per frame: ARP requests and IPv6 neighbour solicitations are answered from the
//! network's neighbour entries by writing the reply back into the TAP (every ARP frame and
//! every solicitation is consumed, answered or not, as in proxy mode); unicast to a MAC in the
//! FDB goes to that host; broadcast, multicast and unknown unicast go to every flood address
//! (head-end replication). An IP packet larger than the network MTU gets an ICMP
//! "fragmentation needed" / ICMPv6 "packet too big" written back into the TAP (IPv4 without
//! DF is fragmented instead, a TCP super-frame without DF cut into smaller segments); nothing
//! is dropped silently: every drop has a counter ([`EngineStats`]).
//!
//! The TAP's own MTU is [`TAP_MTU`] (large) on purpose: a bridge silently drops a frame larger
//! than the egress port's MTU, so the datapath layer must not lower it to the network MTU, or
//! oversized packets never reach the engine to be answered.
//!
//! Wire → TAP: VXLAN datagrams are demultiplexed by VNI (unknown: counted drop) and accepted
//! only from the network's peers — the hosts in its `flood` and `fdb` lists — unless
//! [`NetConfig::accept_any_source`] (Linux's vxlan accepts any source; weft knows every peer
//! from the store, so a stray or departed host is refused and counted as `unknown_peer`). The
//! inner frame is written into the network's TAP.
//!
//! Datagrams are sent from one ephemeral source port per worker (RFC 7348 §5 asks for source
//! port entropy; receivers spread flows over their SO_REUSEPORT sockets by it) to the peer's
//! port 4789 (51820 for encrypted networks, same reason).
//!
//! ## Speed
//! A worker thread per TAP queue (multiqueue TAP) and per UDP socket; blocking in `poll`,
//! no allocation per packet. The TAP has IFF_VNET_HDR with checksum and TCP segmentation
//! offload: the kernel hands over 64 KiB TCP super-frames, which the engine cuts into
//! MTU-sized segments (`weft_wire::virtio::Segmenter`: headers rewritten, payload never
//! copied) and sends with UDP GSO, up to 64 datagrams per `sendmsg`. On receive, `recvmmsg`
//! with UDP GRO takes trains of datagrams; consecutive TCP segments of a flow are coalesced
//! into one super-frame written with a GSO virtio header — one `writev` of the headers and
//! the payload ranges in place, never copied. (A kernel vxlan sender on a veth underlay even
//! delivers whole super-frames, unsegmented: they are passed on whole, as GSO.)
//!
//! ## Encrypted networks
//! [`Encap`] (per network) is matched wherever a frame meets the wire. For an encrypted network
//! (`secure`, `tx::secure`, `rx::secure`):
//! - every piece of a frame (the frame, a TCP segment of a super-frame, an IPv4 fragment) is
//!   sealed whole as one transport message of the peer's session (`weft_secure::Peer`) and a
//!   run of them leaves in one `sendmsg` with UDP GSO, as plain VXLAN's do; the overlay MTU is
//!   1426 on a 1500-byte IPv4 underlay, and larger packets get the same ICMP errors;
//! - without a session, pieces are held (up to 1024 per peer) and a handshake starts; a new peer
//!   gets a handshake at once, so that first frames rarely wait; a timer thread runs every
//!   peer's timers (retransmission, rekeying on time and volume, keepalives) every 100 ms;
//! - a datagram is routed before any cryptography: a response or transport message by the slot
//!   in its receiver index, an initiation by its network and the sender's underlay address, and
//!   must come from the peer's address; it is then opened by the session, and the frame is
//!   written over its ciphertext in the receive batch so the same coalescer hands it to the TAP;
//! - the inner L4 checksum is neither finished by the sender nor verified by the receiver: the
//!   AEAD authenticates every byte, and the frame reaches the kernel as CHECKSUM_PARTIAL;
//! - whatever is refused is counted by reason ([`EngineStats::secure`]: weft-secure's
//!   [`DropReason`] names and [`DROP_UNKNOWN_SOURCE`]); per-peer session state is in
//!   [`Engine::peer_states`].
//!
//! ## GRE networks
//! Framed like plain VXLAN (an 8-byte header before the inner frame, the same segmentation and
//! receive coalescing), sent on the raw socket (segments of a super-frame in one `sendmmsg`,
//! since raw sockets have no UDP GSO) and received there with the outer IPv4 header, which is
//! stripped (`rx::gre`); the key names the network, the sender must be one of its peers.
//!
//! Codecs are `weft-wire`'s (VXLAN, Ethernet, ARP, ND, ICMP errors, virtio header and TCP
//! segmentation); the engine keeps privately only what it lacks: IPv4 fragmentation, the
//! zero-copy receive coalescer, a faster checksum sum, and the checksum classifier that
//! recognises partial checksums left by a kernel sender's offload.

mod config;
mod engine;
mod net;
mod pkt;
mod rx;
mod secure;
mod segment;
mod sock;
mod stats;
mod sys;
mod tap;
mod tx;

pub use config::{default_limits, Encap, EngineConfig, MacBytes, NetConfig, Secure};
pub use engine::Engine;
pub use stats::{
    EngineStats, GlobalStats, NetStats, PeerStats, RxStats, SecureStats, TxStats,
    DROP_UNKNOWN_SOURCE,
};
pub use tap::TAP_MTU;
pub use weft_secure::{DropReason, KeyPair, Limits, PeerState, PresharedKey, PublicKey, Suite};

/// The IANA VXLAN port.
pub const VXLAN_PORT: u16 = 4789;

/// The encrypted transport's default UDP port (WireGuard's).
pub const SECURE_PORT: u16 = 51820;

/// Errors of the engine's control calls (the data path counts, it does not fail).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
