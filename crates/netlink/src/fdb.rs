//! The forwarding database of a VXLAN device (`bridge fdb … self`): which
//! underlay address each overlay MAC lives behind, plus all-zero-MAC
//! entries listing the peers that get a copy of broadcast/unknown traffic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use nix::errno::Errno;
use rtnetlink::packet_core::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_REPLACE};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{Context, Result};
use crate::{MacAddr, Netlink};

/// One destination of one FDB entry. An all-zero-MAC entry with several
/// destinations is reported as several `FdbEntry`s.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FdbEntry {
    pub mac: MacAddr,
    /// Underlay address the frames are sent to.
    pub dst: Option<IpAddr>,
    pub permanent: bool,
}

fn fdb_message(ifindex: u32, mac: MacAddr, dst: IpAddr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = ifindex;
    msg.header.state = NeighbourState::Permanent;
    // NTF_SELF: the entry belongs to the VXLAN device's own table. Without
    // it, on a bridge port, the kernel would put it in the bridge's FDB,
    // where it has no destination and does nothing for VXLAN.
    msg.header.flags = NeighbourFlags::Own;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
    msg.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::from(dst)));
    msg
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(b).ok()?))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?))),
        _ => None,
    }
}

impl Netlink {
    /// Points `mac` at the underlay address `dst` on VXLAN device `ifindex`
    /// (permanent, `self`); replaces an existing destination for that MAC.
    /// For the all-zero flood MAC use [`Netlink::fdb_append_flood`].
    pub async fn fdb_add(&self, ifindex: u32, mac: MacAddr, dst: IpAddr) -> Result<()> {
        let msg = fdb_message(ifindex, mac, dst);
        self.ack(
            RouteNetlinkMessage::NewNeighbour(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .await
        .ctx(|| format!("adding fdb entry {mac} dst {dst} on link index {ifindex}"))
    }

    /// Adds `dst` to the all-zero-MAC entry of VXLAN device `ifindex`, so
    /// broadcast and unknown frames are also replicated to it (head-end
    /// replication). Several destinations coexist (`NLM_F_APPEND`, as
    /// `bridge fdb append`); adding one already listed succeeds.
    pub async fn fdb_append_flood(&self, ifindex: u32, dst: IpAddr) -> Result<()> {
        let msg = fdb_message(ifindex, MacAddr::ZERO, dst);
        self.ack(
            RouteNetlinkMessage::NewNeighbour(msg),
            NLM_F_CREATE | NLM_F_APPEND,
        )
        .await
        .ctx(|| format!("appending flood destination {dst} on link index {ifindex}"))
    }

    /// Removes destination `dst` of `mac` from VXLAN device `ifindex`; other
    /// destinations of the same MAC (e.g. other flood peers) stay (`NDA_DST`
    /// is always sent, which is what makes the kernel remove only that one).
    /// False if the MAC had no entry at all; for an existing MAC without
    /// that destination the kernel reports success, so this returns true.
    pub async fn fdb_del(&self, ifindex: u32, mac: MacAddr, dst: IpAddr) -> Result<bool> {
        let msg = fdb_message(ifindex, mac, dst);
        match self.ack(RouteNetlinkMessage::DelNeighbour(msg), 0).await {
            Ok(()) => Ok(true),
            Err(e) if e.errno() == Some(Errno::ENOENT) => Ok(false),
            Err(e) => Err(e.with(format!(
                "deleting fdb entry {mac} dst {dst} on link index {ifindex}"
            ))),
        }
    }

    /// The device's own (`self`) FDB entries of link `ifindex`; entries the
    /// bridge keeps about that port are not included.
    pub async fn fdb_dump(&self, ifindex: u32) -> Result<Vec<FdbEntry>> {
        let mut req = NeighbourMessage::default();
        req.header.family = AddressFamily::Bridge;
        let msgs = self
            .dump(RouteNetlinkMessage::GetNeighbour(req))
            .await
            .ctx(|| format!("dumping fdb of link index {ifindex}"))?;
        let mut out = Vec::new();
        for m in msgs {
            let RouteNetlinkMessage::NewNeighbour(n) = m else {
                continue;
            };
            // The legacy dump request cannot filter by port: filter here.
            if n.header.ifindex != ifindex || !n.header.flags.contains(NeighbourFlags::Own) {
                continue;
            }
            let mut mac = None;
            let mut dst = None;
            for a in &n.attributes {
                match a {
                    NeighbourAttribute::LinkLayerAddress(b) => mac = MacAddr::from_slice(b),
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => {
                        dst = Some(IpAddr::V4(*a))
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                        dst = Some(IpAddr::V6(*a))
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Other(b)) => {
                        dst = ip_from_bytes(b)
                    }
                    _ => {}
                }
            }
            if let Some(mac) = mac {
                out.push(FdbEntry {
                    mac,
                    dst,
                    permanent: n.header.state == NeighbourState::Permanent,
                });
            }
        }
        Ok(out)
    }
}
