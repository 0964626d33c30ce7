//! Neighbour (ARP/ND) entries on a VXLAN device. With `proxy` on, the
//! device answers ARP requests and neighbour solicitations from these
//! entries instead of sending them across the underlay.

use std::net::IpAddr;

use nix::errno::Errno;
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{Context, Result};
use crate::{MacAddr, Netlink};

/// One neighbour entry that has a link-layer address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NeighEntry {
    pub ip: IpAddr,
    pub mac: MacAddr,
    pub permanent: bool,
}

fn family(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn neigh_message(ifindex: u32, ip: IpAddr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = family(ip);
    msg.header.ifindex = ifindex;
    msg.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::from(ip)));
    msg
}

impl Netlink {
    /// Sets the permanent neighbour entry `ip` → `mac` on link `ifindex`,
    /// replacing any entry for `ip`.
    pub async fn neigh_set(&self, ifindex: u32, ip: IpAddr, mac: MacAddr) -> Result<()> {
        let mut msg = neigh_message(ifindex, ip);
        msg.header.state = NeighbourState::Permanent;
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
        self.ack(
            RouteNetlinkMessage::NewNeighbour(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .await
        .ctx(|| format!("setting neighbour {ip} lladdr {mac} on link index {ifindex}"))
    }

    /// Deletes the neighbour entry for `ip` on link `ifindex`; false if none.
    pub async fn neigh_del(&self, ifindex: u32, ip: IpAddr) -> Result<bool> {
        let msg = neigh_message(ifindex, ip);
        match self.ack(RouteNetlinkMessage::DelNeighbour(msg), 0).await {
            Ok(()) => Ok(true),
            Err(e) if e.errno() == Some(Errno::ENOENT) => Ok(false),
            Err(e) => Err(e.with(format!("deleting neighbour {ip} on link index {ifindex}"))),
        }
    }

    /// IPv4 and IPv6 neighbour entries of link `ifindex` that have a MAC
    /// (incomplete or failed resolutions are left out).
    pub async fn neigh_dump(&self, ifindex: u32) -> Result<Vec<NeighEntry>> {
        let mut out = Vec::new();
        // One dump per family: an AF_UNSPEC dump would also walk the bridge
        // FDB and every other family's table.
        for fam in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut req = NeighbourMessage::default();
            req.header.family = fam;
            // NDA_IFINDEX makes the kernel filter by device.
            req.attributes.push(NeighbourAttribute::IfIndex(ifindex));
            let msgs = self
                .dump(RouteNetlinkMessage::GetNeighbour(req))
                .await
                .ctx(|| format!("dumping neighbours of link index {ifindex}"))?;
            for m in msgs {
                let RouteNetlinkMessage::NewNeighbour(n) = m else {
                    continue;
                };
                if n.header.ifindex != ifindex {
                    continue;
                }
                let mut ip = None;
                let mut mac = None;
                for a in &n.attributes {
                    match a {
                        NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => {
                            ip = Some(IpAddr::V4(*a))
                        }
                        NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                            ip = Some(IpAddr::V6(*a))
                        }
                        NeighbourAttribute::LinkLayerAddress(b) => mac = MacAddr::from_slice(b),
                        _ => {}
                    }
                }
                if let (Some(ip), Some(mac)) = (ip, mac) {
                    out.push(NeighEntry {
                        ip,
                        mac,
                        permanent: n.header.state == NeighbourState::Permanent,
                    });
                }
            }
        }
        Ok(out)
    }
}
