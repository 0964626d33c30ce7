//! One network's live state: its TAP queues, forwarding tables and counters.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::RwLock;

use socket2::SockAddr;

use crate::config::{MacBytes, NetConfig};
use crate::engine::Transport;
use crate::secure::SecureNet;
use crate::stats::NetCounters;
use crate::sys::EventFd;

/// Where frames go and which ARP/ND questions are answered. Replaced whole on every
/// `set_network` (built outside the lock, swapped in under it), so a reader always sees one
/// consistent version.
#[derive(Debug, Default)]
pub(crate) struct Fwd {
    pub fdb: HashMap<MacBytes, SockAddr>,
    pub flood: Vec<SockAddr>,
    pub neigh4: HashMap<Ipv4Addr, MacBytes>,
    pub neigh6: HashMap<Ipv6Addr, MacBytes>,
    /// Underlay addresses accepted as senders (flood ∪ fdb destinations), sorted.
    pub peers: Vec<IpAddr>,
    pub accept_any: bool,
}

impl Fwd {
    /// Builds the tables for `cfg`, sending to `port` on an underlay of `underlay`'s family.
    /// Peers of the other family cannot be reached from this socket: they are left out and
    /// returned, so the caller can report them.
    pub(crate) fn build(cfg: &NetConfig, underlay: IpAddr, port: u16) -> (Fwd, Vec<IpAddr>) {
        let same = |a: &IpAddr| a.is_ipv4() == underlay.is_ipv4();
        let addr = |a: IpAddr| SockAddr::from(SocketAddr::new(a, port));
        let mut skipped = Vec::new();
        let mut fwd = Fwd {
            accept_any: cfg.accept_any_source,
            ..Fwd::default()
        };
        for (mac, dst) in &cfg.fdb {
            if same(dst) {
                fwd.fdb.insert(*mac, addr(*dst));
                fwd.peers.push(*dst);
            } else {
                skipped.push(*dst);
            }
        }
        let mut flood: Vec<IpAddr> = cfg.flood.clone();
        flood.sort();
        flood.dedup();
        for dst in flood {
            if dst == underlay {
                continue;
            }
            if same(&dst) {
                fwd.flood.push(addr(dst));
                fwd.peers.push(dst);
            } else {
                skipped.push(dst);
            }
        }
        for (ip, mac) in &cfg.neigh {
            match ip {
                IpAddr::V4(a) => fwd.neigh4.insert(*a, *mac),
                IpAddr::V6(a) => fwd.neigh6.insert(*a, *mac),
            };
        }
        fwd.peers.sort();
        fwd.peers.dedup();
        skipped.sort();
        skipped.dedup();
        (fwd, skipped)
    }

    /// Whether a VXLAN packet from `src` is accepted for this network.
    #[inline]
    pub(crate) fn accepts(&self, src: IpAddr) -> bool {
        self.accept_any || self.peers.binary_search(&src).is_ok()
    }
}

/// Length of a plain encapsulation header: VXLAN's and weft's GRE header (with key) alike.
pub(crate) const PREFIX_LEN: usize = 8;
const _: () =
    assert!(weft_wire::vxlan::HEADER_LEN == PREFIX_LEN && weft_wire::gre::HEADER_LEN == PREFIX_LEN);

pub(crate) struct Net {
    pub vni: u32,
    pub tap: String,
    /// The encrypted transport's peers; `None` for plain VXLAN.
    pub secure: Option<SecureNet>,
    /// One fd per TAP queue; the device lives as long as they are open.
    pub queues: Vec<OwnedFd>,
    /// Frames on the TAP carry a virtio-net header.
    pub vnet: bool,
    pub mtu: AtomicU32,
    pub fwd: RwLock<Fwd>,
    pub counters: NetCounters,
    /// Set (and `wake` signalled) to stop this network's TAP workers.
    pub stop: AtomicBool,
    pub wake: EventFd,
    /// Which transport carries it; a datagram that arrives on another is refused.
    pub transport: Transport,
    /// The plain encapsulation header of this network (VXLAN or GRE, both 8 bytes), ready to
    /// prepend; unused by encrypted networks, which seal instead.
    pub prefix: [u8; PREFIX_LEN],
}

impl Net {
    /// Pointer-free view for logs.
    pub(crate) fn label(&self) -> String {
        format!("network vni {} (tap {})", self.vni, self.tap)
    }
}
