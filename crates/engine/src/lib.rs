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
//! DF is fragmented instead); nothing is dropped silently: every drop has a counter.
//!
//! Wire → TAP: VXLAN datagrams are demultiplexed by VNI (unknown: counted drop), accepted
//! only from the network's peers unless [`NetConfig::accept_any_source`], and the inner frame
//! is written into the network's TAP.
//!
//! ## Speed
//! A worker thread per TAP queue (multiqueue TAP) and per UDP socket; blocking I/O woken by
//! `poll`; no allocation per packet. The TAP has IFF_VNET_HDR with checksum and TCP
//! segmentation offload: the kernel hands over 64 KiB TCP super-frames, which the engine cuts
//! into MTU-sized segments (headers rewritten, payload never copied) and sends with UDP GSO,
//! up to 64 datagrams per `sendmsg`. On receive, `recvmmsg` with UDP GRO takes trains of
//! datagrams; consecutive TCP segments of a flow are coalesced back into one super-frame
//! written with a GSO virtio header (one `writev`, payload never copied).
//!
//! ## The seam for encryption and GRE
//! [`Encap`] (per network) is matched wherever a frame meets the wire: `tx` frames it
//! (today: prepend the VXLAN header), `rx` unframes it (today: parse VXLAN, demux by VNI). An
//! encrypted transport adds a variant whose framing seals each datagram for a peer session
//! (crates/secure, `weft_wire::secure`) and whose receive path opens it before the VNI demux;
//! GRE adds one sent on a raw IP socket.

mod config;
mod engine;
mod icmp;
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
