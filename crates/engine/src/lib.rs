//! # weft-engine: the userspace datapath
//!
//! A library the agent runs in-process. One [`Engine`] per host binds one UDP socket (one per
//! worker, SO_REUSEPORT) on the underlay address and port 4789, shared by every network and
//! demultiplexed by VNI; each network gets a TAP device that the datapath layer attaches to
//! the network's bridge. Plain mode is VXLAN (RFC 7348), wire-compatible both ways with the
//! Linux kernel's vxlan device, so hosts on the kernel path and hosts on the engine share a
//! network.
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
//! ## Forwarding (what the kernel's vxlan device with `nolearning proxy` does)
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
//! port 4789.
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
//! ## The seam for encryption and GRE
//! [`Encap`] (per network) is matched wherever a frame meets the wire: `tx` frames it
//! (today: prepend the VXLAN header), `rx` unframes it (today: parse VXLAN, demux by VNI). An
//! encrypted transport adds a variant whose framing seals each datagram for a peer session
//! (crates/secure, `weft_wire::secure`) and whose receive path opens it before the VNI demux
//! (and may skip the inner checksum verification: the AEAD authenticated the bytes); GRE adds
//! one sent on a raw IP socket.
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
mod segment;
mod stats;
mod sys;
mod tap;
mod tx;
mod udp;

pub use config::{Encap, EngineConfig, MacBytes, NetConfig};
pub use engine::Engine;
pub use stats::{EngineStats, GlobalStats, NetStats, RxStats, TxStats};
pub use tap::TAP_MTU;

/// The IANA VXLAN port.
pub const VXLAN_PORT: u16 = 4789;

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
