//! Routes in the main table.

use std::net::IpAddr;

use ipnet::IpNet;
use nix::errno::Errno;
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
    RouteVia,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::Result;
use crate::{Error, Netlink};

fn describe(dest: IpNet, via: Option<IpAddr>, dev: Option<&str>) -> String {
    let mut s = format!("route {dest}");
    if let Some(v) = via {
        s += &format!(" via {v}");
    }
    if let Some(d) = dev {
        s += &format!(" dev {d}");
    }
    s
}

impl Netlink {
    async fn route_message(
        &self,
        dest: IpNet,
        via: Option<IpAddr>,
        dev: Option<&str>,
        for_delete: bool,
    ) -> Result<RouteMessage> {
        // The kernel rejects host bits in the destination; use the network.
        let dest = dest.trunc();
        let mut msg = RouteMessage::default();
        msg.header.address_family = match dest {
            IpNet::V4(_) => AddressFamily::Inet,
            IpNet::V6(_) => AddressFamily::Inet6,
        };
        msg.header.destination_prefix_length = dest.prefix_len();
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        if for_delete {
            // Wildcards, so the delete matches whatever protocol/scope the
            // route was added with (as `ip route del` does).
            msg.header.protocol = RouteProtocol::Unspec;
            msg.header.scope = RouteScope::NoWhere;
            msg.header.kind = RouteType::Unspec;
        } else {
            msg.header.protocol = RouteProtocol::Static;
            // Without a gateway the destination is on-link (like `ip route
            // add … dev X`, which picks scope link).
            msg.header.scope = if via.is_some() {
                RouteScope::Universe
            } else {
                RouteScope::Link
            };
            msg.header.kind = RouteType::Unicast;
        }
        if dest.prefix_len() > 0 {
            msg.attributes.push(RouteAttribute::Destination(match dest {
                IpNet::V4(n) => RouteAddress::Inet(n.network()),
                IpNet::V6(n) => RouteAddress::Inet6(n.network()),
            }));
        }
        match (dest, via) {
            (_, None) => {}
            (IpNet::V4(_), Some(IpAddr::V4(g))) => msg
                .attributes
                .push(RouteAttribute::Gateway(RouteAddress::Inet(g))),
            (IpNet::V6(_), Some(IpAddr::V6(g))) => msg
                .attributes
                .push(RouteAttribute::Gateway(RouteAddress::Inet6(g))),
            // An IPv4 route through an IPv6 next hop (RFC 5549) uses RTA_VIA.
            (IpNet::V4(_), Some(IpAddr::V6(g))) => {
                msg.attributes.push(RouteAttribute::Via(RouteVia::Inet6(g)))
            }
            (IpNet::V6(_), Some(IpAddr::V4(_))) => {
                return Err(Error::from_errno(
                    format!(
                        "{}: IPv6 route via an IPv4 gateway",
                        describe(dest, via, dev)
                    ),
                    Errno::EINVAL,
                ))
            }
        }
        if let Some(dev) = dev {
            let index = self.index_of(dev).await?;
            msg.attributes.push(RouteAttribute::Oif(index));
        }
        Ok(msg)
    }

    /// Adds, or replaces, the route to `dest` in the main table, through
    /// gateway `via` and/or out of device `dev` (at least one is needed).
    /// Replace semantics make it idempotent and let a changed next hop win.
    pub async fn add_route(
        &self,
        dest: IpNet,
        via: Option<IpAddr>,
        dev: Option<&str>,
    ) -> Result<()> {
        let msg = self.route_message(dest, via, dev, false).await?;
        self.ack(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .await
        .map_err(|e| e.with(format!("adding {}", describe(dest, via, dev))))
    }

    /// Adds, or replaces, the on-link route to `dest` out of `dev` with
    /// `src` as the preferred source address (`ip route replace DEST dev DEV
    /// src SRC`).
    pub async fn replace_route_src(&self, dest: IpNet, dev: &str, src: IpAddr) -> Result<()> {
        let mut msg = self.route_message(dest, None, Some(dev), false).await?;
        msg.attributes.push(RouteAttribute::PrefSource(match src {
            IpAddr::V4(a) => RouteAddress::Inet(a),
            IpAddr::V6(a) => RouteAddress::Inet6(a),
        }));
        self.ack(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .await
        .map_err(|e| {
            e.with(format!(
                "adding {} src {src}",
                describe(dest, None, Some(dev))
            ))
        })
    }

    /// The main table's routes to exactly `dest`: (output interface, preferred source) of each.
    pub async fn routes_to(&self, dest: IpNet) -> Result<Vec<(Option<u32>, Option<IpAddr>)>> {
        let dest = dest.trunc();
        let mut req = RouteMessage::default();
        req.header.address_family = match dest {
            IpNet::V4(_) => AddressFamily::Inet,
            IpNet::V6(_) => AddressFamily::Inet6,
        };
        let msgs = self
            .dump(RouteNetlinkMessage::GetRoute(req))
            .await
            .map_err(|e| e.with(format!("listing routes for {dest}")))?;
        let mut out = Vec::new();
        for m in msgs {
            let RouteNetlinkMessage::NewRoute(r) = m else {
                continue;
            };
            if r.header.table != RouteHeader::RT_TABLE_MAIN
                || r.header.destination_prefix_length != dest.prefix_len()
                || r.header.kind != RouteType::Unicast
            {
                continue;
            }
            // A default route carries no destination attribute.
            let mut dst = (dest.prefix_len() == 0).then(|| dest.network());
            let mut oif = None;
            let mut src = None;
            for a in &r.attributes {
                let ip = |x: &RouteAddress| match x {
                    RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
                    RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
                    _ => None,
                };
                match a {
                    RouteAttribute::Destination(x) => dst = ip(x),
                    RouteAttribute::Oif(i) => oif = Some(*i),
                    RouteAttribute::PrefSource(x) => src = ip(x),
                    _ => {}
                }
            }
            if dst == Some(dest.network()) {
                out.push((oif, src));
            }
        }
        Ok(out)
    }

    /// The preferred source of the route to exactly `dest` out of `dev`, if there is such a
    /// route (`Some(None)`: one without a preferred source).
    pub async fn route_src(&self, dest: IpNet, dev: &str) -> Result<Option<Option<IpAddr>>> {
        let index = self.index_of(dev).await?;
        Ok(self
            .routes_to(dest)
            .await?
            .into_iter()
            .find(|(oif, _)| *oif == Some(index))
            .map(|(_, src)| src))
    }

    /// Deletes the route to `dest` (matching `via`/`dev` when given); false
    /// if there was none.
    pub async fn del_route(
        &self,
        dest: IpNet,
        via: Option<IpAddr>,
        dev: Option<&str>,
    ) -> Result<bool> {
        let msg = match self.route_message(dest, via, dev, true).await {
            Ok(m) => m,
            // The device is gone, and its routes with it.
            Err(e) if e.errno() == Some(Errno::ENODEV) => return Ok(false),
            Err(e) => return Err(e),
        };
        match self.ack(RouteNetlinkMessage::DelRoute(msg), 0).await {
            Ok(()) => Ok(true),
            Err(e) if e.errno() == Some(Errno::ESRCH) => Ok(false),
            Err(e) => Err(e.with(format!("deleting {}", describe(dest, via, dev)))),
        }
    }
}
